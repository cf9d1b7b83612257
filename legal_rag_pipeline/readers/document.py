"""One source file → a ``Document``: decoded text, or a function that streams its rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import FileContentError, SourceFileError
from ..records import Row, SkippedRow
from . import tabular
from .decode import decode_bytes
from .formats import DOCUMENT_SUFFIXES, read_document_text
from .scan import SUPPORTED_SUFFIXES


@dataclass
class Document:
    """``kind`` "text": ``text`` is decoded but not normalised; ``kind`` "rows": ``rows()`` streams
    the records (call it again to re-read). ``encoding`` is the detected text encoding (None for .xlsx).
    ``notes``: what reading took (a conversion by LibreOffice, a legacy encoding converted, OCR)."""

    source: str
    kind: Literal["text", "rows"]
    encoding: str | None
    text: str | None = None
    rows: Callable[[], Iterator[Row | SkippedRow]] | None = None
    notes: list[str] = field(default_factory=list)
    page_validity: dict | None = None  # a saved vbpl.vn page's own status (readers/html.py page_validity)


def _wrap_os_error(source: str, exc: OSError) -> SourceFileError:
    if isinstance(exc, FileNotFoundError):
        return SourceFileError(source, "the file disappeared before it could be read",
                               "nothing to do if it was removed on purpose; otherwise drop it in again")
    if isinstance(exc, PermissionError):
        return SourceFileError(source, "permission denied while reading the file",
                               "make it readable by the user that runs the pipeline")
    if isinstance(exc, IsADirectoryError):
        return SourceFileError(source, "is a folder, not a file", "drop files, not folders, under this name")
    return SourceFileError(source, f"cannot be read ({exc.strerror or exc})", "check the disk and drop it in again")


def _guarded(source: str, make: Callable[[], Iterator[Row | SkippedRow]]) -> Callable[[], Iterator[Row | SkippedRow]]:
    """rows() that turns a file vanishing mid-stream into SourceFileError too."""

    def rows() -> Iterator[Row | SkippedRow]:
        try:
            yield from make()
        except OSError as exc:
            raise _wrap_os_error(source, exc) from exc

    return rows


TEXT_SUFFIXES = (".txt", ".md")  # plain text: decoded from its bytes alone (no path needed)


def read_text(data: bytes, source: str) -> Document:
    """A .txt/.md file's bytes, decoded (readers/decode.py), or ``SourceFileError``."""
    if not data:
        raise FileContentError(source, "empty file (0 bytes)", "put some content in it, or remove it")
    text, encoding = decode_bytes(data, source)
    return Document(source, "text", encoding, text=text)


def read_document(path: Path, source: str) -> Document:
    """Read one file for ingestion, or raise ``SourceFileError`` with a one-sentence reason and fix.

    Text (.txt/.md) is decoded whole; documents (.docx/.doc/.rtf/.pdf/.html/.htm) are read to text by
    readers/formats.py, their format told by their bytes. Tables (.xlsx/.csv/.json/.jsonl) are checked
    now (readable, decodable, recognisable header within the first 20 rows) and streamed later by ``rows()``;
    a record that breaks later (bad JSON line) raises from ``rows()`` with its line number.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileContentError(source, f"unsupported file type {suffix or '(none)'!r}",
                              f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    try:
        if suffix in TEXT_SUFFIXES:
            return read_text(path.read_bytes(), source)
        if path.stat().st_size == 0:
            raise FileContentError(source, "empty file (0 bytes)", "put some content in it, or remove it")
        if suffix in DOCUMENT_SUFFIXES:  # Word, RTF, PDF, HTML: readers/formats.py
            read = read_document_text(path, source)
            return Document(source, "text", read.encoding, text=read.text,
                            notes=[f"format {read.format}", *read.notes], page_validity=read.page_validity)
        if suffix == ".xlsx":
            tabular.excel_plan(path, source)
            return Document(source, "rows", None, rows=_guarded(source, lambda: tabular.excel_rows(path, source)))
        if suffix == ".csv":
            enc, _, _ = tabular.csv_plan(path, source)
            return Document(source, "rows", enc.label, rows=_guarded(source, lambda: tabular.csv_rows(path, source)))
        if suffix == ".jsonl":
            enc = tabular.jsonl_plan(path, source)
            return Document(source, "rows", enc.label,
                            rows=_guarded(source, lambda: tabular.jsonl_rows(path, source)))
        # .json: small by nature (one document), parsed whole
        _, encoding = tabular.json_records(path, source)
        return Document(source, "rows", encoding, rows=_guarded(source, lambda: tabular.json_rows(path, source)))
    except OSError as exc:
        raise _wrap_os_error(source, exc) from exc
