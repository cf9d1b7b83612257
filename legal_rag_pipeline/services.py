"""The store and the embedder built from settings: the one place that maps settings to their fields.

``definitions.py`` builds the Dagster resources from these fields (secrets as ``EnvVar``);
`legal-rag search`, `status` and `doctor` use ``open_store`` and ``open_embedder``, which import no
Dagster (1.5 s of a cold start): a plain ``stores.store.Store``, and ``NoEmbeddings`` when no dense
backend is configured or ``resources.hugging_face.HuggingFaceClient`` for Hugging Face.
"""

from __future__ import annotations

import os
from typing import Any

from .embedder_base import NoEmbeddings
from .settings import Settings
from .stores.store import Store

TOKEN_VARS = ("HF_TOKEN", "HUGGINGFACE_API_KEY")
ENDPOINT_KEY_VARS = ("EMBEDDINGS_ENDPOINT_API_KEY",)
QDRANT_KEY_VARS = ("QDRANT_API_KEY",)


def secret_name(*names: str) -> str | None:
    """The first of ``names`` that is set (to something other than blanks)."""
    return next((name for name in names if os.environ.get(name, "").strip()), None)


def secret_value(*names: str) -> str | None:
    name = secret_name(*names)
    return os.environ[name].strip() if name else None


def store_fields(settings: Settings) -> dict[str, Any]:
    """The store's fields from settings, but its API key (a value or an EnvVar: the caller's)."""
    return {
        "path": None if settings.qdrant_server_mode else settings.qdrant_path,
        "engine": settings.qdrant_engine,
        "url": settings.qdrant_url,
        "host": settings.qdrant_host,
        "port": settings.qdrant_port,
        "collection_name": settings.collection_name,
        "https": settings.qdrant_https,
        "prefer_grpc": settings.qdrant_prefer_grpc,
        "grpc_port": settings.qdrant_grpc_port,
        "timeout_seconds": settings.qdrant_timeout,
        "shard_number": settings.qdrant_shard_number,
        "replication_factor": settings.qdrant_replication_factor,
        "write_consistency_factor": settings.qdrant_write_consistency_factor,
        "on_disk": settings.qdrant_on_disk,
        "lexical_variant": settings.lexical.variant,
        "lexical_text": settings.lexical.text,
    }


def _hugging_face_fields(settings: Settings, token: Any, endpoint_api_key: Any) -> dict[str, Any]:
    return {
        "model": settings.model,
        "provider": settings.provider,
        "token": token,
        "endpoint_url": settings.endpoint_url,
        "endpoint_api_key": endpoint_api_key,
        "batch_size": settings.batch_size,
        "concurrency": settings.concurrency,
        "timeout_seconds": settings.timeout_seconds,
        "max_retry_seconds": settings.max_retry_seconds,
        "backoff_seconds": settings.backoff_seconds,
        "max_attempts": settings.max_attempts,
    }


def dense_embedder(settings: Settings, *, token: Any = None, endpoint_api_key: Any = None) -> Any:
    """The Hugging Face or local embedder resource (these import Dagster), or None for BM25-only.
    ``token`` and ``endpoint_api_key`` are values, or ``EnvVar``s for a Dagster run."""
    backend = settings.dense_backend
    if backend == "local":
        from .resources.embeddings import LocalEmbedder

        return LocalEmbedder(model=settings.model, batch_size=settings.batch_size)
    if backend == "api":
        from .resources.embeddings import HuggingFaceEmbedder

        return HuggingFaceEmbedder(**_hugging_face_fields(settings, token, endpoint_api_key))
    return None


def open_store(settings: Settings) -> Store:
    """The configured store, its API key read now (a CLI command waits ``Store``'s 5 s for a folder in use)."""
    return Store(**store_fields(settings), api_key=secret_value(*QDRANT_KEY_VARS))


def open_embedder(settings: Settings) -> Any:
    """The configured embedder, its secrets read now, without Dagster: ``NoEmbeddings`` when BM25-only,
    ``HuggingFaceClient`` for Hugging Face (the resource's behaviour; importing Dagster was 1.5 s of
    a cold `legal-rag search`), the local resource for sentence-transformers (which outweighs Dagster)."""
    token, endpoint_api_key = secret_value(*TOKEN_VARS), secret_value(*ENDPOINT_KEY_VARS)
    if settings.dense_backend == "api":
        from .resources.hugging_face import HuggingFaceClient

        return HuggingFaceClient(**_hugging_face_fields(settings, token, endpoint_api_key))
    embedder = dense_embedder(settings, token=token, endpoint_api_key=endpoint_api_key)
    return NoEmbeddings() if embedder is None else embedder
