"""Dagster resources: all network I/O, retries and error translation live here.

The embedders are loaded on first use (``from legal_rag_pipeline.resources import Embedder``), so
importing ``resources.qdrant`` does not import Dagster and the embedding libraries.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legal_rag_pipeline.resources.embeddings import Check, Embedder, HuggingFaceEmbedder, LocalEmbedder

__all__ = [
    "Check",
    "Embedder",
    "HuggingFaceEmbedder",
    "LocalEmbedder",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from legal_rag_pipeline.resources import embeddings

        return getattr(embeddings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
