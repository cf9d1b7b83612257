"""A large sync's writes to Qdrant Edge, from a process of its own (``EdgeWriteProcess``).

Qdrant Edge 0.9.0 converts a point's payload value by value while holding Python's lock (about 8 µs
a string, 350-550 µs for one of our points) and optimises under it too: writing the 208 laws' 69,007
points took the run's process 40-50 s of its one core, while the embedding requests and the next
files waited for the lock. Here the run's process builds each group's points (plain data: ids,
vectors, payloads) and hands them to a write process on the machine's other core, which converts
them into Edge's points, upserts them, deletes the group's stale points and compacts the shard as
the run's own writer would (``EdgeCollection.upsert``, ``delete``): the same code, in another process.

The run's process keeps the folder's lock and closes its own handle on the shard before the write
process opens it; it waits for the write process to close it again (``close``) before it reads the
collection. Groups are answered in order. A write process that fails or dies is dropped with a
warning and the run writes the groups not yet answered, and the rest, itself (upserts are by id, so a
group written twice is written once); nothing is lost. The process is the helper of helper.py (started
isolated, no tokens or keys in its environment), with ``serve`` as its task.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..helper import Helper, HelperGone
from ..memory import one_heap
from .base import InlineWrites, PointRecord, PointWrites, WriteDone

log = logging.getLogger(__name__)

# Groups handed over and not yet answered: the run builds the next group while one is written. More
# only holds more points in memory (a group of 1,024 dense points is about 6 MB pickled).
IN_FLIGHT = 2

# In the write process: the collection it writes (one per process; opened on the first group).
_OPEN: dict[tuple[str, str], Any] = {}
_RUN = os.getppid()  # in the write process: the run's process, which holds the folder's lock


class _HeldByRun:
    """The folder's lock, as the write process sees it: held by the run's process that started it."""

    def close(self) -> None:
        pass


def _collection(root: str, name: str) -> Any:
    from types import SimpleNamespace

    from .edge import EdgeCollection

    key = (root, name)
    if key not in _OPEN:
        one_heap()  # Edge's optimiser threads allocate from the main heap, which compaction trims (memory.py)
        collection = EdgeCollection(SimpleNamespace(path=root, collection_name=name, lock_wait_seconds=0), name)
        collection._owner = _HeldByRun()  # the run's process holds the folder (see the module's docstring)
        _OPEN[key] = collection
    return _OPEN[key]


def serve(command: str, root: str, name: str, physical: str, points: Sequence[PointRecord] = (),
          deletes: Sequence[str] = ()) -> tuple[int, int]:
    """The write process's task: ``write`` upserts ``points`` into ``physical`` and then deletes
    ``deletes``, returning (written, deleted); ``close`` compacts what is not yet, flushes and closes
    the shard (the run's process opens it next)."""
    if os.getppid() != _RUN:  # the run's process died: its lock went with it, so write nothing more
        raise SystemExit(0)
    collection = _collection(root, name)
    if command == "write":
        written = collection.upsert(points, physical)
        deleted = collection.delete(deletes, physical)
        return written, deleted
    if command == "close":
        collection.close()
        _OPEN.pop((root, name), None)
        return 0, 0
    raise ValueError(f"unknown write command {command!r}")


class EdgeWriteProcess(PointWrites):
    """Groups written by a write process (see the module's docstring); ``collection`` is the run's
    ``EdgeCollection``, which has handed the live shard over and writes itself if the process goes."""

    elsewhere = True

    def __init__(self, collection: Any, physical: str) -> None:
        self._args = (str(collection.root), collection.name, physical)
        collection.hand_over(physical)
        self._helper: Helper | None = Helper("edge_write")
        self._sent: deque[tuple[list[PointRecord], Sequence[str], WriteDone]] = deque()
        self._inline = InlineWrites(collection)
        self.peak_kb = 0  # the write process's peak resident memory, told when it stops

    def submit(self, points: list[PointRecord], deletes: Sequence[str], done: WriteDone) -> None:
        if self._helper is not None:
            try:
                self._helper.submit("write", *self._args, points, list(deletes))
            except HelperGone as exc:
                self._fall_back(exc)
            else:
                self._sent.append((points, deletes, done))
                while self._helper is not None and self._sent and (len(self._sent) > IN_FLIGHT or self._helper.answered()):
                    self._settle_oldest()
                return
        self._inline.submit(points, deletes, done)

    def _settle_oldest(self) -> None:
        assert self._helper is not None
        try:
            result = self._helper.result()
        except HelperGone as exc:
            self._fall_back(exc)
            return
        _, _, done = self._sent.popleft()
        done(tuple(result))

    def _fall_back(self, exc: HelperGone) -> None:
        """The write process is gone or failed: stop it (its lock on the shard goes with it), then write
        the groups it has not answered here, in order."""
        log.warning("%s: the run writes the remaining points itself", exc)
        self._stop()
        while self._sent:
            points, deletes, done = self._sent.popleft()
            self._inline.submit(points, deletes, done)

    def _stop(self) -> None:
        if self._helper is not None:
            self._helper.close()
            self.peak_kb = max(self.peak_kb, self._helper.peak_kb)
            self._helper = None

    def close(self) -> str:
        while self._helper is not None and self._sent:
            self._settle_oldest()
        if self._helper is None:
            return "the write process stopped: the run wrote the rest itself"
        try:
            self._helper.submit("close", *self._args)
            self._helper.result()
        except HelperGone as exc:  # its groups are answered and written; Edge's log replays the rest
            log.warning("%s while closing the shard it wrote", exc)
        self._stop()
        return f"points written by a write process (peak {self.peak_kb / 1024:.0f} MB)"
