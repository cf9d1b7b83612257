"""Where the points live, without Dagster: the store's settings and its connection, in plain Python.

``StoreMethods`` is the one implementation of opening the configured collection (``connect``,
``open``, ``describe``, ``location``, the client's keyword arguments). Two classes carry it:

* ``Store`` — a frozen dataclass, what ``legal-rag search``, ``status`` and ``doctor`` open: they
  never import Dagster (0.5 s of a cold start; ``legal_rag_pipeline/services.py``);
* ``resources.qdrant.QdrantStore`` — the Dagster resource with the same fields, documented for the
  UI, which runs and the other commands use.

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

import dataclasses
import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigurationError
from .base import Collection

log = logging.getLogger("legal_rag_pipeline.resources.qdrant")  # the name its warnings always had

ENGINES = ("edge", "client")


class StoreMethods:
    """What a store does with its fields (``path``, ``engine``, ``url``, ``host``, ...): mixed into
    ``Store`` and the ``QdrantStore`` resource."""

    path: str | None
    engine: str
    url: str | None
    host: str | None
    port: int
    grpc_port: int
    prefer_grpc: bool
    https: bool | None
    api_key: str | None
    timeout_seconds: int
    collection_name: str

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
            from .edge import EdgeCollection  # qdrant-client is not imported (1.8 s)

            return EdgeCollection(self)
        from .client import ClientCollection, open_client

        if self.server_mode:
            collection: Collection = ClientCollection(lambda: open_client(self.client_kwargs(), None), self)
        elif self.engine == "client":
            collection = ClientCollection(lambda: open_client({"path": self.path}, self.path), self)
        else:
            raise ConfigurationError(
                f"QDRANT_ENGINE={self.engine!r} is not known", f"use one of {', '.join(ENGINES)}"
            )
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


@dataclasses.dataclass(frozen=True)
class Store(StoreMethods):
    """The store's settings as plain values (the ``QdrantStore`` resource's fields and defaults; a
    test keeps the two the same)."""

    path: str | None = ".legal_rag/qdrant"
    engine: str = "edge"
    url: str | None = None
    host: str | None = None
    port: int = 6333
    grpc_port: int = 6334
    prefer_grpc: bool = False
    https: bool | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout_seconds: int = 60
    collection_name: str = "legal_rag"
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk: bool = False
    upsert_batch_size: int = 512
    lexical_variant: str = "syllables+bigrams"
    lexical_text: str = "headings+chunk"
    lock_wait_seconds: float = 5.0

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Store:
        """A copy with ``update`` applied, spelled as on the resource (``stores/edge.py`` copies the
        store it was opened with when it moves a local-mode folder)."""
        return dataclasses.replace(self, **(update or {}))


def _is_local_host(host: str) -> bool:
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
