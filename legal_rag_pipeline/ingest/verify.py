"""The daily comparison of the collection with the folder, made by the plan instead of a run over every file.

The sync trusts a file's sync marker (``marks.py``) only while the collection was compared in full
with the folder recently (``VERIFY_AFTER_SECONDS``): points deleted or restored behind the pipeline's
back are found by that comparison. It used to be a run over every file, once a day: at 70,624 files
every night's run went over all of them and stored some 280,000 events in Dagster although nothing
had changed. The plan (planning.py) now makes the comparison itself, in a few seconds, with two
questions the collection answers from its indexes:

* how many points each file has (one facet over ``source``), against the number of its chunks;
* whether each chunk's point id is there (a lookup by id).

Equal counts and every id present mean the file's points are exactly its chunks. A file that differs
runs again (its sync marker is dropped); points of files the folder and the state do not know
(another writer, a lost state folder) leave the comparison to a run over every file, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from ..stores.base import Collection

log = logging.getLogger(__name__)

IDS_AT_ONCE = 4096  # point ids looked up per call


def files_out_of_line(
    collection: Collection, expected: Mapping[str, Sequence[str]], others: Iterable[str] = ()
) -> list[str] | None:
    """The files of ``expected`` (source → its chunks' point ids) whose points in ``collection`` are not
    exactly those ids, sorted; None when the collection holds points of files that are neither in
    ``expected`` nor in ``others`` (the other files the state knows: changed, failed, removed from the
    folder), which only a comparison of every point can sort out."""
    sources = [*expected, *others]
    counts = collection.counts_by_source(sources)
    if collection.count() != sum(counts.values()):
        return None
    out = {source for source, ids in expected.items() if counts.get(source, 0) != len(set(ids))}
    batch: list[str] = []
    owners: dict[str, str] = {}

    def look_up() -> None:
        out.update(owners[i] for i in collection.missing_ids(batch))
        batch.clear()
        owners.clear()

    for source, ids in expected.items():
        if source in out:
            continue
        for point_id in ids:
            batch.append(point_id)
            owners[point_id] = source
        if len(batch) >= IDS_AT_ONCE:
            look_up()
    if batch:
        look_up()
    return sorted(out)
