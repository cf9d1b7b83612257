"""embedding_batches: dense vectors for the chunks that have none for this model, saved per file before anything is written."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..artifacts import FileArtifacts, StageOutcome, record_outcomes, records_batch, sources_ok_in
from ..errors import PipelineError
from ..progress import NO_PROGRESS, Progress
from ..stores.base import Collection
from .outcomes import BM25_ONLY_MODEL, NOT_CHUNKED, _guard
from .overlap import Chunked, Embedded

log = logging.getLogger(__name__)

# Texts embedded together (across files) before their vectors are saved: keeps batches full while
# bounding what a failure mid-run can cost.
EMBED_GROUP_TEXTS = 1024
T = TypeVar("T")
G = TypeVar("G")
CHUNKS_CHANGED = "its chunks changed or could not be read while it was being embedded"


# ---------------------------------------------------------------------------- embedding_batches
@dataclass
class _Pending:
    source: str
    art: FileArtifacts
    keep: dict[str, np.ndarray]
    missing: list[str]  # the point ids to embed; their texts are read when their group is sent (texts)
    total: int
    reused: int = 0  # vectors found in the collection (not embedded again)

    def texts(self) -> list[str]:
        """The texts of ``missing``, read from the file's chunks when its group is sent. The plan holds
        ids only: holding every text of a first ingest from the start (69,007 for the 208 laws) took
        25-50 MB more at the dense peak. Raises KeyError when the chunks no longer hold one of them."""
        wanted = set(self.missing)
        by_id = {c.point_id: c.text for c in self.art.read_chunks() if c.point_id in wanted}
        return [by_id[pid] for pid in self.missing]

    def let_go(self) -> None:
        """Its texts and vectors, once saved: the writer runs meanwhile (overlap.py), so a first ingest
        does not hold every text of the run until its last group is embedded."""
        self.keep, self.missing = {}, []


def embed_stage(
    sources: Sequence[str], state_dir: Path, run_id: str | None, embedder: Any, progress: Progress = NO_PROGRESS,
    collection: Collection | None = None, embedded: Embedded | None = None, chunked: Chunked | None = None,
) -> list[StageOutcome]:
    """Embed every chunk that has no vector for this model, neither in the file's cache nor in the
    ``collection``; save vectors per file.

    The local cache is only a cache: a chunk whose point the collection already holds with this model
    (the same id is the same file, chunk and text) takes its vector from there, so a lost or empty state
    folder, another working directory or a fresh run pod pays for nothing twice. Texts from many files
    are sent together so batches stay full; vectors are saved after each group, so a failure later in
    the run never loses what was already paid for. ``progress`` gets the texts to embed as files are
    planned and each group embedded ("embed", in texts). ``embedded`` (overlap.py) learns each file as
    soon as its vectors are saved, for a writer running meanwhile. ``chunked`` (overlap.py): the chunking
    runs meanwhile and settles each file there; without it, the files chunked in ``run_id`` are embedded.
    When the collection holds no point (a first ingest) there is nothing to look up, and each file is
    planned and sent as soon as it is chunked; otherwise every file is planned first and the collection
    looked up once for all of them.
    """
    embedded = embedded or Embedded()
    try:
        with records_batch(state_dir):  # the files' records committed together
            return _embed_stage(sources, state_dir, run_id, embedder, progress, collection, embedded, chunked)
    finally:
        embedded.close()


def _embed_stage(
    sources: Sequence[str], state_dir: Path, run_id: str | None, embedder: Any, progress: Progress,
    collection: Collection | None, embedded: Embedded, chunked: Chunked | None,
) -> list[StageOutcome]:
    outcomes: dict[str, StageOutcome] = {}
    enabled = embedder is not None and embedder.enabled()
    model = embedder.model_id() if enabled else BM25_ONLY_MODEL
    progress.start("embed", 0, "texts")
    planned = _planned(sources, state_dir, run_id, model if enabled else None, outcomes, embedded, chunked)
    first = next(planned, None)
    pending: Iterable[_Pending] = () if first is None else itertools.chain([first], planned)
    reused = 0
    to_embed = first is not None
    if first is not None and collection is not None and _may_hold_vectors(collection):
        items = list(pending)  # every file planned: the collection is looked up once for all of them
        planned_sources = [item.source for item in items]
        items, reused = _from_collection(items, collection, model, outcomes)
        waiting = {item.source for item in items}
        for source in planned_sources:
            if source not in waiting:  # its vectors were all in the collection
                embedded.settle(source, outcomes[source].ok)
        progress.more("embed", sum(len(item.missing) for item in items))
        pending, to_embed = items, bool(items)
    else:  # planned as they are chunked: each file's texts added to the total as it comes
        pending = (_announced(item, progress) for item in pending)
    embedded.collection_free.set()
    failed_texts = 0
    ready_groups = (_with_texts(group, outcomes, embedded)
                    for group in groups_of(pending, EMBED_GROUP_TEXTS, lambda item: len(item.missing)))
    results = embedded_groups(embedder, ready_groups, lambda ready: [t for _, texts in ready for t in texts])
    for ready, vectors in results if to_embed else ():  # bm25 only, or nothing to embed: no call
        group = [item for item, _ in ready]
        if isinstance(vectors, PipelineError):
            for item in group:
                outcomes[item.source] = StageOutcome(item.source, "failed", error=vectors.what, fix=vectors.fix)
                embedded.settle(item.source, False)
                failed_texts += len(item.missing)
                item.let_go()
            continue
        progress.advance("embed", len(vectors))
        offset = 0
        for item in group:
            n = len(item.missing)
            new = {pid: vectors[offset + i] for i, pid in enumerate(item.missing)}
            offset += n
            item.art.write_embeddings(model, {**item.keep, **new})
            outcomes[item.source] = StageOutcome(
                item.source, "ok", counts={"embedded": n, "cached": len(item.keep) - item.reused,
                                           "from_collection": item.reused}
            )
            embedded.settle(item.source, True)
            item.let_go()

    notes = [f"{reused:,} vectors already in the collection"] if reused else []
    if failed_texts:
        notes.append(f"{failed_texts:,} texts failed")
    progress.finish("embed", "bm25 only: no dense vectors" if not enabled else "; ".join(notes))
    record_outcomes(state_dir, "embedding_batches", outcomes.values(), run_id)
    return [outcomes[s] for s in sources]


def _planned(
    sources: Sequence[str], state_dir: Path, run_id: str | None, model: str | None, outcomes: dict[str, StageOutcome],
    embedded: Embedded, chunked: Chunked | None,
) -> Iterator[_Pending]:
    """Each file of ``sources`` with texts to embed, as soon as it is chunked; every other file gets its
    outcome and is settled on ``embedded`` (``model`` None: bm25 only, nothing to embed)."""
    chunked_in_run = sources_ok_in(state_dir, "normalized_records", run_id) if chunked is None else set()
    for source in sources:
        art = FileArtifacts(state_dir, source)
        if not (chunked.wait(source) if chunked is not None else source in chunked_in_run):
            outcomes[source] = StageOutcome(source, "skipped", error=NOT_CHUNKED)
        elif model is None:
            outcomes[source] = StageOutcome(source, "ok", counts={"embedded": 0})
        else:
            found: list[_Pending] = []

            def plan(source: str = source, art: FileArtifacts = art) -> StageOutcome:
                cached = art.read_embeddings(model)
                ids = art.chunk_ids()
                keep = {pid: cached[pid] for pid in ids if pid in cached}
                missing = [pid for pid in ids if pid not in cached]
                if not missing:
                    if len(keep) != len(cached):
                        art.write_embeddings(model, keep)  # drop vectors of chunks that are gone
                    return StageOutcome(source, "unchanged", counts={"embedded": 0, "cached": len(keep)})
                found.append(_Pending(source, art, keep, missing, len(ids)))
                return StageOutcome(source, "ok")

            outcomes[source] = _guard(source, "embedding_batches", plan)
            if found:
                yield found[0]
                continue
        embedded.settle(source, outcomes[source].ok)


def _may_hold_vectors(collection: Collection) -> bool:
    """Whether the collection may hold vectors to take instead of embedding: not when it holds no point
    (none yet, a first ingest), and then nothing is looked up and the files are embedded as they are
    chunked. A collection that cannot be read is looked up anyway (``_from_collection`` says why)."""
    try:
        return collection.count() > 0
    except Exception:  # noqa: BLE001 - the lookup meets the same store and logs it
        return True


def _announced(item: _Pending, progress: Progress) -> _Pending:
    """``item``, its texts added to the embed stage's total."""
    progress.more("embed", len(item.missing))
    return item


def _from_collection(
    pending: list[_Pending], collection: Collection, model: str, outcomes: dict[str, StageOutcome]
) -> tuple[list[_Pending], int]:
    """Take the vectors the collection already holds for the texts to embed (looked up by id, in batches
    across files); a file left with nothing to embed is saved and done. Returns what is still to embed
    and how many vectors were found. A collection that cannot be read costs only the lookup: the texts
    are embedded as before."""
    try:
        found = collection.vectors_of([pid for item in pending for pid in item.missing], model)
    except Exception as exc:  # noqa: BLE001 - the writer meets the same store and says why
        log.warning("The collection could not be looked up for vectors already paid for (%s): embedding them", exc)
        return pending, 0
    if not found:
        return pending, 0
    still: list[_Pending] = []
    for item in pending:
        hits = {pid: found[pid] for pid in item.missing if pid in found}
        item.reused = len(hits)
        item.keep.update(hits)
        item.missing = [pid for pid in item.missing if pid not in hits]
        if item.missing:
            still.append(item)
            continue
        item.art.write_embeddings(model, item.keep)
        outcomes[item.source] = StageOutcome(
            item.source, "ok", counts={"embedded": 0, "cached": len(item.keep) - item.reused, "from_collection": item.reused}
        )
    return still, len(found)


def _with_texts(
    group: list[_Pending], outcomes: dict[str, StageOutcome], embedded: Embedded
) -> list[tuple[_Pending, list[str]]]:
    """Each file of ``group`` with the texts it sends; a file whose chunks cannot be read again (or
    changed since the plan) fails alone and sends nothing."""
    ready = []
    for item in group:
        try:
            ready.append((item, item.texts()))
        except (KeyError, OSError, ValueError) as exc:
            log.warning("%s: its chunks could not be read again for embedding (%s)", item.source, type(exc).__name__)
            outcomes[item.source] = StageOutcome(
                item.source, "failed", error=CHUNKS_CHANGED, fix="ingest it again (`legal-rag ingest`)"
            )
            embedded.settle(item.source, False)
            item.let_go()
    return ready


def groups_of(items: Iterable[T], size: int, texts: Callable[[T], int]) -> Iterator[list[T]]:
    """``items`` in groups of at least ``size`` texts (``texts(item)`` each; the last group may be smaller),
    an item never split between two groups."""
    group: list[T] = []
    count = 0
    for item in items:
        group.append(item)
        count += texts(item)
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


def embedded_groups(
    embedder: Any, groups: Iterable[G], texts_of: Callable[[G], list[str]]
) -> Iterator[tuple[G, np.ndarray | PipelineError]]:
    """Each of ``groups`` that has texts (``texts_of(group)``, asked when the embedder is ready for it)
    with its vectors or the ``PipelineError`` that stopped it, in order: ``embedder.embed_groups`` keeps
    the requests flowing from one group to the next (resources/hugging_face.py)."""
    sent: deque[G] = deque()  # the groups handed to the embedder, awaiting their vectors

    def texts() -> Iterator[list[str]]:
        for group in groups:
            group_texts = texts_of(group)
            if group_texts:
                sent.append(group)
                yield group_texts

    for vectors in embedder.embed_groups(texts()):
        yield sent.popleft(), vectors
