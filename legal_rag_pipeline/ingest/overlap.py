"""The chunk, embed and write stages overlapped: which files each stage has settled, as it goes.

``normalize_stages`` settles each file it chunked (or failed) on a ``Settled`` (``Chunked``); the embed
stage, running meanwhile, waits on a file before planning it, so the first requests go out while later
files are still being chunked. ``embed_stage`` settles each file (its vectors saved, or it failed) on an
``Embedded``; ``sync_stage`` waits on a file before writing it. So a file's points go to Qdrant as soon
as its vectors are on disk, while later files are still being embedded: the requests in flight and the
CPU work of chunking and writing share the run's time instead of following each other. A file is never
written before its vectors are saved (a Qdrant failure never re-spends quota), and the deletion guard
still runs on the whole plan, once every file is chunked, before any write.
"""

from __future__ import annotations

import threading


class Settled:
    """Files a stage has settled (True: done, or nothing to do; False: not done), for a stage after it."""

    def __init__(self) -> None:
        self._settled: dict[str, bool] = {}
        self._closed = False
        self._changed = threading.Condition()

    def settle(self, source: str, ok: bool) -> None:
        with self._changed:
            self._settled[source] = ok
            self._changed.notify_all()

    def close(self) -> None:
        """The stage ended (also by an error): a file not settled by now is not done."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait(self, source: str) -> bool:
        """Whether the stage did ``source``, once it is settled (or the stage ended)."""
        with self._changed:
            self._changed.wait_for(lambda: source in self._settled or self._closed)
            return self._settled.get(source, False)


class Chunked(Settled):
    """Files chunked (True) or not (False) by normalized_records, for the embedding running meanwhile."""


class Embedded(Settled):
    """Files whose embedding is settled (True: vectors saved or none needed; False: not embedded)."""

    def __init__(self) -> None:
        super().__init__()
        # set once the embed stage no longer reads the collection (its lookup of vectors already held):
        # the writer opens and writes it only then
        self.collection_free = threading.Event()

    def close(self) -> None:
        super().close()
        self.collection_free.set()
