"""Dagster resources: all network I/O, retries and error translation live here."""

from legal_rag_pipeline.resources.embeddings import Check, Embedder, HuggingFaceEmbedder, LocalEmbedder

__all__ = [
    "Check",
    "Embedder",
    "HuggingFaceEmbedder",
    "LocalEmbedder",
]
