"""Pure work done on the machine's other core: a helper process the stages hand work to.

A run's process does its work on one core (Python's lock); the machine has two. A stage with enough
work starts one helper, hands it the next pieces of pure work (plain functions of their arguments:
``TASKS``) and goes on with its own meanwhile:

* ``bm25``: the write (ingest/write.py) hands over the texts of the next group of files and converts
  and writes the current one. Making a chunk's bm25 vector (text/lexical.py) was a quarter of the
  write (12 of 48 s for the 208 laws), on the core that also runs Qdrant Edge. A write whose groups go
  to an ``edge_write`` helper makes them itself: its process has the time, and one process less
  holds 35 MB less.
* ``edge_write``: a large write to Qdrant Edge (stores/edge_process.py): the write hands over each
  group's points; the helper converts them into Edge's, writes them and compacts the shard. Unlike
  ``bm25`` this task keeps state (the open shard) between calls.

The answers are what the same function gives in the stage's own process (test_write_helper.py
compares them). A helper that cannot start, fails or dies is dropped with a
warning and the stage does the rest itself: nothing is lost.

The helper is our own child, started isolated (``python -I``) on the package the parent imported, with
a minimal environment (no tokens or keys); the two exchange pickled frames over its stdin and stdout.
This module sits outside ``ingest/`` so that the helper imports only what its tasks need (the ingest
package imports every stage: 35 MB against 16 MB).
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from .text.lexical import Sparse, document_sparse_vector, packed

log = logging.getLogger(__name__)

# Below this many points a second process costs more than it saves (its start is about 0.2 s; one
# article changed writes a handful of points).
HELPER_MIN_POINTS = 4096
# What a helper runs: a task's name and the function, "module:name" (imported in the helper).
TASKS = {
    "bm25": "legal_rag_pipeline.helper:sparse_vectors",
    "edge_write": "legal_rag_pipeline.stores.edge_process:serve",
}
# A group's vectors are awaited this long at most before the writer makes them itself.
RESULT_TIMEOUT_SECONDS = 300.0
_KEEP_ENV = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT"}


class HelperGone(RuntimeError):
    """The helper failed or exited; the stage does the work itself."""


class Helper:
    """One helper process for ``task``: ``submit`` arguments, ``result`` returns the oldest answer."""

    def __init__(self, task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown helper task {task!r}: one of {', '.join(TASKS)}")
        self.task = task
        package_root = str(Path(__file__).resolve().parents[2])
        code = "import sys; sys.path.insert(0, sys.argv[1]); from legal_rag_pipeline.helper import main; main()"
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("LC_")}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code, package_root],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )
        self._answers: queue.Queue[Any] = queue.Queue()
        self._waiting = 0
        self.peak_kb = 0  # the helper's peak resident memory, told when it closes
        # Answers are read as they come, so the helper never blocks on a full pipe while the writer
        # sends it the next group (both pipes full would stop both).
        self._reader = threading.Thread(target=self._read_answers, name=f"{task}-helper-answers", daemon=True)
        self._reader.start()

    def _read_answers(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while True:
                self._answers.put(pickle.load(stream))
        except Exception as exc:  # noqa: BLE001 - EOF or a broken frame: the helper is gone
            self._answers.put(HelperGone(f"the {self.task} helper stopped ({type(exc).__name__})"))

    def submit(self, *args: Any) -> None:
        """Send the task's arguments; its answers come back, in order, from ``result``."""
        try:
            assert self._proc.stdin is not None
            pickle.dump((self.task, args), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise HelperGone(f"the {self.task} helper stopped ({type(exc).__name__})") from None
        self._waiting += 1

    def answered(self) -> bool:
        """True when an answer (or the news that the helper is gone) is waiting: ``result`` will not block."""
        return not self._answers.empty()

    def result(self) -> Any:
        """The answer to the oldest submission not yet returned, or HelperGone."""
        if not self._waiting:
            raise HelperGone("no group submitted")
        self._waiting -= 1
        try:
            answer = self._answers.get(timeout=RESULT_TIMEOUT_SECONDS)
        except queue.Empty:
            raise HelperGone(f"the {self.task} helper did not answer within {RESULT_TIMEOUT_SECONDS:g} s") from None
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, dict) and "error" in answer:  # the task raised: the stage does it itself
            raise HelperGone(f"the {self.task} helper failed: {answer['error']}")
        return answer

    def close(self) -> None:
        """Stop the helper (it tells its peak memory on the way out); never raises."""
        proc = self._proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # EOF: it answers with its peak memory and exits
            self._reader.join(timeout=10)
            while not self._answers.empty():
                last = self._answers.get_nowait()
                if isinstance(last, dict) and "peak_kb" in last:
                    self.peak_kb = int(last["peak_kb"])
        except Exception:  # noqa: BLE001,S110 - closing a helper must not fail the write
            pass
        finally:
            if proc.poll() is None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_helper(task: str, points: int) -> Helper | None:
    """A helper for ``task`` over ``points`` points, or None: fewer than ``HELPER_MIN_POINTS`` do not pay
    for its start, or it could not start."""
    if points < HELPER_MIN_POINTS:
        return None
    try:
        return Helper(task)
    except OSError as exc:
        log.warning("no %s helper process (%s): the stage does its work alone", task, exc)
        return None


def sparse_vectors(texts: Sequence[str], variant: str) -> list[Sparse]:
    """Each text's bm25 vector, packed (the function the helper runs; ``lexical.packed``)."""
    return [packed(document_sparse_vector(text, variant)) for text in texts]


def _peak_kb() -> int:
    """This process's peak resident memory. ``ru_maxrss`` is not it: it keeps the parent's size at the
    fork that started this process (exec does not reset it); the kernel's high-water mark does."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource  # POSIX only: imported where a /proc of Linux is missing

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _function(task: str) -> Callable[..., Any]:
    module, name = TASKS[task].split(":")
    return getattr(import_module(module), name)


def main() -> None:
    """The helper: read (task, arguments) frames from stdin, answer each on stdout."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the answer pipe
    functions: dict[str, Callable[..., Any]] = {}
    while True:
        try:
            task, args = pickle.load(inp)
        except EOFError:
            break
        try:
            function = functions.get(task) or functions.setdefault(task, _function(task))
            answer: Any = function(*args)
        except Exception as exc:  # noqa: BLE001 - told to the stage, which does the work itself
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    pickle.dump({"peak_kb": _peak_kb()}, out)
    out.flush()
