"""The seam between the pipeline and where its points live: one small interface, two engines.

``Collection`` is what sync, search, rebuild, the checks and migrate talk to. It names the
collection the pipeline searches and writes (``name``, an alias in front of a versioned physical
collection) and offers layout, reads and writes over neutral types, so no caller sees an engine's
own classes:

* ``stores/edge.py`` — Qdrant Edge, the Qdrant server's engine inside the process (embedded default);
* ``stores/client.py`` — qdrant-client: a Qdrant server or cluster, or qdrant-client's local mode.

Both are tested by the same store-level tests (legal_rag_pipeline_tests/test_stores.py).
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..text.lexical import DEFAULT_LEXICAL, Lexical, Sparse

SPARSE_NAME = "bm25"
# Payload fields read back when the pipeline compares the collection with the data folder.
INDEX_FIELDS = ["source", "embedding_model", "doc_sha256"]
# Keyword payload indexes on a Qdrant server: the fields searches filter and facet by (``article`` is
# filtered with ``law``; a server in strict mode refuses a filter on a field without an index). Qdrant
# Edge folds all but ``source`` into one (stores/edge.py, ``FOLDED_FIELDS``). Every index costs
# the same when a segment is optimised (Edge reads each point's payload once per index: 0.6 s per
# 32,768 points), so fields only read back (``embedding_model``, ``group_key``, ``repealed_by``) get
# none: optimising 32,768 bm25 points took 9.9 s with 12 indexes, 7.8 s with these 9 (1.7 s without any).
KEYWORD_INDEXES = ("source", "law", "article", "number", "doc_type", "issuer", "issued_on")
# Date payload indexes (ISO dates): the law in force on a day (validity/).
DATETIME_INDEXES = ("valid_from", "valid_to")
# A ``where`` key whose value is an ISO date: only points in force that day, i.e. not
# ``valid_from`` > day and not ``valid_to`` <= day (a point without these fields is in force).
VALID_ON = "@valid_on"
# Points per page when a whole collection is read (Edge: 16,384 reads 69,000 payloads in 1.7 s, 2,048 in 5 s).
FULL_SCAN_BATCH = 16384
FACET_COUNTS_FROM = 50  # counts_by_source for more files than this: one facet over every source
FACET_LIMIT = 1_000_000
# ``where``: every key must match; a list value matches any of its values.
Where = dict[str, "str | Sequence[str]"]


@dataclass(frozen=True)
class PointRecord:
    """A point to write: dense vector (None in a bm25-only collection), bm25 sparse vector, payload."""

    id: str
    vector: Sequence[float] | None
    sparse: Sparse  # lists, or arrays (text/lexical.py, ``packed``)
    payload: dict[str, Any]


@dataclass
class StoredPoint:
    """A point read back; vectors only when asked for."""

    id: str | int
    payload: dict[str, Any] = field(default_factory=dict)
    dense: list[float] | None = None
    sparse: tuple[list[int], list[float]] | None = None


@dataclass
class ScoredPoint:
    id: str | int
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """A physical collection's vectors: unnamed dense size (None: bm25 only), has ``bm25``, metadata."""

    dense: int | None
    sparse: bool
    metadata: dict[str, Any] = field(default_factory=dict)


class Collection(ABC):
    """The configured collection (``name``, usually an alias) in one store, opened for one block.

    Methods taking ``physical`` act on that physical collection; ``None`` means the live one
    (what ``name`` resolves to).
    """

    name: str
    store: Any  # the QdrantStore resource it was opened from
    # True where a sparse or filtered query is scored point by point in Python (qdrant-client's
    # local mode): callers then sample checks and evaluate from memory.
    scores_in_python: bool = False

    # ------------------------------------------------------------------ layout
    @abstractmethod
    def physical_names(self) -> list[str]:
        """Every physical collection of the store (also ones no alias points at)."""

    @abstractmethod
    def alias_target(self) -> str | None:
        """The physical collection the alias ``name`` points at, or None."""

    @abstractmethod
    def layout(self, physical: str, fix: str = "") -> Layout:
        """A physical collection's layout; StoreError (with ``fix``) when it is not this project's."""

    @abstractmethod
    def create_physical(self, physical: str, dense_size: int | None, metadata: dict[str, Any] | None = None) -> None:
        """Create a physical collection with the project's layout and payload indexes."""

    @abstractmethod
    def drop_physical(self, physical: str) -> None: ...

    @abstractmethod
    def point_alias(self, physical: str) -> None:
        """Atomically point the alias ``name`` at ``physical`` (readers see the old or the new one)."""

    @abstractmethod
    def view(self, physical: str) -> Collection:
        """The same connection, with ``name`` = ``physical`` (a rebuild writes and checks through it)."""

    def lock(self) -> None:
        """Take the store for this process now (an embedded folder held elsewhere fails at once)."""

    def close(self) -> None:
        """Release the engine (and its lock on an embedded folder)."""

    def release_memory(self) -> None:
        """Give back what reading held in this process (an embedded store's mapped pages, memory.py);
        nothing to do for a server, whose memory is its own."""

    def expect_queries(self) -> Any:
        """Queries follow soon (a cold `legal-rag search`): an embedded store may start reading what they
        read meanwhile (returning the thread that does); nothing to do for a server."""
        return None

    def layout_advice(self) -> str | None:
        """A sentence when the live collection has an earlier layout that a rebuild would improve."""
        return None

    def location(self) -> str:
        return self.store.location()

    @property
    def lexical(self) -> Lexical:
        """How this collection's bm25 vectors are made (the store's LEXICAL_VARIANT and LEXICAL_TEXT)."""
        return Lexical(
            getattr(self.store, "lexical_variant", DEFAULT_LEXICAL.variant), getattr(self.store, "lexical_text", DEFAULT_LEXICAL.text)
        )

    def has_physical(self, physical: str) -> bool:
        return physical in self.physical_names()

    def physical_name(self) -> str | None:
        target = self.alias_target()
        if target:
            return target
        return self.name if self.has_physical(self.name) else None

    def exists(self) -> bool:
        return self.physical_name() is not None

    def dense_size(self) -> int | None:
        """The size of the unnamed dense vector, or None for a bm25-only collection (or none at all)."""
        physical = self.physical_name()
        return None if physical is None else self.layout(physical).dense

    def ensure(self, dense_size: int | None, model_id: str | None) -> str:
        """Create the collection (behind the alias) if absent; refuse one whose vector layout differs.

        Returns the physical collection name.
        """
        from ..errors import StoreError

        physical = self.physical_name()
        if physical is None:
            physical = versioned_name(self.name)
            self.create_physical(physical, dense_size)
            self.point_alias(physical)
            return physical
        existing = self.dense_size()
        if existing != dense_size:
            have = f"{existing}-dimensional dense vectors" if existing else "no dense vectors (bm25 only)"
            want = (
                f"{dense_size}-dimensional vectors from {model_id}" if dense_size else "no dense vectors (bm25 only)"
            )
            raise StoreError(
                f"Collection {self.name} holds {have} but this run produces {want}",
                "run `legal-rag rebuild` to build a new collection for this configuration and switch to it "
                "without downtime, or set EMBEDDINGS_MODEL_NAME back to the collection's model",
            )
        return physical

    # ------------------------------------------------------------------ reads
    @abstractmethod
    def scroll(
        self,
        *,
        physical: str | None = None,
        fields: list[str] | bool = True,
        vectors: bool = False,
        where: Where | None = None,
        offset: str | None = None,
        limit: int = 2048,
    ) -> tuple[list[StoredPoint], str | None]:
        """One page in point-id order and the offset of the next (None: the last page)."""

    @abstractmethod
    def retrieve(
        self, ids: Sequence[str], *, physical: str | None = None, fields: list[str] | bool = False, vectors: bool = False
    ) -> list[StoredPoint]: ...

    def missing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` the collection holds no point of."""
        found = {str(point.id) for point in self.retrieve(ids)}
        return {i for i in ids if i not in found}

    @abstractmethod
    def count(self, source: str | None = None, *, physical: str | None = None) -> int:
        """Exact count of points (of one source file); 0 when there is no collection."""

    @abstractmethod
    def query(
        self,
        *,
        sparse: tuple[list[int], list[float]] | None = None,
        dense: Sequence[float] | None = None,
        where: Where | None = None,
        limit: int = 10,
        fields: list[str] | bool = True,
        fusion_weights: tuple[float, float] | None = None,
    ) -> list[ScoredPoint]:
        """Best first: ``bm25`` alone, dense alone, or both fused by reciprocal rank (``(sparse, dense)`` weights)."""

    @abstractmethod
    def facet_values(self, key: str) -> list[str]:
        """Distinct values of a keyword payload field."""

    def iter_points(
        self, *, physical: str | None = None, fields: list[str] | bool = True, vectors: bool = False,
        where: Where | None = None, offset: str | None = None, batch: int = 2048,
    ) -> Iterator[StoredPoint]:
        while True:
            points, offset = self.scroll(
                physical=physical, fields=fields, vectors=vectors, where=where, offset=offset, limit=batch
            )
            yield from points
            if offset is None:
                return

    def point_index(self, sources: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """``{source: {point_id: payload subset}}`` for the given sources (all when None)."""
        result: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        if not self.exists():
            return result
        if sources is not None:
            sources = list(sources)
            if not sources:
                return result
        if sources is None or self.scores_in_python:
            # One pass over the collection where filters are evaluated in Python anyway.
            wanted = None if sources is None else set(sources)
            for point in self.iter_points(fields=INDEX_FIELDS, batch=FULL_SCAN_BATCH):
                source = point.payload.get("source")
                if wanted is None or source in wanted:
                    result[source][point.id] = point.payload
            return result
        for source in sources:
            for point in self.iter_points(fields=INDEX_FIELDS, where={"source": source}):
                result[source][point.id] = point.payload
        return result

    def vectors_of(self, ids: Sequence[str], model: str, batch: int = 1024) -> dict[str, Any]:
        """The dense vectors the collection already holds for these point ids, embedded by ``model``
        (``{id: float32 array}``; ids it lacks, or holds from another model, are left out). A point id
        is derived from its file, its chunk and its text, so a vector found here is the one the text
        would get: embedding it again would only pay twice."""
        import numpy as np

        found: dict[str, Any] = {}
        ids = list(ids)
        if not ids or not self.exists() or not self.dense_size():
            return found
        for start in range(0, len(ids), batch):
            for point in self.retrieve(ids[start : start + batch], fields=["embedding_model"], vectors=True):
                if point.dense is not None and point.payload.get("embedding_model") == model:
                    found[str(point.id)] = np.asarray(point.dense, dtype=np.float32)
        return found

    def counts_by_source(self, sources: Iterable[str]) -> dict[str, int]:
        """Points per source file (indexed counts; one pass where filters are evaluated in Python)."""
        sources = list(sources)
        if not sources or not self.exists():
            return dict.fromkeys(sources, 0)
        if len(sources) > FACET_COUNTS_FROM:
            found = self._source_counts()
            if found is not None and len(found) < FACET_LIMIT:  # else more files than one facet answers
                return {source: found.get(source, 0) for source in sources}
        if not self.scores_in_python:
            return {source: self.count(source) for source in sources}
        counts = dict.fromkeys(sources, 0)
        for point in self.iter_points(fields=["source"], batch=FULL_SCAN_BATCH):
            source = point.payload.get("source")
            if source in counts:
                counts[source] += 1
        return counts

    def _source_counts(self) -> dict[str, int] | None:
        """Every source's point count from one exact facet over ``source`` (keyword-indexed), or None
        where the store does not answer that way (then ``counts_by_source`` counts)."""
        return None

    # ------------------------------------------------------------------ writes
    @abstractmethod
    def upsert(self, points: Iterable[PointRecord], collection: str | None = None) -> int:
        """Write points by id (idempotent); returns how many were written."""

    @abstractmethod
    def delete(self, ids: Sequence[str], collection: str | None = None) -> int: ...

    @abstractmethod
    def set_payload(self, ids: Sequence[str], payload: dict[str, Any], collection: str | None = None) -> int:
        """Set these payload fields on the points ``ids`` (other fields and the vectors untouched);
        ids no longer in the collection are skipped. Returns how many points were updated."""

    def writes(self, points: int) -> PointWrites:
        """How a sync writes ``points`` points to the live collection: here, in this process
        (``InlineWrites``). Qdrant Edge writes a large sync in a process of its own (stores/edge_process.py)."""
        return InlineWrites(self)


# What a group's write answers: (points written, points deleted), or the exception that failed it.
WriteDone = Callable[["tuple[int, int] | Exception"], None]


class PointWrites(ABC):
    """The sync's writes to the live collection, one group of points at a time (ingest/write.py).

    ``submit`` upserts a group's points and then, if that worked, deletes ``deletes`` (the group's
    files' stale points); ``done`` gets (written, deleted) or the exception, in the order the groups
    were submitted, by the time ``submit`` of a later group or ``close`` returns. Upserting before
    deleting keeps a crash in between from losing points (a later run removes the extras)."""

    # True when the groups are written by another process, which leaves the run's process time of its
    # own to make the bm25 vectors (ingest/write.py then starts no bm25 helper)
    elsewhere: bool = False

    @abstractmethod
    def submit(self, points: list[PointRecord], deletes: Sequence[str], done: WriteDone) -> None: ...

    @abstractmethod
    def close(self) -> str:
        """Every submitted group answered; returns a note for the write's progress line ("" for none)."""


class InlineWrites(PointWrites):
    """Each group written by the run's own process, before ``submit`` returns."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def submit(self, points: list[PointRecord], deletes: Sequence[str], done: WriteDone) -> None:
        try:
            written = self.collection.upsert(points)
            deleted = self.collection.delete(deletes)
        except Exception as exc:  # noqa: BLE001 - the group's files fail, the others go on
            done(exc)
            return
        done((written, deleted))

    def close(self) -> str:
        return ""


def bm25_from_page_content(payload: dict[str, Any], variant: str = DEFAULT_LEXICAL.variant) -> tuple[list[int], list[float]]:
    """bm25 weights for a point written without them (the old script's points), from its text."""
    from ..text.lexical import document_sparse_vector

    return document_sparse_vector(str(payload.get("page_content") or ""), variant)


def point_id(value: Any) -> str | int:
    """A point id as the pipeline keeps it: a UUID as its string, an integer id (the old script's) as is."""
    return value if isinstance(value, int) else str(value)


def versioned_name(alias: str) -> str:
    """A new physical collection name behind ``alias``: ``legal_rag__<8 hex>``."""
    return f"{alias}__{uuid.uuid4().hex[:8]}"


def vector_is_valid(vector: Sequence[float]) -> bool:
    """False for a zero or NaN vector (the collection check rejects those)."""
    norm = math.fsum(v * v for v in vector)
    return norm > 0 and not math.isnan(norm)
