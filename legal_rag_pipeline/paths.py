"""The one gate between a name (a partition key, a file name from the sensor or the CLI) and a file.

A partition key can come from anyone who reaches the Dagster UI (Dagster OSS has no login: a dynamic
partition can be added by hand), so it is untrusted. ``source_path`` turns it into the real path of a
file strictly inside the data folder, and ``open_source`` opens that file once and checks what was
opened, so a link swapped in after a check is not followed. Everything else is refused with a
``SourceFileError`` (one sentence: what is wrong and what to do), which fails that file alone:

* keys that are not plain relative POSIX paths: absolute, ``..``, ``.`` or empty parts, NUL, hidden
  parts (the scan never lists those);
* symbolic links (of the file or of a folder on the way) whose target lies outside the data folder,
  checked when the file is read, not only when the folder is scanned;
* anything that is not a regular file: folders, named pipes, devices, sockets.

No reader opens a path of its own: they get the descriptor opened here (see readers/worker.py).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Self

from .errors import SourceFileError

_KEY_FIX = (
    "only files inside DATA_DIR are read; delete this partition (keys are paths relative to the data "
    "folder, as `legal-rag ingest` and the sensor list them)"
)
_LINK_FIX = "copy the file itself into the data folder instead of linking to it"
_TYPE_FIX = "only regular files are ingested; remove it from the data folder"
_GONE = (
    "the file was deleted before it could be read",
    "nothing was changed in the collection for it; its points are removed by the next run if it stays gone",
)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_key(source: str) -> PurePosixPath:
    """The key as a relative path, or ``SourceFileError`` when it could name anything outside the folder."""
    if not isinstance(source, str) or not source or "\x00" in source:
        raise SourceFileError(repr(source), "the partition key is empty or holds a NUL character", _KEY_FIX)
    if source.startswith("/") or PurePosixPath(source).is_absolute():
        raise SourceFileError(source, "the partition key is an absolute path, not a file inside the data folder", _KEY_FIX)
    parts = source.split("/")
    if ".." in parts:
        raise SourceFileError(source, "the partition key goes up out of the data folder ('..')", _KEY_FIX)
    if any(part in ("", ".") for part in parts):
        raise SourceFileError(source, "the partition key is not a plain relative path (empty or '.' parts)", _KEY_FIX)
    if any(part.startswith(".") for part in parts):
        raise SourceFileError(source, "the partition key names a hidden file or folder, which is never ingested", _KEY_FIX)
    return PurePosixPath(source)


def _within(path: str, root: str) -> bool:
    return path != root and path.startswith(root.rstrip("/") + "/")


def _refuse_kind(source: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise SourceFileError(source, f"it is {kind}, not a regular file", _TYPE_FIX)


def source_path(data_dir: str | Path, source: str) -> Path:
    """The real path (symbolic links resolved) of ``source`` inside ``data_dir``; no file is opened.

    Raises ``SourceFileError`` for a bad key, a link leading out, a missing file or a file that is not
    regular. Cheap (a few ``stat`` calls): the sensor calls it for every file at every tick.
    """
    return Path(_checked_path(os.path.realpath(data_dir), source))


def _checked_path(root: str, source: str) -> str:
    """``source_path`` under ``root``, the data folder's real path."""
    key = check_key(source)
    real, mode = _real_path(root, key.parts)
    if not _within(real, root):
        raise SourceFileError(source, "it is a symbolic link leading outside the data folder, which is never followed", _LINK_FIX)
    try:
        if mode is None:
            mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise SourceFileError(source, *_GONE) from None
    except OSError as exc:
        raise SourceFileError(source, f"it cannot be checked ({exc.strerror})", "make it readable by the pipeline's user") from None
    _refuse_kind(source, mode)
    return real


def _real_path(root: str, parts: tuple[str, ...]) -> tuple[str, int | None]:
    """``os.path.realpath(root/parts)`` for a ``root`` that is already real, and the file's mode when known.

    Each part is looked at once (``lstat``): when none is a symbolic link the joined path is already
    the real one, which costs a few calls instead of one per folder from ``/``. A link, or a part that
    cannot be looked at, sends the whole path through ``os.path.realpath``.
    """
    path, mode = root, None
    for part in parts:
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = None
        if mode is None or stat.S_ISLNK(mode):
            return os.path.realpath(os.path.join(root, *parts)), None
    return path, mode


@dataclass
class SourceFile:
    """One opened source file: ``fd`` is checked to be a regular file inside the data folder."""

    source: str
    path: Path  # the real path it was opened at
    fd: int
    stat: os.stat_result

    def sha256(self, max_bytes: int | None = None) -> str:
        """SHA-256 of the content, read from the descriptor (never from the path)."""
        digest, offset = hashlib.sha256(), 0
        while True:
            block = os.pread(self.fd, 1 << 20, offset)
            if not block:
                return digest.hexdigest()
            offset += len(block)
            if max_bytes is not None and offset > max_bytes:
                from .readers.limits import file_too_large

                raise file_too_large(self.source, offset, max_bytes)
            digest.update(block)

    def changed(self) -> bool:
        """True when the path no longer holds the same, unmodified file (still being copied, replaced, gone)."""
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return True
        return (now.st_ino, now.st_dev, now.st_mtime_ns, now.st_size) != (
            self.stat.st_ino,
            self.stat.st_dev,
            self.stat.st_mtime_ns,
            self.stat.st_size,
        )

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _opened_path(fd: int) -> str | None:
    """Where the kernel says the descriptor points (Linux); None where that cannot be asked."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_source(data_dir: str | Path, source: str) -> SourceFile:
    """Open ``source`` for reading after ``source_path``'s checks, and check the opened descriptor.

    The last component is opened with ``O_NOFOLLOW`` (a link swapped in after the check fails to
    open), non-blocking (a named pipe cannot make the open hang), and the descriptor itself is then
    checked: a regular file, and (on Linux) really inside the data folder, so a folder on the way
    swapped for a link is caught too.
    """
    root = os.path.realpath(data_dir)
    real = _checked_path(root, source)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except FileNotFoundError:
        raise SourceFileError(source, *_GONE) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceFileError(source, "it was replaced by a symbolic link while being opened, which is never followed", _LINK_FIX) from None
        if exc.errno == errno.ENXIO:
            raise SourceFileError(source, "it is a socket, not a regular file", _TYPE_FIX) from None
        if exc.errno == errno.EACCES:
            raise SourceFileError(source, "permission denied while opening the file", "make it readable by the user that runs the pipeline") from None
        raise SourceFileError(source, f"it cannot be opened ({exc.strerror})", "check the disk and drop it in again") from None
    try:
        st = os.fstat(fd)
        _refuse_kind(source, st.st_mode)
        opened = _opened_path(fd)
        if opened is not None and not _within(opened, root):
            raise SourceFileError(source, "it was moved outside the data folder while being opened, which is never followed", _LINK_FIX)
    except BaseException:
        os.close(fd)
        raise
    return SourceFile(source, Path(real), fd, st)
