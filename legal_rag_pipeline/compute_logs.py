"""A run's stdout and stderr captured as Dagster captures them, mirrored to the terminal by `tail` alone.

Dagster's ``LocalComputeLogManager`` redirects a run's stdout and stderr into files under
``DAGSTER_HOME/storage`` (the UI's stdout/stderr tabs) and mirrors each file back to the terminal
with ``tail -F``, watched by a Python process of its own (``watch_orphans.py``) that kills the
``tail`` if the run's process dies. Those two watchers are 10 MB each, beside a 1 MB ``tail``: 20 MB
of a first ingest's 603 MB peak with its child processes at 70,624 files, where the target is 600.
GNU ``tail`` stops by itself when a process dies (``--pid``), so here each stream has its ``tail``
and no watcher; the files, their place and what the UI reads are Dagster's. Where ``tail`` has no
``--pid`` (BSD ``tail`` on macOS) Dagster's own capture runs.

Used through ``dagster.yaml``::

    compute_logs:
      module: legal_rag_pipeline.compute_logs
      class: TailedComputeLogManager
      config:
        home: {env: DAGSTER_HOME}

It relies on internals of the pinned Dagster version (``pyproject.toml``); test_compute_logs.py
checks the capture, the mirror and the ``tail`` ending with the run's process.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import Field, Float, StringSource
from dagster._core.execution.compute_logs import _fileno, redirect_to_file
from dagster._core.instance.ref import compute_logs_directory
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._utils import ensure_file, touch_file

TAIL_STOP_SECONDS = 30  # how long a stopped `tail` is waited for (Dagster's own figure)
CATCH_UP_SECONDS = 2.0  # how long `tail` is given to copy the last lines before it is stopped


@functools.cache
def tail_stops_with_its_parent() -> bool:
    """Whether this machine's ``tail`` has ``--pid`` (GNU coreutils)."""
    try:
        done = subprocess.run(["tail", "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GNU coreutils" in done.stdout


@contextmanager
def mirrored_to_file(stream: Any, path: str) -> Iterator[int | None]:
    """``stream`` written into ``path`` meanwhile, and ``path`` copied back onto the stream's own
    descriptor by a ``tail`` that ends with this process (yields its pid; None when the stream has
    no descriptor, and then nothing is redirected, as in Dagster)."""
    ensure_file(path)
    fd = _fileno(stream)
    tail = subprocess.Popen(
        ["tail", "-F", "-c", "+0", f"--pid={os.getpid()}", path],
        stdout=fd, stdin=subprocess.DEVNULL, close_fds=True,
    )
    try:
        with redirect_to_file(stream, path):
            yield tail.pid
    finally:
        try:
            _wait_until_copied(tail.pid, path)
            tail.terminate()
            tail.communicate(timeout=TAIL_STOP_SECONDS)
        except (OSError, subprocess.SubprocessError):
            pass


def _wait_until_copied(pid: int, path: str, seconds: float = CATCH_UP_SECONDS) -> None:
    """Give ``tail`` (``pid``) up to ``seconds`` to copy what was written last: until its read position
    in ``path`` (Linux's /proc/PID/fdinfo) reaches the file's end. Dagster stops its ``tail`` at once,
    which can lose the last lines on the terminal (dagster-io/dagster#23336); the file has them."""
    deadline = time.monotonic() + seconds
    target = os.path.realpath(path)
    while time.monotonic() < deadline:
        try:
            size = os.path.getsize(path)
            fds = os.listdir(f"/proc/{pid}/fd")
            position = next(
                int(line.split()[1])
                for fd in fds if os.path.realpath(f"/proc/{pid}/fd/{fd}") == target
                for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines() if line.startswith("pos:")
            )
        except (OSError, StopIteration, ValueError, IndexError):
            return  # no /proc, or tail has not opened the file: nothing to wait for
        if position >= size:
            return
        time.sleep(0.02)


class TailedComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` under ``home``/storage (where Dagster's default keeps them), its
    mirror a ``tail --pid`` a stream (see the module)."""

    def __init__(self, home: str, polling_timeout: float | None = None, inst_data: Any = None) -> None:
        super().__init__(compute_logs_directory(home), polling_timeout=polling_timeout, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"home": StringSource, "polling_timeout": Field(Float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: dict[str, Any]) -> TailedComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        if not tail_stops_with_its_parent():
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with mirrored_to_file(sys.stdout, out), mirrored_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the capture is complete (Dagster's marker)
