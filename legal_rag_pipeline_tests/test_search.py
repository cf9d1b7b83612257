"""Search: article-level grouping, law/source filters, hybrid (dense + bm25 by RRF) with the loopback embedder."""

from __future__ import annotations

import io
import json
import shutil
from types import SimpleNamespace

import pytest

from legal_rag_pipeline import cli
from legal_rag_pipeline.definitions import build_embedder, build_store
from legal_rag_pipeline.search import DocumentFilter, group_hits, match_law_titles, normalise_title, search
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import SAMPLE_DATA, make_env, shared_data


def _point(pid, score, group=None, **payload):
    return SimpleNamespace(id=pid, score=score, payload={"group_key": group, "page_content": pid, **payload})


def test_group_hits_keeps_the_best_piece_of_each_article():
    points = [
        _point("a1", 0.9, "law.txt#dieu-4", article="4"),
        _point("a2", 0.8, "law.txt#dieu-4", article="4"),  # second piece of the same article: merged
        _point("b", 0.7, "law.txt#dieu-6", article="6"),
        _point("q", 0.6, None, source="qa.xlsx"),  # a Q&A row without group key is its own answer
        _point("c", 0.5, None, source="other.txt", article="4"),  # old payload: grouped by source + article
        _point("c2", 0.4, None, source="other.txt", article="4"),
        _point("d", 0.3, "law.txt#dieu-9", article="9"),
    ]
    hits = group_hits(points, 4)
    assert [h.id for h in hits] == ["a1", "b", "q", "c"]
    assert hits[0].score == 0.9 and hits[0].page_content == "a1"
    assert [h.id for h in group_hits(points, 10)] == ["a1", "b", "q", "c", "d"]
    assert group_hits(points, 0) == []


def test_equal_scores_come_in_the_files_order_whatever_order_the_store_gives():
    """Fused scores tie often; the store's order of tied points changes from one process to the next, so
    the same question got its answers in another order each time. Ties go by file, piece, then id."""
    tied = [
        _point("p3", 0.5, "b.txt#dieu-2", source="b.txt", chunk_index=7, article="2"),
        _point("p2", 0.5, "a.txt#dieu-9", source="a.txt", chunk_index=30, article="9"),
        _point("p1", 0.5, "a.txt#dieu-4", source="a.txt", chunk_index=12, article="4"),
        _point("top", 0.9, "c.txt#dieu-1", source="c.txt", chunk_index=0, article="1"),
        _point("q2", 0.5, None, source="a.txt"),  # no place in the file: by id
        _point("q1", 0.5, None, source="a.txt"),
        _point("low", 0.1, "a.txt#dieu-1", source="a.txt", chunk_index=0, article="1"),
    ]
    expected = ["top", "q1", "q2", "p1", "p2", "p3", "low"]
    for order in (tied, tied[::-1], tied[3:] + tied[:3]):
        assert [h.id for h in group_hits(order, 10)] == expected
    assert [h.id for h in group_hits(iter(tied[::-1]), 2)] == ["top", "q1"]  # any iterable, cut after sorting


def test_law_titles_match_case_nfc_tone_and_accents():
    titles = ["Luật Cư trú mẫu", "Luật Phòng, chống ma túy", "Bộ luật Dân sự", "Luật Giáo dục", "Luật Giáo dục đại học"]
    assert normalise_title("LUẬT PHÒNG CHỐNG MA TUÝ") == normalise_title("Luật Phòng, chống ma túy")
    assert match_law_titles("bộ luật dân sự", titles) == ["Bộ luật Dân sự"]
    assert match_law_titles("luat phong chong ma tuy", titles) == ["Luật Phòng, chống ma túy"]
    assert match_law_titles("Luật Giáo dục", titles) == ["Luật Giáo dục"]  # exact beats containment
    assert match_law_titles("cư trú", titles) == ["Luật Cư trú mẫu"]
    assert match_law_titles("Luật Đất đai", titles) == []


@pytest.fixture
def bm25_env(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    assert env.ingest()[0] == 0
    return env


def _run(query, **kwargs):
    out = io.StringIO()
    assert cli.run_search(load_settings(), [query], kwargs.pop("top_k", 5), True, out=out, **kwargs) == 0
    return json.loads(out.getvalue().splitlines()[0])["hits"]


def test_bm25_filters_by_law_and_source(bm25_env):
    everything = _run("người", top_k=10)
    assert {h["source"] for h in everything} >= {"luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"}
    for law in ("Luật Cư trú mẫu", "LUẬT CƯ TRÚ MẪU", "luat cu tru mau", "cư trú"):
        hits = _run("người", top_k=10, law=law)
        assert hits and {h["law"] for h in hits} == {"Luật Cư trú mẫu"}, law
    assert _run("người", law="Luật Đất đai") == []
    hits = _run("người", top_k=10, source="luat-mau-giao-thong.txt")
    assert hits and {h["source"] for h in hits} == {"luat-mau-giao-thong.txt"}
    keys = [(h["source"], h["article"] or h["id"]) for h in everything]
    assert len(keys) == len(set(keys))  # k different articles


def test_an_article_named_with_its_law_comes_first(tmp_path, monkeypatch):
    """"Điều 3 Luật Cư trú mẫu …" puts that article first, then the usual ranking; without its law (or
    outside --law) the article is only words of the query."""
    env = make_env(tmp_path, monkeypatch)
    for name in ("luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"):
        shutil.copy2(SAMPLE_DATA / name, env.data / name)
    assert env.ingest()[0] == 0
    question = "thời hạn tạm trú tối đa là bao lâu"
    usual = [(h["law"], h["article"]) for h in _run(question)]
    assert usual[0] == ("Luật Cư trú mẫu", "6")
    for named in ("Điều 3 Luật Cư trú mẫu: " + question, "Theo điều 3 của luật cư trú mẫu, " + question,
                  "Điều 3 Luật số 01/2026/MAU: " + question):
        hits = [(h["law"], h["article"]) for h in _run(named)]
        assert hits[0] == ("Luật Cư trú mẫu", "3"), named
        assert hits[1] == usual[0] and len(set(hits)) == 5, named  # then the usual ranking
    # no law: which Điều 3? Only its words count
    assert _run("Điều 3 quy định gì về " + question)[0]["article"] != "3"
    # the law named is outside --law: nothing is pinned
    assert all(h["law"] == "Luật Giao thông mẫu" for h in _run("Điều 3 Luật Cư trú mẫu xe", law="Luật Giao thông mẫu"))
    assert len(_run("Điều 3 Luật Cư trú mẫu: " + question, top_k=1)) == 1


def test_fusion_weights_reach_the_query_and_change_nothing_without_dense_vectors(bm25_env, monkeypatch):
    question = "Người đủ 16 tuổi trở lên được lái xe gắn máy"
    plain = _run(question)
    monkeypatch.setenv("FUSION_WEIGHTS", "1,3")
    assert load_settings().fusion_weights == (1.0, 3.0)
    assert _run(question) == plain
    for bad in ("1", "a,b", "1,2,3", "0,0", "-1,2"):
        monkeypatch.setenv("FUSION_WEIGHTS", bad)
        with pytest.raises(cli.ConfigurationError, match="FUSION_WEIGHTS"):
            load_settings()


def test_hybrid_search_fuses_dense_and_bm25(tmp_path, monkeypatch, embeddings_server, capsys):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    env.copy_sample()
    assert env.ingest()[0] == 0
    assert cli.main(["search", "Thời hạn tạm trú tối đa là bao lâu?", "--law", "luật cư trú mẫu", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "[hybrid (dense + bm25)]" in out and "Điều 6" in out

    settings = load_settings()
    store, embedder = build_store(settings, resolve=True), build_embedder(settings, resolve=True)
    query = "Người đủ 16 tuổi trở lên được lái xe gắn máy"
    dense = embedder.embed([query])[0].tolist()
    with store.connect() as collection:
        assert collection.dense_size() == embeddings_server.dim
        hybrid = search(collection, query, 5, dense_vector=dense)
        lexical = search(collection, query, 5)
        dense_only = search(collection, "!!!", 5, dense_vector=dense)  # no words: dense alone answers
        filtered = search(collection, query, 5, dense_vector=dense, source="luat-mau-cu-tru.txt")
    assert ("6", "luat-mau-giao-thong.txt") in [(h.article, h.source) for h in hybrid[:2]]
    assert all(h.score <= 1.0 for h in hybrid)  # reciprocal-rank scores, not bm25 scores
    assert any(h.score > 1.0 for h in lexical)
    assert dense_only and ("6", "luat-mau-giao-thong.txt") in [(h.article, h.source) for h in dense_only[:3]]
    assert filtered and {h.source for h in filtered} == {"luat-mau-cu-tru.txt"}
    keys = [(h.source, h.article or h.id) for h in hybrid]
    assert len(keys) == len(set(keys)) == 5

    # fusion weights (bm25, dense) pull the fused list towards the heavier one (words of one question,
    # the dense vector of another, so that the two lists disagree)
    other = embedder.embed(["Thời hạn tạm trú tối đa là bao lâu?"])[0].tolist()
    with store.connect() as collection:
        lexical_ids = {h.id for h in search(collection, query, 5)}
        dense_ids = {h.id for h in search(collection, "!!!", 5, dense_vector=other)}
        towards_bm25 = {h.id for h in search(collection, query, 5, dense_vector=other, fusion_weights=(1, 0.01))}
        towards_dense = {h.id for h in search(collection, query, 5, dense_vector=other, fusion_weights=(0.01, 1))}
    assert len(towards_bm25 & lexical_ids) > len(towards_dense & lexical_ids)
    assert len(towards_dense & dense_ids) > len(towards_bm25 & dense_ids)
    # FUSION_WEIGHTS reaches `legal-rag search`: the fused scores change with it
    plain = [h["score"] for h in _run(query)]
    monkeypatch.setenv("FUSION_WEIGHTS", "1,3")
    assert [h["score"] for h in _run(query)] != plain


def test_filters_by_the_documents_own_number_type_issuer_and_dates(tmp_path, monkeypatch):
    laws = shared_data() / "laws"
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    for name in ("Luat-thue-bao-ve-moi-truong-2010-115247.txt", "Luat-thue-tai-nguyen-nam-2009-98731.txt"):
        shutil.copy2(laws / name, env.data / name)
    assert env.ingest()[0] == 0
    docs = {p["source"]: p for p in env.points().values() if p.get("number")}
    env_law, res_law = docs["Luat-thue-bao-ve-moi-truong-2010-115247.txt"], docs["Luat-thue-tai-nguyen-nam-2009-98731.txt"]
    assert env_law["number"] != res_law["number"] and env_law["issued_on"] and res_law["issued_on"]

    # the number as typed in datasets (lower case, no Đ, spaces) finds the document
    typed = env_law["number"].lower().replace("đ", "d").replace("/", " / ")
    hits = _run("thuế", top_k=10, document=DocumentFilter(number=typed))
    assert hits and {h["source"] for h in hits} == {env_law["source"]}
    assert {h["source"] for h in _run("luật", top_k=20, document=DocumentFilter(doc_type="LUẬT", issuer="quốc hội"))} >= {
        env_law["source"], res_law["source"], "luat-mau-cu-tru.txt"}
    assert _run("thuế", document=DocumentFilter(issuer="Chính phủ")) == []
    first, last = sorted([env_law["issued_on"], res_law["issued_on"]])
    later = _run("thuế", top_k=10, document=DocumentFilter(issued_after=last))
    assert later and {h["source"] for h in later} == {docs_by_date(docs, last)}
    both = _run("thuế", top_k=20, document=DocumentFilter(issued_after=first, issued_before=last))
    assert {h["source"] for h in both} == {env_law["source"], res_law["source"]}
    assert _run("thuế", document=DocumentFilter(issued_before="1990-01-01")) == []
    assert _run("thuế", document=DocumentFilter(number="999/2099/QH99")) == []

    # the same through the command line
    assert cli.main(["search", "thuế", "--number", env_law["number"], "--json"]) == 0


def docs_by_date(docs: dict, date: str) -> str:
    return next(source for source, p in docs.items() if p["issued_on"] == date)
