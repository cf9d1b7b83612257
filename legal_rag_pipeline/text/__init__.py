"""Text core: normalisation, token budget, chunking, lexical (BM25) tokens. No Dagster here."""

from .chunking import chunk_rows, chunk_text, has_law_structure, parse_law_title
from .lexical import (
    DEFAULT_VARIANT,
    VARIANTS,
    document_sparse_vector,
    fold_tone_marks,
    lexical_tokens,
    query_sparse_vector,
    query_vector,
    sparse_vector,
    token_index,
)
from .normalize import normalize_cell, normalize_text
from .tokens import DEFAULT_TOKEN_BUDGET, count_tokens, make_token_counter

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
