"""Zero-downtime rebuild: a new versioned collection from the per-file artifacts, checked, then swapped in.

    state chunks (files.db) + embeddings.npz ──► legal_rag__<new> ──checks──► alias legal_rag ──► drop old

* Built from what ingest already saved per file (chunks, cached embeddings): nothing is re-read or
  re-chunked; embeddings are computed only for chunks without a vector for the configured model
  (all of them after a model change, none otherwise).
* Searches keep answering from the old collection behind the alias ``COLLECTION_NAME`` until the
  alias is moved, in one atomic step (``update_collection_aliases`` on a server, the catalog
  replaced with ``os.replace`` in an embedded Qdrant Edge folder), after the collection checks
  (vector size, points per file, valid vectors, search probe) pass on the new collection.
* A failure at any step (an embedding error, a failed check, an interruption) drops the half-built
  collection and leaves the alias where it was.
* A collection created before aliases existed (a real collection named ``COLLECTION_NAME``, e.g. by
  the old script: unnamed dense vector, ``page_content``/``metadata`` payload) is first migrated:
  copied point by point into a versioned collection (``bm25`` vectors computed from
  ``page_content`` where missing), verified by count, then the old collection is deleted and the
  alias created (Qdrant refuses an alias with the name of an existing collection).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import ingest
from .artifacts import FileArtifacts, StageOutcome, known_sources
from .deletion import REBUILD_CONFIRM, Deletion, DeletionLimits, check_deletion
from .errors import PipelineError, StoreError
from .progress import NO_PROGRESS
from .progress import Progress as ProgressSink
from .readers import scan_data_dir
from .resources.qdrant import SPARSE_NAME, Collection, PointRecord, QdrantStore, versioned_name
from .stores.base import bm25_from_page_content
from .text.lexical import DEFAULT_LEXICAL, Lexical
from .validity.sync import corpus_view, record_applied

log = logging.getLogger(__name__)

UPSERT_BATCH = 256


@dataclass
class Progress:
    """Where a rebuild is; given to ``on_batch`` after every batch written to the new collection."""

    alias: str
    new: str
    old: str | None
    written: int
    total: int
    collection: Collection  # the open connection: searches through it use the alias (the old collection)


@dataclass
class RebuildReport:
    alias: str
    new: str
    old: str | None
    files: int
    points: int
    embedded: int
    seconds: float
    migrated_from: str | None = None  # a pre-alias collection migrated first
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        moved = f"alias {self.alias}: {self.old or '(none)'} -> {self.new}"
        dropped = f"; dropped {self.old}" if self.old else ""
        migrated = f"; migrated pre-alias collection {self.migrated_from} first" if self.migrated_from else ""
        leftovers = f"; dropped leftovers {', '.join(self.leftovers)}" if self.leftovers else ""
        return (
            f"Rebuilt {self.points} points of {self.files} files ({self.embedded} texts embedded) in "
            f"{self.seconds:.1f} s; {moved}{dropped}{migrated}{leftovers}."
        )


class RebuildFailed(StoreError):
    """A rebuild step failed: the new collection was dropped, the alias did not move."""


def layout_stamp(model: str, lexical: Lexical = DEFAULT_LEXICAL) -> dict[str, str]:
    """What the bm25 and dense vectors of a collection were made with (collection metadata)."""
    return {"embedding_model": model, "lexical_variant": lexical.variant, "lexical_text": lexical.text}


# ---------------------------------------------------------------------------------------------- inputs
def rebuild_sources(state_dir: Path, data_dir: Path | None) -> list[str]:
    """Files with chunks in the state folder that are still in the data folder."""
    present = set(scan_data_dir(data_dir).files) if data_dir is not None and data_dir.is_dir() else None
    sources = []
    for source in known_sources(state_dir):
        art = FileArtifacts(state_dir, source)
        if not art.has_chunks() or not art.stage_ok("normalized_records", None):
            continue
        if present is not None and source not in present:
            continue
        sources.append(source)
    return sources


def embed_missing(
    sources: Sequence[str], state_dir: Path, embedder: Any, group_texts: int = 1024,
    progress: ProgressSink = NO_PROGRESS,
) -> int:
    """Embed the chunks that have no cached vector for the embedder's model; save them per file."""
    model = embedder.model_id()
    pending: list[tuple[FileArtifacts, dict[str, np.ndarray], list[tuple[str, str]]]] = []
    for source in sources:
        art = FileArtifacts(state_dir, source)
        cached = art.read_embeddings(model)
        chunks = list(art.read_chunks())
        missing = [(c.point_id, c.text) for c in chunks if c.point_id not in cached]
        if missing:
            pending.append((art, {c.point_id: cached[c.point_id] for c in chunks if c.point_id in cached}, missing))
    embedded = 0
    progress.start("embed", sum(len(missing) for _, _, missing in pending), "texts")
    groups = ingest.groups_of(pending, group_texts, lambda item: len(item[2]))
    for group, vectors in ingest.embedded_groups(
        embedder, groups, lambda group: [text for _, _, missing in group for _, text in missing]
    ):
        if isinstance(vectors, PipelineError):
            raise vectors
        offset = 0
        for art, keep, missing in group:
            new = {pid: vectors[offset + i] for i, (pid, _) in enumerate(missing)}
            offset += len(missing)
            art.write_embeddings(model, {**keep, **new})
        embedded += len(vectors)
        progress.advance("embed", len(vectors))
    progress.finish("embed")
    return embedded


def _points(
    sources: Sequence[str], state_dir: Path, model: str, enabled: bool, validity: dict[str, Any] | None = None,
    lexical: Lexical = DEFAULT_LEXICAL,
) -> Iterator[tuple[str, Any]]:
    """Each file's points, with the validity fields of the corpus view (``validity``: source → FileValidity)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    validity = validity or {}
    for source in sources:
        art = FileArtifacts(state_dir, source)
        sha = (art.document() or {}).get("sha256", "")
        vectors = art.read_embeddings(model) if enabled else {}
        for i, chunk in enumerate(art.read_chunks()):
            vector = vectors.get(chunk.point_id) if enabled else None
            if enabled and vector is None:
                raise RebuildFailed(
                    f"{source}: chunk {chunk.chunk_key} has no {model} embedding", "run `legal-rag ingest`, then rebuild"
                )
            yield source, ingest.chunk_point(chunk, i, sha, model, now, vector, validity.get(source), lexical)


# ---------------------------------------------------------------------------------------------- layout
def collection_layout(collection: Collection, physical: str) -> tuple[int | None, bool, dict[str, Any]]:
    """(dense size or None, has the bm25 sparse vector, collection metadata) of a physical collection."""
    layout = collection.layout(physical)
    return layout.dense, layout.sparse, layout.metadata


def rebuild_reasons(collection: Collection, embedder: Any, state_dir: Path) -> list[str]:
    """Why the collection does not fit the configuration (empty: it fits, no rebuild needed)."""
    physical = collection.physical_name()
    if physical is None:
        return []
    reasons = []
    if collection.alias_target() is None:
        reasons.append(f"{collection.name} is a collection created before aliases (migrate it behind an alias)")
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else ingest.BM25_ONLY_MODEL
    dense, sparse, stamp = collection_layout(collection, physical)
    if not sparse:
        reasons.append(f"{physical} has no `{SPARSE_NAME}` sparse vector")
    if enabled:
        sources = rebuild_sources(state_dir, None)
        want = next(
            (int(v.shape[0]) for s in sources for v in FileArtifacts(state_dir, s).read_embeddings(model).values()),
            None,
        )
        if dense is None:
            reasons.append(f"{physical} has no dense vectors but {model} is configured")
        elif want is not None and want != dense:
            reasons.append(f"{physical} has {dense}-dimensional vectors, {model} gives {want}")
    elif dense is not None:
        reasons.append(f"{physical} has {dense}-dimensional dense vectors but no embedder is configured")
    sample, _ = collection.scroll(physical=physical, fields=["embedding_model"], limit=1)
    if sample and sample[0].payload.get("embedding_model") not in (None, model):
        reasons.append(f"its points were embedded with {sample[0].payload['embedding_model']}, the model is now {model}")
    want_stamp = layout_stamp(model, collection.lexical)
    for key in ("lexical_variant", "lexical_text"):
        if stamp.get(key) and stamp[key] != want_stamp[key]:
            reasons.append(f"its bm25 vectors use {key} {stamp[key]}, now {want_stamp[key]}")
    return reasons


# ---------------------------------------------------------------------------------------------- migration
def migrate_pre_alias(collection: Collection, *, batch_size: int = UPSERT_BATCH) -> str:
    """Move a real collection named ``collection.name`` behind an alias of that name; returns the copy.

    Every point keeps its id, dense vector and payload; ``bm25`` is computed from ``page_content``
    when the point has none. The original is deleted only after the copy's count matches.
    """
    name = collection.name
    dense, _sparse, _ = collection_layout(collection, name)
    new = versioned_name(name)
    collection.create_physical(new, dense)

    def copies() -> Iterator[PointRecord]:
        for record in collection.iter_points(physical=name, fields=True, vectors=True, batch=batch_size):
            sparse = record.sparse or bm25_from_page_content(record.payload, collection.lexical.variant)
            yield PointRecord(record.id, record.dense, sparse, record.payload)

    try:
        collection.upsert(copies(), collection=new)
        have, want = collection.count(physical=new), collection.count(physical=name)
        if have != want:
            raise RebuildFailed(f"The copy of {name} holds {have} of its {want} points", "run the rebuild again")
    except BaseException:
        collection.drop_physical(new)
        raise
    # Qdrant refuses an alias named like an existing collection: delete, then create the alias at once.
    collection.drop_physical(name)
    collection.point_alias(new)
    log.info("migrated pre-alias collection %s into %s behind the alias", name, new)
    return new


# ---------------------------------------------------------------------------------------------- rebuild
def drop_leftovers(collection: Collection, keep: str | None) -> list[str]:
    """Drop versioned collections of this alias that nothing points at (left by a killed rebuild)."""
    pattern = re.compile(rf"{re.escape(collection.name)}__[0-9a-f]{{8}}")
    dropped = []
    for physical in collection.physical_names():
        if physical != keep and pattern.fullmatch(physical):
            collection.drop_physical(physical)
            dropped.append(physical)
    if dropped:
        log.warning("dropped collections left by an interrupted rebuild: %s", ", ".join(dropped))
    return dropped


def _check_details(result: Any) -> str:
    return ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in (result.metadata or {}).items())


def rebuild(
    store: QdrantStore,
    embedder: Any,
    state_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    confirm_delete: bool = False,
    limits: DeletionLimits | None = None,
    only_if_needed: bool = False,
    migrate_only: bool = False,
    batch_size: int = UPSERT_BATCH,
    on_batch: Callable[[Progress], None] | None = None,
    before_swap: Callable[[Collection], None] | None = None,
    progress: ProgressSink = NO_PROGRESS,
) -> RebuildReport | None:
    """Build a new versioned collection from the artifacts, check it, swap the alias, drop the old one.

    Returns None when ``only_if_needed`` and the collection already fits the configuration (or,
    with ``migrate_only``, after migrating a pre-alias collection). ``on_batch`` runs after each
    batch written (searches through ``progress.collection`` answer from the old collection);
    ``before_swap`` runs after the checks, just before the alias moves (tests inject failures there).
    ``progress`` gets the texts embedded and the points written (progress.py).
    Raises ``RebuildFailed`` (or another ``PipelineError``) with the alias unchanged.
    """
    started = time.perf_counter()
    state_dir = Path(state_dir)
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else ingest.BM25_ONLY_MODEL

    with store.connect() as collection:
        alias = collection.name
        reasons = rebuild_reasons(collection, embedder, state_dir) if collection.exists() else ["no collection yet"]
        migrated_from = None
        if collection.alias_target() is None and collection.has_physical(alias):
            migrated_from = alias
            migrate_pre_alias(collection)
            if migrate_only:
                return None
        if migrate_only:
            return None
        if only_if_needed and not [r for r in reasons if "before aliases" not in r]:
            return None

    sources = rebuild_sources(state_dir, Path(data_dir) if data_dir else None)
    if not sources:
        raise StoreError(
            f"There are no ingested files in {state_dir} to rebuild {store.collection_name} from",
            "run `legal-rag ingest` first (the rebuild uses the chunks and embeddings it saves)",
        )
    try:
        embedded = embed_missing(sources, state_dir, embedder, progress=progress) if enabled else 0
    except PipelineError as exc:
        raise RebuildFailed(f"Embedding for the rebuild failed ({exc.what}); the alias did not move", exc.fix) from None
    dense_size = None
    if enabled:
        dense_size = next(
            (int(v.shape[0]) for s in sources for v in FileArtifacts(state_dir, s).read_embeddings(model).values()),
            None,
        ) or int(embedder.dimension())
    chunk_counts = {s: sum(1 for _ in FileArtifacts(state_dir, s).chunk_ids()) for s in sources}
    total = sum(chunk_counts.values())

    with store.connect() as collection:
        alias = collection.name
        old = collection.alias_target()
        leftovers = drop_leftovers(collection, keep=old)
        old_points = collection.count(physical=old) if old else 0
        if old_points and not confirm_delete:
            # The files the live collection holds that the rebuild leaves out (gone from the data folder).
            held = {s: n for s, n in collection.counts_by_source(known_sources(state_dir)).items() if n}
            left_out = sorted(set(held) - set(sources))
            check_deletion(
                Deletion(
                    files_held=len(set(held) | set(sources)),
                    points_held=old_points,
                    vanished=left_out,
                    shrunk=[s for s in sources if held.get(s, 0) > chunk_counts[s]],
                    points_removed=max(0, old_points - total),
                ),
                limits or DeletionLimits(),
                collection=alias,
                data_dir=data_dir,
                confirm=REBUILD_CONFIRM,
            )
        new = versioned_name(alias)
        collection.create_physical(new, dense_size, metadata=layout_stamp(model, collection.lexical))
        view = collection.view(new)
        progress.start("write", total, "points")
        try:
            written = 0
            batch: list[PointRecord] = []
            counts: dict[str, int] = dict.fromkeys(sources, 0)

            def flush() -> None:
                nonlocal written, batch
                view.upsert(batch, collection=new)
                written += len(batch)
                progress.advance("write", len(batch))
                batch = []
                if on_batch is not None:
                    on_batch(Progress(alias, new, old, written, total, collection))

            in_force, _ = corpus_view(state_dir)  # the law in force, written with the points (validity/)
            for source, point in _points(sources, state_dir, model, enabled, in_force.files, collection.lexical):
                batch.append(point)
                counts[source] += 1
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
            progress.finish("write", f"into {new}")

            outcomes = [
                StageOutcome(s, "ok", counts={"chunks": chunk_counts[s], "points_written": counts[s]}) for s in sources
            ]
            from .assets.checks import run_collection_checks

            results = list(run_collection_checks(view, sources, state_dir, embedder, outcomes))
            checks = {r.check_name: bool(r.passed) for r in results}
            failed = [r for r in results if not r.passed]
            if failed:
                details = "; ".join(f"{r.check_name} ({_check_details(r)})" for r in failed)
                raise RebuildFailed(
                    f"The new collection {new} failed its checks: {details}; it was dropped and {alias} still "
                    f"points at {old or 'nothing'}",
                    "fix the cause (see the check) and run `legal-rag rebuild` again",
                )
            if before_swap is not None:
                before_swap(view)
            collection.point_alias(new)
            record_applied(state_dir, {s: in_force.files[s] for s in sources if s in in_force.files},
                           f"{collection.location()}|{new}")
        except BaseException:
            collection.drop_physical(new)
            raise
        if old:
            collection.drop_physical(old)
    return RebuildReport(
        alias=alias,
        new=new,
        old=old,
        files=len(sources),
        points=written,
        embedded=embedded,
        seconds=time.perf_counter() - started,
        migrated_from=migrated_from,
        reasons=reasons,
        checks=checks,
        leftovers=leftovers,
    )
