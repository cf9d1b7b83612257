"""The four stages of an ingest, as plain functions over one file or a set of files.

The assets (assets/ingestion.py) call these per partition and only report what they return. A
problem with one file becomes a failed ``StageOutcome`` for that file: the other files go on, and
nothing already in Qdrant is touched for the failed one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .artifacts import FileArtifacts, StageOutcome, known_sources, records_batch
from .deletion import DeletionLimits, check_deletion
from .errors import PipelineError, SourceFileError
from .paths import open_source
from .progress import NO_PROGRESS, Progress
from .readers import scan_data_dir
from .readers.header import DOCUMENT_FIELDS, document_info
from .readers.limits import Limits, check_file_size
from .readers.worker import ReadJob, shared_worker
from .records import Chunk, Row, SkippedRow
from .stores.base import Collection, PointRecord
from .settings import load_limits
from .sync_plan import FileChunks, SyncPlan, plan_sync
from .text.chunking import chunk_rows, chunk_text
from .text.lexical import document_sparse_vector
from .text.normalize import normalize_text
from .text.tokens import count_tokens
from .validity.resolve import point_validity
from .validity.sync import applied_view, corpus_view, record_applied

log = logging.getLogger(__name__)

# Bump when a reader or the chunker changes output for the same bytes: files are re-read/re-chunked.
READER_VERSION = "3"  # 3: a saved vbpl.vn page's own status in the document record ("page_validity")
# 3: "Điều 5 - …"/"Điều 1 . …" headings; a loose "Điều N" out of sequence is text
CHUNKER_VERSION = "4"  # 4: no preamble chunk that only repeats the title of a file with articles
# Texts embedded together (across files) before their vectors are saved: keeps batches full while
# bounding what a failure mid-run can cost.
EMBED_GROUP_TEXTS = 1024
# Bump when validity/extract.py reads the same text differently: facts are read again, nothing re-chunked.
VALIDITY_VERSION = "1"
BM25_ONLY_MODEL = "none (bm25 only)"
# An ingest whose files are all unchanged since their last successful sync does not open Qdrant
# (embedded mode loads the whole collection to open it). The collection is still read in full and
# compared with every file when the last full comparison is older than this, when
# LEGAL_RAG_VERIFY_SYNC is set, and by runs with no files (the prune job).
VERIFY_AFTER_SECONDS = 20 * 3600
SYNC_STATE_FILE = "sync_state.json"
WRITE_GROUP_POINTS = 1024  # points of several small files written in one upsert (sync_stage)
WRITE_GROUP_FILES = 256
TRUSTED = "in_sync_since_last_run"  # count key of an outcome taken from its sync marker

STAGES = ("raw_documents", "normalized_records", "embedding_batches", "qdrant_collection")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _guard(source: str, stage: str, work: Callable[[], StageOutcome]) -> StageOutcome:
    """Run one file's stage; a user-facing error or a bug fails that file alone."""
    try:
        return work()
    except Exception as exc:
        return _failed(source, stage, exc)


def _failed(source: str, stage: str, exc: Exception) -> StageOutcome:
    """The failed outcome of ``source`` for ``exc`` (called in its ``except`` block)."""
    if isinstance(exc, SourceFileError):
        return StageOutcome(source, "failed", error=exc.reason, fix=exc.fix)
    if isinstance(exc, PipelineError):
        return StageOutcome(source, "failed", error=exc.what, fix=exc.fix)
    # a bug: keep the trace in the log, fail this file only
    log.error("Unexpected error in %s for %s:\n%s", stage, source, traceback.format_exc())
    return StageOutcome(
        source,
        "failed",
        error=f"unexpected {type(exc).__name__}: {exc}",
        fix="this is a bug in legal_rag_pipeline; the run log has the stack trace, please report it",
    )


# ---------------------------------------------------------------------------- raw_documents
def read_stage(
    data_dir: Path, source: str, state_dir: Path, run_id: str | None, limits: Limits | None = None
) -> StageOutcome:
    """Fingerprint the file; decode it to UTF-8 records unless its bytes are unchanged.

    ``source`` is untrusted (a partition key anyone with the UI can add): ``paths.open_source`` is the
    only way from it to a file. The reader runs in a child process (readers/worker.py) under
    ``limits`` (from the environment when not given).
    """
    return next(read_stages(data_dir, [source], state_dir, run_id, limits))


@dataclass
class _Reading:
    """A file handed to the child reader, with what is needed to finish it once the child answers."""

    source: str
    art: FileArtifacts
    handle: Any  # paths.SourceFile, open until the answer is in
    sha: str
    outcome: StageOutcome | None = None  # set when no read is needed (unchanged) or it failed before


def read_stages(
    data_dir: Path, sources: Iterable[str], state_dir: Path, run_id: str | None, limits: Limits | None = None
) -> Iterator[StageOutcome]:
    """``read_stage`` for each of ``sources``, in order: the child reads one file while the next is
    opened and fingerprinted and the last one recorded (two files in flight)."""
    limits = limits or load_limits()
    worker = shared_worker()
    queued: deque[_Reading] = deque()  # in order; the ones with a handle are in the worker's queue

    def finish(item: _Reading) -> StageOutcome:
        if item.outcome is None:
            try:
                try:
                    result = worker.collect()
                finally:
                    changed = item.handle.changed()
                    item.handle.close()
                if changed:
                    raise SourceFileError(
                        item.source,
                        "the file changed while it was being read (it is probably still being copied)",
                        "nothing was changed in the collection for it; it is ingested again once its size stops changing",
                    )
                item.outcome = _read_done(item, result)
            except Exception as exc:  # noqa: BLE001 - this file fails alone
                item.outcome = _failed(item.source, "raw_documents", exc)
        item.art.record_outcome("raw_documents", item.outcome, run_id)
        return item.outcome

    with records_batch(state_dir):  # the files' records committed together
        try:
            for source in sources:
                item = _start_read(data_dir, source, limits, state_dir)
                if item.outcome is None:
                    worker.submit(ReadJob(item.handle.fd, source, PurePosixPath(source).suffix.lower(), Path(state_dir), limits))
                queued.append(item)
                # the oldest is done, or two files are with the child (or many wait behind one): finish the oldest
                while queued and (
                    queued[0].outcome is not None or sum(i.outcome is None for i in queued) >= 2 or len(queued) > 16
                ):
                    yield finish(queued.popleft())
            while queued:
                yield finish(queued.popleft())
        finally:  # a caller that stopped early: nothing left open or queued
            for item in queued:
                if item.outcome is None:
                    try:
                        worker.collect()
                    except Exception:  # noqa: BLE001
                        pass
                    item.handle.close()


def _start_read(data_dir: Path, source: str, limits: Limits, state_dir: Path) -> _Reading:
    art = FileArtifacts(state_dir, source)
    handle = None
    try:
        handle = open_source(data_dir, source)
        check_file_size(source, handle.stat.st_size, limits)
        sha = handle.sha256(limits.max_file_bytes or None)
        previous = art.document()
        if (
            previous
            and previous.get("sha256") == sha
            and previous.get("reader_version") == READER_VERSION
            and art.has_raw()
        ):
            handle.close()
            counts = {"bytes": handle.stat.st_size, "records": previous.get("records", 0)}
            return _Reading(source, art, handle, sha, StageOutcome(source, "unchanged", counts=counts))
        return _Reading(source, art, handle, sha)
    except Exception as exc:  # noqa: BLE001 - this file fails alone
        if handle is not None:
            handle.close()
        return _Reading(source, art, handle, "", _failed(source, "raw_documents", exc))


def _read_done(item: _Reading, result: dict[str, Any]) -> StageOutcome:
    before = item.handle.stat
    records, encoding = int(result["records"]), result.get("encoding")
    item.art.keep_raw_text(result.get("text"))  # a short text came back in the answer
    item.art.write_document(
        {
            "source": item.source,
            "sha256": item.sha,
            "size": before.st_size,
            "mtime_ns": before.st_mtime_ns,
            "encoding": encoding,
            "kind": result["kind"],
            "records": records,
            "reader_version": READER_VERSION,
            "page_validity": result.get("page_validity"),  # a saved vbpl.vn page's own status, else None
        }
    )
    counts = {"bytes": before.st_size, "records": records}
    notes = ([f"encoding {encoding}"] if encoding else []) + list(result.get("notes") or [])
    return StageOutcome(item.source, "ok", counts=counts, notes=notes)


# ---------------------------------------------------------------------------- normalized_records
def normalize_stages(sources: Iterable[str], state_dir: Path, run_id: str | None, token_budget: int) -> Iterator[StageOutcome]:
    """``normalize_stage`` for each of ``sources``, in order, their records committed together."""
    with records_batch(state_dir):
        for source in sources:
            yield normalize_stage(source, state_dir, run_id, token_budget)


def normalize_stage(source: str, state_dir: Path, run_id: str | None, token_budget: int) -> StageOutcome:
    art = FileArtifacts(state_dir, source)
    if not art.stage_ok("raw_documents", run_id):
        outcome = StageOutcome(source, "skipped", error="not read in this run (see raw_documents)")
    else:
        outcome = _guard(source, "normalized_records", lambda: _normalize(source, art, token_budget))
    art.record_outcome("normalized_records", outcome, run_id)
    return outcome


def _normalize(source: str, art: FileArtifacts, token_budget: int) -> StageOutcome:
    document = art.document() or {}
    version = f"{CHUNKER_VERSION}:{token_budget}:{document.get('sha256')}"
    if document.get("chunked") == version and art.has_chunks():
        if document.get("kind") == "text" and document.get("validity_version") != VALIDITY_VERSION:
            # a newer reading of validity: the facts again, from the text, without re-chunking
            text = normalize_text(next(art.read_raw(), {}).get("text", ""))
            document.update(_validity_facts(source, text, document.get("document_info") or {}))
            art.write_document(document)
        return StageOutcome(source, "unchanged", counts={"chunks": document.get("chunks", 0)})

    skipped: list[str] = []
    chunk_count = 0
    over_budget = 0
    info: dict[str, str | None] = {}  # the document's number, type, issuer, dates (texts only)
    law: str | None = None  # the first chunk's law title (kept in the document record)

    def chunks() -> Iterator[Chunk]:
        nonlocal chunk_count, over_budget, law
        raw = art.read_raw()
        if document.get("kind") == "text":
            text = normalize_text(next(raw, {}).get("text", ""))
            info.update(document_info(text))
            document.update(_validity_facts(source, text, info))
            produced: Iterable[Chunk | SkippedRow] = (
                Chunk(c.source, c.chunk_key, c.text, {**c.metadata, **info})
                for c in chunk_text(source, text, token_budget, count_tokens)
            )
        else:
            produced = chunk_rows(source, _rows_from_raw(raw), token_budget, count_tokens)
        for item in produced:
            if isinstance(item, SkippedRow):
                skipped.append(f"{item.location}: {item.reason}")
                continue
            chunk_count += 1
            if chunk_count == 1:
                law = item.metadata.get("law")
            over_budget += bool(item.metadata.get("over_budget"))
            yield item

    art.write_chunks(chunks())
    if chunk_count == 0:
        raise SourceFileError(
            source,
            "no text to ingest was found in it" + (f" ({len(skipped)} rows skipped)" if skipped else ""),
            "check that it holds law text or question/answer rows, then drop it in again",
        )
    document.update({"chunked": version, "chunks": chunk_count, "law": law})
    if info:
        document["document_info"] = info
    art.write_document(document)
    notes = [f"skipped row {s}" for s in skipped[:20]]
    if any(info.values()):
        notes.append("document: " + ", ".join(f"{k} {v}" for k, v in info.items() if v))
    if len(skipped) > 20:
        notes.append(f"... and {len(skipped) - 20} more skipped rows")
    if over_budget:
        notes.append(f"{over_budget} Q&A rows exceed the {token_budget}-token budget: dense search sees their start only")
    return StageOutcome(
        source, "ok", counts={"chunks": chunk_count, "skipped_rows": len(skipped)}, notes=notes
    )


def _validity_facts(source: str, text: str, info: dict[str, Any]) -> dict[str, Any]:
    """The document record's validity facts (validity/extract.py). Reading them never fails a file: a
    text that cannot be read for validity is kept in force, and the reason is listed."""
    from .validity.extract import read_validity
    from .validity.model import DocumentFacts
    from .validity.sync import FACTS_KEY

    try:
        facts = read_validity(text, info)
    except Exception as exc:  # noqa: BLE001 - a bug in a reading must not stop the file
        log.warning("%s: validity not read (%s); the document is taken as in force", source, exc)
        facts = DocumentFacts(number=info.get("number"), unreadable=[f"validity not read: {type(exc).__name__}: {exc}"])
    return {FACTS_KEY: facts.to_json(), "validity_version": VALIDITY_VERSION}


def _rows_from_raw(items: Iterable[dict[str, Any]]) -> Iterator[Row | SkippedRow]:
    for item in items:
        if "skipped" in item:
            yield SkippedRow(item["location"], item["skipped"])
        else:
            yield Row(
                location=item["location"],
                question=item.get("question") and normalize_text(item["question"]),
                answer=normalize_text(item.get("answer") or ""),
                metadata=item.get("metadata") or {},
            )


# ---------------------------------------------------------------------------- embedding_batches
@dataclass
class _Pending:
    source: str
    art: FileArtifacts
    keep: dict[str, np.ndarray]
    missing: list[tuple[str, str]]  # (point id, text)
    total: int
    reused: int = 0  # vectors found in the collection (not embedded again)


def embed_stage(
    sources: Sequence[str], state_dir: Path, run_id: str | None, embedder: Any, progress: Progress = NO_PROGRESS,
    collection: Collection | None = None,
) -> list[StageOutcome]:
    """Embed every chunk that has no vector for this model, neither in the file's cache nor in the
    ``collection``; save vectors per file.

    The local cache is only a cache: a chunk whose point the collection already holds with this model
    (the same id is the same file, chunk and text) takes its vector from there, so a lost or empty state
    folder, another working directory or a fresh run pod pays for nothing twice. Texts from many files
    are sent together so batches stay full; vectors are saved after each group, so a failure later in
    the run never loses what was already paid for. ``progress`` gets the texts to embed and each group
    embedded ("embed", in texts).
    """
    with records_batch(state_dir):  # the files' records committed together
        return _embed_stage(sources, state_dir, run_id, embedder, progress, collection)


def _embed_stage(
    sources: Sequence[str], state_dir: Path, run_id: str | None, embedder: Any, progress: Progress,
    collection: Collection | None = None,
) -> list[StageOutcome]:
    outcomes: dict[str, StageOutcome] = {}
    pending: list[_Pending] = []
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else BM25_ONLY_MODEL

    for source in sources:
        art = FileArtifacts(state_dir, source)
        if not art.stage_ok("normalized_records", run_id):
            outcomes[source] = StageOutcome(source, "skipped", error="not chunked in this run (see normalized_records)")
            continue
        if not enabled:
            outcomes[source] = StageOutcome(source, "ok", counts={"embedded": 0})
            continue

        def plan(source: str = source, art: FileArtifacts = art) -> StageOutcome:
            cached = art.read_embeddings(model)
            chunks = list(art.read_chunks())
            keep = {c.point_id: cached[c.point_id] for c in chunks if c.point_id in cached}
            missing = [(c.point_id, c.text) for c in chunks if c.point_id not in cached]
            if not missing:
                if len(keep) != len(cached):
                    art.write_embeddings(model, keep)  # drop vectors of chunks that are gone
                return StageOutcome(source, "unchanged", counts={"embedded": 0, "cached": len(keep)})
            pending.append(_Pending(source, art, keep, missing, len(chunks)))
            return StageOutcome(source, "ok")

        outcomes[source] = _guard(source, "embedding_batches", plan)

    reused = 0
    if collection is not None and pending:
        pending, reused = _from_collection(pending, collection, model, outcomes)
    progress.start("embed", sum(len(item.missing) for item in pending), "texts")
    failed_texts = 0
    for group in _groups(pending, EMBED_GROUP_TEXTS):
        texts = [text for item in group for _, text in item.missing]
        try:
            vectors = embedder.embed(texts)
        except PipelineError as exc:
            for item in group:
                outcomes[item.source] = StageOutcome(item.source, "failed", error=exc.what, fix=exc.fix)
            failed_texts += len(texts)
            continue
        progress.advance("embed", len(texts))
        offset = 0
        for item in group:
            n = len(item.missing)
            new = {pid: vectors[offset + i] for i, (pid, _) in enumerate(item.missing)}
            offset += n
            item.art.write_embeddings(model, {**item.keep, **new})
            outcomes[item.source] = StageOutcome(
                item.source, "ok", counts={"embedded": n, "cached": len(item.keep) - item.reused,
                                           "from_collection": item.reused}
            )

    notes = [f"{reused:,} vectors already in the collection"] if reused else []
    if failed_texts:
        notes.append(f"{failed_texts:,} texts failed")
    progress.finish("embed", "bm25 only: no dense vectors" if not enabled else "; ".join(notes))
    for source, outcome in outcomes.items():
        FileArtifacts(state_dir, source).record_outcome("embedding_batches", outcome, run_id)
    return [outcomes[s] for s in sources]


def _from_collection(
    pending: list[_Pending], collection: Collection, model: str, outcomes: dict[str, StageOutcome]
) -> tuple[list[_Pending], int]:
    """Take the vectors the collection already holds for the texts to embed (looked up by id, in batches
    across files); a file left with nothing to embed is saved and done. Returns what is still to embed
    and how many vectors were found. A collection that cannot be read costs only the lookup: the texts
    are embedded as before."""
    try:
        found = collection.vectors_of([pid for item in pending for pid, _ in item.missing], model)
    except Exception as exc:  # noqa: BLE001 - the writer meets the same store and says why
        log.warning("The collection could not be looked up for vectors already paid for (%s): embedding them", exc)
        return pending, 0
    if not found:
        return pending, 0
    still: list[_Pending] = []
    for item in pending:
        hits = {pid: found[pid] for pid, _ in item.missing if pid in found}
        item.reused = len(hits)
        item.keep.update(hits)
        item.missing = [(pid, text) for pid, text in item.missing if pid not in hits]
        if item.missing:
            still.append(item)
            continue
        item.art.write_embeddings(model, item.keep)
        outcomes[item.source] = StageOutcome(
            item.source, "ok", counts={"embedded": 0, "cached": len(item.keep) - item.reused, "from_collection": item.reused}
        )
    return still, len(found)


def _groups(pending: list[_Pending], size: int) -> Iterator[list[_Pending]]:
    group: list[_Pending] = []
    count = 0
    for item in pending:
        group.append(item)
        count += len(item.missing)
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


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
    verify: bool | None = None,
    progress: Progress = NO_PROGRESS,
) -> tuple[list[StageOutcome], list[StageOutcome]]:
    """Bring the collection in line with the files: returns (per-file outcomes, vanished-file outcomes).

    Upserts come first and deletions after, so a crash in between leaves extra points (fixed by
    the next run), never missing ones. Raises MassDeletionRefused before any write when the run
    would remove what a vanished folder would (deletion.py: too many files at once, ``limits``).

    Each file that reached the collection gets a sync marker (its chunk set, the model, the store
    and the physical collection). When the collection was compared in full with the folder recently
    (``VERIFY_AFTER_SECONDS``), files whose marker still matches are taken as in sync without reading
    the collection: only changed files and files removed from the folder are looked up, and a run
    where nothing changed does not open Qdrant at all. ``verify=True`` (or LEGAL_RAG_VERIFY_SYNC)
    always compares the whole collection. ``progress`` gets the points to write and each batch
    written ("write", in points).
    """
    with records_batch(state_dir):  # the files' records committed together (each marker after its points)
        return _sync_stage(
            sources, data_dir, state_dir, run_id, collection, embedder, limits=limits,
            confirm_mass_deletion=confirm_mass_deletion, prune_vanished=prune_vanished, verify=verify,
            progress=progress,
        )


def _sync_stage(
    sources, data_dir, state_dir, run_id, collection, embedder, *, limits, confirm_mass_deletion, prune_vanished,
    verify, progress,
) -> tuple[list[StageOutcome], list[StageOutcome]]:
    """Reads what the plan needs (sync_plan.py), runs the deletion guard on it, then ``_write``."""
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else BM25_ONLY_MODEL
    if verify is None:
        verify = env_flag("LEGAL_RAG_VERIFY_SYNC")
    outcomes: dict[str, StageOutcome] = {}
    ready: list[str] = []
    for source in sources:
        if FileArtifacts(state_dir, source).stage_ok("embedding_batches", run_id):
            ready.append(source)
        else:
            outcomes[source] = StageOutcome(source, "skipped", error="not embedded in this run (see embedding_batches)")
    present = set(scan_data_dir(data_dir).files) if data_dir.is_dir() else set()
    location = collection.location()

    # Fast and targeted paths: trust the markers of unchanged files (see the docstring).
    pending, known_vanished = list(ready), None
    if sources and present and not verify:
        trusted = _trusted(ready, sources, present, state_dir, collection, model, location, prune_vanished)
        if trusted is not None:
            marks, known_vanished = trusted
            pending = [s for s in ready if s not in marks]
            for source, points in marks.items():
                outcomes[source] = StageOutcome(
                    source, "unchanged", counts={"chunks": points, "points_written": 0, "points_deleted": 0, TRUSTED: 1}
                )
            if not pending and not known_vanished:
                for source in marks:
                    FileArtifacts(state_dir, source).record_outcome("qdrant_collection", outcomes[source], run_id)
                progress.start("write", 0, "points")
                progress.finish("write", "every file in sync: nothing to write")
                return [outcomes[s] for s in sources], []

    dense_size = _dense_size(pending, state_dir, model, collection, embedder) if enabled else None
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
            files.append(FileChunks(source, art.chunk_ids(), (art.document() or {}).get("sha256", "")))
        except Exception as exc:  # noqa: BLE001 - its chunks cannot be read back: it fails alone
            outcomes[source] = _failed(source, "qdrant_collection", exc)
    guarded = bool(total_points) and not confirm_mass_deletion
    plan = plan_sync(
        files, index, model=model, present=present, total_points=total_points, full=full,
        known_vanished=known_vanished or [], prune_vanished=prune_vanished,
        # only the changed and vanished files were looked up: the others hold points by their sync marker
        held_elsewhere=(s for s in known_sources(state_dir) if FileArtifacts(state_dir, s).synced())
        if guarded and not full else (),
    )
    if guarded and plan.deletion is not None:
        check_deletion(plan.deletion, limits or DeletionLimits(), collection=collection.name, data_dir=data_dir)

    target = _Target(collection, state_dir, model, enabled, location, physical)
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
        art = FileArtifacts(state_dir, source)
        if not outcome.ok:
            art.clear_synced()
        art.record_outcome("qdrant_collection", outcome, run_id)
    if full and physical:
        _write_sync_state(state_dir, {"location": location, "collection": physical, "verified_at": time.time(), "run_id": run_id})
    return [outcomes[s] for s in sources], vanished_outcomes


def _trusted(
    ready: list[str], sources: Sequence[str], present: set[str], state_dir: Path, collection: Collection, model: str,
    location: str, prune_vanished: bool,
) -> tuple[dict[str, int], list[str]] | None:
    """When the collection was compared in full with the folder recently: the files whose sync marker
    still matches ({source: points}) and the known files gone from the folder; None otherwise."""
    physical = collection.physical_name()
    state = _read_sync_state(state_dir)
    if not (
        physical
        and state.get("location") == location
        and state.get("collection") == physical
        and time.time() - float(state.get("verified_at", 0)) < VERIFY_AFTER_SECONDS
    ):
        return None
    marks = {s: _sync_mark(FileArtifacts(state_dir, s), model, location, physical) for s in ready}
    trusted = {
        s: int(mark["points"]) for s, mark in marks.items() if mark is not None and FileArtifacts(state_dir, s).synced() == mark
    }
    wanted = set(sources)
    vanished = sorted(s for s in known_sources(state_dir) if s not in present and s not in wanted) if prune_vanished else []
    return trusted, vanished


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
        _point(chunk, i, doc_sha, target.model, now, vectors.get(chunk.point_id) if target.enabled else None, validity)
        for i, chunk in enumerate(chunks)
        if chunk.point_id in ids
    ], wanted


def _sync_mark(art: FileArtifacts, model: str, location: str, physical: str | None) -> dict[str, Any] | None:
    """What must be unchanged for this file's points to be known in sync without reading them."""
    document = art.document() or {}
    return sync_mark(document.get("chunked"), int(document.get("chunks", 0)), art.chunks_version(), model, location, physical)


def sync_mark(
    chunked: str | None, points: int, chunks_version: list[Any] | None, model: str, location: str, physical: str | None
) -> dict[str, Any] | None:
    """The sync marker of a file whose document record says ``chunked`` and ``points`` (None: no chunks)."""
    if chunks_version is None or not chunked:
        return None
    return {
        "chunked": chunked,
        "chunks_file": chunks_version,
        "points": points,
        "model": model,
        "location": location,
        "collection": physical,
    }


def _read_sync_state(state_dir: Path) -> dict[str, Any]:
    try:
        value = json.loads((Path(state_dir) / SYNC_STATE_FILE).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_sync_state(state_dir: Path, value: dict[str, Any]) -> None:
    path = Path(state_dir) / SYNC_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def forget_sync_state(state_dir: Path, sources: Iterable[str] = (), *, everything: bool = False) -> None:
    """After a failed check: ``sources`` lose their sync marker, so the next run (and the nightly plan)
    runs and checks them again; the other files keep theirs. ``everything``: the next run compares the
    whole collection with the folder (when the collection itself is in doubt, e.g. its vector size)."""
    if everything:
        (Path(state_dir) / SYNC_STATE_FILE).unlink(missing_ok=True)
    for source in sources:
        FileArtifacts(state_dir, source).clear_synced()


def _dense_size(ready: Sequence[str], state_dir: Path, model: str, collection: Collection, embedder: Any) -> int:
    for source in ready:
        for vector in FileArtifacts(state_dir, source).read_embeddings(model).values():
            return int(vector.shape[0])
    if collection.exists() and collection.dense_size():
        return int(collection.dense_size())
    return int(embedder.dimension())


def _point(
    chunk: Chunk, index: int, doc_sha: str, model: str, now: str, vector: Any, validity: dict[str, Any] | None = None
) -> PointRecord:
    md = dict(chunk.metadata)
    metadata = {**md, "source": chunk.source, "chunk_key": chunk.chunk_key}
    article = md.get("article")
    group = f"{chunk.source}#dieu-{article}" if article else f"{chunk.source}#{chunk.chunk_key}"
    payload = {
        "page_content": chunk.text,
        "metadata": metadata,
        "source": chunk.source,
        "question": md.get("question"),
        "law": md.get("law"),
        "article": article,
        "chapter": md.get("chapter"),
        **{k: md.get(k) for k in DOCUMENT_FIELDS},  # number, doc_type, issuer, issued_on, ... (readers/header.py)
        "doc_sha256": doc_sha,
        "chunk_index": index,
        "embedding_model": model,
        "ingested_at": now,
        "group_key": group,
    }
    if md.get("kind") in ("law", "law_preamble") or validity:
        # valid_from, valid_to, repealed_by, amended_by, ... as the file's other points carry them (validity/)
        # a field set to null by a payload update is dropped (Edge and qdrant-client alike): written the
        # same way here, so a point reads the same whether its validity came with it or was set after
        payload.update({k: v for k, v in point_validity(validity, md).items() if v is not None})
    sparse = document_sparse_vector(lexical_text(chunk))
    return PointRecord(
        id=chunk.point_id,
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        sparse=sparse,
        payload=payload,
    )


# What feeds a chunk's bm25 vector, chosen by measurement (docs/retrieval.md):
# "headings+chunk" (default) = law title, chapter and section titles, then the chunk (which starts
# with its article heading); "title+chunk" = law title and chunk; "chunk" = the chunk alone.
# LEXICAL_TEXT selects another one (then `legal-rag rebuild`).
LEXICAL_TEXTS = ("headings+chunk", "title+chunk", "chunk")
DEFAULT_LEXICAL_TEXT = "headings+chunk"


def lexical_text_mode() -> str:
    mode = os.environ.get("LEXICAL_TEXT", "").strip().lower() or DEFAULT_LEXICAL_TEXT
    if mode not in LEXICAL_TEXTS:
        from .errors import ConfigurationError

        raise ConfigurationError(f"LEXICAL_TEXT={mode!r} is not known", f"use one of {', '.join(LEXICAL_TEXTS)}")
    return mode


def lexical_text(chunk: Chunk) -> str:
    """The text whose words feed the ``bm25`` sparse vector of a chunk.

    Questions name the law ("theo Luật Cư trú ...") and the subject of a chapter more often than the
    piece itself does, so the law title and the chapter/section titles come first, each ended by a
    full stop (no bigram crosses them). Q&A rows and plain text have no such metadata: their text alone.
    """
    mode = lexical_text_mode()
    if mode == "chunk":
        return chunk.text
    md = chunk.metadata
    heads = [md.get("law")]
    if mode == "headings+chunk":
        heads += [(md.get(k) or "").split(" — ", 1)[-1] for k in ("part", "chapter", "section")]
    heads = [h.strip().rstrip(".") for h in heads if h and h.strip()]
    return "".join(f"{h}.\n" for h in heads) + chunk.text


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------- summaries
@dataclass
class FileSummary:
    """One line of the per-file summary (CLI table, UI metadata)."""

    source: str
    status: str
    chunks: int = 0
    embedded: int = 0
    points_written: int = 0
    points_deleted: int = 0
    failed_stage: str | None = None
    error: str | None = None
    fix: str | None = None
    notes: list[str] = field(default_factory=list)


def file_summary(source: str, state_dir: Path, run_id: str | None = None) -> FileSummary:
    status = FileArtifacts(state_dir, source).status()
    summary = FileSummary(source, "unchanged")
    for stage in STAGES:
        entry = status.get(stage)
        if entry is None or (run_id is not None and entry.get("run_id") != run_id):
            summary.status = "not run"
            break
        counts = entry.get("counts") or {}
        summary.chunks = counts.get("chunks", summary.chunks)
        summary.embedded = counts.get("embedded", summary.embedded)
        summary.points_written = counts.get("points_written", summary.points_written)
        summary.points_deleted = counts.get("points_deleted", summary.points_deleted)
        summary.notes.extend(entry.get("notes") or [])
        if entry["status"] == "failed":
            summary.status, summary.failed_stage = "failed", stage
            summary.error, summary.fix = entry.get("error"), entry.get("fix")
            break
        if entry["status"] == "skipped":
            summary.status = "skipped"
            break
        if entry["status"] == "ok":
            summary.status = "ok"
    if summary.status == "ok" and not (summary.embedded or summary.points_written or summary.points_deleted):
        summary.status = "unchanged"
    return summary


def file_summaries(sources: Iterable[str], state_dir: Path, run_id: str | None = None) -> dict[str, FileSummary]:
    return {source: file_summary(source, state_dir, run_id) for source in sources}
