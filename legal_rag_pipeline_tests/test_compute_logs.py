"""A run's stdout and stderr (compute_logs.py): captured into Dagster's files under DAGSTER_HOME/storage,
mirrored to the terminal by one `tail` a stream that ends with the run's process, and no watcher
process beside it; through a real `legal-rag ingest` run as well."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from legal_rag_pipeline.compute_logs import TailedComputeLogManager, tail_stops_with_its_parent

pytestmark = pytest.mark.skipif(
    not tail_stops_with_its_parent(), reason="this machine's tail has no --pid (not GNU coreutils): Dagster's own capture runs"
)

REPO = Path(__file__).resolve().parents[1]
# A process that captures its output as a run does, and tells its child processes (through a file:
# its stdout is captured) before it ends, or hangs until it is killed.
CAPTURE = """
import json, os, sys, time
from legal_rag_pipeline.compute_logs import TailedComputeLogManager
manager = TailedComputeLogManager(sys.argv[1])
with manager.capture_logs(["run-1", "compute_logs", "step"]):
    print("Điều 1 ra stdout")
    print("Điều 2 ra stderr", file=sys.stderr)
    sys.stdout.flush()
    time.sleep(0.3)
    kids = []
    for task in os.listdir("/proc/self/task"):
        for pid in open(f"/proc/self/task/{task}/children").read().split():
            kids.append([int(pid), open(f"/proc/{pid}/cmdline").read().split(chr(0))[0]])
    with open(sys.argv[2], "w") as handle:
        json.dump(kids, handle)
    if sys.argv[3] == "hang":
        time.sleep(120)
print("after the capture")
"""


def _start(home: Path, told: Path, how: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CAPTURE, str(home), str(told), how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_capture_lands_in_dagsters_files_and_on_the_terminal_with_a_tail_a_stream(tmp_path):
    home, told = tmp_path / "home", tmp_path / "children.json"
    proc = _start(home, told, "end")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    key = ["run-1", "compute_logs", "step"]
    manager = TailedComputeLogManager(str(home))
    assert Path(manager.get_captured_local_path(key, "out")) == home / "storage" / "run-1" / "compute_logs" / "step.out"
    assert "Điều 1 ra stdout" in (home / "storage" / "run-1" / "compute_logs" / "step.out").read_text(encoding="utf-8")
    assert "Điều 2 ra stderr" in (home / "storage" / "run-1" / "compute_logs" / "step.err").read_text(encoding="utf-8")
    assert manager.is_capture_complete(key)  # what the UI asks before it stops polling
    data = manager.get_log_data(key)
    assert "Điều 1 ra stdout".encode() in data.stdout  # what the UI's stdout tab shows
    # mirrored onto the process's own stdout and stderr, the last lines included
    assert out.splitlines() == ["Điều 1 ra stdout", "after the capture"], out
    assert "Điều 2 ra stderr" in err
    children = json.loads(told.read_text())
    assert [Path(cmd).name for _, cmd in children] == ["tail", "tail"], children  # no Python watcher


def test_the_tails_end_with_a_killed_run(tmp_path):
    home, told = tmp_path / "home", tmp_path / "children.json"
    proc = _start(home, told, "hang")
    try:
        deadline = time.monotonic() + 60
        while not told.exists() or not told.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.1)
        tails = [pid for pid, _ in json.loads(told.read_text())]
        assert len(tails) == 2 and all(Path(f"/proc/{pid}").exists() for pid in tails)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 15

    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    while any(running(pid) for pid in tails):
        assert time.monotonic() < deadline, f"tail {tails} still running 15 s after its run was killed"
        time.sleep(0.2)


def test_a_legal_rag_run_is_captured_by_the_projects_manager(tmp_path, monkeypatch):
    from legal_rag_pipeline.instance import get_instance
    from legal_rag_pipeline_tests.pipeline_env import make_env
    from legal_rag_pipeline_tests.test_schedule import LAW

    env = make_env(tmp_path, monkeypatch)
    (env.data / "luat-1.txt").write_text(LAW.format(n=1), encoding="utf-8")
    assert env.ingest()[0] == 0
    with get_instance() as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, TailedComputeLogManager)
        (run,) = instance.get_runs()
        logs = Path(env.dagster_home) / "storage" / run.run_id / "compute_logs"
        complete = list(logs.glob("*.complete"))
        assert len(complete) == 1, list(logs.iterdir()) if logs.exists() else "no compute logs"
        assert manager.is_capture_complete([run.run_id, "compute_logs", complete[0].stem])
