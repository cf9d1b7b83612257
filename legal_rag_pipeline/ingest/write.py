"""The writer of qdrant_collection: carries a sync plan (sync_plan.py) out, upserts before deletes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts, StageOutcome
from ..progress import Progress
from ..stores.base import Collection, PointRecord
from ..sync_plan import SyncPlan
from ..text.lexical import DEFAULT_LEXICAL, Lexical
from ..validity.sync import applied_view, corpus_view, record_applied
from .marks import _sync_mark
from .outcomes import _failed, _guard
from .points import chunk_point

log = logging.getLogger(__name__)

WRITE_GROUP_POINTS = 1024  # points of several small files written in one upsert
WRITE_GROUP_FILES = 256


@dataclass(frozen=True)
class _Target:
    """Where and how ``_write`` writes: the collection, the state folder, the model, the store's names."""

    collection: Collection
    state_dir: Path
    model: str
    enabled: bool
    location: str
    physical: str | None
    # the corpus view of validity, read once when a file's points are all written (see _points_of)
    view: dict[str, Any] = field(default_factory=dict)
    lexical: Lexical = DEFAULT_LEXICAL  # how bm25 vectors are made (the store's)

    @property
    def collection_key(self) -> str:
        return f"{self.location}|{self.physical}"

    def validity_of(self, source: str):
        """The corpus view's validity of ``source`` (validity/), resolved on first use."""
        if "files" not in self.view:
            self.view["files"] = corpus_view(self.state_dir)[0].files  # the document records are let go
        return self.view["files"].get(source)


def _write(
    plan: SyncPlan, target: _Target, outcomes: dict[str, StageOutcome], index: Mapping[str | None, Mapping[str, Any]],
    progress: Progress,
) -> list[StageOutcome]:
    """Carry ``plan`` out: each file's points upserted, then its stale points deleted and its sync marker
    written; then the vanished files' points deleted. Returns the vanished files' outcomes.

    Upserts come first and deletions after, so a crash in between leaves extra points (fixed by the next
    run), never missing ones. Small files are written together: their points go in one upsert of up to
    WRITE_GROUP_POINTS (one Edge update per file cost more than the file's points). A file whose points
    cannot be read fails alone; a failed upsert fails the files of its group, and nothing of theirs is
    deleted or marked."""
    collection, state_dir = target.collection, target.state_dir
    progress.start("write", plan.points_to_write(), "points")
    now = datetime.now(UTC).isoformat(timespec="seconds")

    carried: dict[str, Any] = {}  # files whose points were all written with the corpus view's validity

    def finish(source: str, written: int) -> StageOutcome:
        """After its points are written: its stale points deleted, then its sync marker."""
        art = FileArtifacts(state_dir, source)
        deleted = collection.delete(plan.deletes[source])
        mark = _sync_mark(art, target.model, target.location, target.physical)
        if mark is not None:
            art.write_synced(mark)
        if source in carried:  # no payload update of these points after the run
            record_applied(state_dir, {source: carried.pop(source)}, target.collection_key)
        return StageOutcome(
            source,
            "ok" if (written or deleted) else "unchanged",
            counts={"chunks": plan.chunk_counts[source], "points_written": written, "points_deleted": deleted},
        )

    group: list[tuple[str, int]] = []
    batch: list[PointRecord] = []

    def write_group() -> None:
        try:
            collection.upsert(progress.counted("write", batch))
        except Exception as exc:  # noqa: BLE001 - the files of this group fail, the others go on
            for source, _ in group:
                outcomes[source] = _failed(source, "qdrant_collection", exc)
        else:
            for source, written in group:
                outcomes[source] = _guard(source, "qdrant_collection", lambda s=source, n=written: finish(s, n))
        group.clear()
        batch.clear()

    for source in plan.upserts:
        try:
            points, validity = _points_of(FileArtifacts(state_dir, source), set(plan.upserts[source]),
                                          plan.doc_sha[source], target, now)
        except Exception as exc:  # noqa: BLE001
            outcomes[source] = _failed(source, "qdrant_collection", exc)
            continue
        if validity is not None:
            carried[source] = validity
        group.append((source, len(points)))
        batch.extend(points)
        if len(batch) >= WRITE_GROUP_POINTS or len(group) >= WRITE_GROUP_FILES:
            write_group()
    if group:
        write_group()

    vanished_outcomes = []
    for source in plan.vanished:
        deleted = collection.delete(list(index[source]))
        FileArtifacts(state_dir, source).remove()
        vanished_outcomes.append(
            StageOutcome(source, "ok", counts={"points_deleted": deleted}, notes=["file removed from the data folder"])
        )
    deleted = sum(o.counts.get("points_deleted", 0) for o in [*outcomes.values(), *vanished_outcomes])
    progress.finish("write", f"{deleted:,} stale point{'s' if deleted != 1 else ''} deleted" if deleted else "")
    return vanished_outcomes


def _points_of(art: FileArtifacts, ids: set[str], doc_sha: str, target: _Target, now: str) -> tuple[list[PointRecord], Any]:
    """The file's points among ``ids``, with their vectors from its embedding cache, and the validity
    they carry: when every point of the file is written, the corpus view's (returned, to be recorded
    once written: a first ingest sets no payload twice); otherwise the view its other points carry."""
    if not ids:
        return [], None
    vectors = art.read_embeddings(target.model) if target.enabled else {}
    chunks = list(art.read_chunks())
    wanted = target.validity_of(art.source) if all(c.point_id in ids for c in chunks) else None
    validity = wanted.to_json() if wanted is not None else applied_view(art.document(), target.collection_key)
    return [
        chunk_point(chunk, i, doc_sha, target.model, now, vectors.get(chunk.point_id) if target.enabled else None, validity,
                    target.lexical)
        for i, chunk in enumerate(chunks)
        if chunk.point_id in ids
    ], wanted
