"""The embedded default: Qdrant Edge, the Qdrant server's storage and search engine inside the process.

One ``EdgeShard`` is one physical collection. Edge has no aliases, so the folder keeps a small
catalog beside the shards, replaced atomically (``os.replace``) whenever it changes::

    QDRANT_PATH/
      edge.json                      {"aliases": {"legal_rag": "legal_rag__1a2b3c4d"},
                                      "collections": {"legal_rag__1a2b3c4d": {"dense": 768, "sparse": true,
                                                                              "metadata": {...}}}}
      shards/legal_rag__1a2b3c4d/    the EdgeShard (its own WAL, segments, edge_config.json)

* A rebuild writes ``shards/<new>/`` while searches read the old shard, then switches the alias in
  one ``os.replace`` of the catalog; a shard no alias points at (a killed rebuild) is a leftover
  that the next rebuild removes.
* The process that opened a shard is the only one that can (Edge's WAL lock): another one waits
  for the folder (``QdrantStore.lock_wait_seconds``: 5 s for a CLI command, 120 s for a run, since
  a search holds it for a moment), then gets the one-sentence "in use by another process" error.
* A folder written by qdrant-client's local mode (an earlier version of this project, or the old
  script) is copied into Edge shards the first time it is opened, counts verified, and only then
  are the local-mode files removed (``migrate_local_folder``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ..errors import StoreError
from ..memory import give_back, page_out, read_ahead
from .base import (
    DATETIME_INDEXES,
    FACET_LIMIT,
    VALID_ON,
    SPARSE_NAME,
    Collection,
    InlineWrites,
    Layout,
    PointRecord,
    PointWrites,
    ScoredPoint,
    StoredPoint,
    Where,
    bm25_from_page_content,
    point_id,
)

log = logging.getLogger(__name__)

CATALOG = "edge.json"
SHARDS = "shards"
LOCK = ".edge.lock"  # held while the catalog is edited
OWNER = ".owner.lock"  # held by the one process that uses the folder
RRF_K = 60  # Qdrant's default for reciprocal rank fusion
UPSERT_BATCH = 1024
# Bounded memory for long writes. Edge keeps the points it writes in an appendable segment whose
# indexes (sparse, payload, point ids) live in the process's memory, and it runs no optimizer by
# itself: 276,000 points written in one go held 2+ GB. So every COMPACT_POINTS points written, the
# shard is optimised (the appendable segment becomes immutable, memory-mapped segments of at most
# SEGMENT_KB) and reopened (an optimised shard still held the old segment's memory until then); a
# write that ends leaves its tail optimised when the shard is closed (unless it is small: TAIL_PARTS), so
# the next open maps segments instead of rebuilding an appendable one (opening 276,000 points: 2.85 s -> 0.55 s).
# Figures in docs/performance.md ("Memory and the store at scale"). Optimising takes memory of its own
# (about 300 MB for 32,768 bm25 points): the 208 laws' bm25 ingest peaked at 876 MB compacting every
# 32,768 points and at 675 MB every 16,384, for 9 % more time (62.6 s -> 68.1 s, one run each, with
# the payload indexes of stores/base.py). Sizes are Qdrant's estimates, about 0.5 kB a bm25 point.
# A dense vector adds 4 bytes a dimension to what the optimiser reads and writes through mapped files
# (their pages count in the process's resident set while it runs): the 208 laws with 768-dimension
# vectors peaked at 700 MB compacting every 16,384 points, 586-589 MB every 8,192 and 531-549 MB every
# 4,096, in the same time (114.9-121.1 s, back to back, 2026-12-04). But every compaction leaves
# segments of its own, and searches pay per segment: every 4,096 points made bm25 queries 7.1 -> 28 ms
# and hybrid ones 15 -> 37 ms; every 8,192 kept them at 4.9 and 14.4 ms. So a shard with dense vectors
# is compacted after as many bytes as COMPACT_POINTS bm25 points make (``compact_after``: 8,192 points
# at 768 dimensions), a bm25 point counting POINT_BYTES (its payload, about 1.7 kB with the chunk's
# text, and its bm25 vector, about 160 terms).
COMPACT_POINTS = 16_384
POINT_BYTES = 3_072
# 16 MB segments. 32 MB ones were measured and not kept (2026-12-03, one run each): a cold search over the
# 70,624-file split (276,368 points) opened 7 segments in 0.81-0.89 s instead of about 20 in 1.15-1.18 s,
# but the larger merges took the 17,656-file split's peak from 744 to 931 MB and the ×4 ingest from 420
# to 475 s (docs/performance.md).
SEGMENT_KB = 16_000
TRIM_POINTS = 4_096  # the freed heap given back to the system this often while writing (memory.py)
# A write that ends with fewer than 1/TAIL_PARTS of ``compact_after`` points not yet optimised (an amended
# article: one upsert and the file's other points retagged) leaves them in the appendable segment, flushed,
# instead of optimising at close: merging the 703 points of one law took 0.6 s of a 3.5 s ingest, and
# opening a shard with such a tail costs what opening it optimised does (0.18 s against 0.17 s, the 208
# laws with dense vectors). The tail is counted in the catalogue (``unoptimised``), so the next process
# that writes goes on counting and optimises once the tail is large.
TAIL_PARTS = 4
# What a search reads of each segment: the int8 copies of the dense vectors, the bm25 inverted index,
# the point ids and the payload indexes (not the float vectors nor the stored payloads, of which it
# reads its hits' pages only). Edge drops a segment's files from the page cache when a process closes
# it, so the next process faults them in again 4 KB at a time (about 120 MB, 35,000 reads, for the 208
# laws with dense vectors); read ahead in the background while the question is embedded, the first
# hybrid query took 0.22 s instead of 0.65 s (``EdgeCollection.expect_queries``).
QUERY_FILES = ("quantized.data", "inverted_index.dat", "/id_tracker.", "/payload_index/")
INDEXING_KB = 1_000  # an appendable segment smaller than this (about 2,000 points) is left as it is
# Dense vectors are searched flat (every point scored), over int8 copies with the best candidates rescored
# on the float vectors, instead of through an HNSW graph. Edge builds the graph while it optimises, holding
# Python's lock: 69,000 768-dimension points spent 98 s optimising with HNSW and 5 s flat + int8, on the
# same loaded machine; a query took 10.6 ms through the graph and 6.5 ms flat + int8, whose top 10 was the
# exact one (2026-12-03; docs/performance.md). Flat search grows with the collection (about 26 ms a query
# at 276,000 points); a Qdrant server keeps its HNSW index (stores/client.py).
FLAT_DENSE = qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)
INT8 = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=False)
RESCORE = qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=True, oversampling=2.0))
# The document's fields a search filters or facets by, folded into one keyword array of "field:value"
# (``document_keys``), so a shard holds four payload indexes (source, document_keys, valid_from, valid_to)
# instead of nine. Opening a shard costs about 5 ms per index per segment (each index's null-index flags
# are read): opening the ×4 laws' 17 segments took 0.77 s with nine, 0.38 s with four (2026-12-03,
# docs/performance.md). A shard made before this keeps its nine indexes and per-field filters (``_folds``);
# `legal-rag rebuild` gives it the four. A Qdrant server keeps one index per field (stores/client.py).
DOCUMENT_KEYS = "document_keys"
FOLDED_FIELDS = ("law", "article", "number", "doc_type", "issuer", "issued_on")
KEYWORD_INDEXES = ("source", DOCUMENT_KEYS)


def is_local_mode_folder(path: str | Path) -> bool:
    """True for a folder written by qdrant-client's local mode (and not yet moved to Edge)."""
    root = Path(path)
    return (root / "meta.json").is_file() and not (root / CATALOG).exists()


def in_use_error(path: str | Path) -> StoreError:
    return StoreError(
        f"The embedded Qdrant folder {path} is in use by another process (an ingest run, a search, or a "
        "Python session)",
        "wait for it to finish and try again, or use a Qdrant server (QDRANT_URL) for concurrent access",
    )


def _engine_error(exc: Exception, path: str | Path) -> Exception:
    if "WouldBlock" in str(exc):
        return in_use_error(path)
    return exc


def document_keys(payload: dict[str, Any]) -> list[str]:
    """``FOLDED_FIELDS`` of a payload as "field:value" keywords (a list value gives one per item)."""
    keys: list[str] = []
    for name in FOLDED_FIELDS:
        value = payload.get(name)
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is not None and item != "":
                keys.append(f"{name}:{item}")
    return keys


def with_document_keys(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload as Edge stores it: the pipeline's fields and their ``document_keys``."""
    return {**payload, DOCUMENT_KEYS: document_keys(payload)}


def _filter(where: Where | None, folds: bool = True) -> qe.Filter | None:
    """``where`` as Edge's filter; ``folds``: the shard has ``document_keys`` (else one index per field)."""
    if not where:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    for key, value in where.items():
        if key == VALID_ON:  # in force that day: not starting after it, not ended on or before it
            must_not.append(qe.FieldCondition(key="valid_from", range=qe.RangeDateTime(gt=str(value))))
            must_not.append(qe.FieldCondition(key="valid_to", range=qe.RangeDateTime(lte=str(value))))
            continue
        values = [value] if isinstance(value, str) else list(value)
        if folds and key in FOLDED_FIELDS:
            key, values = DOCUMENT_KEYS, [f"{key}:{v}" for v in values]
        match = qe.MatchValue(values[0]) if isinstance(value, str) else qe.MatchAny(values)
        must.append(qe.FieldCondition(key=key, match=match))
    return qe.Filter(must=must, must_not=must_not or None)


def _create_indexes(shard: qe.EdgeShard) -> None:
    """The payload indexes, memory-mapped in optimised segments (``Memory.Cold``)."""
    cold = qe.Memory.Cold
    for name in KEYWORD_INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.KeywordIndexParams(memory=cold)))
    for name in DATETIME_INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.DatetimeIndexParams(memory=cold)))


def _payload(payload: Any) -> dict[str, Any]:
    """A payload as the pipeline wrote it (without the engine's ``document_keys``)."""
    value = dict(payload or {})
    value.pop(DOCUMENT_KEYS, None)
    return value


def _stored(record: Any, vectors: bool) -> StoredPoint:
    point = StoredPoint(id=point_id(record.id), payload=_payload(record.payload))
    if vectors and isinstance(record.vector, dict):
        dense = record.vector.get("")
        if dense is not None:
            point.dense = list(dense)
        sparse = record.vector.get(SPARSE_NAME)
        if sparse is not None:
            point.sparse = (list(sparse.indices), list(sparse.values))
    elif vectors and isinstance(record.vector, list):
        point.dense = list(record.vector)
    return point


def compact_after(dense_size: int | None) -> int:
    """Points written between two optimisations of a shard with ``dense_size``-dimension vectors (None:
    bm25 only): COMPACT_POINTS bm25 points' worth of bytes (768 dimensions: 8,192 points)."""
    return max(1, COMPACT_POINTS * POINT_BYTES // (POINT_BYTES + 4 * (dense_size or 0)))


def _config(dense_size: int | None, sparse: bool = True) -> qe.EdgeConfig:
    """The project's layout. Vectors, the sparse index, payloads and point ids are ``Memory.Cold`` (read
    through the page cache, not held by the process): reopening 30,000 dense points takes 182 MB instead
    of 278 MB. Optimised segments hold at most ``SEGMENT_KB`` (see ``COMPACT_POINTS``); dense vectors are
    searched flat over int8 copies (``FLAT_DENSE``)."""
    cold = qe.Memory.Cold
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=dense_size, distance=qe.Distance.Cosine, memory=cold, hnsw_config=FLAT_DENSE, quantization_config=INT8
        ) if dense_size else {},
        sparse_vectors={SPARSE_NAME: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, memory=cold)} if sparse else {},
        payload_memory=cold,
        id_tracker_memory=cold,
        optimizers=qe.EdgeOptimizersConfig(max_segment_size=SEGMENT_KB, indexing_threshold=INDEXING_KB),
    )


def edge_point(point: PointRecord) -> qe.Point:
    vector: dict[str, Any] = {SPARSE_NAME: qe.SparseVector(indices=list(point.sparse[0]), values=list(point.sparse[1]))}
    if point.vector is not None:
        import numpy as np  # here: a search never needs it (100 ms of a cold `legal-rag search`)

        vector[""] = np.asarray(point.vector, dtype=np.float32).tolist()
    return qe.Point(id=point.id, vector=vector, payload=with_document_keys(point.payload))


class EdgeCollection(Collection):
    """The configured collection in an Edge folder; shards are opened on first use, closed by ``close``."""

    scores_in_python = False

    def __init__(self, store: Any, name: str | None = None, parent: EdgeCollection | None = None) -> None:
        self.store = store
        self.name = name or store.collection_name
        self.root = Path(store.path or ".legal_rag/qdrant")
        self._parent = parent
        self._shards: dict[str, qe.EdgeShard] = {} if parent is None else parent._shards
        # points written to each open shard since it was last optimised (see COMPACT_POINTS)
        self._unoptimised: dict[str, int] = {} if parent is None else parent._unoptimised
        # the open shards this process changed (written, deleted from, optimised, created): flushed on close
        self._changed: set[str] = set() if parent is None else parent._changed
        # the dense size of each open shard (None: bm25 only), for compact_after
        self._dense: dict[str, int | None] = {} if parent is None else parent._dense
        # whether each open shard filters by ``document_keys`` (see FOLDED_FIELDS)
        self._folded: dict[str, bool] = {} if parent is None else parent._folded
        self._owner: Any = None
        if parent is None:
            self.root.mkdir(parents=True, exist_ok=True)
            if is_local_mode_folder(self.root):
                self.lock()
                migrate_local_folder(self.root, store)

    def lock(self) -> None:
        """Take the folder for this process (on first write or shard open; reading the catalog needs none).

        Edge locks each shard's WAL; this lock covers the folder as a whole, so two processes never
        create collections or move the alias at the same time.
        """
        if self._parent is not None:
            self._parent.lock()
            return
        if self._owner is not None:
            return
        handle = open(self.root / OWNER, "a+")  # noqa: SIM115 - kept open while the folder is ours
        # A search holds the folder for a second or two: wait that long (the store's
        # lock_wait_seconds) before saying the folder is in use.
        deadline = time.monotonic() + float(getattr(self.store, "lock_wait_seconds", 0) or 0)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise in_use_error(self.root) from None
                time.sleep(0.1)
        self._owner = handle

    # ------------------------------------------------------------------ engine
    def close(self) -> None:
        if self._parent is not None:
            return
        try:
            while self._shards:
                self._close_shard(*self._shards.popitem())
        finally:
            if self._owner is not None:
                self._owner.close()  # releases the lock
                self._owner = None

    def _close_shard(self, physical: str, shard: qe.EdgeShard) -> None:
        """Close an open shard. If this process changed it: optimised first when the points written since
        it last was make a large tail (the next open maps segments and replays nothing; a small tail
        stays, counted: TAIL_PARTS), then flushed (closing a shard only searched: 41 ms with the flush,
        22-27 ms without, on the ×4 split's shard)."""
        try:
            tail = self._unoptimised.pop(physical, 0)
            if physical in self._changed:
                if tail * TAIL_PARTS >= self._compact_after(physical):
                    self._page_out(physical)  # what searches and checks read (memory.py)
                    shard.optimize()
                    tail = 0
                self._changed.discard(physical)
                shard.flush()
                self._count_tail(physical, tail)
        finally:
            shard.close()

    def _tail(self, physical: str) -> int:
        """Points left in the shard's appendable segment by earlier processes (``_close_shard``)."""
        return int((self.catalog()["collections"].get(physical) or {}).get("unoptimised") or 0)

    def _count_tail(self, physical: str, tail: int) -> None:
        """Record ``tail`` in the catalogue where it changed (a catalogued shard: not one being built)."""
        entry = self.catalog()["collections"].get(physical)
        if entry is not None and int(entry.get("unoptimised") or 0) != tail:
            with self._editing_catalog() as catalog:
                catalog["collections"][physical]["unoptimised"] = tail

    def expect_queries(self) -> threading.Thread | None:
        """Read ahead, in the background, the live shard's files a query reads (``QUERY_FILES``); returns
        the thread that asks for them."""
        physical = self.physical_name()
        if physical is None:
            return None
        segments = self.root / SHARDS / physical
        return read_ahead(p for p in segments.rglob("*") if any(part in p.as_posix() for part in QUERY_FILES))

    def release_memory(self) -> None:
        """The pages of the open shards' files leave the process's resident set (memory.py)."""
        for physical in list(self._shards):
            self._page_out(physical)

    def layout_advice(self) -> str | None:
        physical = self.physical_name()
        if physical is None or self._folds(physical):
            return None
        return (f"collection {self.name} keeps an index per document field (made before 2026-12-03): every "
                "search opens nine payload indexes; `legal-rag rebuild` makes a copy with four, for quicker searches")

    def _page_out(self, physical: str) -> None:
        page_out(self.root / SHARDS / physical)

    def view(self, physical: str) -> Collection:
        return EdgeCollection(self.store, physical, parent=self)

    def shard(self, physical: str | None = None) -> qe.EdgeShard:
        """The open shard of a physical collection (the live one by default)."""
        physical = physical or self.physical_name()
        if physical is None:
            raise StoreError(f"There is no collection {self.name} in {self.root}", "run `legal-rag ingest` first")
        shard = self._shards.get(physical)
        if shard is None:
            path = self.root / SHARDS / physical
            if not path.is_dir():
                raise StoreError(f"Collection {physical} is missing from {self.root}", "run `legal-rag rebuild`")
            self.lock()
            shard = self._shards[physical] = self._load(physical)
            self._unoptimised.setdefault(physical, self._tail(physical))
        return shard

    def _load(self, physical: str) -> qe.EdgeShard:
        """Open a shard with the project's optimiser settings (a shard created before them gets them)."""
        layout = self.layout(physical)
        try:
            shard = qe.EdgeShard.load(str(self.root / SHARDS / physical), _config(layout.dense, layout.sparse))
        except Exception as exc:  # noqa: BLE001 - Edge raises plain Exception
            raise _engine_error(exc, self.root) from None
        self._folded[physical] = DOCUMENT_KEYS in shard.info().payload_schema
        return shard

    def _dense_size(self, physical: str) -> int | None:
        if physical not in self._dense:  # read once per shard, from the catalogue
            self._dense[physical] = self.layout(physical).dense
        return self._dense[physical]

    def _compact_after(self, physical: str) -> int:
        return compact_after(self._dense_size(physical))

    def _folds(self, physical: str) -> bool:
        """True when ``physical`` filters by ``document_keys``; a shard made before them has an index per field."""
        self.shard(physical)
        return self._folded[physical]

    def _written(self, physical: str, points: int) -> qe.EdgeShard:
        """Count ``points`` written to ``physical``; past ``compact_after`` its dense size, optimise and
        reopen the shard (the appendable segment's memory is given back). Returns the shard to go on with."""
        self._changed.add(physical)
        before = self._unoptimised.get(physical, 0)
        written = before + points
        if written < self._compact_after(physical):
            self._unoptimised[physical] = written
            if written // TRIM_POINTS != before // TRIM_POINTS:
                give_back()
                self._page_out(physical)  # what looking up the written ids read (memory.py)
            return self._shards[physical]
        shard = self._shards.pop(physical)
        try:
            self._page_out(physical)  # what the write read and wrote (memory.py)
            shard.optimize()
            shard.flush()
        finally:
            shard.close()
        self._unoptimised[physical] = 0
        give_back()  # the appendable segment's memory, freed by close
        shard = self._shards[physical] = self._load(physical)
        self._page_out(physical)  # the pages the optimiser and the reopening read (memory.py)
        return shard

    def writes(self, points: int) -> PointWrites:
        """A sync of HELPER_MIN_POINTS points or more into a shard with dense vectors is written by a
        process of its own (stores/edge_process.py: Edge converts payloads and optimises under Python's
        lock, which the embedding's threads need meanwhile); other writes here. A bm25-only write gained
        nothing from it (97-105 s either way for the 208 laws) and the two processes held 115 MB more
        (docs/performance.md, eleventh pass)."""
        from ..helper import HELPER_MIN_POINTS

        physical = self.physical_name()
        if points < HELPER_MIN_POINTS or physical is None or not self._dense_size(physical):
            return InlineWrites(self)
        from .edge_process import EdgeWriteProcess  # here: a search never needs it

        try:
            return EdgeWriteProcess(self, physical)
        except OSError as exc:
            log.warning("no write process (%s): the run writes its points itself", exc)
            return InlineWrites(self)

    def hand_over(self, physical: str) -> None:
        """Close this process's handle on ``physical`` (compacted if it has points not yet) for a write
        process to open; the folder's lock stays here. The next use here opens it again."""
        self.lock()
        shard = self._shards.pop(physical, None)
        if shard is not None:
            self._close_shard(physical, shard)

    def _target(self, physical: str | None) -> str | None:
        return physical or self.physical_name()

    def optimize(self, physical: str | None = None) -> None:
        """Merge segments and build the indexes (after a rebuild or a large write)."""
        shard = self.shard(physical)
        self._changed.add(self._target(physical))
        shard.optimize()
        self._unoptimised[self._target(physical)] = 0

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> dict[str, Any]:
        try:
            value = json.loads((self.root / CATALOG).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"aliases": {}, "collections": {}}
        except ValueError as exc:
            raise StoreError(
                f"The catalog {self.root / CATALOG} is not valid JSON ({exc})",
                "restore it from a backup, or move the folder away and run `legal-rag ingest` again",
            ) from None
        value.setdefault("aliases", {})
        value.setdefault("collections", {})
        return value

    @contextmanager
    def _editing_catalog(self) -> Iterator[dict[str, Any]]:
        with _locked(self.root):
            catalog = self.catalog()
            yield catalog
            _write_json(self.root / CATALOG, catalog)

    # ------------------------------------------------------------------ layout
    def physical_names(self) -> list[str]:
        shards = self.root / SHARDS
        return sorted(p.name for p in shards.iterdir() if p.is_dir()) if shards.is_dir() else []

    def has_physical(self, physical: str) -> bool:
        return physical in self.catalog()["collections"] and (self.root / SHARDS / physical).is_dir()

    def alias_target(self) -> str | None:
        target = self.catalog()["aliases"].get(self.name)
        return target if target and self.has_physical(target) else None

    def layout(self, physical: str, fix: str = "") -> Layout:
        entry = self.catalog()["collections"].get(physical)
        if entry is None:  # a shard created but never catalogued (killed): read the engine's own config
            try:
                config = json.loads((self.root / SHARDS / physical / "edge_config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise StoreError(f"Collection {physical} is not in {self.root}", fix or "run `legal-rag rebuild`") from None
            dense = ((config.get("vectors") or {}).get("") or {}).get("size")
            return Layout(dense, SPARSE_NAME in (config.get("sparse_vectors") or {}), {})
        return Layout(entry.get("dense"), bool(entry.get("sparse", True)), dict(entry.get("metadata") or {}))

    def create_physical(self, physical: str, dense_size: int | None, metadata: dict[str, Any] | None = None,
                        sparse: bool = True) -> None:
        self.lock()
        path = self.root / SHARDS / physical
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shard = qe.EdgeShard.create(str(path), _config(dense_size, sparse))
        except Exception as exc:  # noqa: BLE001
            raise _engine_error(exc, self.root) from None
        _create_indexes(shard)
        self._shards[physical] = shard
        self._changed.add(physical)
        self._folded[physical] = True
        with self._editing_catalog() as catalog:
            catalog["collections"][physical] = {"dense": dense_size, "sparse": sparse, "metadata": metadata or {}}

    def drop_physical(self, physical: str) -> None:
        self.lock()
        self._changed.discard(physical)
        shard = self._shards.pop(physical, None)
        if shard is not None:
            shard.close()
        with self._editing_catalog() as catalog:
            catalog["collections"].pop(physical, None)
            for alias, target in list(catalog["aliases"].items()):
                if target == physical:
                    del catalog["aliases"][alias]
        shutil.rmtree(self.root / SHARDS / physical, ignore_errors=True)

    def point_alias(self, physical: str) -> None:
        self.lock()
        with self._editing_catalog() as catalog:
            catalog["aliases"][self.name] = physical

    # ------------------------------------------------------------------ reads
    def scroll(self, *, physical=None, fields=True, vectors=False, where=None, offset=None, limit=2048):
        target = self._target(physical)
        if target is None:
            return [], None
        records, next_offset = self.shard(target).scroll(
            qe.ScrollRequest(offset=offset, limit=limit, filter=_filter(where, self._folds(target)),
                             with_payload=fields, with_vector=vectors)
        )
        return [_stored(r, vectors) for r in records], (None if next_offset is None else str(next_offset))

    def retrieve(self, ids, *, physical=None, fields=False, vectors=False):
        target = self._target(physical)
        if target is None or not ids:
            return []
        records = self.shard(target).retrieve(list(ids), with_payload=fields, with_vector=vectors)
        return [_stored(r, vectors) for r in records]

    def missing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` the shard holds no point of: Edge's records read for their id only."""
        target = self.physical_name()
        if target is None:
            return set(ids)
        found = {str(record.id) for record in self.shard(target).retrieve(list(ids), False, False)}
        return {i for i in ids if i not in found}

    def count(self, source: str | None = None, *, physical: str | None = None) -> int:
        target = self._target(physical)
        if target is None:
            return 0
        flt = _filter({"source": source}) if source else None
        return self.shard(target).count(qe.CountRequest(exact=True, filter=flt))

    def query(self, *, sparse=None, dense=None, where=None, limit=10, fields=True, fusion_weights=None):
        target = self.physical_name()
        if target is None:
            return []
        flt = _filter(where, self._folds(target))
        sparse_query = (
            qe.Query.Nearest(qe.SparseVector(indices=list(sparse[0]), values=list(sparse[1])), using=SPARSE_NAME)
            if sparse is not None
            else None
        )
        dense_query = qe.Query.Nearest([float(v) for v in dense]) if dense is not None else None
        if sparse_query is not None and dense_query is not None:
            request = qe.QueryRequest(
                prefetches=[
                    qe.Prefetch(query=sparse_query, limit=limit, filter=flt),
                    qe.Prefetch(query=dense_query, limit=limit, filter=flt, params=RESCORE),
                ],
                query=qe.Fusion.Rrf(k=RRF_K, weights=list(fusion_weights) if fusion_weights else None),
                limit=limit,
                with_payload=fields,
            )
        elif sparse_query is not None or dense_query is not None:
            request = qe.QueryRequest(
                query=sparse_query if sparse_query is not None else dense_query,
                limit=limit,
                filter=flt,
                with_payload=fields,
                params=RESCORE if sparse_query is None else None,
            )
        else:
            return []
        points = self.shard(target).query(request)
        return [ScoredPoint(point_id(p.id), float(p.score), _payload(p.payload)) for p in points]

    def _source_counts(self) -> dict[str, int] | None:
        """One exact facet over ``source`` instead of a count per file."""
        target = self.physical_name()
        if target is None:
            return None
        response = self.shard(target).facet(qe.FacetRequest(key="source", limit=FACET_LIMIT, exact=True))
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def facet_values(self, key: str) -> list[str]:
        target = self.physical_name()
        if target is None:
            return []
        try:
            if key in FOLDED_FIELDS and self._folds(target):
                # the values only, no counts: an estimated facet (0.08 s over the ×4 laws, exact 0.2-0.4 s)
                response = self.shard(target).facet(qe.FacetRequest(key=DOCUMENT_KEYS, limit=FACET_LIMIT, exact=False))
                prefix = f"{key}:"
                values = (str(hit.value) for hit in response.hits)
                return sorted(v[len(prefix):] for v in values if v.startswith(prefix) and len(v) > len(prefix))
            response = self.shard(target).facet(qe.FacetRequest(key=key, limit=100_000, exact=True))
            return [str(hit.value) for hit in response.hits if hit.value]
        except Exception:  # noqa: BLE001 - a field without a keyword index
            return sorted({str(p.payload[key]) for p in self.iter_points(fields=[key]) if p.payload.get(key)})

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[PointRecord], collection: str | None = None) -> int:
        physical = self._target(collection)
        shard = self.shard(physical)
        written = 0
        batch: list[qe.Point] = []
        for point in points:
            batch.append(edge_point(point))
            if len(batch) >= UPSERT_BATCH:
                shard.update(qe.UpdateOperation.upsert_points(batch))
                shard = self._written(physical, len(batch))
                written += len(batch)
                batch = []
        if batch:
            shard.update(qe.UpdateOperation.upsert_points(batch))
            self._written(physical, len(batch))
            written += len(batch)
        return written

    def delete(self, ids: Sequence[str], collection: str | None = None) -> int:
        ids = list(ids)
        if not ids:
            return 0
        shard = self.shard(collection)
        self._changed.add(self._target(collection))
        for start in range(0, len(ids), 4096):
            shard.update(qe.UpdateOperation.delete_points(ids[start : start + 4096]))
        return len(ids)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any], collection: str | None = None) -> int:
        """A point of an optimised segment whose payload changes is copied into the appendable one:
        counted like a write (``COMPACT_POINTS``). A change to a document field rewrites the points'
        ``document_keys`` too."""
        ids = list(ids)
        if not ids:
            return 0
        physical = self._target(collection)
        updated = 0
        for start in range(0, len(ids), UPSERT_BATCH * 4):
            part = ids[start : start + UPSERT_BATCH * 4]
            shard = self.shard(physical)
            for group, values in self._with_keys(shard, part, payload):
                try:
                    shard.update(qe.UpdateOperation.set_payload(group, values))
                except Exception:  # noqa: BLE001 - "No point with id …": update the ones that are there
                    group = [str(p.id) for p in shard.retrieve(group, with_payload=False, with_vector=False)]
                    if group:
                        shard.update(qe.UpdateOperation.set_payload(group, values))
                updated += len(group)
            self._written(physical, len(part))
        return updated

    @staticmethod
    def _with_keys(shard: qe.EdgeShard, ids: list[str], payload: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
        """``payload`` for ``ids``, or where it changes a document field, per group of points with the
        same new ``document_keys`` (their other document fields read back)."""
        if not set(payload) & set(FOLDED_FIELDS):
            return [(ids, payload)]
        groups: dict[tuple[str, ...], list[str]] = {}
        for record in shard.retrieve(ids, with_payload=list(FOLDED_FIELDS), with_vector=False):
            keys = tuple(document_keys({**(record.payload or {}), **payload}))
            groups.setdefault(keys, []).append(str(record.id))
        return [(group, {**payload, DOCUMENT_KEYS: list(keys)}) for keys, group in groups.items()]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- migration
def migrate_local_folder(root: Path, store: Any, batch: int = 1024) -> dict[str, int]:
    """Copy every collection of a qdrant-client local-mode folder into Edge shards in the same folder.

    Points keep their ids, vectors and payload; aliases are kept. Counts are verified per
    collection before the catalog is written; only then are the local-mode files removed. A copy
    killed half-way leaves the local-mode folder as it was, and the next open starts again.
    Returns ``{collection: points}``.
    """
    from .client import ClientCollection, open_client

    with _locked(root):
        if not is_local_mode_folder(root):
            return {}
        shutil.rmtree(root / SHARDS, ignore_errors=True)  # a copy killed half-way
        client = open_client({"path": str(root)}, str(root))
        copied: dict[str, int] = {}
        catalog: dict[str, Any] = {"aliases": {}, "collections": {}}
        try:
            source = ClientCollection(client, store.model_copy(update={"url": None, "host": None}))
            for physical in source.physical_names():
                layout = source.layout(physical, "move the folder away and run `legal-rag ingest` again")
                path = root / SHARDS / physical
                path.parent.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), _config(layout.dense, True))
                try:
                    _create_indexes(shard)
                    pending: list[qe.Point] = []
                    for point in source.iter_points(physical=physical, fields=True, vectors=True, batch=batch):
                        sparse = point.sparse or bm25_from_page_content(point.payload, source.lexical.variant)
                        pending.append(edge_point(PointRecord(point.id, point.dense, sparse, point.payload)))
                        if len(pending) >= batch:
                            shard.update(qe.UpdateOperation.upsert_points(pending))
                            pending = []
                    if pending:
                        shard.update(qe.UpdateOperation.upsert_points(pending))
                    have, want = shard.count(qe.CountRequest(exact=True)), source.count(physical=physical)
                    if have != want:
                        raise StoreError(
                            f"Moving {physical} from qdrant-client's local mode to Qdrant Edge copied {have} of "
                            f"{want} points; the local-mode folder {root} was kept",
                            "run the command again; if it keeps failing, set QDRANT_ENGINE=client",
                        )
                    shard.flush()
                finally:
                    shard.close()
                copied[physical] = want
                catalog["collections"][physical] = {
                    "dense": layout.dense,
                    "sparse": True,
                    "metadata": layout.metadata,
                }
            for alias in client.get_aliases().aliases:
                catalog["aliases"][alias.alias_name] = alias.collection_name
        finally:
            client.close()
        _write_json(root / CATALOG, catalog)
        for leftover in ("meta.json", "collection", ".lock"):
            target = root / leftover
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
    log.warning(
        "moved the embedded Qdrant folder %s from qdrant-client's local mode to Qdrant Edge (%s); counts verified",
        root,
        ", ".join(f"{k}: {v} points" for k, v in copied.items()) or "no collections",
    )
    return copied

