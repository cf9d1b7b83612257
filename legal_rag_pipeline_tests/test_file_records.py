"""The per-file records in ``<state>/files.db``: an earlier version's JSON files are taken over, and
several processes write the same database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from legal_rag_pipeline.artifacts import RECORDS_FILE, FileArtifacts, StageOutcome, known_sources
from legal_rag_pipeline_tests.pipeline_env import REPO, make_env


def _as_earlier_version(state) -> int:
    """Turn files.db back into the per-file document.json / status.json / synced.json of before."""
    with sqlite3.connect(state / RECORDS_FILE) as db:
        rows = db.execute("SELECT source, document, status, synced FROM files").fetchall()
    for source, *fields in rows:
        folder = FileArtifacts(state, source).dir
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in zip(("document.json", "status.json", "synced.json"), fields, strict=True):
            if value is not None:
                (folder / name).write_text(json.dumps(json.loads(value), indent=1), encoding="utf-8")
    for leftover in state.glob(RECORDS_FILE + "*"):
        leftover.unlink()
    return len(rows)


def test_a_state_folder_from_before_is_taken_over_without_re_ingesting(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    assert env.ingest()[0] == 0
    points = env.points()
    assert _as_earlier_version(env.state) == 3
    from legal_rag_pipeline import artifacts

    artifacts._OPEN.clear()  # as a new process would: nothing open on the removed database

    code, out = env.ingest()
    assert code == 0 and "Nothing changed since the last run: 3 files in sync" in out
    assert env.points() == points
    assert known_sources(env.state) == sorted(points_sources(points))
    assert not list(env.state.rglob("status.json")) and not list(env.state.rglob("document.json"))
    art = FileArtifacts(env.state, "luat-mau-cu-tru.txt")
    assert art.document()["sha256"] and art.synced() and art.stage_ok("qdrant_collection", None)


def points_sources(points: dict[str, dict]) -> set[str]:
    return {payload["source"] for payload in points.values()}


WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome
state, me = sys.argv[2], sys.argv[3]
for i in range(300):
    art = FileArtifacts(state, f"{me}/{i % 30}.txt")
    art.record_outcome("raw_documents", StageOutcome(art.source, "ok", counts={"n": i}), me)
    art.record_outcome("normalized_records", StageOutcome(art.source, "ok", counts={"n": i}), me)
    shared = FileArtifacts(state, "shared.txt")  # the same row from both processes
    shared.record_outcome("raw_documents" if me == "a" else "normalized_records", StageOutcome("shared.txt", "ok", counts={"n": i}), me)
"""


def test_two_processes_write_the_same_records_without_losing_an_update(tmp_path):
    state = tmp_path / "state"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(state), me]) for me in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    sources = known_sources(state)
    assert len(sources) == 61 and "shared.txt" in sources
    shared = FileArtifacts(state, "shared.txt").status()
    # each process's last outcome for its own stage of the shared row survived the other's writes
    assert shared["raw_documents"]["run_id"] == "a" and shared["raw_documents"]["counts"] == {"n": 299}
    assert shared["normalized_records"]["run_id"] == "b" and shared["normalized_records"]["counts"] == {"n": 299}
    last = FileArtifacts(state, "b/29.txt").status()
    assert last["raw_documents"]["counts"] == {"n": 299} and last["normalized_records"]["status"] == "ok"


def test_changed_at_moves_only_when_a_stage_changed_something(tmp_path):
    art = FileArtifacts(tmp_path / "state", "luat.txt")
    art.record_outcome("raw_documents", StageOutcome("luat.txt", "ok"), "r1")
    first = art.status()["raw_documents"]
    art.record_outcome("raw_documents", StageOutcome("luat.txt", "unchanged"), "r2")
    second = art.status()["raw_documents"]
    assert second["run_id"] == "r2" and second["status"] == "unchanged" and second["changed_at"] == first["changed_at"]
    art.remove()
    assert art.status() == {} and known_sources(tmp_path / "state") == []
