"""A file that failed because of its own bytes is not run again until it changes (ingest/failures.py):
a folder with a broken file stays "nothing changed" (no run launched, by `legal-rag ingest` or the
nightly schedule), and the file runs again once it, the reader's limits or the chunker change."""

from __future__ import annotations

import os

from legal_rag_pipeline.automation.schedules import build_nightly_schedule
from legal_rag_pipeline.definitions import build_resources, ingest_job
from legal_rag_pipeline.errors import FileContentError, SourceFileError
from legal_rag_pipeline.ingest import failures
from legal_rag_pipeline.ingest.outcomes import _failed
from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline.readers.limits import Limits
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env
from legal_rag_pipeline_tests.test_schedule import LAW, _tick


# ------------------------------------------------------------------------------------------ the rule
def test_a_failure_holds_while_the_file_and_the_conditions_are_as_they_were(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\x00 not text")
    limits = Limits()
    now = failures.conditions("raw_documents", limits=limits)
    entry = {"status": "failed", failures.FAILED_AS: failures.failed_as(
        "raw_documents", failures.file_identity(path.stat()), now)}
    same = lambda stage: now
    assert failures.fails_as_before(entry, path.stat(), same)
    # other limits, another reader or chunker: other conditions
    assert failures.conditions("raw_documents", limits=Limits(max_file_bytes=1)) != now
    assert failures.conditions("normalized_records", token_budget=128) != failures.conditions(
        "normalized_records", token_budget=256)
    assert not failures.fails_as_before(entry, path.stat(), lambda stage: "another")
    # touched, edited, its permissions changed: the file's identity moved
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not failures.fails_as_before(entry, path.stat(), same)
    entry[failures.FAILED_AS]["file"] = failures.file_identity(path.stat())
    assert failures.fails_as_before(entry, path.stat(), same)
    os.chmod(path, 0o600)
    assert not failures.fails_as_before(entry, path.stat(), same)
    # a failure without the record (the machine's, or an earlier version's), or an ok entry: retried
    assert not failures.fails_as_before({"status": "failed", "error": "x"}, path.stat(), same)
    assert not failures.fails_as_before({**entry, "status": "ok"}, path.stat(), same)
    assert failures.failed_as("raw_documents", None, now) is None  # never opened: nothing to compare


def test_only_a_failure_in_the_file_is_recorded_to_last():
    assert _failed("a.pdf", "raw_documents", FileContentError("a.pdf", "a corrupt PDF", "export it again")).failed_as == {}
    assert _failed("a.doc", "raw_documents", SourceFileError("a.doc", "LibreOffice is not installed", "install it")
                   ).failed_as is None
    assert _failed("a.txt", "raw_documents", OSError("disk")).failed_as is None


# ------------------------------------------------------------------------------------- end to end
def test_a_broken_file_launches_no_run_until_it_changes(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    for i in range(3):
        (env.data / f"luat-{i}.txt").write_text(LAW.format(n=i), encoding="utf-8")
    (env.data / "hong.txt").write_bytes(b"\x00\x01\x02 not text")  # fails in the reader
    big = env.data / "luat-dai.txt"  # over MAX_FILE_BYTES
    big.write_text("\n\n".join(LAW.format(n=100 + i) for i in range(30)), encoding="utf-8")
    (env.data / "hoi-dap-rong.csv").write_text("question,answer\n,\n", encoding="utf-8")  # no text to chunk
    monkeypatch.setenv("MAX_FILE_BYTES", "2000")

    code, out = env.ingest()
    assert code == 1 and "hong.txt" in out and "MAX_FILE_BYTES" in out and "hoi-dap-rong.csv" in out, out
    runs = env.runs()

    # nothing changed: no run launched, the three files named with their reason, exit 1 (not all ingested)
    code, out = env.ingest()
    assert code == 1, out
    assert "Nothing changed since the last run: 3 files in sync" in out and "no run launched" in out, out
    assert "3 files not run: failing as before" in out
    assert "  hong.txt: binary data, not text" in out and "  luat-dai.txt: it is" in out
    assert "  hoi-dap-rong.csv: no text to ingest was found" in out
    assert env.runs() == runs

    # the nightly schedule plans the same: no run
    with get_instance() as instance:
        tick = _tick(build_nightly_schedule(ingest_job), instance, build_resources(load_settings()))
    assert not tick.run_requests
    assert "3 failing as before (unchanged since they failed)" in tick.skip_message, tick.skip_message

    # a limit changed: the files the reader refused run again (the one over it now goes in); the file
    # refused by the chunker still fails as before
    monkeypatch.setenv("MAX_FILE_BYTES", str(1 << 20))
    code, out = env.ingest()
    assert "Plan: 3 unchanged, 0 changed, 0 new, 2 failed last time, 0 removed, 1 failing as before" in out, out
    assert "luat-dai.txt  ok" in out and "hong.txt      failed" in out and "  hoi-dap-rong.csv: no text" in out
    assert code == 1 and env.runs() == runs + 1

    # --retry-failed runs them on purpose
    code, out = env.ingest("--retry-failed")
    assert "Plan: 4 unchanged, 0 changed, 0 new, 2 failed last time, 0 removed." in out, out
    assert code == 1 and "not run: failing as before" not in out and env.runs() == runs + 2

    # replaced with a readable text: runs and goes in
    (env.data / "hong.txt").write_text(LAW.format(n=7), encoding="utf-8")
    code, out = env.ingest()
    assert "Plan: 4 unchanged, 0 changed, 0 new, 1 failed last time, 0 removed, 1 failing as before" in out, out
    assert "5 of 5" not in out and "1 of 1 files ingested" in out and code == 1

    # the chunker's token budget changed: a file that failed chunking is chunked again
    monkeypatch.setenv("CHUNK_TOKEN_BUDGET", "256")
    code, out = env.ingest()
    assert "hoi-dap-rong.csv" in out.split("Plan:")[1] and "not run: failing as before" not in out, out


def test_a_failure_the_machine_may_fix_is_retried(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    (env.data / "luat-1.txt").write_text(LAW.format(n=1), encoding="utf-8")
    assert env.ingest()[0] == 0
    from legal_rag_pipeline.artifacts import FileArtifacts

    art = FileArtifacts(env.state, "luat-1.txt")
    art.record_outcome("raw_documents", _failed("luat-1.txt", "raw_documents",
                                                SourceFileError("luat-1.txt", "its reader crashed", "check it")), "r")
    code, out = env.ingest()
    assert "Plan: 0 unchanged, 0 changed, 0 new, 1 failed last time, 0 removed." in out, out
    assert code == 0 and "1 of 1 files ingested" in out
