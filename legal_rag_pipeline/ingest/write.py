"""The writer of qdrant_collection: carries a sync plan (sync_plan.py) out, upserts before deletes."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts, StageOutcome
from ..helper import HelperGone, start_helper
from ..memory import collect_and_give_back
from ..progress import Progress
from ..records import Chunk
from ..stores.base import Collection
from ..sync_plan import EveryChunk, SyncPlan
from ..text.lexical import DEFAULT_LEXICAL, Lexical, Sparse
from ..validity.sync import PackedViews, applied_view, corpus_view, record_applied
from .marks import _sync_mark
from .outcomes import NOT_EMBEDDED, _failed, _guard
from .overlap import Embedded
from .points import chunk_point, lexical_text

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
    # the corpus view of validity, read once when a file's points are all written (see _file_points)
    view: dict[str, Any] = field(default_factory=dict)
    writes: Iterable[str] = ()  # the files this write carries: the only views kept (PackedViews)
    lexical: Lexical = DEFAULT_LEXICAL  # how bm25 vectors are made (the store's)
    embedded: Embedded | None = None  # the embed stage running meanwhile: a file is waited for (overlap.py)

    @property
    def collection_key(self) -> str:
        return f"{self.location}|{self.physical}"

    def validity_of(self, source: str):
        """The corpus view's validity of ``source`` (validity/), resolved on first use."""
        if "files" not in self.view:  # the document records and the other files' views are let go
            views = corpus_view(self.state_dir)[0].files
            self.view["files"] = PackedViews(views, self.writes)
            collect_and_give_back(len(views))  # what resolving the folder's views left (30 MB at 70,624 files)
        return self.view["files"].get(source)


def _write(
    plan: SyncPlan, target: _Target, outcomes: dict[str, StageOutcome], index: Mapping[str | None, Mapping[str, Any]],
    progress: Progress,
) -> list[StageOutcome]:
    """Carry ``plan`` out: the kept points retagged (``_retag``); each file's points upserted, then its stale
    points deleted and its sync marker written; then the vanished files' points deleted. Returns the
    vanished files' outcomes.

    Upserts come first and deletions after, so a crash in between leaves extra points (fixed by the next
    run), never missing ones. Small files are written together: their points go in one upsert of up to
    WRITE_GROUP_POINTS (one Edge update per file cost more than the file's points). A file whose points
    cannot be read fails alone; a failed upsert fails the files of its group, and nothing of theirs is
    deleted or marked."""
    collection, state_dir = target.collection, target.state_dir
    progress.start("write", plan.points_to_write(), "points")
    now = datetime.now(UTC).isoformat(timespec="seconds")

    carried: dict[str, Any] = {}  # files whose points were all written with the corpus view's validity
    retagged = _retag(plan, collection, outcomes)

    def finish(source: str, written: int) -> StageOutcome:
        """After its points are written and its stale points deleted: its sync marker."""
        art = FileArtifacts(state_dir, source)
        deleted = len(plan.deletes.get(source, ()))
        kept = retagged.get(source, 0)
        mark = _sync_mark(art, target.model, target.location, target.physical)
        if mark is not None:
            art.write_synced(mark)
        if source in carried:  # no payload update of these points after the run
            record_applied(state_dir, {source: carried.pop(source)}, target.collection_key)
        counts = {"chunks": plan.chunk_counts[source], "points_written": written, "points_deleted": deleted}
        return StageOutcome(
            source, "ok" if (written or deleted or kept) else "unchanged", counts={**counts, "points_kept": kept} if kept else counts,
        )

    def write_group(files: list[_FilePoints], sparse: list[Sparse] | None) -> None:
        """Upsert the points of ``files`` (their bm25 vectors ``sparse``, in order, or made here). A file
        whose points cannot be made fails alone."""
        group: list[tuple[str, int]] = []
        batch = []
        start = 0
        dropped = set()
        for f in files:
            made = None if sparse is None else sparse[start : start + len(f.chunks)]
            start += len(f.chunks)
            try:
                points = [
                    chunk_point(chunk, i, f.doc_sha, target.model, now,
                                f.vectors.get(chunk.point_id) if target.enabled else None, f.validity, target.lexical,
                                None if made is None else made[n])
                    for n, (i, chunk) in enumerate(f.chunks)
                ]
            except Exception as exc:  # noqa: BLE001
                outcomes[f.source] = _failed(f.source, "qdrant_collection", exc)
                dropped.add(f.source)
                continue
            batch.extend(points)
            group.append((f.source, len(points)))
        wanted = {f.source: f.wanted for f in files if f.wanted is not None and f.source not in dropped}

        def done(result: tuple[int, int] | Exception) -> None:
            """The group written (or not): each file's outcome; its sync marker only once written."""
            if isinstance(result, Exception):  # the files of this group fail, the others go on
                for source, _ in group:
                    outcomes[source] = _failed(source, "qdrant_collection", result)
                return
            progress.advance("write", len(batch))
            carried.update(wanted)
            for source, written in group:
                outcomes[source] = _guard(source, "qdrant_collection", lambda s=source, n=written: finish(s, n))

        writes.submit(batch, [i for source, _ in group for i in plan.deletes.get(source, ())], done)

    # Large writes go to Qdrant Edge from a process of its own (stores/edge_process.py), while this one
    # builds the next group's points; otherwise each group is written here (InlineWrites).
    writes = collection.writes(plan.points_to_write())
    # When the groups are written here, the helper (legal_rag_pipeline/helper.py) makes the next group's
    # bm25 vectors while this one is converted and written; without it (a small write, or it failed) they
    # are made here. A write process leaves this process the time to make them: the dense ingest of the
    # 208 laws took 56.4 s and 480-486 MB with its processes making them here, 56.0-56.2 s and 516-532 MB
    # with a helper as well (docs/performance.md, twenty-ninth pass).
    helper = None if writes.elsewhere else start_helper("bm25", plan.points_to_write())
    sent: deque[list[_FilePoints]] = deque()  # groups whose vectors the helper is making, oldest first

    def write_oldest() -> None:
        nonlocal helper
        files = sent.popleft()
        sparse = None
        if helper is not None:
            try:
                sparse = helper.result()
            except HelperGone as exc:
                log.warning("%s: the writer makes the remaining bm25 vectors itself", exc)
                helper.close()
                helper = None
        write_group(files, sparse)

    def send(files: list[_FilePoints]) -> None:
        nonlocal helper
        if helper is not None:
            try:
                helper.submit([lexical_text(chunk, target.lexical.text) for f in files for _, chunk in f.chunks],
                              target.lexical.variant)
            except HelperGone as exc:
                log.warning("%s: the writer makes the remaining bm25 vectors itself", exc)
                helper.close()
                helper = None
        if helper is None:
            while sent:  # submitted before the helper went: their vectors are made here, in order
                write_oldest()
            write_group(files, None)
            return
        sent.append(files)
        while len(sent) > 1:  # the helper works on the newest while the oldest is written
            write_oldest()

    try:
        files: list[_FilePoints] = []
        points = 0
        for source in plan.upserts:
            if source in plan.retags and source not in retagged:  # its retag failed: nothing more of it
                continue
            if target.embedded is not None and not target.embedded.wait(source):
                outcomes[source] = StageOutcome(source, "skipped", error=NOT_EMBEDDED)
                continue
            try:
                ids = plan.upserts[source]
                pending = _file_points(FileArtifacts(state_dir, source), ids if isinstance(ids, EveryChunk) else set(ids),
                                       plan.doc_sha[source], target)
            except Exception as exc:  # noqa: BLE001
                outcomes[source] = _failed(source, "qdrant_collection", exc)
                continue
            files.append(pending)
            points += len(pending.chunks)
            if points >= WRITE_GROUP_POINTS or len(files) >= WRITE_GROUP_FILES:
                send(files)
                files, points = [], 0
        if files:
            send(files)
        while sent:
            write_oldest()
    finally:
        helped = ""
        if helper is not None:
            helper.close()
            helped = f"bm25 vectors made by a helper process (peak {helper.peak_kb / 1024:.0f} MB)"
        written_by = writes.close()  # every group answered: each file's outcome and marker are in

    vanished_outcomes = []
    for source in plan.vanished:
        deleted = collection.delete(list(index[source]))
        FileArtifacts(state_dir, source).remove()
        vanished_outcomes.append(
            StageOutcome(source, "ok", counts={"points_deleted": deleted}, notes=["file removed from the data folder"])
        )
    deleted = sum(o.counts.get("points_deleted", 0) for o in [*outcomes.values(), *vanished_outcomes])
    notes = [f"{deleted:,} stale point{'s' if deleted != 1 else ''} deleted" if deleted else "", helped, written_by]
    progress.finish("write", "; ".join(n for n in notes if n))
    return vanished_outcomes


def _retag(plan: SyncPlan, collection: Collection, outcomes: dict[str, StageOutcome]) -> dict[str, int]:
    """Each changed file's kept points given its text's new digest, before any point is written (and so
    before the write process opens the shard): how many, per file. A crash after it leaves the file
    without its sync marker; the next run finds the same points kept and writes the rest. A file whose
    retag fails fails alone."""
    retagged = {}
    for source, ids in plan.retags.items():
        try:
            retagged[source] = collection.set_payload(ids, {"doc_sha256": plan.doc_sha[source]})
        except Exception as exc:  # noqa: BLE001
            outcomes[source] = _failed(source, "qdrant_collection", exc)
    return retagged


@dataclass
class _FilePoints:
    """A file's chunks to write (with their index in the file), their dense vectors, and the validity
    they carry (``wanted``: the corpus view's, to record once written; see ``_file_points``)."""

    source: str
    doc_sha: str
    chunks: list[tuple[int, Chunk]]
    vectors: dict[str, Any]
    validity: dict[str, Any] | None
    wanted: Any


def _file_points(art: FileArtifacts, ids: set[str] | EveryChunk, doc_sha: str, target: _Target) -> _FilePoints:
    """The file's chunks among ``ids`` (all of them for EveryChunk), with their vectors from its embedding
    cache, and the validity they carry: when every point of the file is written, the corpus view's
    (recorded once written: a first ingest sets no payload twice); otherwise the view its other points
    carry."""
    if not ids:
        return _FilePoints(art.source, doc_sha, [], {}, None, None)
    vectors = art.read_embeddings(target.model) if target.enabled else {}
    chunks = list(art.read_chunks())
    wanted = target.validity_of(art.source) if all(c.point_id in ids for c in chunks) else None
    validity = wanted.to_json() if wanted is not None else applied_view(art.document(), target.collection_key)
    return _FilePoints(art.source, doc_sha, [(i, c) for i, c in enumerate(chunks) if c.point_id in ids], vectors,
                       validity, wanted)
