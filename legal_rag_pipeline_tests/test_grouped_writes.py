"""Small files are written to Qdrant in groups (ingest.sync_stage): one unreadable file fails alone,
the others of its group are written and marked in sync, and the next run finishes the failed one."""

from __future__ import annotations

import sqlite3

from legal_rag_pipeline import ingest
from legal_rag_pipeline.artifacts import RECORDS_FILE, FileArtifacts
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.settings import load_limits


def _stages_before_sync(data, state, keys, run_id):
    for key in keys:
        assert ingest.read_stage(data, key, state, run_id, load_limits()).ok
        assert ingest.normalize_stage(key, state, run_id, 512).ok
    assert all(o.ok for o in ingest.embed_stage(keys, state, run_id, None))


def test_a_file_that_cannot_be_read_back_fails_alone_in_its_group(tmp_path):
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    keys = []
    for i in range(600):  # more files than one group holds: three groups
        key = f"dieu-{i:03d}.txt"
        (data / key).write_text(f"Điều {i}. Quy định số {i}\nNội dung riêng của điều {i}.\n", encoding="utf-8")
        keys.append(key)
    _stages_before_sync(data, state, keys, "r1")
    broken = keys[300]
    with sqlite3.connect(state / RECORDS_FILE) as db:  # its chunks (a row of files.db) cut mid-record
        db.execute("UPDATE chunks SET lines = substr(lines, 1, length(lines) - 40) WHERE source = ?", (broken,))

    store = QdrantStore(path=str(tmp_path / "qdrant"))
    with store.connect() as collection:
        outcomes, _ = ingest.sync_stage(keys, data, state, "r1", collection, None)
        by_source = {o.source: o for o in outcomes}
        assert by_source[broken].status == "failed" and "JSONDecodeError" in by_source[broken].error
        assert all(by_source[k].status == "ok" for k in keys if k != broken)
        counts = collection.counts_by_source(keys)
    want = {k: len(FileArtifacts(state, k).chunk_ids()) for k in keys if k != broken}
    assert len(want) > 2 * ingest.write.WRITE_GROUP_FILES  # the files spanned several groups
    assert {k: counts.get(k, 0) for k in want} == want and counts.get(broken, 0) == 0
    assert all(FileArtifacts(state, k).synced() for k in want) and FileArtifacts(state, broken).synced() is None

    with sqlite3.connect(state / RECORDS_FILE) as db:  # its chunks gone: the next run chunks it again
        db.execute("DELETE FROM chunks WHERE source = ?", (broken,))
    _stages_before_sync(data, state, keys, "r2")
    with store.connect() as collection:
        outcomes, _ = ingest.sync_stage(keys, data, state, "r2", collection, None)
        assert {o.source: o.status for o in outcomes}[broken] == "ok"
        assert collection.counts_by_source([broken])[broken] == len(FileArtifacts(state, broken).chunk_ids())
