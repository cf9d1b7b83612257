"""`legal-rag eval`: exact recall on a fixture with known answers; the 17 ALQAC laws end to end."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from legal_rag_pipeline import cli, evaluation, ingest
from legal_rag_pipeline.records import Chunk
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline_tests.pipeline_env import make_env, shared_data


def _law(source: str, law: str, articles: dict[str, str]) -> list[Chunk]:
    return [
        Chunk(source, f"dieu-{n}", f"Điều {n}. {body}", {"kind": "law", "law": law, "chapter": None, "article": n})
        for n, body in articles.items()
    ]


CHUNKS = _law("a.txt", "Luật Thử nghiệm", {
    "1": "Quả táo",
    "2": "Quả cam cam cam",
    "3": "Quả cam chuối chuối chuối chuối chuối chuối",
    "4": "Quả nho",
    "5": "Quả dứa",
}) + _law("b.txt", "Luật Khác", {"1": "Quả xoài"})

QUESTIONS = [
    {"question_id": "q1", "question_type": "T1", "text": "táo",
     "relevant_articles": [{"law_id": "luật thử nghiệm", "article_id": "1"}]},  # rank 1
    {"question_id": "q2", "question_type": "T1", "text": "cam",
     "relevant_articles": [{"law_id": unicodedata.normalize("NFD", "LUẬT THỬ NGHIỆM"), "article_id": "3"}]},  # rank 2
    {"question_id": "q3", "question_type": "T2", "text": "nho",
     "relevant_articles": [{"law_id": "Luật Thử nghiệm", "article_id": "5"}]},  # not found
    {"question_id": "q4", "question_type": "T2", "text": "xoài",
     "relevant_articles": [{"law_id": "Luật khác biệt", "article_id": "Điều 1"}]},  # found only with the law map
]


@pytest.fixture
def fixture_env(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.qdrant.parent.mkdir(parents=True, exist_ok=True)
    store = QdrantStore(path=str(env.qdrant))
    with store.connect() as collection:
        collection.ensure(None, None)
        collection.upsert(ingest.chunk_point(c, i, "sha", ingest.BM25_ONLY_MODEL, "now", None) for i, c in enumerate(CHUNKS))
    (tmp_path / "questions.json").write_text(json.dumps(QUESTIONS, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "law-map.json").write_text(json.dumps({"Luật khác biệt": "Luật Khác"}, ensure_ascii=False), encoding="utf-8")
    return env


def test_exact_recall_and_mrr_without_and_with_law_map(fixture_env, capsys):
    root = fixture_env.root
    assert cli.main(["eval", "--questions", str(root / "questions.json"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["overall"] == {"questions": 4, "recall@1": 0.25, "recall@5": 0.5, "recall@10": 0.5, "mrr@10": 0.375}
    assert metrics["T1"] == {"questions": 2, "recall@1": 0.5, "recall@5": 1.0, "recall@10": 1.0, "mrr@10": 0.75}

    assert cli.main([
        "eval", "--questions", str(root / "questions.json"), "--law-map", str(root / "law-map.json"),
        "--k", "1,2", "--report", str(root / "out" / "report.md"), "--plot", str(root / "out" / "recall.png"),
    ]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if re.match(r"^(T1|T2|overall) ", line)}
    assert rows["overall"] == ["4", "0.500", "0.750", "0.625"]  # questions, recall@1, recall@2, MRR@10
    assert rows["T2"] == ["2", "0.500", "0.500", "0.500"]
    report = (root / "out" / "report.md").read_text(encoding="utf-8")
    assert "| overall | 4 | 0.500 | 0.750 | 0.625 |" in report
    assert "![recall against k](recall.png)" in report and "| q3 | T2 |" in report
    assert (root / "out" / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CHOICE_QUESTIONS = [
    # the stem alone ties every article on "quả"; its options name the fruit of article 4
    {"question_id": "m1", "question_type": "Trắc nghiệm", "text": "Quả nào sau đây?",
     "choices": {"A": "nho", "B": "cả A và B đều sai"}, "relevant_articles": [{"law_id": "Luật Thử nghiệm", "article_id": "4"}]},
    {"question_id": "m2", "question_type": "Đúng/Sai", "text": "Quả táo, đúng hay sai?",
     "relevant_articles": [{"law_id": "Luật Thử nghiệm", "article_id": "1"}]},
]


def test_a_multiple_choice_question_is_searched_with_its_options(fixture_env, capsys):
    path = fixture_env.root / "choices.json"
    path.write_text(json.dumps(CHOICE_QUESTIONS, ensure_ascii=False), encoding="utf-8")
    (m1, m2) = evaluation.load_questions(path)
    assert m1.choices == (("A", "nho"), ("B", "cả A và B đều sai")) and m2.choices == ()
    assert m1.query() == "Quả nào sau đây?\nA. nho\nB. cả A và B đều sai" and m1.query(options=False) == m1.text
    assert cli.main(["eval", "--questions", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["Trắc nghiệm"]["recall@1"] == 1.0
    assert cli.main(["eval", "--questions", str(path), "--json", "--no-options"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["Trắc nghiệm"]["recall@1"] == 0.0


def test_compare_shows_what_changed_per_type_and_which_questions_moved(fixture_env, capsys):
    root = fixture_env.root
    path = root / "choices.json"
    path.write_text(json.dumps(CHOICE_QUESTIONS, ensure_ascii=False), encoding="utf-8")
    assert cli.main(["eval", "--questions", str(path), "--no-options", "--save", str(root / "before.json")]) == 0
    saved = json.loads((root / "before.json").read_text(encoding="utf-8"))
    assert saved["options"] is False and {q["id"]: q["rank"] for q in saved["questions"]}["m2"] == 1
    capsys.readouterr()

    assert cli.main(["eval", "--questions", str(path), "--compare", str(root / "before.json")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.split("Against", 1)[1].splitlines() if line[:1] in "TĐo"}
    assert "1.000 (+1.000)" in rows["Trắc"] and "1.000 (=)" in rows["Đúng/Sai"]
    assert "1 better: m1 (Trắc nghiệm)" in out and "worse" not in out

    assert cli.main(["eval", "--questions", str(path), "--json", "--compare", str(root / "before.json")]) == 0
    compared = json.loads(capsys.readouterr().out)["compared_with"]
    assert compared["metrics"]["Trắc nghiệm"]["recall@1"] == {"before": 0.0, "now": 1.0, "delta": 1.0}
    assert compared["metrics"]["overall"]["mrr@10"]["delta"] > 0
    assert [q["id"] for q in compared["better"]] == ["m1"] and compared["worse"] == []

    # a report printed by --json has no ranks per question: the types are compared, and it says so
    assert cli.main(["eval", "--questions", str(path), "--json", "--no-options"]) == 0
    (root / "plain.json").write_text(capsys.readouterr().out, encoding="utf-8")
    assert cli.main(["eval", "--questions", str(path), "--compare", str(root / "plain.json")]) == 0
    assert "has no ranks per question" in capsys.readouterr().out
    (root / "bad.json").write_text("[]", encoding="utf-8")
    assert cli.main(["eval", "--questions", str(path), "--compare", str(root / "bad.json")]) == 2
    assert "holds no metrics" in capsys.readouterr().err
    assert cli.main(["eval", "--questions", str(path), "--compare", str(root / "missing.json")]) == 2


def test_unmapped_laws_are_reported_and_bad_input_is_one_sentence(fixture_env, capsys):
    root = fixture_env.root
    assert cli.main(["eval", "--questions", str(root / "questions.json")]) == 0
    assert "Luật khác biệt (1 questions)" in capsys.readouterr().out
    (root / "bad.json").write_text('[{"text": "no answers"}]', encoding="utf-8")
    assert cli.main(["eval", "--questions", str(root / "bad.json")]) == 2
    assert "relevant_articles" in capsys.readouterr().err
    assert cli.main(["eval", "--questions", str(root / "questions.json"), "--k", "0,5"]) == 2


def test_plot_without_matplotlib_says_how_to_install(fixture_env, monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("matplotlib") else real_import(name, *a, **k))
    report = evaluation.EvalReport(ks=(1,), depth=10, results=[], mode="bm25", law_sources={}, unmapped={})
    with pytest.raises(evaluation.ConfigurationError, match=r"legal-rag-pipeline\[eval\]"):
        evaluation.plot_recall(report, fixture_env.root / "x.png")


def test_golden_set_about_the_sample_passes(tmp_path, monkeypatch):
    """The project's golden questions, on its sample data, in bm25 mode (what the asset check runs)."""
    from legal_rag_pipeline.assets.quality import GOLDEN_SET, golden_check_result

    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    assert env.ingest()[0] == 0
    result = golden_check_result(QdrantStore(path=str(env.qdrant)), None, GOLDEN_SET)
    assert result.passed, result.metadata
    assert result.metadata["questions"].value == 12 and result.metadata["recall@5"].value == 1.0


def test_golden_check_knows_from_the_records_whether_the_sample_laws_are_in(tmp_path, monkeypatch):
    """The check's pre-check reads the law titles off files.db (one query); a file chunked by an
    earlier version (no title in its record) is looked up in its chunks; without the sample laws
    the check does not apply."""
    from legal_rag_pipeline.artifacts import FileArtifacts, each_known_document
    from legal_rag_pipeline.assets.quality import GOLDEN_SET, golden_check_result

    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    assert env.ingest()[0] == 0
    documents = dict(each_known_document(env.state))
    assert documents["luat-mau-cu-tru.txt"]["law"]  # kept by the chunk stage
    store = QdrantStore(path=str(env.qdrant))
    assert golden_check_result(store, None, GOLDEN_SET, state_dir=env.state).metadata["questions"].value == 12
    for source, document in documents.items():  # as records written before the title was kept
        document.pop("law")
        FileArtifacts(env.state, source).write_document(document)
    assert golden_check_result(store, None, GOLDEN_SET, state_dir=env.state).metadata["questions"].value == 12
    (tmp_path / "other").mkdir()
    other = make_env(tmp_path / "other", monkeypatch)
    (other.data / "luat-khac.txt").write_text("LUẬT KHÁC\nĐiều 1. Phạm vi\nLuật này khác.\n", encoding="utf-8")
    assert other.ingest()[0] == 0
    result = golden_check_result(QdrantStore(path=str(other.qdrant)), None, GOLDEN_SET, state_dir=other.state)
    assert result.passed and "not applicable" in result.metadata["note"].value


def test_alqac_17_laws_bm25_recall(tmp_path, monkeypatch, capsys):
    """End to end: the 17 laws ingested by the pipeline (bm25 only), then `legal-rag eval`: the figures
    of docs/retrieval.md (0.94 / 0.99 recall@1/5, MRR 0.963; 0.86 / 0.97 without the options) must hold."""
    shared = shared_data()
    env = make_env(tmp_path, monkeypatch)
    readme = (shared / "README.md").read_text(encoding="utf-8")
    files = re.findall(r"^\| .+? \| (laws(?:_blankline)?/\S+\.txt) \|$", readme, re.MULTILINE)
    assert len(files) == 17
    for rel in files:
        shutil.copy2(shared / rel, env.data / Path(rel).name)
    code, out = env.ingest()
    assert code == 0, out
    questions = str(shared / "eval" / "alqac2023_train.json")
    assert cli.main(["eval", "--questions", questions, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])["metrics"]
    overall = metrics["overall"]
    assert overall["questions"] == 100
    assert overall["recall@1"] >= 0.92 and overall["recall@5"] >= 0.98 and overall["mrr@10"] >= 0.95, metrics
    assert metrics["Trắc nghiệm"]["recall@1"] >= 0.9, metrics
    assert cli.main(["eval", "--questions", questions, "--json", "--no-options"]) == 0
    text_only = json.loads(capsys.readouterr().out.splitlines()[-1])["metrics"]["overall"]
    assert text_only["recall@1"] >= 0.84 and text_only["recall@5"] >= 0.96, text_only


def test_in_memory_bm25_ranks_like_qdrant(fixture_env):
    """The in-memory scorer used by eval on embedded Qdrant gives Qdrant's scores and ranking."""
    from legal_rag_pipeline.search import SparseIndex, search

    with QdrantStore(path=str(fixture_env.qdrant)).connect() as collection:
        index = SparseIndex.from_collection(collection)
        for query in ("cam", "quả cam", "táo xoài", "luật khác quả", "không có", "Điều 4 Luật Thử nghiệm: quả cam"):
            expected = search(collection, query, 10)
            got = index.search(query, 10)
            assert [round(h.score, 4) for h in got] == [round(h.score, 4) for h in expected], query
            # the same points (ties may come in another order)
            assert sorted((round(h.score, 4), h.id) for h in got) == sorted((round(h.score, 4), h.id) for h in expected)
        assert [h.law for h in index.search("quả", 10, law="luat khac")] == ["Luật Khác"]
        assert index.search("Điều 4 Luật Thử nghiệm: quả cam", 2)[0].article == "4"  # named with its law: first
        questions = evaluation.load_questions(fixture_env.root / "questions.json")
        memory = evaluation.evaluate(collection, questions, engine="memory").as_json()["metrics"]
        assert evaluation.evaluate(collection, questions, engine="qdrant").as_json()["metrics"] == memory


def test_a_law_id_that_is_a_document_number_maps_without_a_law_map(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    assert env.ingest()[0] == 0
    questions = [
        evaluation.Question("1", "unspecified", "Thời hạn tạm trú tối đa là bao lâu?", (("01/2026/mau", "6"),)),
        evaluation.Question("2", "unspecified", "Người điều khiển xe phải mang theo giấy tờ gì?", (("02 / 2026 / MAU", "7"),)),
    ]
    with QdrantStore(path=str(env.qdrant)).connect() as collection:
        laws = evaluation.ingested_laws(collection)
        mapped = evaluation.map_laws(["01/2026/mau", "02 / 2026 / MAU", "99/2099/QH99"], laws, {})
        report = evaluation.evaluate(collection, questions, ks=(1, 5))
    assert mapped["01/2026/mau"] == {"luat-mau-cu-tru.txt"}
    assert mapped["02 / 2026 / MAU"] == {"luat-mau-giao-thong.txt"}
    assert mapped["99/2099/QH99"] == set()
    assert not report.unmapped and report.metrics().recall[5] == 1.0
