"""Giving memory back to the system: glibc's freed heap (``malloc_trim``) and the pages of the store's
files that the process has mapped (``madvise``).

Python and Qdrant Edge free what a stage or a written segment used, but glibc keeps the freed pages
in its heaps for reuse, so the process's resident memory stays at its high-water mark: writing the
208 laws' 69,007 points into Edge peaked at 528 MB, 412 MB with a trim after each upsert, and ended
at 461 MB against 202 MB. The Edge writer trims every 4,096 points written and after each compaction
of the shard, the ingestion assets when each stage ends; elsewhere (macOS, musl) this does nothing.

Qdrant Edge reads its segments through memory-mapped files (``Memory.Cold``), and every page it
touches stays in the process's resident set until the kernel needs it back: opening the 276,000
points of the ×4 laws mapped 141 MB, and 100 searches of the search probe 336 MB more. ``page_out``
takes the pages of a folder's mapped files out of the process's resident set now. Edge maps its files
shared, and for a shared mapping ``MADV_DONTNEED`` only unmaps the pages: they stay in the page cache
(dirty ones are written back by the kernel as usual, nothing is lost) and the next read maps them
again without the disk. ``MADV_PAGEOUT`` (Linux 5.4) also evicts them from the page cache: the 208 laws'
bm25 ingest took 8-24 s longer with it. A private mapping, whose changed pages DONTNEED would drop,
gets PAGEOUT, which never discards. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

MADV_DONTNEED = 4  # linux/mman.h
MADV_PAGEOUT = 21


@lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


@lru_cache(maxsize=1)
def _malloc_trim():
    libc = _libc()
    return getattr(libc, "malloc_trim", None) if libc is not None else None  # None: not glibc


@lru_cache(maxsize=1)
def _madvise():
    libc = _libc()
    madvise = getattr(libc, "madvise", None) if libc is not None else None
    if madvise is not None:
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
    return madvise


def give_back() -> bool:
    """Return the heap's free pages to the system; True when glibc did (it reports whether any were)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


# Files a step must have gone through for ``collect_and_give_back`` to collect first: a full collection
# takes 50-100 ms with Dagster loaded, more than a small run's cycles hold.
COLLECT_AFTER_FILES = 1_000


def collect_and_give_back(files: int) -> bool:
    """``give_back``, after a full collection of Python's cyclic garbage when the step went through
    ``files`` >= COLLECT_AFTER_FILES: for the end of a step that made many short-lived objects (a stage
    over every file, the corpus view of validity), whose cycles would otherwise wait for the oldest
    generation's turn and pin the heap's pages (30 MB after the corpus view of 70,624 files)."""
    if files >= COLLECT_AFTER_FILES:
        gc.collect()
    return give_back()


M_ARENA_MAX = -8  # malloc.h
M_MMAP_THRESHOLD = -3
# Blocks from this size up are mapped on their own, and unmapped when freed. glibc's default, but
# glibc raises it to the size of each larger mapped block freed (up to 32 MB) unless it is set.
MMAP_THRESHOLD = 128 << 10


def one_heap() -> bool:
    """Threads started from now on allocate from glibc's main heap instead of an arena each: freed
    memory is then in one heap, which ``give_back`` trims. The embed and write stages overlapped (an
    embedding thread and its requests' threads beside the writer) peaked 45 MB lower so, in the same
    time (the 208 laws, 526 → 481 MB).

    Blocks of ``MMAP_THRESHOLD`` and more stay mapped on their own, so that freeing one gives it back at
    once: a run's planned event over 70,624 files (four texts of 4 MB, freed when stored) raised glibc's
    threshold, the write's blocks of up to 4 MB then came from the heap and stayed there between other
    blocks, and the ×4 split peaked 5-10 MB higher. True when glibc took both; elsewhere it does nothing."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, 1)) & bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def mapped_files(folder: str | Path) -> list[tuple[int, int, bool]]:
    """The address ranges (start, end, shared) where this process maps files under ``folder`` (Linux's
    ``/proc/self/maps``; [] elsewhere)."""
    prefix = os.path.realpath(folder).rstrip(os.sep) + os.sep
    ranges = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith(prefix):
                    start, end = parts[0].split("-")
                    ranges.append((int(start, 16), int(end, 16), parts[1].endswith("s")))
    except OSError:
        return []
    return ranges


def mapped_kb() -> int:
    """This process's resident file-backed pages (``RssFile`` of ``/proc/self/status``, in kB; 0 where
    there is none): what reading a store's mapped files adds, and what ``page_out`` gives back."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("RssFile:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def page_out(folder: str | Path) -> int:
    """Take the pages of the files under ``folder`` that this process maps out of its resident set
    (shared mappings: ``MADV_DONTNEED``, private ones: ``MADV_PAGEOUT``). Returns the number of mappings
    the kernel accepted (0 where it is unsupported). A mapping unmapped meanwhile by another thread is
    skipped (the kernel answers ENOMEM)."""
    madvise = _madvise()
    if madvise is None:
        return 0
    done = 0
    for start, end, shared in mapped_files(folder):
        if madvise(start, end - start, MADV_DONTNEED if shared else MADV_PAGEOUT) == 0:
            done += 1
    return done


def read_ahead(files: Iterable[Path]) -> threading.Thread | None:
    """Ask the kernel, from a background thread, to read ``files`` into the page cache
    (``POSIX_FADV_WILLNEED``: large reads while the caller goes on, instead of one 4 KB read per page
    fault later). Returns the thread, or None where there is no ``posix_fadvise``; a file that cannot
    be opened is skipped (a search never fails for a read-ahead)."""
    if not hasattr(os, "posix_fadvise"):
        return None

    def advise() -> None:
        for path in files:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    thread = threading.Thread(target=advise, name="read-ahead", daemon=True)
    thread.start()
    return thread


# Python's collector thresholds while modules load, and while a run works (instance.RUN_GC_THRESHOLD);
# its default is (700, 10, 10).
LOADING_GC_THRESHOLD = (100_000, 50, 100)


@contextmanager
def loading_modules() -> Iterator[None]:
    """Python's garbage collector run less often while modules load, then as it was.

    Importing Dagster and making the definitions and the instance creates hundreds of thousands of
    objects that live as long as the process, and the collector, run every 700 new objects, scans them
    again and again meanwhile: `python -c "import legal_rag_pipeline.definitions"` 0.81-0.89 s, 0.68-0.69 s
    with the thresholds raised, 0.64-0.66 s with the collector off. Off is not used: the garbage made
    meanwhile (alembic's migration scripts, loaded as modules when the instance is made) would stay,
    and frozen so that later collections skip it, it raised the ×4 split's peak from 597-598 MB to
    607-612 MB. A run's ``instance.fewer_collections`` raises them in the same way for the run."""
    threshold = gc.get_threshold()
    gc.set_threshold(*LOADING_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
