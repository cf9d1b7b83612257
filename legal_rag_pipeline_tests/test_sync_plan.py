"""The sync's pure plan (sync_plan.py): what to upsert, delete and show the deletion guard, without a store."""

from __future__ import annotations

from legal_rag_pipeline.deletion import DeletionLimits, MassDeletionRefused, check_deletion
from legal_rag_pipeline.sync_plan import EveryChunk, FileChunks, plan_sync

MODEL = "m"


def held(source: str, ids: list[str], sha: str = "s1", model: str = MODEL) -> dict:
    return {source: {i: {"source": source, "doc_sha256": sha, "embedding_model": model} for i in ids}}


def test_a_new_file_is_written_whole_and_an_unchanged_one_not_at_all():
    index = held("a.txt", ["a1", "a2"])
    plan = plan_sync(
        [FileChunks("a.txt", ["a1", "a2"], "s1"), FileChunks("b.txt", ["b1"], "s9")],
        index, model=MODEL, present={"a.txt", "b.txt"}, total_points=2, full=True,
    )
    # a new file: every chunk, its ids not listed (the writer takes them with the chunks)
    assert plan.upserts == {"a.txt": [], "b.txt": EveryChunk(1)} and plan.deletes == {}
    assert plan.vanished == [] and plan.net_removed == 0 and plan.points_to_write() == 1
    assert plan.deletion is not None and plan.deletion.files_held == 1 and not plan.deletion.vanished


def test_a_changed_file_writes_its_new_chunks_then_drops_its_stale_ones():
    index = held("a.txt", ["a1", "a2", "a3"], sha="old")
    plan = plan_sync([FileChunks("a.txt", ["a1", "a4"], "new")], index, model=MODEL, present={"a.txt"},
                     total_points=3, full=True)
    # another text: every point of the file is rewritten (its payload holds the text's digest)
    assert plan.upserts["a.txt"] == EveryChunk(2) and sorted(plan.deletes["a.txt"]) == ["a2", "a3"]
    assert plan.net_removed == 1 and plan.deletion.shrunk == ["a.txt"]


def test_another_model_rewrites_every_point():
    index = held("a.txt", ["a1", "a2"], model="old-model")
    plan = plan_sync([FileChunks("a.txt", ["a1", "a2"], "s1")], index, model=MODEL, present={"a.txt"},
                     total_points=2, full=True)
    assert plan.upserts["a.txt"] == EveryChunk(2) and plan.deletes == {}


def test_vanished_files_full_and_targeted():
    index = {**held("a.txt", ["a1"]), **held("gone.txt", ["g1", "g2"]), **held("b.txt", ["b1"])}
    full = plan_sync([FileChunks("a.txt", ["a1"], "s1")], index, model=MODEL, present={"a.txt", "b.txt"},
                     total_points=4, full=True)
    assert full.vanished == ["gone.txt"] and full.net_removed == 2
    assert full.deletion.vanished == ["gone.txt"] and full.deletion.points_removed == 2
    # targeted: only the files the state folder knew are looked for, the others counted by their marker
    targeted = plan_sync([], {**held("gone.txt", ["g1"]), "old.txt": {}}, model=MODEL, present={"a.txt"},
                         total_points=5, full=False, known_vanished=["gone.txt", "old.txt"], held_elsewhere=["a.txt", "b.txt"])
    assert targeted.vanished == ["gone.txt"] and targeted.deletion.files_held == 3
    # pruning off: nothing vanishes
    assert plan_sync([], index, model=MODEL, present=set(), total_points=4, full=True, prune_vanished=False).vanished == []


def test_what_the_guard_sees_refuses_a_vanished_folder():
    index = {**held("a.txt", ["a1"]), **held("b.txt", ["b1"]), **held("c.txt", ["c1"])}
    plan = plan_sync([], index, model=MODEL, present=set(), total_points=3, full=True)
    assert plan.deletion.folder_empty and sorted(plan.deletion.vanished) == ["a.txt", "b.txt", "c.txt"]
    try:
        check_deletion(plan.deletion, DeletionLimits(), collection="legal_rag", data_dir="/srv/data")
    except MassDeletionRefused as refused:
        assert "legal-rag ingest --confirm-delete" in str(refused)
    else:
        raise AssertionError("a vanished folder was not refused")
    # one file of three removed on purpose: allowed
    one = plan_sync([], index, model=MODEL, present={"a.txt", "b.txt"}, total_points=3, full=True)
    check_deletion(one.deletion, DeletionLimits(), collection="legal_rag", data_dir="/srv/data")
    assert one.vanished == ["c.txt"]


def test_an_empty_collection_has_nothing_to_guard():
    plan = plan_sync([FileChunks("a.txt", ["a1"], "s1")], {}, model=MODEL, present={"a.txt"}, total_points=0, full=True)
    assert plan.deletion is None and plan.upserts == {"a.txt": EveryChunk(1)}


def test_a_file_with_some_chunks_new_lists_only_those():
    index = held("a.txt", ["a1", "a2"])
    plan = plan_sync([FileChunks("a.txt", ["a1", "a2", "a3"], "s1")], index, model=MODEL, present={"a.txt"},
                     total_points=2, full=True)
    assert plan.upserts == {"a.txt": ["a3"]} and plan.points_to_write() == 1 and plan.deletes == {}
    every = plan_sync([FileChunks("b.txt", ["b1", "b2"], "s1")], {}, model=MODEL, present={"b.txt"}, total_points=0,
                      full=True)
    assert every.points_to_write() == 2 and "b2" in every.upserts["b.txt"] and len(every.upserts["b.txt"]) == 2


def test_an_article_amended_in_place_rewrites_its_own_point_and_retags_the_kept_ones():
    index = held("a.txt", ["a1", "a2", "a3"], sha="old")
    # a2 was amended (a new id a4); a1 and a3 are what the new version writes (ingest/points.py kept_points)
    plan = plan_sync([FileChunks("a.txt", ["a1", "a4", "a3"], "new", kept=frozenset({"a1", "a3"}))], index,
                     model=MODEL, present={"a.txt"}, total_points=3, full=True)
    assert plan.upserts == {"a.txt": ["a4"]} and plan.retags == {"a.txt": ["a1", "a3"]}
    assert plan.deletes == {"a.txt": ["a2"]} and plan.points_to_write() == 1 and plan.net_removed == 0
    # a kept point of another model is written again, not retagged
    mixed = {"a.txt": {**index["a.txt"], "a1": {"source": "a.txt", "doc_sha256": "old", "embedding_model": "other"}}}
    plan = plan_sync([FileChunks("a.txt", ["a1", "a3"], "new", kept=frozenset({"a1", "a3"}))], mixed, model=MODEL,
                     present={"a.txt"}, total_points=3, full=True)
    assert plan.upserts == {"a.txt": ["a1"]} and plan.retags == {"a.txt": ["a3"]}
    # a file of this version has nothing to retag, kept or not
    same = plan_sync([FileChunks("a.txt", ["a1", "a2", "a3"], "old", kept=frozenset({"a1"}))], index, model=MODEL,
                     present={"a.txt"}, total_points=3, full=True)
    assert same.upserts == {"a.txt": []} and same.retags == {}


def test_a_kept_point_is_one_whose_payload_this_version_writes_alike():
    from legal_rag_pipeline.ingest.points import chunk_payload, kept_points
    from legal_rag_pipeline.records import Chunk

    md = {"kind": "law", "law": "Luật Cư trú", "chapter": "Chương I — Quy định chung", "article": "1"}
    chunks = [Chunk("a.txt", f"dieu-{n}", f"Điều {n}. Nội dung {n}.", {**md, "article": str(n)}) for n in (1, 2, 3)]
    # stored by an earlier version: another text digest, another write time, the validity the file had then
    stored = {c.point_id: {**chunk_payload(c, i, "old-sha", MODEL, "2026-01-01T00:00:00+00:00"),
                           "valid_from": "2021-07-01", "document_keys": ["law:Luật Cư trú"]}
              for i, c in enumerate(chunks)}
    assert kept_points(enumerate(chunks), stored) == {c.point_id for c in chunks}
    # an article inserted before the last: its place in the file changed, so its point is written again
    inserted = [*chunks[:2], Chunk("a.txt", "dieu-2a", "Điều 2a. Mới.", {**md, "article": "2a"}), chunks[2]]
    assert kept_points(enumerate(inserted), stored) == {chunks[0].point_id, chunks[1].point_id}
    # a chapter renamed: the same texts, other metadata (and another bm25 text)
    renamed = [Chunk(c.source, c.chunk_key, c.text, {**c.metadata, "chapter": "Chương I — Những quy định chung"})
               for c in chunks]
    assert kept_points(enumerate(renamed), stored) == set()
    # a field the earlier version wrote and this one does not
    extra = {**stored, chunks[0].point_id: {**stored[chunks[0].point_id], "question": "Hỏi?"}}
    assert kept_points(enumerate(chunks), extra) == {chunks[1].point_id, chunks[2].point_id}
    assert kept_points(enumerate(chunks), {}) == set()
