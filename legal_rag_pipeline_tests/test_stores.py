"""Both sides of the store seam (stores/base.py): Qdrant Edge and qdrant-client (local mode, the
stand-in for a server, since none runs here) answer the same calls the same way."""

from __future__ import annotations

import json
import subprocess
import time
import sys
import uuid
import warnings
from contextlib import contextmanager

import pytest

from legal_rag_pipeline.errors import StoreError
from legal_rag_pipeline.resources.qdrant import PointRecord, QdrantStore
from legal_rag_pipeline.stores.edge import EdgeCollection, migrate_local_folder
from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER
from legal_rag_pipeline_tests.test_run_memory import resident_kb_under

DIM = 4
ENGINES = ["edge", "client"]


def _points(n: int, dense: bool = True) -> list[PointRecord]:
    points = []
    for i in range(n):
        law = "Luật Cư trú" if i % 2 == 0 else "Luật Giao thông"
        points.append(
            PointRecord(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")),
                vector=[1.0, float(i % 3), 0.5, 0.1 * i] if dense else None,
                # term 7 in every point (IDF ~0), term 100 + i in this point only (IDF high)
                sparse=([7, 100 + i], [1.0, 1.0]),
                payload={"source": f"luat-{i % 3}.txt", "law": law, "article": str(i), "page_content": f"Điều {i}."},
            )
        )
    return points


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    return QdrantStore(path=str(tmp_path / "q"), engine=request.param)


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns that payload indexes have no effect
        yield


def test_layout_writes_reads_and_counts(store):
    with store.connect() as c:
        assert not c.exists() and c.count() == 0 and c.physical_name() is None
        physical = c.ensure(DIM, "m")
        assert physical.startswith("legal_rag__") and c.alias_target() == physical
        assert c.layout(physical).dense == DIM and c.layout(physical).sparse
        assert c.upsert(_points(12)) == 12
        assert c.count() == 12 and c.count("luat-0.txt") == 4
        assert c.counts_by_source(["luat-1.txt", "gone.txt"]) == {"luat-1.txt": 4, "gone.txt": 0}
        index = c.point_index(["luat-2.txt"])
        assert set(index) == {"luat-2.txt"} and len(index["luat-2.txt"]) == 4
        assert set(next(iter(index["luat-2.txt"].values()))) <= {"source", "embedding_model", "doc_sha256"}
        assert sum(len(v) for v in c.point_index().values()) == 12

        first = _points(12)[0]
        (got,) = c.retrieve([first.id], fields=True, vectors=True)
        assert got.id == first.id and got.payload == first.payload
        assert got.sparse == ([7, 100], [1.0, 1.0])
        norm = sum(v * v for v in first.vector) ** 0.5
        assert got.dense == pytest.approx([v / norm for v in first.vector], abs=1e-6)  # cosine: normalised

        pages, offset, seen = 0, None, []
        while True:
            batch, offset = c.scroll(fields=["source"], limit=5, offset=offset)
            seen += [p.id for p in batch]
            pages += 1
            if offset is None:
                break
        assert sorted(seen) == sorted(p.id for p in _points(12)) and len(set(seen)) == 12
        assert sorted(c.facet_values("law")) == ["Luật Cư trú", "Luật Giao thông"]

        assert c.delete([p.id for p in _points(12)[:3]]) == 3 and c.count() == 9
        assert c.upsert(_points(12)[3:6]) == 3 and c.count() == 9  # upsert by id: no duplicates
    with store.connect() as c:  # reopened: everything persisted
        assert c.count() == 9 and c.dense_size() == DIM


def test_counts_by_source_for_many_files_equal_one_count_each(store):
    """Edge answers for more than 50 files with one facet over ``source``: the same as counting each."""
    points = [
        PointRecord(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"m{i}")), vector=None, sparse=([7], [1.0]),
                    payload={"source": f"dieu-{i % 120:03d}.txt", "page_content": f"Điều {i}."})
        for i in range(600)
    ]
    with store.connect() as c:
        c.ensure(None, None)
        c.upsert(points)
        c.delete([points[0].id, points[120].id])  # dieu-000.txt: 3 points left of 5
        sources = [f"dieu-{i:03d}.txt" for i in range(120)] + ["vang-mat.txt"]
        many = c.counts_by_source(sources)
        assert many == {s: c.count(s) for s in sources}
        assert many["dieu-000.txt"] == 3 and many["dieu-001.txt"] == 5 and many["vang-mat.txt"] == 0
        if store.engine == "client":  # a server's answer: one facet over source (local mode answers it too)
            answered, facet = [], c.client.facet
            c.client.facet = lambda *args, **kwargs: answered.append(facet(*args, **kwargs)) or answered[-1]
            c.local = False
            assert c.counts_by_source(sources) == many and len(answered) == 1


def test_queries_sparse_dense_hybrid_and_filters(store):
    with store.connect() as c:
        c.ensure(DIM, "m")
        points = _points(12)
        c.upsert(points)
        hits = c.query(sparse=([7, 105], [1.0, 1.0]), limit=3)
        assert hits[0].id == points[5].id  # the rare term wins: IDF is applied by the engine
        assert hits[0].score > 1.0 and all(h.score < 0.5 for h in hits[1:])
        hits = c.query(dense=points[4].vector, limit=1, fields=["source"])
        assert hits[0].id == points[4].id and hits[0].payload == {"source": "luat-1.txt"}
        hits = c.query(sparse=([105], [1.0]), dense=points[4].vector, limit=4)
        assert {points[5].id, points[4].id} <= {h.id for h in hits[:2]}  # fused by reciprocal rank
        only = c.query(sparse=([7], [1.0]), where={"law": ["Luật Giao thông"], "source": "luat-0.txt"}, limit=20)
        assert only and {h.payload["law"] for h in only} == {"Luật Giao thông"}
        assert {h.payload["source"] for h in only} == {"luat-0.txt"}
        assert c.query(sparse=([7], [1.0]), where={"law": ["no such law"]}, limit=5) == []


def test_hybrid_fusion_weights_favour_one_list(store):
    """``fusion_weights`` (bm25, dense) reach the engine: the heavier list's best point comes first."""
    with store.connect() as c:
        c.ensure(DIM, "m")
        points = _points(12)
        c.upsert(points)
        query = {"sparse": ([105], [1.0]), "dense": points[4].vector, "limit": 2}  # bm25 finds 5, dense finds 4
        assert c.query(**query, fusion_weights=(1.0, 0.1))[0].id == points[5].id
        assert c.query(**query, fusion_weights=(0.1, 1.0))[0].id == points[4].id
        # one list alone: the weights change nothing
        assert [h.id for h in c.query(sparse=([7, 105], [1.0, 1.0]), limit=3, fusion_weights=(0.1, 1.0))] == [
            h.id for h in c.query(sparse=([7, 105], [1.0, 1.0]), limit=3)]


def test_alias_switch_view_and_drop(store):
    with store.connect() as c:
        old = c.ensure(None, None)
        c.upsert(_points(3, dense=False))
        new = "legal_rag__00000001"
        c.create_physical(new, DIM, metadata={"embedding_model": "m2"})
        view = c.view(new)
        view.upsert(_points(5))
        assert view.count() == 5 and c.count() == 3  # the alias still answers from the old one
        assert c.layout(new).metadata.get("embedding_model") in ("m2", None)  # servers < 1.16: no metadata
        c.point_alias(new)
        assert c.alias_target() == new and c.count() == 5 and c.dense_size() == DIM
        c.drop_physical(old)
        assert sorted(c.physical_names()) == [new]
    with store.connect() as c:
        assert c.alias_target() == new and c.count() == 5


def test_bm25_only_collection_has_no_dense_vector(store):
    with store.connect() as c:
        physical = c.ensure(None, None)
        c.upsert(_points(4, dense=False))
        assert c.layout(physical).dense is None and c.dense_size() is None
        (got,) = c.retrieve([_points(1)[0].id], vectors=True)
        assert got.dense is None and got.sparse is not None
        with pytest.raises(StoreError, match="rebuild"):
            c.ensure(DIM, "m")  # another layout is refused with the fix


def test_a_run_waits_for_a_folder_a_search_holds_for_a_moment(tmp_path):
    """A search holds the embedded folder for a moment: a writer waits for it (lock_wait_seconds)
    instead of failing; with no wait it gets the one-sentence error at once."""
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        c.ensure(None, None)
        c.upsert(_points(2, dense=False))
    hold_briefly = HOLD_FOLDER.replace("time.sleep(120)", "time.sleep(2); c.close(); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold_briefly, str(tmp_path / "q")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with QdrantStore(path=str(tmp_path / "q"), lock_wait_seconds=0).connect() as c:
            with pytest.raises(StoreError, match="is in use by another process"):
                c.count()
        with QdrantStore(path=str(tmp_path / "q"), lock_wait_seconds=60).connect() as c:
            began = time.monotonic()
            assert c.count() == 2
            waited = time.monotonic() - began
        assert 0.2 < waited < 60, waited  # it waited for the holder, then read
    finally:
        holder.kill()
        holder.wait()


def test_edge_folder_in_use_by_another_process_is_one_sentence(tmp_path):
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        c.ensure(None, None)
        c.upsert(_points(2, dense=False))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(tmp_path / "q")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with store.connect() as c:
            assert c.physical_name()  # reading the catalog needs no lock
            with pytest.raises(StoreError, match="is in use by another process") as info:
                c.count()
        assert "Traceback" not in str(info.value) and "WouldBlock" not in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with store.connect() as c:
        assert c.count() == 2  # free again once the other process is gone


def test_edge_catalog_is_replaced_atomically_and_names_the_shards(tmp_path):
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        physical = c.ensure(DIM, "m")
    catalog = json.loads((tmp_path / "q" / "edge.json").read_text())
    assert catalog["aliases"] == {"legal_rag": physical}
    assert catalog["collections"][physical]["dense"] == DIM
    assert (tmp_path / "q" / "shards" / physical / "edge_config.json").exists()
    assert not list((tmp_path / "q").glob("*.tmp"))


def test_edge_payload_indexes_on_the_fields_the_pipeline_filters_by(tmp_path):
    """Four indexes: the document's fields share one (``document_keys``), each more costs every open."""
    with QdrantStore(path=str(tmp_path / "q")).connect() as c:
        c.ensure(None, None)
        schema = c.shard().info().payload_schema
        assert {"source", "document_keys", "valid_from", "valid_to"} == set(schema)
        # read back only, never filtered: no index (each costs a pass over every payload when optimising)
        assert not {"embedding_model", "group_key", "repealed_by"} & set(schema)


DOCUMENTS = [  # law, article, number, doc_type, issuer, issued_on
    ("Luật Cư trú", "1", "68/2020/QH14", "Luật", "Quốc hội", "2020-11-13"),
    ("Luật Cư trú", "2", "68/2020/QH14", "Luật", "Quốc hội", "2020-11-13"),
    ("Nghị định: hướng dẫn Luật Cư trú", "1", "62/2021/NĐ-CP", "Nghị định", "Chính phủ", "2021-06-29"),
    ("Thông tư 55", "2", "55/2021/TT-BCA", "Thông tư", "Bộ Công an", "2021-05-15"),
]


def _document_points() -> list[PointRecord]:
    points = []
    for i, (law, article, number, doc_type, issuer, issued_on) in enumerate(DOCUMENTS):
        payload = {"source": f"van-ban-{i}.txt", "law": law, "article": article, "number": number,
                   "doc_type": doc_type, "issuer": issuer, "issued_on": issued_on, "page_content": f"Điều {article}."}
        points.append(PointRecord(str(uuid.uuid5(uuid.NAMESPACE_URL, f"d{i}")), [1.0, 0.5, 0.1, float(i)],
                                  ([7, 100 + i], [1.0, 1.0]), payload))
    return points


def _filters_and_facets(c) -> None:
    """What searches ask of the document's fields, answered from ``_document_points``."""

    def sources(where):
        found, _ = c.scroll(where=where, fields=True)
        assert all("document_keys" not in p.payload for p in found)  # the engine's own field stays inside
        return sorted(p.payload["source"] for p in found)

    assert sources({"law": "Luật Cư trú", "article": "2"}) == ["van-ban-1.txt"]
    assert sources({"number": ["62/2021/NĐ-CP", "55/2021/TT-BCA"]}) == ["van-ban-2.txt", "van-ban-3.txt"]
    assert sources({"doc_type": "Luật", "issuer": ["Quốc hội", "Chính phủ"]}) == ["van-ban-0.txt", "van-ban-1.txt"]
    assert sources({"issued_on": ["2021-06-29"], "article": ["1", "2"]}) == ["van-ban-2.txt"]
    assert sources({"law": "Nghị định: hướng dẫn Luật Cư trú", "source": "van-ban-2.txt"}) == ["van-ban-2.txt"]
    assert sources({"law": "Luật", "article": "1"}) == []  # whole values only, never a prefix
    hits = c.query(sparse=([7], [1.0]), where={"issuer": "Bộ Công an"}, limit=5)
    assert [h.payload["number"] for h in hits] == ["55/2021/TT-BCA"] and "document_keys" not in hits[0].payload
    assert "document_keys" not in c.retrieve([hits[0].id], fields=True)[0].payload
    assert sorted(c.facet_values("law")) == ["Luật Cư trú", "Nghị định: hướng dẫn Luật Cư trú", "Thông tư 55"]
    assert sorted(c.facet_values("number")) == ["55/2021/TT-BCA", "62/2021/NĐ-CP", "68/2020/QH14"]
    assert sorted(c.facet_values("issued_on")) == ["2020-11-13", "2021-05-15", "2021-06-29"]
    assert sorted(c.facet_values("doc_type")) == ["Luật", "Nghị định", "Thông tư"]


def test_document_fields_filter_and_facet_alike(store):
    with _quiet(), store.connect() as c:
        c.ensure(DIM, "m")
        c.upsert(_document_points())
        _filters_and_facets(c)
        assert c.layout_advice() is None  # four indexes on Edge; a server keeps one per field
        first = _document_points()[0].id
        assert c.set_payload([first, str(uuid.uuid4())], {"law": "Luật Nhà ở", "valid_to": "2030-01-01"}) == 1
        found, _ = c.scroll(where={"law": "Luật Nhà ở", "article": "1"}, fields=["source", "number"])
        assert [(p.payload["source"], p.payload["number"]) for p in found] == [("van-ban-0.txt", "68/2020/QH14")]
        assert c.scroll(where={"law": "Luật Cư trú", "article": "1"})[0] == []


def make_earlier_edge_folder(root) -> None:
    """An Edge folder whose shard has one index per field and no ``document_keys`` (this project before
    2026-12-03), holding ``_document_points``."""
    import qdrant_edge as qe

    from legal_rag_pipeline.stores import base, edge

    shard = qe.EdgeShard.create(str(root / "shards" / "legal_rag__earlier"), edge._config(DIM))
    for name in base.KEYWORD_INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.KeywordIndexParams(memory=qe.Memory.Cold)))
    for name in base.DATETIME_INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.DatetimeIndexParams(memory=qe.Memory.Cold)))
    shard.update(qe.UpdateOperation.upsert_points([
        qe.Point(id=p.id, vector={"": p.vector, "bm25": qe.SparseVector(indices=p.sparse[0], values=p.sparse[1])},
                 payload=p.payload)
        for p in _document_points()
    ]))
    shard.flush()
    shard.close()
    (root / "edge.json").write_text(json.dumps({"aliases": {"legal_rag": "legal_rag__earlier"}, "collections": {
        "legal_rag__earlier": {"dense": DIM, "sparse": True, "metadata": {}}}}), encoding="utf-8")


def test_an_edge_shard_made_before_the_folded_index_answers_the_same(tmp_path):
    root = tmp_path / "q"
    make_earlier_edge_folder(root)
    with QdrantStore(path=str(root)).connect() as c:
        assert not c._folds("legal_rag__earlier") and "law" in c.shard().info().payload_schema
        assert "nine payload indexes" in c.layout_advice()
        _filters_and_facets(c)
        c.upsert(_points(2))  # new points in the earlier layout are found by their fields too
        found, _ = c.scroll(where={"law": "Luật Giao thông"}, fields=["article"])
        assert [p.payload["article"] for p in found] == ["1"]


def test_document_keys_fold_each_field_and_each_value_of_a_list():
    from legal_rag_pipeline.stores.edge import document_keys

    payload = {"law": "Luật Cư trú", "article": "12", "issuer": ["Bộ Tài chính", "Bộ Tư pháp"], "number": None,
               "doc_type": "", "source": "a.txt", "page_content": "Điều 12."}
    assert document_keys(payload) == ["law:Luật Cư trú", "article:12", "issuer:Bộ Tài chính", "issuer:Bộ Tư pháp"]


def test_local_mode_folder_moves_to_edge_with_counts_verified(tmp_path):
    path = tmp_path / "q"
    with _quiet(), QdrantStore(path=str(path), engine="client").connect() as c:
        physical = c.ensure(DIM, "m")
        c.upsert(_points(30))
    assert (path / "meta.json").exists()
    with QdrantStore(path=str(path)).connect() as c:  # edge, the default: moved on first use
        assert isinstance(c, EdgeCollection)
        assert c.alias_target() == physical and c.count() == 30 and c.dense_size() == DIM
        (got,) = c.retrieve([_points(1)[0].id], fields=True, vectors=True)
        assert got.payload["page_content"] == "Điều 0." and got.sparse == ([7, 100], [1.0, 1.0])
    assert not (path / "meta.json").exists() and not (path / "collection").exists()
    assert migrate_local_folder(path, QdrantStore(path=str(path))) == {}  # nothing left to move


def test_killed_local_mode_move_leaves_the_old_folder_and_restarts(tmp_path):
    path = tmp_path / "q"
    with _quiet(), QdrantStore(path=str(path), engine="client").connect() as c:
        c.ensure(None, None)
        c.upsert(_points(10, dense=False))
    (path / "shards" / "half-copied").mkdir(parents=True)  # what a kill during the copy leaves
    with QdrantStore(path=str(path)).connect() as c:
        assert c.count() == 10 and c.physical_names() == [c.alias_target()]


def test_validity_payload_updates_and_the_law_in_force_on_a_day(store):
    """set_payload changes fields without touching vectors (ids gone are skipped), and the ``@valid_on``
    condition keeps a point unless it starts after the day or ended on or before it (no fields: in force)."""
    from legal_rag_pipeline.stores.base import VALID_ON

    points = _points(4)
    ids = [p.id for p in points]
    with _quiet(), store.connect() as c:
        c.ensure(DIM, "m")
        c.upsert(points)
        assert c.set_payload(ids[:1], {"valid_from": "2015-07-01", "valid_to": "2021-01-01", "repealed_by": "59/2020/QH14"}) == 1
        assert c.set_payload(ids[1:2], {"valid_from": "2021-01-01", "valid_to": None}) == 1
        assert c.set_payload([ids[2], str(uuid.uuid4())], {"valid_from": "2030-01-01"}) == 1  # one id no longer there

        def in_force(day):
            found, _ = c.scroll(where={VALID_ON: day}, fields=["article"])
            return sorted(int(p.payload["article"]) for p in found)

        assert in_force("2020-06-30") == [0, 3]
        assert in_force("2021-01-01") == [1, 3]
        assert in_force("2031-01-01") == [1, 2, 3]
        kept = c.retrieve(ids[:1], fields=True, vectors=True)[0]
        assert kept.payload["repealed_by"] == "59/2020/QH14" and kept.payload["page_content"] == "Điều 0."
        assert kept.dense is not None and len(kept.dense) == DIM
        hits = c.query(sparse=([100, 101], [1.0, 1.0]), where={VALID_ON: "2020-06-30"}, limit=5, fields=["article"])
        assert [h.payload["article"] for h in hits] == ["0"]


def _small_segments(monkeypatch) -> None:
    """Edge optimises and reopens its shard every 100 points, into segments of a few kB."""
    from legal_rag_pipeline.stores import edge

    monkeypatch.setattr(edge, "UPSERT_BATCH", 16)
    monkeypatch.setattr(edge, "COMPACT_POINTS", 100)
    monkeypatch.setattr(edge, "SEGMENT_KB", 2)
    monkeypatch.setattr(edge, "INDEXING_KB", 1)


def test_edge_shard_stays_exact_across_its_optimise_and_reopen_points(tmp_path, monkeypatch):
    """A long write is optimised and the shard reopened along the way (bounded memory): no point is lost
    or doubled, payload updates and deletes land, queries and filters answer as before, and a folder
    opened afresh (optimised segments, nothing to replay) holds the same."""
    _small_segments(monkeypatch)
    points = _points(300)
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        physical = c.ensure(DIM, "m")
        assert c.upsert(points[:120]) == 120
        assert c.upsert(points[120:]) == 180
        assert c.upsert(points[:50]) == 50  # rewritten by id: no duplicate
        assert c.set_payload([p.id for p in points[:150]], {"number": "68/2020/QH14"}) == 150
        assert c.delete([p.id for p in points[250:]]) == 50
        assert c.shard(physical).info().segments_count > 1  # the appendable segment was optimised
        assert c.count() == 250 and len({p.id for p in c.iter_points(fields=False)}) == 250
        hits = c.query(sparse=([100 + 42], [1.0]), limit=1)
        assert hits[0].id == points[42].id
    with store.connect() as c:
        ids = [p.id for p in c.iter_points(fields=["number"])]
        assert sorted(ids) == sorted(p.id for p in points[:250])
        assert c.count() == 250 and c.count("luat-0.txt") == 84
        assert {p.payload.get("number") for p in c.iter_points(fields=["number"], where={"number": "68/2020/QH14"})} == {
            "68/2020/QH14"
        }
        assert sum(1 for _ in c.iter_points(fields=False, where={"number": "68/2020/QH14"})) == 150
        (got,) = c.retrieve([points[7].id], fields=True, vectors=True)
        assert got.payload["page_content"] == "Điều 7." and got.sparse == ([7, 107], [1.0, 1.0])
        assert got.dense is not None and len(got.dense) == DIM
        assert c.query(dense=points[9].vector, limit=1)[0].id == points[9].id


def test_each_kind_of_change_outlives_its_session_and_a_search_changes_nothing(tmp_path):
    """An Edge shard is flushed on close when the session changed it (the upsert, a delete, a payload
    update, an optimisation each in a session of its own) and not when it only searched: each change is
    there for the next session, and a session that only searched leaves the same answers."""
    points = _points(40)
    store = QdrantStore(path=str(tmp_path / "q"))

    def state() -> tuple:
        with store.connect() as c:
            payloads = {p.id: p.payload.get("number") for p in c.iter_points(fields=["number"])}
            return c.count(), payloads, [h.id for h in c.query(sparse=([100 + 3], [1.0]), limit=2)]

    with store.connect() as c:
        c.ensure(DIM, "m")
        assert c.upsert(points) == 40
    assert state()[0] == 40
    with store.connect() as c:
        assert c.delete([p.id for p in points[30:]]) == 10
    assert state()[0] == 30
    with store.connect() as c:
        assert c.set_payload([points[3].id], {"number": "68/2020/QH14"}) == 1
    count, payloads, hits = state()
    assert count == 30 and payloads[points[3].id] == "68/2020/QH14" and hits[0] == points[3].id
    with store.connect() as c:
        c.optimize()
    with store.connect() as c:  # only searches
        assert c.query(sparse=([100 + 3], [1.0]), limit=1)[0].id == points[3].id
        assert c.count("luat-0.txt") == 10
    assert state() == (count, payloads, hits)


def test_compact_after_counts_bytes_so_dense_shards_optimise_sooner():
    from legal_rag_pipeline.stores import edge

    assert edge.compact_after(None) == edge.COMPACT_POINTS
    assert edge.compact_after(768) == edge.COMPACT_POINTS // 2 == 8_192
    assert edge.compact_after(3072) < edge.compact_after(768) < edge.compact_after(4) < edge.COMPACT_POINTS


@pytest.mark.parametrize("dense", [False, True])
def test_a_dense_shard_is_optimised_after_fewer_points_than_a_bm25_one(tmp_path, monkeypatch, dense):
    """With COMPACT_POINTS = 100, 60 points of 1,024-dimension vectors (7,168 bytes counted each: 42
    points' worth) are optimised into segments; 60 bm25 points are not yet."""
    _small_segments(monkeypatch)
    points = [
        PointRecord(id=p.id, vector=([0.5] * 1023 + [float(i)]) if dense else None, sparse=p.sparse, payload=p.payload)
        for i, p in enumerate(_points(60))
    ]
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        physical = c.ensure(1024 if dense else None, "m")
        assert c.upsert(points) == 60
        optimised = c.shard(physical).info().segments_count > 1
        assert optimised == dense
        assert c.count() == 60


_WRITER = """
import sys
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.stores import edge
from legal_rag_pipeline_tests.test_stores import _points
edge.UPSERT_BATCH, edge.COMPACT_POINTS, edge.SEGMENT_KB, edge.INDEXING_KB = 16, 100, 2, 1
points = _points(2000)
with QdrantStore(path=sys.argv[1]).connect() as c:
    c.ensure(4, "m")
    for start in range(0, len(points), 20):
        c.upsert(points[start : start + 20])
        print(start + 20, flush=True)
"""


def test_edge_write_killed_while_optimising_loses_nothing_it_acknowledged(tmp_path):
    """SIGKILL in the middle of a write that optimises and reopens its shard every 100 points: every point
    an upsert returned for is there after reopening, once."""
    import os
    import signal

    path = str(tmp_path / "q")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, path], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 360:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert 360 <= acknowledged < 2000, "the writer finished before it was killed"
    with QdrantStore(path=path).connect() as c:
        ids = [p.id for p in c.iter_points(fields=False)]
        assert len(ids) == len(set(ids)) == c.count()
        assert {p.id for p in _points(acknowledged)} <= set(ids)


def test_edge_dense_search_is_exact_over_optimised_int8_segments(tmp_path):
    """Dense vectors are searched flat over int8 copies, the candidates rescored (edge.FLAT_DENSE): over
    optimised segments the top 5 of a hybrid or dense query is the exact cosine top 5."""
    import numpy as np

    from legal_rag_pipeline.stores import edge

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((6000, 64)).astype(np.float32)  # 1.5 MB: above INDEXING_KB, so optimised
    points = [
        PointRecord(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"d{i}")), vector=vectors[i].tolist(), sparse=([7], [1.0]),
                    payload={"source": f"luat-{i % 5}.txt", "page_content": f"Điều {i}."})
        for i in range(len(vectors))
    ]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((20, 64)).astype(np.float32)
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        physical = c.ensure(64, "m")
        c.upsert(points)
    with store.connect() as c:  # closed after a write: optimised into int8 segments
        assert c.shard(physical).info().segments_count >= 1
        shard_config = json.loads((tmp_path / "q" / edge.SHARDS / physical / "edge_config.json").read_text())
        assert "quantization" in json.dumps(shard_config).lower() and '"m": 0' in json.dumps(shard_config)
        for q in queries:
            exact = [points[i].id for i in np.argsort(-(unit @ (q / np.linalg.norm(q))))[:5]]
            assert [h.id for h in c.query(dense=q.tolist(), limit=5)] == exact
            assert {h.id for h in c.query(dense=q.tolist(), limit=5, where={"source": "luat-1.txt"})} <= {
                p.id for p in points if p.payload["source"] == "luat-1.txt"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise: Linux only")
def test_release_memory_gives_back_what_reading_held_and_answers_the_same(store, tmp_path):
    points = _points(3000)
    with store.connect() as c:
        c.ensure(DIM, "m")
        c.upsert(points)
        if isinstance(c, EdgeCollection):
            c.optimize()
        before = [h.id for h in c.query(sparse=([7, 100 + 42], [1.0, 1.0]), limit=5)]
        assert sum(1 for _ in c.iter_points(fields=True)) == 3000  # every page of the payloads read
        held = resident_kb_under(tmp_path / "q")
        c.release_memory()
        if isinstance(c, EdgeCollection):
            assert held > 1024, "reading the points mapped nothing to give back"
            assert resident_kb_under(tmp_path / "q") < held / 4, "the store's pages stayed in the process"
        assert [h.id for h in c.query(sparse=([7, 100 + 42], [1.0, 1.0]), limit=5)] == before
        assert before[0] == points[42].id and c.count() == 3000


@pytest.mark.parametrize("kind", ["edge", "client", "edge-process"])
def test_point_writes_answer_each_group_in_order_and_fail_a_bad_group_alone(tmp_path, monkeypatch, kind):
    """Both sides of ``Collection.writes`` (stores/base.py): a sync's groups written here
    (``InlineWrites``) or by an Edge write process (stores/edge_process.py), answered in order; a group
    that cannot be written fails alone and its stale points are not deleted."""
    from legal_rag_pipeline import helper

    monkeypatch.setattr(helper, "HELPER_MIN_POINTS", 1 if kind == "edge-process" else 10**9)
    store = QdrantStore(path=str(tmp_path / "q"), engine="client" if kind == "client" else "edge")
    points = _points(30)
    bad = PointRecord(id=str(uuid.uuid5(uuid.NAMESPACE_URL, "bad")), vector=[1.0, 2.0], sparse=([7], [1.0]),
                      payload={"source": "luat-9.txt"})  # two dimensions in a four-dimension collection
    answers: list[tuple[str, object]] = []
    with _quiet(), store.connect() as c:
        c.ensure(DIM, "m")
        c.upsert(points[:5])
        writes = c.writes(25)
        assert type(writes).__name__ == ("EdgeWriteProcess" if kind == "edge-process" else "InlineWrites")
        writes.submit(points[5:15], [p.id for p in points[:2]], lambda r: answers.append(("a", r)))
        writes.submit([*points[15:20], bad], [points[2].id], lambda r: answers.append(("b", r)))
        writes.submit(points[20:30], [], lambda r: answers.append(("c", r)))
        note = writes.close()
        assert [name for name, _ in answers] == ["a", "b", "c"]
        assert answers[0][1] == (10, 2) and answers[2][1] == (10, 0)
        assert isinstance(answers[1][1], Exception)
        if kind == "edge-process":  # the process failed at the bad group: the run wrote it and the rest itself
            assert note == "the write process stopped: the run wrote the rest itself"
        ids = {str(p.id) for p in c.iter_points(fields=False)}
        assert {p.id for p in points[2:15]} | {p.id for p in points[20:30]} <= ids
        assert not {points[0].id, points[1].id, bad.id} & ids
    with store.connect() as c:  # reopened: the write process closed the shard it wrote
        assert {str(p.id) for p in c.iter_points(fields=False)} == ids


def test_a_small_tail_of_writes_stays_unoptimised_and_is_counted_until_it_is_large(tmp_path, monkeypatch):
    """A session that wrote fewer than 1/TAIL_PARTS of ``compact_after`` points leaves them in the
    appendable segment, flushed and counted in the catalogue; the next sessions go on counting, and the
    one that takes the tail past it optimises at close. Every point is there each time; a session that
    only searches changes nothing."""
    from legal_rag_pipeline.stores import edge

    _small_segments(monkeypatch)  # bm25 only: optimised every 100 points, a tail of 25 kept
    points = _points(40, dense=False)
    root = tmp_path / "q"
    store = QdrantStore(path=str(root))

    def tail(physical: str) -> int:
        return json.loads((root / edge.CATALOG).read_text(encoding="utf-8"))["collections"][physical].get("unoptimised", 0)

    with store.connect() as c:
        physical = c.ensure(None, "m")
        assert c.upsert(points[:10]) == 10
    assert tail(physical) == 10
    with store.connect() as c:
        assert c.count() == 10
        assert c.upsert(points[10:20]) == 10 and c.set_payload([points[0].id], {"number": "68/2020/QH14"}) == 1
    assert tail(physical) == 21
    with store.connect() as c:
        assert c.count() == 20 and c.query(sparse=([100 + 15], [1.0]), limit=1)[0].id == points[15].id
        assert c.upsert(points[20:30]) == 10  # 31 >= 25: optimised when the session ends
    assert tail(physical) == 0
    with store.connect() as c:
        assert c.count() == 30 and sorted(p.id for p in c.iter_points(fields=False)) == sorted(p.id for p in points[:30])
        assert [p.payload.get("number") for p in c.retrieve([points[0].id], fields=["number"])] == ["68/2020/QH14"]
    assert tail(physical) == 0


def _cached_pages(path) -> int:
    """How many of the file's pages are in the page cache (``mincore`` over a fresh mapping)."""
    import ctypes
    import ctypes.util
    import os

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    pages = (size + 4095) // 4096
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        vector = ctypes.create_string_buffer(pages)
        try:
            assert libc.mincore(address, size, vector) == 0
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return sum(byte & 1 for byte in vector.raw)


@pytest.mark.skipif(sys.platform != "linux", reason="the page cache is asked through Linux's mincore")
def test_a_search_to_come_reads_ahead_the_files_queries_read_and_not_the_others(tmp_path, monkeypatch):
    """Edge drops a segment's files from the page cache when a process closes its shard; expecting
    queries reads the int8 vectors, the bm25 index, ids and payload indexes back in the background,
    and leaves the float vectors and stored payloads on the disk."""
    from legal_rag_pipeline.stores import edge

    monkeypatch.setattr(edge, "INDEXING_KB", 1)  # the segment is indexed: int8 copies and inverted index
    points = [PointRecord(id=p.id, vector=[float((i * 7 + k) % 11) for k in range(256)], sparse=p.sparse,
                          payload=p.payload) for i, p in enumerate(_points(3000))]
    store = QdrantStore(path=str(tmp_path / "q"))
    with store.connect() as c:
        physical = c.ensure(256, "m")
        assert c.upsert(points) == 3000
        c.optimize()
    shard = tmp_path / "q" / edge.SHARDS / physical
    quantized = sorted(shard.rglob("quantized.data"))
    floats = sorted(shard.rglob("matrix.dat"))
    assert quantized and floats
    if sum(_cached_pages(p) for p in quantized):  # tmpfs, for one, keeps every page: nothing to read ahead
        pytest.skip(f"the page cache of {tmp_path}'s file system keeps what Edge drops when a shard closes")
    with store.connect() as c:
        thread = c.expect_queries()
        assert thread is not None
        thread.join(5)
        deadline = time.monotonic() + 5
        while sum(_cached_pages(p) for p in quantized) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(_cached_pages(p) for p in quantized) > 0
        assert sum(_cached_pages(p) for p in floats) == 0
        assert c.query(dense=points[9].vector, limit=1)[0].score == pytest.approx(1.0, abs=1e-3)  # answers as before
