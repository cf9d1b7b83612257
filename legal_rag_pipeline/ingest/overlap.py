"""The embed and write stages overlapped: which files' vectors are saved, as the embedding goes.

``embed_stage`` settles each file (its vectors saved, or it failed) on an ``Embedded``; ``sync_stage``,
running meanwhile, waits on a file before writing it. So a file's points go to Qdrant as soon as its
vectors are on disk, while later files are still being embedded: the requests in flight and the
write's CPU work share the run's time instead of following each other. A file is never written
before its vectors are saved (a Qdrant failure never re-spends quota), and the deletion guard still
runs on the whole plan before any write.
"""

from __future__ import annotations

import threading


class Embedded:
    """Files whose embedding is settled (True: vectors saved or none needed; False: not embedded)."""

    def __init__(self) -> None:
        self._settled: dict[str, bool] = {}
        self._closed = False
        self._changed = threading.Condition()
        # set once the embed stage no longer reads the collection (its lookup of vectors already held):
        # the writer opens and writes it only then
        self.collection_free = threading.Event()

    def settle(self, source: str, ok: bool) -> None:
        with self._changed:
            self._settled[source] = ok
            self._changed.notify_all()

    def close(self) -> None:
        """The embed stage ended (also by an error): a file not settled by now is not embedded."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self.collection_free.set()

    def wait(self, source: str) -> bool:
        """Whether ``source``'s vectors are saved, once it is settled (or the embedding ended)."""
        with self._changed:
            self._changed.wait_for(lambda: source in self._settled or self._closed)
            return self._settled.get(source, False)
