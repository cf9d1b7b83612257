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

The lookup by id costs the most (Qdrant Edge looks each id up in every segment: 276,368 ids took
3.9-5.9 s at 70,624 files, a nightly tick 14-20 s in all), so the plan makes it in turns: each day
it counts the collection's points (one exact count, 40 ms) against the files' chunks (the plan's
own records) and looks up the ids of the next ``IDS_A_DAY`` points' files, file after file. Points
deleted, added or restored behind the pipeline's back change the count and are found that day, by
the whole comparison above; a point replaced by another of the same file, which leaves the count as
it was, is found when its file's turn comes (every file within ``points ÷ IDS_A_DAY`` days: the
same day up to 32,768 points, nine days at 276,368).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from ..stores.base import Collection

log = logging.getLogger(__name__)

IDS_AT_ONCE = 4096  # point ids looked up per call
IDS_A_DAY = 8 * IDS_AT_ONCE  # ids looked up by one day's comparison when the count is as expected (0.6-0.8 s at 70,624 files)


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
    out |= files_missing_points(collection, {source: ids for source, ids in expected.items() if source not in out})
    return sorted(out)


def count_as_expected(collection: Collection, points: Mapping[str, int], others: Iterable[str] = ()) -> bool:
    """Whether ``collection`` holds as many points as the chunks of ``points``' files (source → number
    of chunks) and the points it holds of ``others`` (the other files the state knows)."""
    others = list(others)
    theirs = sum(collection.counts_by_source(others).values()) if others else 0
    return collection.count() == sum(points.values()) + theirs


def files_missing_points(collection: Collection, expected: Mapping[str, Sequence[str]]) -> set[str]:
    """The files of ``expected`` (source → its chunks' point ids) one of whose ids ``collection`` lacks."""
    out: set[str] = set()
    batch: list[str] = []
    owners: dict[str, str] = {}

    def look_up() -> None:
        out.update(owners[i] for i in collection.missing_ids(batch))
        batch.clear()
        owners.clear()

    for source, ids in expected.items():
        for point_id in ids:
            batch.append(point_id)
            owners[point_id] = source
        if len(batch) >= IDS_AT_ONCE:
            look_up()
    if batch:
        look_up()
    return out


def next_files(points: Mapping[str, int], after: str, ids: int = IDS_A_DAY) -> list[str]:
    """The files whose ids one day's comparison looks up: in name order from the first after ``after``,
    until they hold ``ids`` points (at least one file; fewer at the end of the folder, where the next
    day starts again from the first). ``points``: each file's number of chunks."""
    chosen: list[str] = []
    total = 0
    for source in sorted(key for key in points if key > after):
        if chosen and total + points[source] > ids:
            break
        chosen.append(source)
        total += points[source]
    return chosen
