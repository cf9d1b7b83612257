"""Text core: normalisation, token budget, chunking, lexical (BM25) tokens. No Dagster here."""

from __future__ import annotations

from ..lazy import lazy_attributes

# Imported on first use: settings and search need ``text.lexical`` alone (the chunker is 20 ms of a
# cold `legal-rag search`). ``from legal_rag_pipeline.text import chunk_text`` works as before.
_MODULE_OF = {
    "chunk_rows": "chunking", "chunk_text": "chunking", "has_law_structure": "chunking", "parse_law_title": "chunking",
    "DEFAULT_VARIANT": "lexical", "VARIANTS": "lexical", "document_sparse_vector": "lexical",
    "fold_tone_marks": "lexical", "lexical_tokens": "lexical", "query_sparse_vector": "lexical",
    "query_vector": "lexical", "sparse_vector": "lexical", "token_index": "lexical",
    "normalize_cell": "normalize", "normalize_text": "normalize",
    "DEFAULT_TOKEN_BUDGET": "tokens", "count_tokens": "tokens", "make_token_counter": "tokens",
}


__getattr__ = lazy_attributes(__name__, _MODULE_OF)


__all__ = [
    "DEFAULT_TOKEN_BUDGET",
    "DEFAULT_VARIANT",
    "VARIANTS",
    "chunk_rows",
    "chunk_text",
    "count_tokens",
    "document_sparse_vector",
    "fold_tone_marks",
    "has_law_structure",
    "lexical_tokens",
    "make_token_counter",
    "normalize_cell",
    "normalize_text",
    "parse_law_title",
    "query_sparse_vector",
    "query_vector",
    "sparse_vector",
    "token_index",
]
