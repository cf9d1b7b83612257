"""The qdrant-client side of the store seam: a Qdrant server or cluster, or qdrant-client's local mode.

Local mode (``QDRANT_ENGINE=client``) is for folders that other qdrant-client programs open too
(LangChain's ``QdrantVectorStore``), and the stand-in for a server in the tests: it has the
server's Python API, but keeps every point in memory and scores sparse and filtered queries in
Python, so ``scores_in_python`` is set there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from ..errors import StoreError
from .base import (
    DATETIME_INDEXES,
    FACET_LIMIT,
    VALID_ON,
    KEYWORD_INDEXES,
    SPARSE_NAME,
    Collection,
    Layout,
    PointRecord,
    ScoredPoint,
    StoredPoint,
    Where,
    point_id,
)

log = logging.getLogger(__name__)


def open_client(kwargs: dict[str, Any], path: str | None) -> QdrantClient:
    """``QdrantClient(**kwargs)``; a local folder held by another process becomes a StoreError."""
    try:
        client = QdrantClient(**kwargs)
    except RuntimeError as exc:
        if "already accessed by another instance" in str(exc):
            raise StoreError(
                f"The embedded Qdrant folder {path} is in use by another process (an ingest run, "
                "a search, or a Python session)",
                "wait for it to finish and try again, or use a Qdrant server (QDRANT_URL) for concurrent access",
            ) from None
        raise
    if path is not None:
        _speed_up_local_storage(client)
    return client


def _speed_up_local_storage(client: QdrantClient) -> None:
    """Local mode commits each point to SQLite separately; WAL makes those commits cheap.

    Measured (benchmarks/RESULTS.md): 781 points/s as shipped, 1,870 with WAL. WAL with
    synchronous=NORMAL stays consistent after a crash of the process.
    """
    local = getattr(client, "_client", None)
    for collection in getattr(local, "collections", {}).values():
        _tune_sqlite(collection)


def _tune_sqlite(collection: Any) -> None:
    storage = getattr(getattr(collection, "storage", None), "storage", None)
    if storage is not None:
        storage.execute("PRAGMA journal_mode=WAL")
        storage.execute("PRAGMA synchronous=NORMAL")


def _filter(where: Where | None) -> models.Filter | None:
    if not where:
        return None
    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    for key, value in where.items():
        if key == VALID_ON:  # in force that day: not starting after it, not ended on or before it
            must_not.append(models.FieldCondition(key="valid_from", range=models.DatetimeRange(gt=str(value))))
            must_not.append(models.FieldCondition(key="valid_to", range=models.DatetimeRange(lte=str(value))))
        elif isinstance(value, str):
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        else:
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
    return models.Filter(must=must, must_not=must_not or None)


def _stored(record: Any, vectors: bool) -> StoredPoint:
    point = StoredPoint(id=point_id(record.id), payload=dict(record.payload or {}))
    if vectors:
        vector = record.vector
        if isinstance(vector, list):
            point.dense = [float(v) for v in vector]
        elif isinstance(vector, dict):
            dense = vector.get("")
            if dense is not None:
                point.dense = [float(v) for v in dense]
            sparse = vector.get(SPARSE_NAME)
            if sparse is not None:
                point.sparse = (list(sparse.indices), [float(v) for v in sparse.values])
    return point


class ClientCollection(Collection):
    """The configured collection through qdrant-client (server, cluster or local mode)."""

    def __init__(
        self, client: QdrantClient | Callable[[], QdrantClient], store: Any, name: str | None = None, owned: bool = True
    ) -> None:
        # ``client`` may be an opener, called on first use (local mode loads every point to open).
        if isinstance(client, QdrantClient):
            self._client: QdrantClient | None = client
            self._opener: Callable[[], QdrantClient] | None = None
        else:
            self._client, self._opener = None, client
        self.store = store
        self.name = name or store.collection_name
        self.local = not store.server_mode
        self.scores_in_python = self.local
        self._owned = owned

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            assert self._opener is not None
            self._client = self._opener()
        return self._client

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def lock(self) -> None:
        self.client  # noqa: B018 - opening local mode takes its folder lock

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None

    def view(self, physical: str) -> Collection:
        return ClientCollection(self.client, self.store, physical, owned=False)

    # ------------------------------------------------------------------ layout
    def _local_meta(self) -> dict[str, Any] | None:
        """Local mode's meta.json (collections and aliases), read without loading any point."""
        try:
            with open(os.path.join(self.store.path or "", "meta.json"), encoding="utf-8") as handle:
                meta = json.load(handle)
            return meta if isinstance(meta, dict) else None
        except (OSError, ValueError):
            return None

    def physical_name(self) -> str | None:
        if not self.is_open and self.local:
            meta = self._local_meta()
            if meta is not None:
                target = (meta.get("aliases") or {}).get(self.name)
                if target:
                    return target
                return self.name if self.name in (meta.get("collections") or {}) else None
        return super().physical_name()

    def physical_names(self) -> list[str]:
        return [c.name for c in self.client.get_collections().collections]

    def has_physical(self, physical: str) -> bool:
        return self.client.collection_exists(physical)

    def alias_target(self) -> str | None:
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.name:
                return alias.collection_name
        return None

    def layout(self, physical: str, fix: str = "") -> Layout:
        config = self.client.get_collection(physical).config
        vectors = config.params.vectors
        dense = None
        if isinstance(vectors, models.VectorParams):
            dense = vectors.size
        elif isinstance(vectors, dict) and "" in vectors:
            dense = vectors[""].size
        elif isinstance(vectors, dict) and vectors:
            raise StoreError(
                f"Collection {physical} has named dense vectors {sorted(vectors)}, not this project's layout",
                fix or "rebuild it from the data with `legal-rag ingest` into another COLLECTION_NAME",
            )
        sparse = (config.params.sparse_vectors or {}).get(SPARSE_NAME)
        return Layout(dense, sparse is not None, dict(getattr(config, "metadata", None) or {}))

    def create_physical(self, physical: str, dense_size: int | None, metadata: dict[str, Any] | None = None) -> None:
        store = self.store
        self.client.create_collection(
            physical,
            vectors_config=(
                models.VectorParams(size=dense_size, distance=models.Distance.COSINE, on_disk=store.on_disk or None)
                if dense_size
                else {}
            ),
            sparse_vectors_config={
                SPARSE_NAME: models.SparseVectorParams(
                    modifier=models.Modifier.IDF,
                    index=models.SparseIndexParams(on_disk=store.on_disk or None),
                )
            },
            shard_number=store.shard_number,
            replication_factor=store.replication_factor,
            write_consistency_factor=store.write_consistency_factor,
            on_disk_payload=store.on_disk or None,
        )
        if not self.local:  # local mode ignores payload indexes (and warns)
            for name in KEYWORD_INDEXES:
                self.client.create_payload_index(physical, name, models.PayloadSchemaType.KEYWORD)
            for name in DATETIME_INDEXES:
                self.client.create_payload_index(physical, name, models.PayloadSchemaType.DATETIME)
        else:
            local = getattr(self.client, "_client", None)
            collection = getattr(local, "collections", {}).get(physical)
            if collection is not None:
                _tune_sqlite(collection)
        if metadata:
            try:
                self.client.update_collection(physical, metadata=metadata)
            except Exception:  # noqa: BLE001 - a server before 1.16 has no collection metadata
                log.info("collection metadata not supported by this Qdrant; layout stamp of %s skipped", physical)

    def drop_physical(self, physical: str) -> None:
        self.client.delete_collection(physical)

    def point_alias(self, physical: str) -> None:
        actions: list[Any] = []
        if self.alias_target() is not None:
            actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.name)))
        actions.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical, alias_name=self.name))
        )
        self.client.update_collection_aliases(change_aliases_operations=actions)

    # ------------------------------------------------------------------ reads
    def scroll(self, *, physical=None, fields=True, vectors=False, where=None, offset=None, limit=2048):
        target = physical or self.name
        if self.local and where is None:
            # Local mode sorts every id of the collection on each scroll call: one page, not n/2048.
            limit = max(limit, self.client.count(target, exact=True).count + 1)
        records, next_offset = self.client.scroll(
            target,
            scroll_filter=_filter(where),
            limit=limit,
            offset=offset,
            with_payload=fields,
            with_vectors=vectors,
        )
        return [_stored(r, vectors) for r in records], (None if next_offset is None else str(next_offset))

    def retrieve(self, ids, *, physical=None, fields=False, vectors=False):
        records = self.client.retrieve(physical or self.name, list(ids), with_payload=fields, with_vectors=vectors)
        return [_stored(r, vectors) for r in records]

    def count(self, source: str | None = None, *, physical: str | None = None) -> int:
        target = physical or self.name
        if physical is None and not self.exists():
            return 0
        flt = _filter({"source": source}) if source else None
        return self.client.count(target, count_filter=flt, exact=True).count

    def query(self, *, sparse=None, dense=None, where=None, limit=10, fields=True, fusion_weights=None):
        flt = _filter(where)
        vector = models.SparseVector(indices=sparse[0], values=sparse[1]) if sparse is not None else None
        dense_list = None if dense is None else [float(v) for v in dense]
        if vector is not None and dense_list is not None:
            fusion: Any = models.FusionQuery(fusion=models.Fusion.RRF)
            if fusion_weights is not None:
                fusion = models.RrfQuery(rrf=models.Rrf(weights=list(fusion_weights)))
            response = self.client.query_points(
                self.name,
                prefetch=[
                    models.Prefetch(query=vector, using=SPARSE_NAME, limit=limit, filter=flt),
                    models.Prefetch(query=dense_list, limit=limit, filter=flt),
                ],
                query=fusion,
                limit=limit,
                with_payload=fields,
            )
        elif vector is not None:
            response = self.client.query_points(
                self.name, query=vector, using=SPARSE_NAME, limit=limit, query_filter=flt, with_payload=fields
            )
        elif dense_list is not None:
            response = self.client.query_points(
                self.name, query=dense_list, limit=limit, query_filter=flt, with_payload=fields
            )
        else:
            return []
        return [ScoredPoint(point_id(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def _source_counts(self) -> dict[str, int] | None:
        """On a server, one exact facet over ``source`` instead of a count request per file (70,000 for the
        daily comparison, ingest/verify.py); local mode counts in one pass of its own."""
        if self.local:
            return None
        try:
            response = self.client.facet(self.name, key="source", limit=FACET_LIMIT, exact=True)
        except Exception:  # noqa: BLE001 - a collection without a keyword index on source: one count each
            return None
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def facet_values(self, key: str) -> list[str]:
        try:
            response = self.client.facet(self.name, key=key, limit=100_000, exact=True)
            return [str(hit.value) for hit in response.hits if hit.value]
        except Exception:  # noqa: BLE001 - e.g. a server collection without a keyword index on the key
            values = {str(p.payload[key]) for p in self.iter_points(fields=[key]) if p.payload.get(key)}
            return sorted(values)

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[PointRecord], collection: str | None = None) -> int:
        target = collection or self.name
        written = 0
        batch: list[models.PointStruct] = []
        for point in points:
            vector: dict[str, Any] = {
                SPARSE_NAME: models.SparseVector(indices=list(point.sparse[0]), values=list(point.sparse[1]))
            }
            if self.local:
                # Local mode pickles each point into SQLite and loads them all when the folder is
                # opened: a float32 array takes 3 KB there and loads as one block, where a list of 768
                # Python floats takes 7 KB and 25 KB of memory while loading.
                if point.vector is not None:
                    vector[""] = np.asarray(point.vector, dtype=np.float32)
                batch.append(models.PointStruct.model_construct(id=point.id, vector=vector, payload=point.payload))
            else:
                if point.vector is not None:
                    vector[""] = np.asarray(point.vector, dtype=np.float32).tolist()
                batch.append(models.PointStruct(id=point.id, vector=vector, payload=point.payload))
            if len(batch) >= self.store.upsert_batch_size:
                self.client.upsert(target, points=batch, wait=True)
                written += len(batch)
                batch = []
        if batch:
            self.client.upsert(target, points=batch, wait=True)
            written += len(batch)
        return written

    def delete(self, ids: Sequence[str], collection: str | None = None) -> int:
        target = collection or self.name
        ids = list(ids)
        for start in range(0, len(ids), 2048):
            self.client.delete(target, points_selector=models.PointIdsList(points=ids[start : start + 2048]), wait=True)
        return len(ids)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any], collection: str | None = None) -> int:
        target = collection or self.name
        # only the ids that are there (a server refuses the whole call for one missing id)
        present = [str(p.id) for p in self.client.retrieve(target, ids=list(ids), with_payload=False)] if ids else []
        for start in range(0, len(present), 2048):
            self.client.set_payload(target, payload=payload, points=present[start : start + 2048], wait=True)
        return len(present)
