"""A chunk as a Qdrant point: its payload, its dense vector and its bm25 sparse vector."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..readers.header import DOCUMENT_FIELDS
from ..records import Chunk
from ..stores.base import PointRecord
from ..text.lexical import (
    DEFAULT_LEXICAL,
    DEFAULT_LEXICAL_TEXT,
    LEXICAL_TEXTS,
    Lexical,
    Sparse,
    document_sparse_vector,
    packed,
)
from ..validity.resolve import point_validity

log = logging.getLogger(__name__)


def chunk_point(
    chunk: Chunk, index: int, doc_sha: str, model: str, now: str, vector: Any, validity: dict[str, Any] | None = None,
    lexical: Lexical = DEFAULT_LEXICAL, sparse: Sparse | None = None,
) -> PointRecord:
    """The point of ``chunk`` (the ``index``-th of its file): payload, dense ``vector`` (None: bm25 only),
    bm25 vector made as ``lexical`` says (or ``sparse``, made so beforehand: legal_rag_pipeline/helper.py), and
    the file's ``validity`` when it has one."""
    if sparse is None:
        sparse = packed(document_sparse_vector(lexical_text(chunk, lexical.text), lexical.variant))
    return PointRecord(
        id=chunk.point_id,
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        sparse=sparse,
        payload=chunk_payload(chunk, index, doc_sha, model, now, validity),
    )


def chunk_payload(
    chunk: Chunk, index: int, doc_sha: str, model: str, now: str, validity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The payload of ``chunk``'s point (see ``chunk_point``)."""
    md = dict(chunk.metadata)
    metadata = {**md, "source": chunk.source, "chunk_key": chunk.chunk_key}
    article = md.get("article")
    group = f"{chunk.source}#dieu-{article}" if article else f"{chunk.source}#{chunk.chunk_key}"
    payload = {
        "page_content": chunk.text,
        "metadata": metadata,
        "source": chunk.source,
        "question": md.get("question"),
        "law": md.get("law"),
        "article": article,
        "chapter": md.get("chapter"),
        **{k: md.get(k) for k in DOCUMENT_FIELDS},  # number, doc_type, issuer, issued_on, ... (readers/header.py)
        "doc_sha256": doc_sha,
        "chunk_index": index,
        "embedding_model": model,
        "ingested_at": now,
        "group_key": group,
    }
    if md.get("kind") in ("law", "law_preamble") or validity:
        # valid_from, valid_to, repealed_by, amended_by, ... as the file's other points carry them (validity/)
        # a field set to null by a payload update is dropped (Edge and qdrant-client alike): written the
        # same way here, so a point reads the same whether its validity came with it or was set after
        payload.update({k: v for k, v in point_validity(validity, md).items() if v is not None})
    return payload


# What a point of another version of its file may hold and still be kept as it is: the text's digest and
# when it was written, the validity fields (set on every point of the file by the validity writer when
# the file's view changes: validity/sync.py) and what the store derives from the payload (document_keys).
NOT_COMPARED = frozenset({"doc_sha256", "ingested_at", "embedding_model", "document_keys", *point_validity(None, {})})


def kept_points(chunks: Iterable[tuple[int, Chunk]], stored: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The ids of ``chunks`` (a file's, each with its index in the file) whose point in ``stored``
    (``{point_id: payload}``, the collection's points of an earlier version of the file) is already what
    this version writes.

    A point's id is its file, its place name and its text (records.py), so its dense vector is the same
    for the same model; its bm25 vector follows from its text and the headings in its metadata. What else
    it holds (its metadata, its index in the file, the document's fields) is compared here: an article
    amended in place leaves the file's other points as they are, instead of writing them all again."""
    kept = set()
    for index, chunk in chunks:
        old = stored.get(chunk.point_id)
        if old is None:
            continue
        new = chunk_payload(chunk, index, "", "", "")
        if all(old.get(k) == v for k, v in new.items() if k not in NOT_COMPARED) and not any(
            k not in new and k not in NOT_COMPARED and v is not None for k, v in old.items()
        ):
            kept.add(chunk.point_id)
    return kept


def lexical_text(chunk: Chunk, mode: str = DEFAULT_LEXICAL_TEXT) -> str:
    """The text whose words feed the ``bm25`` sparse vector of a chunk (``mode``: text/lexical.py's
    LEXICAL_TEXTS).

    Questions name the law ("theo Luật Cư trú ...") and the subject of a chapter more often than the
    piece itself does, so the law title and the chapter/section titles come first, each ended by a
    full stop (no bigram crosses them). Q&A rows and plain text have no such metadata: their text alone.
    """
    if mode not in LEXICAL_TEXTS:
        raise ValueError(f"unknown lexical text {mode!r}: choose one of {', '.join(LEXICAL_TEXTS)}")
    if mode == "chunk":
        return chunk.text
    md = chunk.metadata
    heads = [md.get("law")]
    if mode == "headings+chunk":
        heads += [(md.get(k) or "").split(" — ", 1)[-1] for k in ("part", "chapter", "section")]
    heads = [h.strip().rstrip(".") for h in heads if h and h.strip()]
    return "".join(f"{h}.\n" for h in heads) + chunk.text
