"""Read one file in a separate process, so that a reader that hangs, or eats memory, fails that file alone.

The pipeline opens and checks the file (legal_rag_pipeline/paths.py) and hands the descriptor to a
long-lived child process over a Unix socket; the child runs the pre-checks, the reader and the
post-checks (readers/limits.py) and writes the decoded records (``raw.jsonl``) itself, or sends a
short text back in its answer (``RAW_INLINE_BYTES``; the parent keeps it in files.db). When the read
takes longer than ``READ_TIMEOUT_SECONDS`` the child is killed, its half-written file removed, and
that file fails with the reason; the next file starts a new child. One child serves every file of a
run, so a small text file costs one round trip over the socket, not a process start.

The child runs with a minimal environment (no tokens or keys: it never needs them), an address-space
limit (``READ_MEMORY_BYTES``), and is started isolated (``python -I``) on the package the parent
imported. Nothing in it opens a network connection: readers read the descriptor they are given.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import FileContentError, PipelineError, SourceFileError
from .limits import Limits

log = logging.getLogger(__name__)
_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 1 << 20
# A decoded text up to this size (as JSON) comes back in the answer instead of as raw.jsonl: a run
# over thousands of short files spent more on creating those files than on reading them.
RAW_INLINE_BYTES = 512 << 10
# Variables the child keeps: locale and paths only. Tokens, keys and everything else stay in the parent.
_KEEP_ENV = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT", "TESSDATA_PREFIX"}


# ---------------------------------------------------------------------------- framing
def _send(sock: socket.socket, value: dict[str, Any], fd: int | None = None) -> None:
    data = json.dumps(value, ensure_ascii=False).encode("utf-8")
    frame = _HEADER.pack(len(data)) + data
    if fd is None:
        sock.sendall(frame)
    else:
        sent = socket.send_fds(sock, [frame], [fd])
        if sent < len(frame):
            sock.sendall(frame[sent:])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, with_fd: bool = False) -> tuple[dict[str, Any], int | None]:
    fd = None
    if with_fd:
        head, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 1)
        if not head:
            raise EOFError
        fd = fds[0] if fds else None
        head += _recv_exact(sock, _HEADER.size - len(head)) if len(head) < _HEADER.size else b""
    else:
        head = _recv_exact(sock, _HEADER.size)
    (size,) = _HEADER.unpack(head)
    if size > _MAX_MESSAGE:
        raise EOFError
    return json.loads(_recv_exact(sock, size).decode("utf-8")), fd


# ---------------------------------------------------------------------------- the parent side
class ReadWorker:
    """The child process and its socket; ``read`` is one file, with a timeout."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._memory: int | None = None  # the child's address-space limit
        self._lock = threading.Lock()
        self._queue: deque[ReadJob] = deque()  # submitted, not collected; the first ``_sent`` are in the child
        self._sent = 0
        self._head_started = 0.0  # when the child started on the oldest job (its timeout runs from there)

    def _start(self, limits: Limits) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        package_root = str(Path(__file__).resolve().parents[2])
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from legal_rag_pipeline.readers.worker import main; main(int(sys.argv[2]), int(sys.argv[3]))"
        )
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("LC_")}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code, package_root, str(child.fileno()), str(limits.max_reader_memory_bytes)],
                pass_fds=[child.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child.close()
        self._sock, self._memory = parent, limits.max_reader_memory_bytes

    def start(self, limits: Limits) -> None:
        """Start the child now, for files read later under ``limits``, unless it already runs with them:
        a caller that is about to do other work first (the CLI importing Dagster) has the child's start-up
        done meanwhile, on the machine's other core. Nothing is sent; ``stop`` ends it as usual."""
        with self._lock:
            if self._queue or (self._proc is not None and self._proc.poll() is None
                               and self._memory == limits.max_reader_memory_bytes):
                return
            self.stop()
            self._start(limits)

    def stop(self) -> None:
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        self._sent = 0
        if sock is not None:
            sock.close()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            remove_leftover_links()  # the link a child stopped while reading could not remove

    def read(self, fd: int, source: str, suffix: str, state_dir: Path, limits: Limits) -> dict[str, Any]:
        """Read the opened file ``fd`` into ``state_dir``'s raw.jsonl for ``source``: the child's answer
        ({"kind", "encoding", "records"}), or SourceFileError (its own, a timeout, a crash)."""
        with self._lock:
            self.submit(ReadJob(fd, source, suffix, Path(state_dir), limits))
            return self.collect()

    # A caller with many files keeps two in flight (``submit`` the next, then ``collect`` the oldest):
    # the child reads one while the parent prepares the next and records the last. One caller at a
    # time: the pipeline reads from one thread per process.
    def submit(self, job: ReadJob) -> None:
        """Queue ``job`` (its descriptor stays open until it is collected) and send it to the child."""
        self._queue.append(job)
        self._send_queued()

    def _send_queued(self) -> None:
        if not self._queue:
            return
        limits = self._queue[self._sent].limits if self._sent < len(self._queue) else self._queue[0].limits
        if self._proc is None or self._proc.poll() is not None or self._memory != limits.max_reader_memory_bytes:
            if self._sent and self._proc is not None and self._proc.poll() is None:
                return  # jobs of other limits still in the child: sent once they are collected
            self.stop()
            self._start(limits)
        assert self._sock is not None
        while self._sent < len(self._queue):
            job = self._queue[self._sent]
            if job.limits.max_reader_memory_bytes != self._memory:
                return
            if self._sent == 0:
                self._head_started = time.monotonic()
            message = {"source": job.source, "suffix": job.suffix, "state_dir": os.path.abspath(job.state_dir),
                       "limits": _limits_message(job.limits)}
            try:
                _send(self._sock, message, job.fd)
            except OSError:
                return  # the child is gone: collect() says why for the oldest job
            self._sent += 1

    def collect(self) -> dict[str, Any]:
        """The answer for the oldest submitted job, or its SourceFileError; the others stay queued."""
        job = self._queue[0]
        self._send_queued()
        timeout = job.limits.read_timeout_seconds if job.limits.read_timeout_seconds > 0 else None
        deadline = None if timeout is None else self._head_started + timeout
        try:
            if self._sock is None or not self._sent:
                raise EOFError
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([self._sock], [], [], left)
                if ready:
                    answer, _ = _recv(self._sock)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self._lost(job)
                    raise FileContentError(
                        job.source,
                        f"reading it took longer than the {timeout:g}-second limit (READ_TIMEOUT_SECONDS), "
                        "so its reader was stopped",
                        "check that it opens normally (it may be damaged or crafted), or raise "
                        "READ_TIMEOUT_SECONDS if it is a genuine large document",
                    )
        except (EOFError, OSError) as exc:
            code = self._proc.wait() if self._proc is not None else None
            self._lost(job)
            if code is not None and code < 0 and -code == signal.SIGKILL:
                what = "its reader was killed (probably out of memory)"
            else:
                what = f"its reader crashed (exit code {code})" if code is not None else f"its reader failed ({exc})"
            raise SourceFileError(
                job.source, what, "check that it opens normally (it may be damaged or crafted); the run log has details"
            ) from None
        self._queue.popleft()
        self._sent -= 1
        self._head_started = time.monotonic()
        if "error" in answer:
            raise SourceFileError(job.source, answer["error"], answer.get("fix") or "", in_the_file=bool(answer.get("in_the_file")))
        if "bug" in answer:
            log.error("Unexpected error in the reader of %s:\n%s", job.source, answer["bug"])
            raise RuntimeError(answer["bug"].strip().splitlines()[-1][:500])
        return answer

    def _lost(self, job: ReadJob) -> None:
        """The child is stopped with ``job`` (the oldest) failed; the jobs after it go to the next child."""
        self.stop()
        self._queue.popleft()
        self._sent = 0
        _remove_partial(job.state_dir, job.source)


@functools.lru_cache(maxsize=8)
def _limits_message(limits: Limits) -> dict[str, Any]:
    return asdict(limits)


@dataclass
class ReadJob:
    fd: int
    source: str
    suffix: str
    state_dir: Path
    limits: Limits


def _remove_partial(state_dir: Path, source: str) -> None:
    from ..artifacts import FileArtifacts

    folder = FileArtifacts(state_dir, source).dir
    for leftover in folder.glob(".raw.jsonl.*.tmp"):
        leftover.unlink(missing_ok=True)


_worker = ReadWorker()
atexit.register(_worker.stop)


def read_isolated(fd: int, source: str, suffix: str, state_dir: Path, limits: Limits) -> dict[str, Any]:
    """``ReadWorker.read`` on the process's shared worker."""
    return _worker.read(fd, source, suffix, state_dir, limits)


def shared_worker() -> ReadWorker:
    """The process's worker, for a caller that keeps several files in flight (``submit``/``collect``)."""
    return _worker


# ---------------------------------------------------------------------------- the child side
def read_into_state(fd: int, source: str, suffix: str, state_dir: Path, limits: Limits) -> dict[str, Any]:
    """Pre-checks, reader, post-checks, raw.jsonl: what the child does for one file (also callable in
    process, without the timeout)."""
    from ..artifacts import FileArtifacts
    from .document import TEXT_SUFFIXES, read_document, read_text
    from .limits import check_text, precheck, use_limits

    with use_limits(limits), os.fdopen(os.dup(fd), "rb") as handle:
        precheck(handle, source, limits)
        art = FileArtifacts(state_dir, source)
        if suffix in TEXT_SUFFIXES:  # plain text needs its bytes only, not a path
            document = read_text(handle.read(), source)
        else:
            with _path_for(fd, suffix) as path:
                document = read_document(path, source)
                if document.kind == "rows":  # rows() reads the path: stream them while it exists
                    records = art.write_raw(_counted(document.rows(), source, limits))
        inline = None
        if document.kind == "text":
            text = document.text or ""
            check_text(source, len(text), limits)
            if _fits_an_answer(text):
                inline, records = text, 1  # in the answer: the parent keeps it in files.db, no file made
            else:
                records = art.write_raw([{"text": text}])
    notes = [str(n) for n in getattr(document, "notes", None) or []]
    answer = {"kind": document.kind, "encoding": document.encoding, "records": records, "notes": notes}
    if inline is not None:
        answer["text"] = inline
    if document.kind == "text" and document.page_validity:  # a saved vbpl.vn page's own status
        answer["page_validity"] = document.page_validity
    return answer


def _fits_an_answer(text: str) -> bool:
    if len(text) > RAW_INLINE_BYTES:  # at least a byte per character
        return False
    try:
        return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) <= RAW_INLINE_BYTES
    except UnicodeEncodeError:  # not text UTF-8 can carry: written (and refused) as before
        return False


def _counted(rows, source: str, limits: Limits):
    from ..records import SkippedRow
    from .limits import check_text

    chars = 0
    for row in rows:
        if isinstance(row, SkippedRow):
            yield {"location": row.location, "skipped": row.reason}
            continue
        chars += len(row.question or "") + len(row.answer or "")
        check_text(source, chars, limits)
        yield {"location": row.location, "question": row.question, "answer": row.answer, "metadata": row.metadata}


LINK_FOLDER_PREFIX = "legal-rag-read-"  # a reader's folder for the link to the file it reads: <prefix><pid>-…
_PROC_FD = re.compile(r"/proc/(\d+)/fd/\d+")


def remove_leftover_links(root: str | Path | None = None) -> int:
    """Remove the link folders (``_path_for``) that readers stopped while reading left behind: those whose
    process is gone. A killed reader cannot clean up, and each stopped read left one in the temporary
    folder. Returns how many were removed."""
    removed = 0
    try:
        folders = list(Path(root or tempfile.gettempdir()).glob(f"{LINK_FOLDER_PREFIX}*"))
    except OSError:
        return 0
    for folder in folders:
        pid = _link_folder_pid(folder)
        if pid is not None and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _link_folder_pid(folder: Path) -> int | None:
    """The reader process that made ``folder``: in its name, or, for a folder of an earlier version (a
    random name), in the one link it holds (``/proc/<pid>/fd/<n>``); None when it is not such a folder."""
    try:
        if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            return None
        head, dash, _ = folder.name[len(LINK_FOLDER_PREFIX):].partition("-")
        if dash:  # tempfile's random part has no "-": <pid>-<random>
            return int(head) if head.isdigit() else None
        entries = list(folder.iterdir())
        if len(entries) != 1 or not entries[0].is_symlink():
            return None
        found = _PROC_FD.fullmatch(os.readlink(entries[0]))
        return int(found.group(1)) if found else None
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _path_for:
    """A path with the file's extension that opens exactly the descriptor's file: a link in a private
    folder to /proc/<pid>/fd/N (Linux), so readers that want a path never re-resolve the original name."""

    def __init__(self, fd: int, suffix: str) -> None:
        self.fd, self.suffix = fd, suffix
        self.folder: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        # /proc/<pid>, not /proc/self: a program a reader starts on this path (LibreOffice) opens our descriptor too
        proc = Path(f"/proc/{os.getpid()}/fd/{self.fd}")
        if not proc.exists():  # not Linux: the checked real path (the parent compares the stat after reading)
            return Path(_fd_path_fallback(self.fd))
        self.folder = tempfile.TemporaryDirectory(prefix=f"{LINK_FOLDER_PREFIX}{os.getpid()}-")
        link = Path(self.folder.name) / f"document{self.suffix}"
        os.symlink(proc, link)
        return link

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def _fd_path_fallback(fd: int) -> str:
    import fcntl

    getpath = getattr(fcntl, "F_GETPATH", None)  # macOS
    if getpath is None:
        raise SourceFileError("?", "this platform cannot read an opened file by descriptor", "run the pipeline on Linux")
    return fcntl.fcntl(fd, getpath, b"\0" * 1024).split(b"\0", 1)[0].decode()


def _limit_memory(max_bytes: int) -> None:
    if max_bytes <= 0:
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    except (ImportError, ValueError, OSError):
        pass


def main(sock_fd: int, max_memory: int) -> None:
    """The child's loop: one job (JSON + descriptor) in, one answer out, until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    _limit_memory(max_memory)
    sock = socket.socket(fileno=sock_fd)
    # what every read needs, loaded before the first job comes (a child started early, as `legal-rag
    # ingest` starts it, loads them while the parent is still importing Dagster)
    from ..artifacts import FileArtifacts  # noqa: F401
    from .document import read_document  # noqa: F401
    from .limits import precheck  # noqa: F401
    while True:
        try:
            job, fd = _recv(sock, with_fd=True)
        except (EOFError, OSError):
            return
        try:
            source = str(job["source"])
            limits = Limits(**job["limits"])
            if fd is None:
                raise SourceFileError(source, "the file was not handed to the reader", "run it again")
            answer = read_into_state(fd, source, str(job["suffix"]), Path(job["state_dir"]), limits)
        except SourceFileError as exc:
            answer = {"error": exc.reason, "fix": exc.fix, "in_the_file": exc.in_the_file}
        except PipelineError as exc:
            answer = {"error": exc.what, "fix": exc.fix}
        except MemoryError:
            answer = {
                "error": f"reading it needed more than the {max_memory / (1 << 20):,.0f} MB memory limit (READ_MEMORY_BYTES)",
                "fix": "split it into smaller files, or raise READ_MEMORY_BYTES if it is a genuine document",
                "in_the_file": True,
            }
        except RecursionError:
            answer = {"error": "it is nested too deeply to be read", "fix": "save it again in a flatter form", "in_the_file": True}
        except Exception:  # noqa: BLE001 - a bug: the parent logs the trace and fails this file only
            answer = {"bug": traceback.format_exc()[-20000:]}
        finally:
            if fd is not None:
                os.close(fd)
        try:
            _send(sock, answer)
        except OSError:
            return
