"""The plain data the functional core passes around (no Dagster here)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# Fixed namespace for point ids: never change it, or every id changes with it.
POINT_ID_NAMESPACE = uuid.UUID("6f1d3c3e-6a55-4b53-9a59-2b8f0f2f3a10")


@dataclass(frozen=True)
class Row:
    """One record of a tabular or JSON source: a Q&A pair, or a text with its metadata.

    ``location`` says where it is in the file for people ("Trang tính1!5", "line 12").
    """

    location: str
    question: str | None
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SkippedRow:
    location: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """One piece of text that becomes one Qdrant point.

    ``chunk_key`` is stable within a file ("dieu-12/2", "Trang tính1!5", "p3");
    ``metadata`` holds law/chapter/section/article/clause or question/sheet/row.
    """

    source: str
    chunk_key: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @cached_property  # a chunk's id is asked for several times per write (a hash and a UUID each)
    def point_id(self) -> str:
        return point_id(self.source, self.chunk_key, self.text)


def point_id(source: str, chunk_key: str, text: str) -> str:
    """Deterministic UUID: the same text at the same place of the same file keeps its id."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"{source}|{chunk_key}|{digest}"))
