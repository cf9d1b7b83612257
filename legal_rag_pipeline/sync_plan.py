"""What a sync writes to the collection, as a pure function: no store, no files, no clock.

``plan_sync`` takes each file's chunk ids (what it should hold) and the points an earlier version of it
left as this one would write them (``kept``), the collection's index of the files looked up
(``{source: {point_id: payload}}``: what it holds) and the data folder's file list, and returns the
points to retag, to upsert and to delete per file, the files whose points all go (gone from the
folder), and what the deletion guard (deletion.py) looks at. ``ingest.sync_stage`` reads the inputs,
runs the guard on ``plan.deletion`` and carries the plan out (retags first, then upserts, then each
file's stale points, then the vanished files'); the validity fields are a second plan and writer of
the same step (validity/sync.py), run after this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .deletion import Deletion

Index = Mapping[str | None, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class FileChunks:
    """A file as it should be in the collection: its chunks' point ids and its text's digest; ``kept``: the
    ids whose point, written from another version of the text, is already what this one writes
    (ingest/points.py ``kept_points``)."""

    source: str
    ids: Sequence[str]
    doc_sha: str
    kept: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EveryChunk:
    """A file's upsert of all its ``count`` chunks (a new file, or one whose text or model changed): the
    ids are not listed, the writer takes them with the chunks it reads. Listed, the ids of a first
    ingest of 70,624 files held 26 MB through the whole write."""

    count: int

    def __len__(self) -> int:
        return self.count

    def __contains__(self, point_id: object) -> bool:
        return True


@dataclass
class SyncPlan:
    # source -> the ids to write, or EveryChunk when all its chunks are written
    upserts: dict[str, list[str] | EveryChunk] = field(default_factory=dict)
    # source -> its stale ids, deleted after its upsert (only the files that have some)
    deletes: dict[str, list[str]] = field(default_factory=dict)
    # source -> the ids of its kept points (FileChunks.kept), given the text's new digest before its upsert
    retags: dict[str, list[str]] = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)  # sources whose file is gone: every point deleted
    chunk_counts: dict[str, int] = field(default_factory=dict)
    doc_sha: dict[str, str] = field(default_factory=dict)
    collection_points: int = 0
    net_removed: int = 0
    deletion: Deletion | None = None  # what the deletion guard sees; None when the collection is empty

    def points_to_write(self) -> int:
        return sum(len(ids) for ids in self.upserts.values())


def plan_sync(
    files: Sequence[FileChunks],
    index: Index,
    *,
    model: str,
    present: Iterable[str],
    total_points: int,
    full: bool,
    known_vanished: Sequence[str] = (),
    prune_vanished: bool = True,
    held_elsewhere: Iterable[str] = (),
) -> SyncPlan:
    """The plan for ``files`` against ``index``.

    A file's point is (re)written when it is missing, or when any of the file's points was written from
    another version of its text or by another model (``doc_sha256``, ``embedding_model``), unless it is
    among the file's ``kept`` and was written by this model: then only its ``doc_sha256`` is set (a
    retag); a point the file no longer produces is deleted. ``full``: ``index`` holds the whole
    collection, so every file in it that is not in ``present`` (and not being written) has vanished; otherwise only
    ``known_vanished`` (files the state folder knew) are looked for, and ``held_elsewhere`` names the
    files known to hold points without having been looked up (for the guard's count)."""
    present = set(present)
    plan = SyncPlan(collection_points=total_points)
    for file in files:
        existing = index.get(file.source, {})
        wanted = set(file.ids)
        fresh = all(p.get("doc_sha256") == file.doc_sha and p.get("embedding_model") == model for p in existing.values())
        # the kept points this model wrote (a file of this version keeps all its points as they are)
        keeps = set() if fresh else {
            pid for pid in file.kept if pid in existing and existing[pid].get("embedding_model") == model
        }
        upserts = [pid for pid in file.ids if pid not in existing or not fresh and pid not in keeps]
        plan.upserts[file.source] = EveryChunk(len(upserts)) if upserts and len(upserts) == len(file.ids) else upserts
        if retags := [pid for pid in file.ids if pid in keeps and existing[pid].get("doc_sha256") != file.doc_sha]:
            plan.retags[file.source] = retags
        if stale := [pid for pid in existing if pid not in wanted]:
            plan.deletes[file.source] = stale
        plan.chunk_counts[file.source] = len(file.ids)
        plan.doc_sha[file.source] = file.doc_sha
        plan.net_removed += max(0, len(existing) - len(wanted))
    if prune_vanished:
        pending = {f.source for f in files}
        if full:
            plan.vanished = sorted(s for s in index if s is not None and s not in present and s not in pending)
        else:
            plan.vanished = [s for s in known_vanished if index.get(s)]
        plan.net_removed += sum(len(index[s]) for s in plan.vanished)
    if total_points:
        held = {s for s, ids in index.items() if s is not None and ids} | set(held_elsewhere)
        plan.deletion = Deletion(
            files_held=len(held),
            points_held=total_points,
            vanished=list(plan.vanished),
            shrunk=[f.source for f in files if len(index.get(f.source, {})) > plan.chunk_counts[f.source]],
            points_removed=plan.net_removed,
            folder_empty=not present,
        )
    return plan
