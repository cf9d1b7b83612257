"""bm25 vectors made on the machine's other core while the writer writes.

Making a chunk's bm25 vector (text/lexical.py: words, tone folding, hashing) was a quarter of a first
ingest's write stage (12 of 48 s for the 208 laws), on the one core that also converts the points for
Qdrant Edge and runs Edge itself. For a write of at least ``HELPER_MIN_POINTS`` points the writer
starts one helper process, hands it the texts of the next group of files, and converts and writes the
current group meanwhile (ingest/write.py). The vectors are the same function of the same text
(``document_sparse_vector``; test_write_helper.py compares them). A helper that cannot start, fails or
dies is dropped with a warning and the writer makes the remaining vectors itself: nothing is lost.

The helper is our own child, started isolated (``python -I``) on the package the parent imported, with
a minimal environment (no tokens or keys); the two exchange pickled frames over its stdin and stdout.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import resource
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..text.lexical import document_sparse_vector

log = logging.getLogger(__name__)

# Below this many points a second process costs more than it saves (its start is about 0.2 s; one
# article changed writes a handful of points).
HELPER_MIN_POINTS = 4096
# A group's vectors are awaited this long at most before the writer makes them itself.
RESULT_TIMEOUT_SECONDS = 300.0
_KEEP_ENV = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT"}

Sparse = tuple[list[int], list[float]]


class HelperGone(RuntimeError):
    """The helper failed or exited; the writer makes the vectors itself."""


class Bm25Helper:
    """One helper process: ``submit`` a group's texts, ``result`` returns the oldest group's vectors."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        package_root = str(Path(__file__).resolve().parents[2])
        code = "import sys; sys.path.insert(0, sys.argv[1]); from legal_rag_pipeline.ingest.bm25_helper import main; main()"
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
        self._reader = threading.Thread(target=self._read_answers, name="bm25-helper-answers", daemon=True)
        self._reader.start()

    def _read_answers(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while True:
                self._answers.put(pickle.load(stream))
        except Exception as exc:  # noqa: BLE001 - EOF or a broken frame: the helper is gone
            self._answers.put(HelperGone(f"the bm25 helper stopped ({type(exc).__name__})"))

    def submit(self, texts: Sequence[str]) -> None:
        """Send a group's texts; their vectors come back, in order, from ``result``."""
        try:
            assert self._proc.stdin is not None
            pickle.dump((self.variant, list(texts)), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise HelperGone(f"the bm25 helper stopped ({type(exc).__name__})") from None
        self._waiting += 1

    def result(self) -> list[Sparse]:
        """The vectors of the oldest group submitted and not yet returned, or HelperGone."""
        if not self._waiting:
            raise HelperGone("no group submitted")
        self._waiting -= 1
        try:
            answer = self._answers.get(timeout=RESULT_TIMEOUT_SECONDS)
        except queue.Empty:
            raise HelperGone(f"the bm25 helper did not answer within {RESULT_TIMEOUT_SECONDS:g} s") from None
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, dict):  # {"error": ...}: a text it could not make a vector of
            raise HelperGone(f"the bm25 helper failed: {answer.get('error')}")
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


def start_helper(variant: str, points: int) -> Bm25Helper | None:
    """A helper for a write of ``points`` points, or None (too few to pay, or it could not start)."""
    if points < HELPER_MIN_POINTS:
        return None
    try:
        return Bm25Helper(variant)
    except OSError as exc:
        log.warning("bm25 vectors are made in the writer's process: no helper process (%s)", exc)
        return None


def sparse_vectors(texts: Sequence[str], variant: str) -> list[Sparse]:
    """Each text's bm25 vector (the function the helper runs)."""
    return [document_sparse_vector(text, variant) for text in texts]


def main() -> None:
    """The helper: read (variant, texts) frames from stdin, answer each with its vectors on stdout."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the answer pipe
    while True:
        try:
            variant, texts = pickle.load(inp)
        except EOFError:
            break
        try:
            answer: Any = sparse_vectors(texts, variant)
        except Exception as exc:  # noqa: BLE001 - told to the writer, which makes the vectors itself
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    pickle.dump({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, out)
    out.flush()
