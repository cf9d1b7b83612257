"""`legal-rag status`: every known file from the state folder and the data folder's stat, with the
collection's counts when the store opens, and one line saying why not when a run holds it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from legal_rag_pipeline import cli
from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER, make_env


@pytest.fixture
def env(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    env.copy_sample()
    return env


def status(capsys, *args: str) -> str:
    capsys.readouterr()
    assert cli.main(["status", *args]) == 0
    return capsys.readouterr().out


def row(out: str, source: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(source + " "))


def test_before_anything_is_ingested(env, capsys):
    out = status(capsys)
    assert "Collection legal_rag does not exist yet" in out
    assert "new" in row(out, "luat-mau-cu-tru.txt") and "3 files: 3 new." in out
    assert not env.qdrant.exists()  # looking did not create the embedded folder


def test_ingested_failed_unchanged_changed_new_removed(env, capsys):
    (env.data / "tep-hong.txt").write_bytes(b"\x00\x01 not text")
    assert env.ingest()[0] == 1
    out = status(capsys)
    assert out.startswith("Embedded Qdrant (Qdrant Edge) at ") and ": 25 points, bm25 only" in out.splitlines()[0]
    line = row(out, "luat-mau-cu-tru.txt")
    assert "ingested" in line and " 11 " in line and "none (bm25 only)" in line and " UTC" in line
    assert "failed at raw_documents" in row(out, "tep-hong.txt")
    assert "binary data, not text" in out and "convert documents to UTF-8 text first" in out
    assert "4 files: 3 ingested, 1 failed." in out

    failed = status(capsys, "--failed")
    assert "tep-hong.txt" in failed and "luat-mau-cu-tru.txt" not in failed and "(1 shown)" in failed

    data = json.loads(status(capsys, "--json"))
    assert data["collection"]["points"] == 25 and data["collection"]["unavailable"] is None
    files = {f["source"]: f for f in data["files"]}
    assert files["hoi-dap-mau.xlsx"]["points"] == 6 and files["hoi-dap-mau.xlsx"]["points_from"] == "collection"
    assert files["tep-hong.txt"]["status"] == "failed" and files["tep-hong.txt"]["stage"] == "raw_documents"
    assert files["tep-hong.txt"]["fix"] and len(files["tep-hong.txt"]["run_id"]) == 36

    (env.data / "tep-hong.txt").unlink()
    assert env.ingest("--all")[0] == 0
    out = status(capsys)
    assert "unchanged since 20" in row(out, "luat-mau-giao-thong.txt")
    assert "tep-hong.txt" not in out and "3 files: 3 unchanged." in out  # its artifacts went with it (it never had points)

    law = env.data / "luat-mau-cu-tru.txt"
    law.write_text(law.read_text(encoding="utf-8").replace("02 năm", "03 năm"), encoding="utf-8")
    (env.data / "moi.txt").write_text("Điều 1. Phạm vi\nNội dung mới.\n", encoding="utf-8")
    (env.data / "hoi-dap-mau.xlsx").unlink()
    out = status(capsys)
    assert "changed" in row(out, "luat-mau-cu-tru.txt") and "new" in row(out, "moi.txt")
    assert "removed" in row(out, "hoi-dap-mau.xlsx") and " 6 " in row(out, "hoi-dap-mau.xlsx")
    assert "the next run removes its points" in out


def test_works_while_another_process_holds_the_embedded_folder(env, capsys):
    assert env.ingest()[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(env.qdrant)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = status(capsys)
        first = out.splitlines()[0]
        assert first.startswith("Collection counts unavailable (") and "in use by another process" in first, out
        assert "points as recorded at each file's last sync" in first
        assert " 11 " in row(out, "luat-mau-cu-tru.txt") and "3 files: 3 ingested." in out
        data = json.loads(status(capsys, "--json"))
        assert "in use by another process" in data["collection"]["unavailable"]
        assert {f["points_from"] for f in data["files"]} == {"last sync"}
    finally:
        holder.kill()
        holder.wait()
