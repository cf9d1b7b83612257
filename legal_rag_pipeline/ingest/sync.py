"""qdrant_collection: what the plan needs read (the files' chunk ids, the collection's index, the sync markers), the deletion guard, then the writer."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import (
    FileArtifacts,
    StageOutcome,
    known_sources,
    record_outcomes,
    records_batch,
    sources_ok_in,
    synced_sources,
)
from ..deletion import DeletionLimits, check_deletion
from ..memory import give_back
from ..progress import NO_PROGRESS, Progress
from ..readers import scan_data_dir
from ..stores.base import Collection
from ..sync_plan import FileChunks, plan_sync
from .marks import VERIFY_AFTER_SECONDS, _sync_mark, _write_sync_state, read_sync_state
from .outcomes import BM25_ONLY_MODEL, NOT_CHUNKED, NOT_EMBEDDED, _failed
from .overlap import Embedded
from .points import kept_points
from .write import _Target, _write

log = logging.getLogger(__name__)

TRUSTED = "in_sync_since_last_run"  # count key of an outcome taken from its sync marker
KEPT_PAGE = 1024  # chunks of a changed file compared with their stored points at a time (``_kept``)


# ---------------------------------------------------------------------------- qdrant_collection
def sync_stage(
    sources: Sequence[str],
    data_dir: Path,
    state_dir: Path,
    run_id: str | None,
    collection: Collection,
    embedder: Any,
    *,
    limits: DeletionLimits | None = None,
    confirm_mass_deletion: bool = False,
    prune_vanished: bool = True,
    verify: bool = False,
    progress: Progress = NO_PROGRESS,
    embedded: Embedded | None = None,
) -> tuple[list[StageOutcome], list[StageOutcome]]:
    """Bring the collection in line with the files: returns (per-file outcomes, vanished-file outcomes).

    Upserts come first and deletions after, so a crash in between leaves extra points (fixed by
    the next run), never missing ones. Raises MassDeletionRefused before any write when the run
    would remove what a vanished folder would (deletion.py: too many files at once, ``limits``).

    Each file that reached the collection gets a sync marker (its chunk set, the model, the store
    and the physical collection). When the collection was compared in full with the folder recently
    (``VERIFY_AFTER_SECONDS``), files whose marker still matches are taken as in sync without reading
    the collection: only changed files and files removed from the folder are looked up, and a run
    where nothing changed does not open Qdrant at all. ``verify=True`` (LEGAL_RAG_VERIFY_SYNC for the data folder's runs)
    always compares the whole collection. ``progress`` gets the points to write and each batch
    written ("write", in points).

    ``embedded`` (overlap.py): the embed stage runs meanwhile and settles each file there; a file is
    planned once chunked, and written once its vectors are saved (skipped if they are not).
    """
    with records_batch(state_dir):  # the files' records committed together (each marker after its points)
        return _sync_stage(
            sources, data_dir, state_dir, run_id, collection, embedder, limits=limits,
            confirm_mass_deletion=confirm_mass_deletion, prune_vanished=prune_vanished, verify=verify,
            progress=progress, embedded=embedded,
        )


def _sync_stage(
    sources, data_dir, state_dir, run_id, collection, embedder, *, limits, confirm_mass_deletion, prune_vanished,
    verify, progress, embedded=None,
) -> tuple[list[StageOutcome], list[StageOutcome]]:
    """Reads what the plan needs (sync_plan.py), runs the deletion guard on it, then ``_write``."""
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else BM25_ONLY_MODEL
    outcomes: dict[str, StageOutcome] = {}
    ready: list[str] = []
    # overlapped: a chunked file is planned now and waited for before it is written (see _write)
    stage, error = ("normalized_records", NOT_CHUNKED) if embedded is not None else ("embedding_batches", NOT_EMBEDDED)
    done = sources_ok_in(state_dir, stage, run_id)
    for source in sources:
        if source in done:
            ready.append(source)
        else:
            outcomes[source] = StageOutcome(source, "skipped", error=error)
    del done
    # each name the string of the run's partition key (Dagster's keys are interned: dagster_storage.py)
    present = {sys.intern(s) for s in scan_data_dir(data_dir).files} if data_dir.is_dir() else set()
    location = collection.location()

    # Fast and targeted paths: trust the markers of unchanged files (see the docstring).
    pending, known_vanished = list(ready), None
    if sources and present and not verify:
        trusted = _trusted(ready, sources, present, state_dir, collection, model, location, prune_vanished, embedded)
        if trusted is not None:
            marks, known_vanished = trusted
            pending = [s for s in ready if s not in marks]
            for source, points in marks.items():
                outcomes[source] = StageOutcome(
                    source, "unchanged", counts={"chunks": points, "points_written": 0, "points_deleted": 0, TRUSTED: 1}
                )
            if not pending and not known_vanished:
                record_outcomes(state_dir, "qdrant_collection", [outcomes[source] for source in marks], run_id)
                progress.start("write", 0, "points")
                progress.finish("write", "every file in sync: nothing to write")
                return [outcomes[s] for s in sources], []

    dense_size = _dense_size(pending, state_dir, model, collection, embedder, embedded) if enabled else None
    physical = collection.ensure(dense_size, model if enabled else None)
    full = known_vanished is None
    if full:
        index = collection.point_index()
        total_points = sum(len(ids) for ids in index.values())
    else:
        index = collection.point_index([*pending, *(known_vanished or [])])
        total_points = collection.count()

    files: list[FileChunks] = []
    for source in pending:
        art = FileArtifacts(state_dir, source)
        try:
            doc_sha = art.fingerprint()["sha256"] or ""
            kept = _kept(art, index.get(source, {}), doc_sha, model, collection)
            files.append(FileChunks(source, art.chunk_ids(), doc_sha, kept))
        except Exception as exc:  # noqa: BLE001 - its chunks cannot be read back: it fails alone
            outcomes[source] = _failed(source, "qdrant_collection", exc)
    guarded = bool(total_points) and not confirm_mass_deletion
    plan = plan_sync(
        files, index, model=model, present=present, total_points=total_points, full=full,
        known_vanished=known_vanished or [], prune_vanished=prune_vanished,
        # only the changed and vanished files were looked up: the others hold points by their sync marker
        held_elsewhere=_held(state_dir)
        if guarded and not full else (),
    )
    del files  # the plan holds what the write needs
    if guarded and plan.deletion is not None:
        check_deletion(plan.deletion, limits or DeletionLimits(), collection=collection.name, data_dir=data_dir)
    give_back()  # what reading every file's chunk ids left free (36 MB at 70,624 files)

    target = _Target(collection, state_dir, model, enabled, location, physical, lexical=collection.lexical,
                     embedded=embedded, writes=plan.upserts.keys())
    vanished_outcomes = _write(plan, target, outcomes, index, progress)
    if full and prune_vanished and present:  # gone from the folder with no points (it never got that far)
        keep = set(sources) | set(plan.vanished)
        for source in known_sources(state_dir):
            if source not in present and source not in keep:
                FileArtifacts(state_dir, source).remove()
    for source in known_vanished or []:  # no points left (removed by an earlier run): drop the artifacts
        if source not in plan.vanished:
            FileArtifacts(state_dir, source).remove()
    for source, outcome in outcomes.items():
        if not outcome.ok:
            FileArtifacts(state_dir, source).clear_synced()
    record_outcomes(state_dir, "qdrant_collection", outcomes.values(), run_id)
    if full and physical:
        _write_sync_state(state_dir, {"location": location, "collection": physical, "verified_at": time.time(), "run_id": run_id})
    return [outcomes[s] for s in sources], vanished_outcomes


def _kept(
    art: FileArtifacts, existing: Mapping[str, Mapping[str, Any]], doc_sha: str, model: str, collection: Collection
) -> frozenset[str]:
    """The points of an earlier version of the file, written by this model, that this version leaves as
    they are (points.py ``kept_points``: an article amended in place rewrites its own points only); none
    to look at for a new file or one whose points are all of this version."""
    earlier = {pid for pid, p in existing.items() if p.get("embedding_model") == model and p.get("doc_sha256") != doc_sha}
    if not earlier:
        return frozenset()
    kept: set[str] = set()
    page: list[tuple[int, Any]] = []  # a page of KEPT_PAGE chunks at a time (a sheet of 100,000 rows)

    def compare() -> None:
        stored = {str(p.id): p.payload or {} for p in collection.retrieve([c.point_id for _, c in page], fields=True)}
        kept.update(kept_points(page, stored))
        page.clear()

    for index, chunk in enumerate(art.read_chunks()):
        if chunk.point_id in earlier:
            page.append((index, chunk))
            if len(page) == KEPT_PAGE:
                compare()
    if page:
        compare()
    return frozenset(kept)


def _held(state_dir: Path) -> Iterator[str]:
    """The known files with a sync marker (they hold points by it)."""
    synced = synced_sources(state_dir)
    return (s for s in known_sources(state_dir) if s in synced)


def _trusted(
    ready: list[str], sources: Sequence[str], present: set[str], state_dir: Path, collection: Collection, model: str,
    location: str, prune_vanished: bool, embedded: Embedded | None = None,
) -> tuple[dict[str, int], list[str]] | None:
    """When the collection was compared in full with the folder recently: the files whose sync marker
    still matches ({source: points}) and the known files gone from the folder; None otherwise."""
    physical = collection.physical_name()
    state = read_sync_state(state_dir)
    if not (
        physical
        and state.get("location") == location
        and state.get("collection") == physical
        and time.time() - float(state.get("verified_at", 0)) < VERIFY_AFTER_SECONDS
    ):
        return None
    marks = {s: _sync_mark(FileArtifacts(state_dir, s), model, location, physical) for s in ready}
    trusted = {
        s: int(mark["points"]) for s, mark in marks.items()
        if mark is not None and FileArtifacts(state_dir, s).synced() == mark and (embedded is None or embedded.wait(s))
    }
    wanted = set(sources)
    vanished = sorted(s for s in known_sources(state_dir) if s not in present and s not in wanted) if prune_vanished else []
    return trusted, vanished


def _dense_size(
    ready: Sequence[str], state_dir: Path, model: str, collection: Collection, embedder: Any, embedded: Embedded | None
) -> int:
    for source in ready:
        if embedded is not None and not embedded.wait(source):
            continue
        for vector in FileArtifacts(state_dir, source).read_embeddings(model).values():
            return int(vector.shape[0])
    if collection.exists() and collection.dense_size():
        return int(collection.dense_size())
    return int(embedder.dimension())
