"""The Qdrant store as a Dagster resource: the fields a run's steps get, documented for the UI.

What it does with them (connect, open, describe) is ``stores/store.py``'s ``StoreMethods``; import
it as ``legal_rag_pipeline.resources.qdrant.QdrantStore``.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..stores.store import StoreMethods


class QdrantStore(StoreMethods, dg.ConfigurableResource):
    """Where the points live. Embedded folder by default; a server when ``url`` or ``host`` is set.

    Its behaviour is ``stores.store.StoreMethods``, shared with the plain ``Store`` that search,
    status and doctor open without Dagster."""

    path: str | None = Field(default=".legal_rag/qdrant", description="Embedded Qdrant folder.")
    engine: str = Field(
        default="edge",
        description="Embedded engine: edge (Qdrant Edge, default) or client (qdrant-client's local mode).",
    )
    url: str | None = Field(
        default=None, description="Qdrant server URL, e.g. https://qdrant.example.vn:6333."
    )
    host: str | None = Field(default=None, description="Qdrant server host (instead of url).")
    port: int = Field(default=6333, description="REST port of the server.")
    grpc_port: int = Field(default=6334, description="gRPC port of the server.")
    prefer_grpc: bool = Field(default=False, description="Talk gRPC to the server when possible.")
    https: bool | None = Field(default=None, description="Force HTTPS on or off (default: from the URL).")
    api_key: str | None = Field(default=None, description="Server API key (QDRANT_API_KEY); never logged.")
    timeout_seconds: int = Field(default=60, description="Request timeout for server mode.")
    collection_name: str = Field(
        default="legal_rag", description="Collection (or alias) searched and written."
    )
    shard_number: int | None = Field(default=None, description="Shards of a new collection (cluster).")
    replication_factor: int | None = Field(default=None, description="Replicas of each shard (cluster).")
    write_consistency_factor: int | None = Field(default=None, description="Replicas that must ack a write.")
    on_disk: bool = Field(default=False, description="Keep vectors and payload on disk (large corpora).")
    upsert_batch_size: int = Field(default=512, description="Points per upsert request.")
    lexical_variant: str = Field(
        default="syllables+bigrams", description="Tokeniser of the bm25 vectors, documents and queries alike (LEXICAL_VARIANT)."
    )
    lexical_text: str = Field(default="headings+chunk", description="What of a chunk feeds its bm25 vector (LEXICAL_TEXT).")
    lock_wait_seconds: float = Field(
        default=5.0,
        description="Embedded folder in use by another process (a search, a run): how long to wait for it.",
    )
