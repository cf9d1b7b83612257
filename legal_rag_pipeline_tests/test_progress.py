"""Progress while it works: bars on a terminal (a real pseudo-terminal), plain lines otherwise and with
--quiet, the same counts in the Dagster run's log at a bounded rate; the per-file table as before."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

from legal_rag_pipeline import cli
from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline.progress import LineProgress
from legal_rag_pipeline_tests.pipeline_env import make_env


@pytest.fixture
def env(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    env.copy_sample()
    return env


def run_on_a_terminal(*args: str, timeout: float = 120) -> str:
    """`legal-rag ARGS` with its stdout and stderr on a pseudo-terminal; what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from legal_rag_pipeline.cli import main; sys.exit(main())", *args],
        stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode("utf-8", "replace")
    return b"".join(chunks).decode("utf-8", "replace")


def test_plain_lines_when_the_output_is_not_a_terminal_then_the_table(env):
    code, out = env.ingest()
    assert code == 0, out
    lines = out.splitlines()
    for expected in (
        "read: 3 of 3 files (100%)",
        "chunk: 3 of 3 files (100%)",
        "embed: 0 of 0 texts",
        "write: 25 of 25 points (100%)",
    ):
        assert any(line.startswith(expected) for line in lines), out
    assert "bm25 only: no dense vectors" in out
    table = next(i for i, line in enumerate(lines) if line.startswith("file "))
    assert table > next(i for i, line in enumerate(lines) if line.startswith("write:"))
    assert "3 of 3 files ingested into legal_rag" in out


def test_bars_on_a_terminal_and_plain_lines_with_quiet(env):
    shown = run_on_a_terminal("ingest")
    assert "━" in shown and "\x1b[" in shown  # rich bars, redrawn in place
    for stage, count in (("read", "3/3"), ("chunk", "3/3"), ("write", "25/25")):
        assert any(stage in line and count in line for line in shown.splitlines()), shown
    assert "3 of 3 files ingested" in shown and "luat-mau-cu-tru.txt" in shown  # the table follows

    (env.data / "luat-mau-cu-tru.txt").write_text(
        (env.data / "luat-mau-cu-tru.txt").read_text(encoding="utf-8") + "\nĐiều 99. Điều thêm\nNội dung.\n",
        encoding="utf-8",
    )
    quiet = run_on_a_terminal("ingest", "--quiet")
    assert "━" not in quiet and "read: 1 of 1 files (100%)" in quiet and "write: " in quiet, quiet


def test_the_run_log_gets_the_same_counts_at_a_bounded_rate(env, monkeypatch):
    code, out = env.ingest()
    assert code == 0, out
    instance = get_instance()
    run = instance.get_runs(limit=1)[0]
    messages = [e.user_message for e in instance.all_logs(run.run_id) if e.user_message]
    progress = [m for m in messages if m.split(":")[0] in {"read", "chunk", "embed", "write", "check"}]
    # a short run: one line per stage, when it ends (the 10-second interval never elapsed); chunking,
    # embedding and writing overlap in one step, so only some of their lines have a fixed order
    by_stage = {m.split(":")[0]: m for m in progress}
    order = [m.split(":")[0] for m in progress]
    assert sorted(order) == sorted(["read", "chunk", "embed", "write", "check"]), messages
    assert order[0] == "read" and order.index("chunk") < order.index("write") < order.index("check"), messages
    # the rate is shown once a stage took half a second (the reader's start can, on a busy machine)
    assert re.match(r"read: 3 of 3 files \(100%\)(, [\d.,]+ files/s)? in ", by_stage["read"]), by_stage["read"]
    assert by_stage["write"].startswith("write: 25 of 25 points (100%)")


def test_line_progress_is_bounded_by_its_interval():
    now = [0.0]
    lines: list[str] = []
    progress = LineProgress(lines.append, interval=10, clock=lambda: now[0])
    progress.start("embed", 10_000, "texts")
    for _ in range(1000):  # 1,000 batches of 10 texts over 100 s
        now[0] = round(now[0] + 0.1, 6)
        progress.advance("embed", 10)
    progress.finish("embed")
    assert 9 <= len(lines) <= 11, lines
    assert lines[0].startswith("embed: 1,000 of 10,000 texts (10%), 100 texts/s")
    assert lines[-1] == "embed: 10,000 of 10,000 texts (100%), 100 texts/s in 100.0 s"


def test_rebuild_and_eval_show_progress(env, capsys, tmp_path):
    assert env.ingest()[0] == 0
    assert cli.main(["rebuild"]) == 0
    out = capsys.readouterr().out
    assert "write: 25 of 25 points (100%)" in out and "Rebuilt 25 points" in out, out

    questions = tmp_path / "questions.json"
    questions.write_text(
        '[{"question_id": "q1", "question_type": "Tự luận", "text": "Thời hạn tạm trú tối đa là bao lâu?",'
        ' "relevant_articles": [{"law_id": "Luật Cư trú mẫu", "article_id": "6"}]}]',
        encoding="utf-8",
    )
    assert cli.main(["eval", "--questions", str(questions), "--json"]) == 0
    captured = capsys.readouterr()
    import json

    assert json.loads(captured.out)  # stdout is the JSON alone
    assert "search: 1 of 1 questions (100%)" in captured.err


def test_texts_embedded_are_counted_with_dense_vectors(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    env.copy_sample()
    monkeypatch.setattr("legal_rag_pipeline.ingest.embed.EMBED_GROUP_TEXTS", 10)  # several groups, as on a large folder
    monkeypatch.setenv("PROGRESS_LOG_SECONDS", "0")  # a line at every group
    code, out = env.ingest()
    assert code == 0, out
    embed = [line for line in out.splitlines() if line.startswith("embed: ")]
    assert embed[-1].startswith("embed: 25 of 25 texts (100%)"), out
    assert embed[0] == "embed: 17 of 25 texts (68%)", embed  # the first group: the sheet's 6 and a law's 11
