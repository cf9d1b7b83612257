"""The per-file records in ``<state>/files.db``: an earlier version's JSON files are taken over,
several processes write the same database, and a stage's batch commits its records together."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

from legal_rag_pipeline.artifacts import (
    RECORDS_FILE,
    FileArtifacts,
    StageOutcome,
    each_file_record,
    known_sources,
    plan_rows,
)
from legal_rag_pipeline_tests.pipeline_env import REPO, make_env


def _as_earlier_version(state) -> int:
    """Turn files.db back into the per-file document.json / status.json / synced.json and
    chunks.jsonl of before (a sync marker then names the chunks file's size and time, as it did)."""
    with sqlite3.connect(state / RECORDS_FILE) as db:
        rows = db.execute("SELECT source, document, status, synced FROM files").fetchall()
        chunks = dict(db.execute("SELECT source, lines FROM chunks").fetchall())
    for source, *fields in rows:
        folder = FileArtifacts(state, source).dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "chunks.jsonl").write_text(chunks[source], encoding="utf-8")
        stat = (folder / "chunks.jsonl").stat()
        for name, value in zip(("document.json", "status.json", "synced.json"), fields, strict=True):
            if value is not None:
                value = json.loads(value)
                if name == "synced.json":
                    value["chunks_file"] = [stat.st_size, stat.st_mtime_ns]
                (folder / name).write_text(json.dumps(value, indent=1), encoding="utf-8")
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
from contextlib import nullcontext
from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome, records_batch
state, me = sys.argv[2], sys.argv[3]
with records_batch(state) if me == "a" else nullcontext():  # one in batches, one write by write
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



OPENER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from contextlib import nullcontext
from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome, records_batch
root, me, folders = sys.argv[2], sys.argv[3], int(sys.argv[4])
open(os.path.join(root, f"ready{me}"), "w").close()
for i in range(folders):
    state = os.path.join(root, f"state{i}")
    while not os.path.exists(state + ".go"):  # all processes open this new folder's files.db together
        time.sleep(0.0005)
    with records_batch(state) if me == "0" else nullcontext():
        FileArtifacts(state, f"{me}.txt").record_outcome("raw_documents", StageOutcome(f"{me}.txt", "ok"), me)
"""


def test_processes_opening_a_new_state_folder_at_once_all_get_it(tmp_path):
    """A sensor's run and `legal-rag ingest` may both be first on a new state folder: each turns
    the new files.db to WAL, and none may fail on the other's lock (it did: "database is locked")."""
    processes, folders = 4, 100
    openers = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(REPO), str(tmp_path), str(me), str(folders)],
                         stderr=subprocess.PIPE, text=True)
        for me in range(processes)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{me}").exists() for me in range(processes)):  # their imports
        assert time.monotonic() < deadline and all(o.poll() is None for o in openers)
        time.sleep(0.05)
    for i in range(folders):
        (tmp_path / f"state{i}.go").touch()
        time.sleep(0.03)
    results = [(o.wait(timeout=120), o.stderr.read()) for o in openers]
    assert all(code == 0 for code, _ in results), [err.strip().splitlines()[-1:] for _, err in results]
    for i in range(folders):
        assert known_sources(tmp_path / f"state{i}") == [f"{me}.txt" for me in range(processes)]

def test_changed_at_moves_only_when_a_stage_changed_something(tmp_path):
    art = FileArtifacts(tmp_path / "state", "luat.txt")
    art.record_outcome("raw_documents", StageOutcome("luat.txt", "ok"), "r1")
    first = art.status()["raw_documents"]
    art.record_outcome("raw_documents", StageOutcome("luat.txt", "unchanged"), "r2")
    second = art.status()["raw_documents"]
    assert second["run_id"] == "r2" and second["status"] == "unchanged" and second["changed_at"] == first["changed_at"]
    art.remove()
    assert art.status() == {} and known_sources(tmp_path / "state") == []


BATCH_WRITER = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from legal_rag_pipeline import artifacts
from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome, records_batch
artifacts.BATCH_COMMIT_SECONDS = 3600  # nothing committed by the timer: only the batch's end commits
state, end = sys.argv[2], sys.argv[3]
with records_batch(state):
    for i in range(100):
        FileArtifacts(state, f"batch/{i}.txt").record_outcome("raw_documents", StageOutcome("x", "ok"), "r")
    if end == "killed":
        os._exit(3)  # as a killed run: no commit
"""


def _rows(state) -> set[str]:
    with sqlite3.connect(state / RECORDS_FILE) as db:
        return {row[0] for row in db.execute("SELECT source FROM files")}


def test_a_batch_commits_its_records_together_and_a_killed_one_leaves_them_as_they_were(tmp_path):
    state = tmp_path / "state"
    FileArtifacts(state, "before.txt").record_outcome("raw_documents", StageOutcome("before.txt", "ok"), "r0")
    killed = subprocess.run([sys.executable, "-c", BATCH_WRITER, str(REPO), str(state), "killed"], check=False, timeout=120)
    assert killed.returncode == 3
    assert _rows(state) == {"before.txt"}  # the database opens; the batch's rows are not half there
    done = subprocess.run([sys.executable, "-c", BATCH_WRITER, str(REPO), str(state), "ends"], check=False, timeout=120)
    assert done.returncode == 0
    assert _rows(state) == {"before.txt", *(f"batch/{i}.txt" for i in range(100))}


def test_inside_a_batch_the_process_reads_its_writes_and_others_see_them_after(tmp_path, monkeypatch):
    from legal_rag_pipeline import artifacts

    monkeypatch.setattr(artifacts, "BATCH_COMMIT_SECONDS", 3600)
    state = tmp_path / "state"
    art = FileArtifacts(state, "luat.txt")
    with artifacts.records_batch(state):
        art.write_document({"sha256": "abc"})
        art.record_outcome("raw_documents", StageOutcome("luat.txt", "ok"), "r1")
        assert art.document() == {"sha256": "abc"} and art.stage_ok("raw_documents", "r1")
        assert _rows(state) == set()  # another connection: not committed yet
    assert _rows(state) == {"luat.txt"}


def test_a_batch_does_not_keep_the_write_lock_from_other_processes(tmp_path, monkeypatch):
    """A stage may work a long time between two writes (a slow reader, an embedding call): its open
    transaction is committed by a timer, so another process can write meanwhile."""
    from legal_rag_pipeline import artifacts

    monkeypatch.setattr(artifacts, "BATCH_COMMIT_SECONDS", 0.2)
    state = tmp_path / "state"
    with artifacts.records_batch(state):
        FileArtifacts(state, "a.txt").record_outcome("raw_documents", StageOutcome("a.txt", "ok"), "r1")
        other = sqlite3.connect(state / RECORDS_FILE, timeout=60, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # waits for the timer's commit, never for the batch's end
            other.execute("INSERT INTO files (source) VALUES ('other.txt')")
            other.execute("COMMIT")
        finally:
            other.close()
        assert known_sources(state) == ["a.txt"]  # committed by the timer, the batch still open
        FileArtifacts(state, "b.txt").record_outcome("raw_documents", StageOutcome("b.txt", "ok"), "r1")
    assert _rows(state) == {"a.txt", "b.txt", "other.txt"}


def _law_chunks(source: str):
    from legal_rag_pipeline.text.chunking import chunk_text
    from legal_rag_pipeline.text.tokens import count_tokens

    text = ("LUẬT THỬ\nĐiều 1. Phạm vi\n1. Khoản một \"trích dẫn\"\u2028 dòng.\n2. Khoản hai.\n"
            "Điều 2. Hiệu lực\nLuật này có hiệu lực.\n")
    return list(chunk_text(source, text, 512, count_tokens))


def test_chunks_are_a_row_of_the_database_and_a_large_set_is_a_file(tmp_path, monkeypatch):
    from legal_rag_pipeline import artifacts

    chunks = _law_chunks("luật/thử.txt")
    art = FileArtifacts(tmp_path / "state", "luật/thử.txt")
    assert art.write_chunks(chunks) == len(chunks) >= 2
    assert not (art.dir / "chunks.jsonl").exists()  # a row of files.db, no file created
    assert list(art.read_chunks()) == chunks and art.chunk_ids() == [c.point_id for c in chunks]
    in_db = art.chunks_version()
    assert in_db[0] == "files.db" and art.has_chunks()

    monkeypatch.setattr(artifacts, "CHUNKS_IN_DB_BYTES", 100)  # as a set of many megabytes
    assert art.write_chunks(chunks) == len(chunks)
    assert (art.dir / "chunks.jsonl").exists() and art.chunks_version() not in (None, in_db)
    assert list(art.read_chunks()) == chunks and art.chunk_ids() == [c.point_id for c in chunks]

    monkeypatch.setattr(artifacts, "CHUNKS_IN_DB_BYTES", 8 << 20)
    assert art.write_chunks(chunks[:1]) == 1  # smaller again: the row, and the file is gone
    assert not (art.dir / "chunks.jsonl").exists() and list(art.read_chunks()) == chunks[:1]
    assert art.chunks_version() not in (None, in_db)
    art.remove()
    assert not art.has_chunks() and art.chunks_version() is None


def test_chunk_ids_read_off_each_line_are_the_decoded_ids(tmp_path, monkeypatch):
    from legal_rag_pipeline import artifacts

    monkeypatch.setattr(artifacts, "CHUNKS_IN_DB_BYTES", 0)  # the lines as a file, to rewrite them by hand
    art = FileArtifacts(tmp_path / "state", "luật/thử.txt")
    assert art.write_chunks(_law_chunks(art.source)) >= 2
    path = art.dir / "chunks.jsonl"
    decoded = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").split("\n") if line]
    assert art.chunk_ids() == decoded == [c.point_id for c in art.read_chunks()]
    # lines written another way (keys in another order, an escaped id) are decoded
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    items[0]["id"] = 'id-with-"quote\\'
    path.write_text("".join(json.dumps(item, sort_keys=i % 2 == 1) + "\n" for i, item in enumerate(items)) + "\n",
                    encoding="utf-8")
    assert art.chunk_ids() == ['id-with-"quote\\', *decoded[1:]]


def test_a_short_text_comes_back_from_the_reader_as_a_row_and_a_long_one_as_raw_jsonl(tmp_path):
    from legal_rag_pipeline import ingest
    from legal_rag_pipeline.readers.worker import RAW_INLINE_BYTES

    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    short = "LUẬT THỬ\nĐiều 1. Phạm vi\nLuật này quy định việc thử.\n"
    long = short + "".join(f"Điều {i}. Nội dung\nĐiều khoản số {i} của luật thử dài.\n" for i in range(2, 12_000))
    assert len(long.encode("utf-8")) > RAW_INLINE_BYTES
    art = FileArtifacts(state, "luat.txt")

    (data / "luat.txt").write_text(short, encoding="utf-8")
    assert ingest.read_stage(data, "luat.txt", state, "r1").status == "ok"
    assert not (art.dir / "raw.jsonl").exists() and art.has_raw()  # no file made for it
    assert list(art.read_raw()) == [{"text": short}]

    (data / "luat.txt").write_text(long, encoding="utf-8")
    assert ingest.read_stage(data, "luat.txt", state, "r2").status == "ok"
    assert (art.dir / "raw.jsonl").exists() and list(art.read_raw()) == [{"text": long}]

    (data / "luat.txt").write_text(short + "Điều 2. Hiệu lực\n", encoding="utf-8")
    assert ingest.read_stage(data, "luat.txt", state, "r3").status == "ok"
    assert not (art.dir / "raw.jsonl").exists() and list(art.read_raw()) == [{"text": short + "Điều 2. Hiệu lực\n"}]
    assert ingest.read_stage(data, "luat.txt", state, "r4").status == "unchanged"
    art.remove()
    assert not art.has_raw()


def test_document_records_are_read_page_by_page_each_once_in_order(tmp_path):
    from legal_rag_pipeline.artifacts import _records, each_known_document

    state = tmp_path / "state"
    for i in range(7):
        art = FileArtifacts(state, f"luat/{i:02d}.txt")
        art.write_document({"sha256": f"s{i}", "number": f"{i}/2020/QH14"})
        art.record_outcome("raw_documents", StageOutcome(art.source, "ok"), "r")
    FileArtifacts(state, "no-status.txt").write_document({"sha256": "x"})  # never staged: not known
    paged = list(_records(state).each_document(rows_at_once=3))  # pages of 3, 3 and 1
    assert [source for source, _ in paged] == [f"luat/{i:02d}.txt" for i in range(7)]
    assert paged == list(each_known_document(state))  # the default pages: the same records
    assert paged[4][1]["number"] == "4/2020/QH14"


def test_the_plan_reads_a_table_kept_in_step_with_the_records_also_in_an_earlier_files_db(tmp_path, monkeypatch):
    """``plan_rows`` reads the narrow ``file_plan`` table that triggers keep from the records and the
    chunks; a files.db of an earlier version (no such table) gets it, filled in, when it is opened."""
    from legal_rag_pipeline import artifacts

    stages = ["raw_documents", "qdrant_collection"]
    state, earlier = tmp_path / "state", tmp_path / "earlier"
    for i, source in enumerate(["a/luat.txt", "b/nghi-dinh.txt", "c/never-read.txt"]):
        art = FileArtifacts(state, source)
        if i < 2:
            art.write_document({"source": source, "sha256": f"sha-{i}", "reader_version": "3", "chunked": f"4:128:sha-{i}",
                                "size": 100 + i, "mtime_ns": 10**18 + i, "chunks": 3 + i, "validity_facts": {"number": "1"}})
        art.record_outcome("raw_documents", StageOutcome(source, "ok"), "r1")
        if i == 1:
            art.record_outcome("qdrant_collection", StageOutcome(source, "failed", error="boom"), "r1")
    expected = {
        "a/luat.txt": ("sha-0", "3", "4:128:sha-0", 100, 10**18, 3, None, None, "ok", None, 1),
        "b/nghi-dinh.txt": ("sha-1", "3", "4:128:sha-1", 101, 10**18 + 1, 4, None, None, "ok", "failed", 1),
        "c/never-read.txt": (None, None, None, None, None, None, None, None, "ok", None, 1),
    }
    assert plan_rows(state, stages) == expected

    earlier.mkdir()  # the same rows in the table as an earlier version made it
    with sqlite3.connect(state / RECORDS_FILE) as db:
        rows = db.execute("SELECT source, document, status, synced FROM files").fetchall()
    with sqlite3.connect(earlier / RECORDS_FILE) as db:
        db.execute("CREATE TABLE files (source TEXT PRIMARY KEY, document TEXT, status TEXT, synced TEXT)")
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", rows)
    assert plan_rows(earlier, stages) == expected

    art = FileArtifacts(earlier, "a/luat.txt")  # later writes reach the table through the triggers
    art.write_document({**art.document(), "sha256": "sha-new", "size": 7})
    art.record_outcome("qdrant_collection", StageOutcome("a/luat.txt", "ok"), "r2")
    art.write_synced({"chunks": 3})
    art.write_chunks(_law_chunks("a/luat.txt"))
    FileArtifacts(earlier, "d/new.txt").record_outcome("raw_documents", StageOutcome("d/new.txt", "failed"), "r2")
    FileArtifacts(earlier, "c/never-read.txt").remove()
    rows = plan_rows(earlier, stages)
    stamp = art.chunks_version()[1]
    assert stamp and rows["a/luat.txt"] == ("sha-new", "3", "4:128:sha-0", 7, 10**18, 3, '{"chunks": 3}', stamp, "ok", "ok", 1)
    assert rows["d/new.txt"][8:] == ("failed", None, 1) and "c/never-read.txt" not in rows
    assert known_sources(earlier) == ["a/luat.txt", "b/nghi-dinh.txt", "d/new.txt"]
    monkeypatch.setattr(artifacts, "CHUNKS_IN_DB_BYTES", 100)  # the chunks become a file: no row, no stamp
    art.write_chunks(_law_chunks("a/luat.txt"))
    assert plan_rows(earlier, stages)["a/luat.txt"][7] is None


def _plan_in_sql(state) -> dict[str, tuple]:
    """Every ``ingest_plan`` row as SQL computes it from ``files`` and ``chunks`` (what fills the table in)."""
    from legal_rag_pipeline.artifacts import _plan_values

    with sqlite3.connect(state / RECORDS_FILE) as db:
        return {row[0]: row for row in db.execute(f"SELECT {_plan_values('f')} FROM files f")}


def _plan_table(state) -> dict[str, tuple]:
    with sqlite3.connect(state / RECORDS_FILE) as db:
        return {row[0]: row for row in db.execute("SELECT * FROM ingest_plan")}


def test_each_write_sets_the_plan_fields_sql_would_read_from_the_written_json(tmp_path):
    """The writes of ``files`` set their ``ingest_plan`` row from the values they write (no JSON read in
    SQL): after every kind of write, in a batch and outside one, the table equals what SQL reads from the
    records themselves (numbers, texts, true/false, null, nested values, a status put whole, deletions)."""
    from legal_rag_pipeline.artifacts import records_batch

    state = tmp_path / "state"
    a, b, c = (FileArtifacts(state, s) for s in ("luat/a.txt", "luat/b.txt", "nghi-dinh/c.txt"))
    b.record_outcome("raw_documents", StageOutcome(b.source, "failed", error="boom"), "r0")  # a status first
    a.write_document({"source": a.source, "sha256": "s-a", "reader_version": "3", "size": 12, "mtime_ns": 10**18 + 7,
                      "chunked": "4:128:s-a", "chunks": 2, "kind": "text", "validity_facts": {"number": "1/2020/QH14"}})
    a.write_chunks(_law_chunks(a.source))
    c.write_chunks(_law_chunks(c.source))  # chunks before the file's first record
    c.write_document({"sha256": "s-c", "size": 1.5, "chunks": True, "chunked": {"nested": [1, "hai"]}, "mtime_ns": None})
    assert _plan_table(state) == _plan_in_sql(state)
    with records_batch(state):
        for i, stage in enumerate(("raw_documents", "normalized_records", "embedding_batches", "qdrant_collection")):
            a.record_outcome(stage, StageOutcome(a.source, "ok" if i % 2 else "unchanged"), "r1")
            b.record_outcome(stage, StageOutcome(b.source, "skipped"), "r1")
        a.write_synced({"chunks": 2, "model": "m"})
        a.write_document({**a.document(), "sha256": "s-a2", "reader_version": None})
        c.write_chunks(_law_chunks(c.source)[:1])
    assert _plan_table(state) == _plan_in_sql(state)
    a.clear_synced()
    b._records.put(b.source, "status", {"source": b.source, "raw_documents": {"status": "ok"}, "note": "text"})
    c._records.put(c.source, "status", {})  # known, not recorded
    b.write_document(None)
    assert _plan_table(state) == _plan_in_sql(state)
    c.remove()
    assert set(_plan_table(state)) == {a.source, b.source} and _plan_table(state) == _plan_in_sql(state)
    assert plan_rows(state, ["raw_documents", "qdrant_collection"])[a.source][8:] == ("unchanged", "ok", 1)



def _both_tables(state) -> dict:
    """Every row of files.db's ``files`` and ``ingest_plan``, status times left out."""
    with sqlite3.connect(state / RECORDS_FILE) as db:
        files = {r[0]: (r[1], _untimed(r[2]), r[3]) for r in db.execute("SELECT source, document, status, synced FROM files")}
        plan = {r[0]: r[1:] for r in db.execute("SELECT * FROM ingest_plan")}
    return {"files": files, "plan": plan}


def _untimed(status: str | None):
    value = json.loads(status) if status else status
    for entry in (value or {}).values():
        if isinstance(entry, dict):
            entry.pop("at", None), entry.pop("changed_at", None)
    return value


def test_a_document_written_with_its_outcome_and_outcomes_written_together_are_the_one_by_one_rows(tmp_path):
    """``record_outcome(..., document=...)`` (a stage's document and outcome in one pair of statements) and
    ``record_outcomes`` (a stage's outcomes of every file at once) leave exactly the rows of writing the
    document, then each outcome, one at a time: new files, files with a record, a failed outcome, an
    unchanged one (whose ``changed_at`` stays), nested values in the document."""
    from legal_rag_pipeline.artifacts import record_outcomes, records_batch

    def document(source: str, n: int) -> dict:
        return {"source": source, "sha256": f"s{n}", "reader_version": "3", "size": n, "mtime_ns": 10**18 + n,
                "chunked": f"4:128:s{n}" if n % 2 else None, "chunks": n, "validity_facts": {"number": f"{n}/2020/QH14"}}

    sources = ["luat/a.txt", "luat/b.txt", "nghi-dinh/c.txt", "thong-tu/d.txt"]
    outcomes = [StageOutcome(sources[0], "ok", counts={"chunks": 2}), StageOutcome(sources[1], "unchanged"),
                StageOutcome(sources[2], "failed", error="boom", fix="fix it"), StageOutcome(sources[3], "skipped")]
    rows = []
    for together in (False, True):
        state = tmp_path / f"state-{together}"
        FileArtifacts(state, sources[1]).write_chunks(_law_chunks(sources[1]))  # chunks before the first record
        FileArtifacts(state, sources[3]).record_outcome("raw_documents", StageOutcome(sources[3], "ok"), "r0")
        with records_batch(state):
            for n, outcome in enumerate(outcomes):
                art = FileArtifacts(state, outcome.source)
                if together:
                    art.record_outcome("raw_documents", outcome, "r1", document=document(art.source, n))
                else:
                    art.write_document(document(art.source, n))
                    art.record_outcome("raw_documents", outcome, "r1")
        if together:
            record_outcomes(state, "normalized_records", outcomes, "r1")
        else:
            for outcome in outcomes:
                FileArtifacts(state, outcome.source).record_outcome("normalized_records", outcome, "r1")
        assert _plan_table(state) == _plan_in_sql(state)
        rows.append(_both_tables(state))
    assert rows[0] == rows[1]
    assert set(rows[1]["files"]) == set(sources)
    stages = [FileArtifacts(tmp_path / "state-True", s).status()["normalized_records"] for s in sources[:2]]
    assert stages[0]["changed_at"] == stages[0]["at"] and stages[1]["changed_at"] is None  # ok moves it, unchanged not

def _as_a_new_process(artifacts) -> None:
    for records in artifacts._OPEN.values():
        records.close()
    artifacts._OPEN.clear()


def test_a_files_db_of_the_version_before_is_taken_over_and_its_triggers_dropped(tmp_path):
    """The version before kept the plan's fields in ``file_plan`` by triggers that read each written JSON
    in SQL. Opened here, its files.db gets ``ingest_plan`` filled in from the records and loses the old
    table and triggers (they would parse every document twice); found again later (that version ran on
    this folder meanwhile, keeping only its own table), ``ingest_plan`` is filled in again."""
    from legal_rag_pipeline import artifacts
    from legal_rag_pipeline.artifacts import _EARLIER_PLAN_TRIGGERS, _plan_values

    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / RECORDS_FILE) as db:  # the version before's files.db, as it made it
        db.execute("CREATE TABLE files (source TEXT PRIMARY KEY, document TEXT, status TEXT, synced TEXT)")
        db.execute("CREATE TABLE chunks (source TEXT PRIMARY KEY, stamp TEXT NOT NULL, lines TEXT NOT NULL)")
        db.execute("CREATE TABLE raw (source TEXT PRIMARY KEY, text TEXT NOT NULL)")
        db.execute("CREATE TABLE file_plan (source TEXT PRIMARY KEY, sha256 TEXT, reader_version TEXT, chunked TEXT, "
                   "size INTEGER, mtime_ns INTEGER, chunks INTEGER, synced TEXT, stamp TEXT, stages TEXT, known INTEGER, "
                   "recorded INTEGER)")
        db.execute(f"CREATE TRIGGER file_plan_insert AFTER INSERT ON files BEGIN INSERT OR REPLACE INTO file_plan "
                   f"VALUES ({_plan_values('NEW')}); END")
        db.execute("INSERT INTO files VALUES (?, ?, ?, NULL)", (
            "luat/a.txt", json.dumps({"sha256": "s-a", "size": 3, "chunks": 1}),
            json.dumps({"source": "luat/a.txt", "raw_documents": {"status": "ok", "run_id": "r0"}})))

    def tables_and_triggers() -> set[str]:
        with sqlite3.connect(state / RECORDS_FILE) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}

    _as_a_new_process(artifacts)
    rows = plan_rows(state, ["raw_documents"])
    assert rows["luat/a.txt"][:6] == ("s-a", None, None, 3, None, 1) and rows["luat/a.txt"][8:] == ("ok", 1)
    names = tables_and_triggers()
    assert "ingest_plan" in names and "file_plan" not in names and not names & set(_EARLIER_PLAN_TRIGGERS)

    with sqlite3.connect(state / RECORDS_FILE) as db:  # that version again: its own table, a write only it sees
        db.execute("CREATE TABLE file_plan (source TEXT PRIMARY KEY)")
        db.execute("UPDATE files SET document = ? WHERE source = 'luat/a.txt'", (json.dumps({"sha256": "s-new"}),))
    _as_a_new_process(artifacts)
    assert plan_rows(state, ["raw_documents"])["luat/a.txt"][0] == "s-new"
    assert "file_plan" not in tables_and_triggers() and _plan_table(state) == _plan_in_sql(state)


def test_a_stage_s_result_and_the_fingerprint_are_read_without_the_whole_record(tmp_path):
    """``stage_ok`` reads a stage's status and run in SQL and ``fingerprint`` the plan's fields of the
    document: the same answers as the whole records give."""
    state = tmp_path / "state"
    art = FileArtifacts(state, "luat/a.txt")
    assert not art.stage_ok("raw_documents", None) and art.fingerprint() == dict.fromkeys(art.fingerprint())
    art.write_document({"sha256": "s", "chunked": "4:128:s", "chunks": 3, "validity_facts": {"number": "1"}})
    art.record_outcome("raw_documents", StageOutcome(art.source, "ok"), "r1")
    art.record_outcome("normalized_records", StageOutcome(art.source, "failed", error="boom"), "r1")
    art.record_outcome("embedding_batches", StageOutcome(art.source, "unchanged"), "r2")
    for stage, run, expected in [("raw_documents", "r1", True), ("raw_documents", None, True), ("raw_documents", "r2", False),
                                 ("normalized_records", "r1", False), ("embedding_batches", None, True),
                                 ("embedding_batches", "r2", True), ("qdrant_collection", None, False)]:
        entry = art.status().get(stage) or {}
        assert art.stage_ok(stage, run) is expected == (
            entry.get("status") in {"ok", "unchanged"} and run in (None, entry.get("run_id"))), (stage, run)
    assert art.fingerprint() == {"sha256": "s", "reader_version": None, "chunked": "4:128:s", "size": None,
                                 "mtime_ns": None, "chunks": 3}


def test_a_document_field_is_set_in_place_and_the_rest_of_the_record_kept(tmp_path):
    """``set_document_field`` (the validity a file's points carry) changes one field of the document in
    SQL: the other fields, the plan's row and a record that is not there yet or not an object."""
    state = tmp_path / "state"
    art = FileArtifacts(state, "luat/a.txt")
    view = {"collection": "edge:x|c", "digest": "d1", "view": {"number": "45/2019/QH14", "valid_from": None, "tên": "Bộ luật"}}
    art.set_document_field("validity_applied", view)  # no record yet
    assert art.document() == {"validity_applied": view} and _plan_table(state) == _plan_in_sql(state)
    art.write_document({"sha256": "s", "chunks": 2, "kind": "text", "validity_applied": {"digest": "old"}})
    art.set_document_field("validity_applied", view)
    assert art.document() == {"sha256": "s", "chunks": 2, "kind": "text", "validity_applied": view}
    assert _plan_table(state) == _plan_in_sql(state)
    with sqlite3.connect(state / RECORDS_FILE) as db:
        db.execute("UPDATE files SET document = '[1, 2' WHERE source = ?", (art.source,))  # damaged
    art.set_document_field("validity_applied", view)
    assert art.document() == {"validity_applied": view}


def test_the_synced_files_are_read_in_one_query_as_each_record_says(tmp_path):
    """``synced_sources``: the files whose sync marker ``FileArtifacts.synced`` gives, not one more: none
    written, one cleared, and one whose stored marker is not a JSON object are left out."""
    from legal_rag_pipeline.artifacts import synced_sources

    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        FileArtifacts(tmp_path, name).write_document({"sha256": name})
    FileArtifacts(tmp_path, "a.txt").write_synced({"points": 3, "collection": "legal_rag"})
    FileArtifacts(tmp_path, "b.txt").write_synced({"points": 1})
    FileArtifacts(tmp_path, "b.txt").clear_synced()
    FileArtifacts(tmp_path, "d.txt").write_synced({"points": 2})
    with sqlite3.connect(tmp_path / RECORDS_FILE) as db:
        db.execute("UPDATE files SET synced = '[1, 2]' WHERE source = 'e.txt'")
        db.execute("INSERT INTO files (source, synced) VALUES ('f.txt', 'not json')")
    sources = ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt")
    expected = {s for s in sources if FileArtifacts(tmp_path, s).synced() is not None}
    assert expected == {"a.txt", "d.txt"}
    assert synced_sources(tmp_path) == expected


def test_the_files_a_stage_went_through_are_read_in_one_query_as_each_record_says(tmp_path):
    """``sources_ok_in``: the files ``FileArtifacts.stage_ok`` finds ok for the stage and run, not one more:
    ok or unchanged in the run (yes), in another run (only when no run is asked), failed or skipped, another
    stage only, no status, a status that is not JSON (no)."""
    from legal_rag_pipeline.artifacts import sources_ok_in

    def record(name: str, stage: str, status: str, run_id: str) -> None:
        FileArtifacts(tmp_path, name).record_outcome(stage, StageOutcome(name, status), run_id)

    record("ok.txt", "raw_documents", "ok", "run-1")
    record("unchanged.txt", "raw_documents", "unchanged", "run-1")
    record("earlier.txt", "raw_documents", "ok", "run-0")
    record("failed.txt", "raw_documents", "failed", "run-1")
    record("skipped.txt", "raw_documents", "skipped", "run-1")
    record("other-stage.txt", "normalized_records", "ok", "run-1")
    FileArtifacts(tmp_path, "no-status.txt").write_document({"sha256": "x"})
    with sqlite3.connect(tmp_path / RECORDS_FILE) as db:
        db.execute("INSERT INTO files (source, status) VALUES ('broken.txt', 'not json')")
    sources = ["ok.txt", "unchanged.txt", "earlier.txt", "failed.txt", "skipped.txt", "other-stage.txt",
               "no-status.txt", "broken.txt", "never-seen.txt"]
    for run_id, expected in (("run-1", {"ok.txt", "unchanged.txt"}), (None, {"ok.txt", "unchanged.txt", "earlier.txt"})):
        assert {s for s in sources if FileArtifacts(tmp_path, s).stage_ok("raw_documents", run_id)} == expected
        assert sources_ok_in(tmp_path, "raw_documents", run_id) == expected


def test_each_file_record_reads_what_each_file_says_of_itself(tmp_path):
    """`legal-rag status` reads every file's status, document and sync marker a page at a time: the same
    values as each file's own reads, for the files with a status (known_sources), in name order."""
    state = tmp_path / "state"
    for i in (3, 1, 2):
        art = FileArtifacts(state, f"luat-{i}.txt")
        art.write_document({"source": art.source, "chunks": i, "law": f"Luật số {i}"})
        art.record_outcome("raw_documents", StageOutcome(art.source, "ok", counts={"records": 1}), "run-1")
        if i != 2:
            art.write_synced({"points": i, "model": "bm25"})
    FileArtifacts(state, "chua-doc.txt").write_document({"source": "chua-doc.txt"})  # no status: not known
    rows = list(each_file_record(state))
    assert [source for source, *_ in rows] == known_sources(state) == ["luat-1.txt", "luat-2.txt", "luat-3.txt"]
    for source, status, document, synced in rows:
        art = FileArtifacts(state, source)
        assert (status, document, synced) == (art.status(), art.document(), art.synced())
    assert rows[1][3] is None and rows[2][2]["chunks"] == 3 and rows[0][1]["raw_documents"]["status"] == "ok"
