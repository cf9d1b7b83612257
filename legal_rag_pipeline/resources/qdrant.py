"""The Qdrant store: one resource owning the connection, the collection layout and all writes.

Which engine holds the points (the seam is ``stores.base.Collection``):

* embedded, ``QDRANT_ENGINE=edge`` (default): Qdrant Edge, the server's engine inside the process,
  in a folder outside the data folder (``stores/edge.py``);
* embedded, ``QDRANT_ENGINE=client``: qdrant-client's local mode, for folders that other
  qdrant-client programs (LangChain's ``QdrantVectorStore``) open too (``stores/client.py``);
* a Qdrant server or cluster when a URL or host is set (``stores/client.py``).

An embedded folder can be opened by one process at a time, so it is opened only inside
``connect()`` (a run step, a CLI command) and closed right after: no long-lived process keeps the
folder, and ``legal-rag search`` works between runs.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from ..errors import ConfigurationError
from ..stores.base import (  # noqa: F401 - the store's public names, re-exported
    INDEX_FIELDS,
    SPARSE_NAME,
    Collection,
    Layout,
    PointRecord,
    ScoredPoint,
    StoredPoint,
    vector_is_valid,
    versioned_name,
)

log = logging.getLogger(__name__)

ENGINES = ("edge", "client")


class QdrantStore(dg.ConfigurableResource):
    """Where the points live. Embedded folder by default; a server when ``url`` or ``host`` is set."""

    path: str | None = Field(default=".legal_rag/qdrant", description="Embedded Qdrant folder.")
    engine: str = Field(
        default="edge",
        description="Embedded engine: edge (Qdrant Edge, default) or client (qdrant-client's local mode).",
    )
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
    lock_wait_seconds: float = Field(
        default=5.0,
        description="Embedded folder in use by another process (a search, a run): how long to wait for it.",
    )

    # ------------------------------------------------------------------ connection
    @property
    def server_mode(self) -> bool:
        return bool(self.url or self.host)

    def describe(self) -> str:
        if self.server_mode:
            where = self.url or f"{self.host}:{self.port}"
            return f"Qdrant server {where}, collection {self.collection_name}"
        engine = "Qdrant Edge" if self.engine == "edge" else "qdrant-client local mode"
        return f"embedded Qdrant ({engine}) at {self.path}, collection {self.collection_name}"

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
        """Open the collection for the duration of a block, and close it (releasing the embedded lock).

        ``lazy=True`` opens qdrant-client's local mode on first use only (it loads every point of the
        folder to open it); Edge opens a shard on first use anyway.
        """
        warning = self.plain_http_key_warning()
        if warning:
            log.warning(warning)
        collection = self.open(lazy=lazy)
        try:
            yield collection
        finally:
            collection.close()

    def open(self, lazy: bool = False) -> Collection:
        if not self.server_mode and self.engine == "edge":
            from ..stores.edge import EdgeCollection  # qdrant-client is not imported (1.8 s)

            return EdgeCollection(self)
        from ..stores.client import ClientCollection, open_client

        if self.server_mode:
            collection: Collection = ClientCollection(lambda: open_client(self.client_kwargs(), None), self)
        elif self.engine == "client":
            collection = ClientCollection(lambda: open_client({"path": self.path}, self.path), self)
        else:
            raise ConfigurationError(f"QDRANT_ENGINE={self.engine!r} is not known", f"use one of {', '.join(ENGINES)}")
        if not lazy:
            collection.client  # type: ignore[attr-defined]  # noqa: B018 - open now (takes the local lock)
        return collection

    def location(self) -> str:
        """Where the collection lives (no secret): the store part of the per-file sync markers."""
        if self.server_mode:
            where = self.url or f"{self.host}:{self.port}"
        else:
            where = f"{self.engine}:{os.path.abspath(self.path or '')}"
        return f"{where}#{self.collection_name}"


def _is_local_host(host: str) -> bool:
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
