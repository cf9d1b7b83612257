"""The Qdrant store: one resource owning the connection, the collection layout and all writes.

Embedded (local) mode by default, in a folder outside the data folder; a server or cluster when a
URL or host is set. Local mode takes an exclusive lock on its folder, so the client is opened only
inside ``connect()`` (a run step, a CLI command) and closed right after: no long-lived process keeps
the folder, and ``legal-rag search`` works between runs.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field
from qdrant_client import QdrantClient, models

from ..errors import StoreError

log = logging.getLogger(__name__)

SPARSE_NAME = "bm25"
# Payload fields read back when the pipeline compares the collection with the data folder.
INDEX_FIELDS = ["source", "embedding_model", "doc_sha256"]


@dataclass(frozen=True)
class PointRecord:
    id: str
    vector: Sequence[float] | None
    sparse: tuple[list[int], list[float]]
    payload: dict[str, Any]


class QdrantStore(dg.ConfigurableResource):
    """Where the points live. Embedded folder by default; a server when ``url`` or ``host`` is set."""

    path: str | None = Field(default=".legal_rag/qdrant", description="Embedded Qdrant folder (local mode).")
    url: str | None = Field(default=None, description="Qdrant server URL, e.g. https://qdrant.example.vn:6333.")
    host: str | None = Field(default=None, description="Qdrant server host (instead of url).")
    port: int = Field(default=6333, description="REST port of the server.")
    grpc_port: int = Field(default=6334, description="gRPC port of the server.")
    prefer_grpc: bool = Field(default=False, description="Talk gRPC to the server when possible.")
    https: bool | None = Field(default=None, description="Force HTTPS on or off (default: from the URL).")
    api_key: str | None = Field(default=None, description="Server API key (QDRANT_API_KEY); never logged.")
    timeout_seconds: int = Field(default=60, description="Request timeout for server mode.")
    collection_name: str = Field(default="legal_rag", description="Collection (or alias) searched and written.")
    shard_number: int | None = Field(default=None, description="Shards of a new collection (cluster).")
    replication_factor: int | None = Field(default=None, description="Replicas of each shard (cluster).")
    write_consistency_factor: int | None = Field(default=None, description="Replicas that must ack a write.")
    on_disk: bool = Field(default=False, description="Keep vectors and payload on disk (large corpora).")
    upsert_batch_size: int = Field(default=512, description="Points per upsert request.")

    # ------------------------------------------------------------------ connection
    @property
    def server_mode(self) -> bool:
        return bool(self.url or self.host)

    def describe(self) -> str:
        if self.server_mode:
            where = self.url or f"{self.host}:{self.port}"
            return f"Qdrant server {where}, collection {self.collection_name}"
        return f"embedded Qdrant at {self.path}, collection {self.collection_name}"

    def client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments given to ``QdrantClient`` (unit-tested; never logged: holds the key)."""
        if not self.server_mode:
            return {"path": self.path}
        kwargs: dict[str, Any] = {
            "port": self.port,
            "grpc_port": self.grpc_port,
            "prefer_grpc": self.prefer_grpc,
            "timeout": self.timeout_seconds,
        }
        if self.url:
            kwargs["url"] = self.url
        else:
            kwargs["host"] = self.host
        if self.https is not None:
            kwargs["https"] = self.https
        if self.api_key:
            kwargs["api_key"] = self.api_key
        return kwargs

    def plain_http_key_warning(self) -> str | None:
        """A warning when an API key would travel in clear text to a host that is not local."""
        if not (self.server_mode and self.api_key):
            return None
        if self.url:
            parsed = urllib.parse.urlparse(self.url if "://" in self.url else f"http://{self.url}")
            scheme, host = parsed.scheme, parsed.hostname or ""
        else:
            scheme, host = ("https" if self.https else "http"), self.host or ""
        if self.https is True:
            scheme = "https"
        if scheme == "https" or _is_local_host(host):
            return None
        return (
            f"QDRANT_API_KEY is sent over plain HTTP to {host}: anyone on the network path can read it; "
            "use an https:// QDRANT_URL (or set https) for a server that is not on this machine."
        )

    @contextmanager
    def connect(self, lazy: bool = False) -> Iterator[Collection]:
        """Open the client for the duration of a block, and close it (releasing the local lock).

        ``lazy=True`` opens it on first use only: opening embedded Qdrant loads every point of the
        folder into memory (seconds and hundreds of MB for a national corpus), which an ingest whose
        files are all in sync with the collection never needs.
        """
        warning = self.plain_http_key_warning()
        if warning:
            log.warning(warning)
        collection = Collection(self._open, self)
        try:
            if not lazy:
                collection.client  # noqa: B018 - open now (takes the local lock)
            yield collection
        finally:
            collection.close()

    def _open(self) -> QdrantClient:
        try:
            client = QdrantClient(**self.client_kwargs())
        except RuntimeError as exc:
            if "already accessed by another instance" in str(exc):
                raise StoreError(
                    f"The embedded Qdrant folder {self.path} is in use by another process (an ingest run, "
                    "a search, or a Python session)",
                    "wait for it to finish and try again, or use a Qdrant server (QDRANT_URL) for concurrent access",
                ) from None
            raise
        if not self.server_mode:
            _speed_up_local_storage(client)
        return client

    def location(self) -> str:
        """Where the collection lives (no secret): the store part of the per-file sync markers."""
        if self.server_mode:
            where = self.url or f"{self.host}:{self.port}"
        else:
            where = os.path.abspath(self.path or "")
        return f"{where}#{self.collection_name}"


def _is_local_host(host: str) -> bool:
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _speed_up_local_storage(client: QdrantClient) -> None:
    """Local mode commits each point to SQLite separately; WAL makes those commits cheap.

    Without it every point costs a journal fsync (about 400 points/s for 768-dim points here).
    WAL with synchronous=NORMAL stays consistent after a crash of the process.
    """
    local = getattr(client, "_client", None)
    for collection in getattr(local, "collections", {}).values():
        _tune_sqlite(collection)


def _tune_sqlite(collection: Any) -> None:
    storage = getattr(getattr(collection, "storage", None), "storage", None)
    if storage is not None:
        storage.execute("PRAGMA journal_mode=WAL")
        storage.execute("PRAGMA synchronous=NORMAL")


class Collection:
    """A connection to the configured collection (alias or name), opened on first use."""

    def __init__(self, client: QdrantClient | Callable[[], QdrantClient], store: QdrantStore) -> None:
        if isinstance(client, QdrantClient):
            self._client: QdrantClient | None = client
            self._opener: Callable[[], QdrantClient] | None = None
        else:
            self._client, self._opener = None, client
        self.store = store
        self.name = store.collection_name

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            assert self._opener is not None
            self._client = self._opener()
        return self._client

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        if self._client is not None and self._opener is not None:
            self._client.close()
            self._client = None

    def location(self) -> str:
        return self.store.location()

    def _local_meta(self) -> dict[str, Any] | None:
        """Embedded mode's meta.json (collections and aliases), read without loading any point."""
        try:
            with open(os.path.join(self.store.path or "", "meta.json"), encoding="utf-8") as handle:
                meta = json.load(handle)
            return meta if isinstance(meta, dict) else None
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ layout
    def exists(self) -> bool:
        return self.client.collection_exists(self.name) or self.alias_target() is not None

    def alias_target(self) -> str | None:
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.name:
                return alias.collection_name
        return None

    def physical_name(self) -> str | None:
        if not self.is_open and not self.store.server_mode:
            meta = self._local_meta()
            if meta is not None:
                target = (meta.get("aliases") or {}).get(self.name)
                if target:
                    return target
                return self.name if self.name in (meta.get("collections") or {}) else None
        target = self.alias_target()
        if target:
            return target
        return self.name if self.client.collection_exists(self.name) else None

    def dense_size(self) -> int | None:
        """The size of the unnamed dense vector, or None for a bm25-only collection."""
        return self.layout(self.physical_name() or self.name)[0]

    def layout(self, physical: str, fix: str = "") -> tuple[int | None, models.SparseVectorParams | None, dict[str, Any]]:
        """(unnamed dense vector size or None, the ``bm25`` sparse params or None, collection metadata).

        A collection with named dense vectors is not this project's layout: StoreError, with ``fix``.
        """
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
        return dense, sparse, dict(getattr(config, "metadata", None) or {})

    def create_physical(self, physical: str, dense_size: int | None) -> None:
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
        if self.store.server_mode:  # local mode ignores payload indexes (and warns)
            for field in ("source", "law", "article", "embedding_model", "group_key"):
                self.client.create_payload_index(physical, field, models.PayloadSchemaType.KEYWORD)
        else:
            local = getattr(self.client, "_client", None)
            collection = getattr(local, "collections", {}).get(physical)
            if collection is not None:
                _tune_sqlite(collection)

    def ensure(self, dense_size: int | None, model_id: str | None) -> str:
        """Create the collection (behind the alias) if absent; refuse one whose vector layout differs.

        Returns the physical collection name.
        """
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

    def point_alias(self, physical: str) -> None:
        """Atomically point the alias ``collection_name`` at ``physical``."""
        actions: list[Any] = []
        if self.alias_target() is not None:
            actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.name)))
        actions.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical, alias_name=self.name))
        )
        self.client.update_collection_aliases(change_aliases_operations=actions)

    # ------------------------------------------------------------------ reads
    def point_index(self, sources: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """``{source: {point_id: payload subset}}`` for the given sources (all when None)."""
        result: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        if not self.exists():
            return result
        if sources is None or not self.store.server_mode:
            # Local mode filters in Python: one pass over the collection is cheaper than one per file.
            # (A payload filter is evaluated in Python per point too, and costs more than this.)
            wanted = None if sources is None else set(sources)
            if wanted is not None and not wanted:
                return result
            for point in self._scroll(None):
                source = (point.payload or {}).get("source")
                if wanted is None or source in wanted:
                    result[source][str(point.id)] = point.payload or {}
            return result
        for source in sources:
            flt = models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))])
            for point in self._scroll(flt):
                result[source][str(point.id)] = point.payload or {}
        return result

    def _scroll(self, flt: models.Filter | None, fields: list[str] | None = None) -> Iterator[models.Record]:
        # Local mode sorts every id of the collection on each scroll call: one page, not n/2048.
        limit = 2048 if self.store.server_mode else max(2048, self.client.count(self.name, exact=True).count + 1)
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.name,
                scroll_filter=flt,
                limit=limit,
                offset=offset,
                with_payload=fields or INDEX_FIELDS,
                with_vectors=False,
            )
            yield from points
            if offset is None:
                return

    def count(self, source: str | None = None) -> int:
        if not self.exists():
            return 0
        flt = (
            models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))])
            if source
            else None
        )
        return self.client.count(self.name, count_filter=flt, exact=True).count

    def counts_by_source(self, sources: Iterable[str]) -> dict[str, int]:
        """Points per source: one pass over the collection in local mode, indexed counts on a server."""
        sources = list(sources)
        if not sources or not self.exists():
            return dict.fromkeys(sources, 0)
        if self.store.server_mode:
            return {source: self.count(source) for source in sources}
        counts = dict.fromkeys(sources, 0)
        for point in self._scroll(None, ["source"]):
            source = (point.payload or {}).get("source")
            if source in counts:
                counts[source] += 1
        return counts

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[PointRecord], collection: str | None = None) -> int:
        target = collection or self.name
        local = not self.store.server_mode
        written = 0
        batch: list[models.PointStruct] = []
        for point in points:
            vector: dict[str, Any] = {
                SPARSE_NAME: models.SparseVector(indices=point.sparse[0], values=point.sparse[1])
            }
            if local:
                # Embedded mode pickles each point into SQLite and loads them all when the folder is
                # opened: a float32 array takes 3 KB there and loads as one block, where a list of 768
                # Python floats takes 7 KB and 25 KB of memory while loading (3.5 GB for 69k points).
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


def versioned_name(alias: str) -> str:
    """A new physical collection name behind ``alias``: ``legal_rag__<8 hex>``."""
    return f"{alias}__{uuid.uuid4().hex[:8]}"


def vector_is_valid(vector: Sequence[float]) -> bool:
    """False for a zero or NaN vector (the collection check rejects those)."""
    norm = math.fsum(v * v for v in vector)
    return norm > 0 and not math.isnan(norm)
