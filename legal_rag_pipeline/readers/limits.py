"""What one file may cost, and the checks that enforce it before and after a reader runs.

People drop what they were sent: a file is untrusted. Each limit has a safe default and an
environment variable (read by ``settings.load_limits``); a file over a limit fails alone with a
one-sentence reason naming the variable.

* Before any reader (``precheck``, on the bytes, whatever the extension says): the size on disk;
  for a ZIP container (.xlsx, .docx, ...) the sum of the members' declared sizes and each member's
  compression ratio, read from the central directory without extracting anything (Python's
  ``zipfile``, which every reader here uses, never inflates a member past its declared size); the
  prolog of every XML member, parsed with defusedxml, so entity declarations (billion laughs) and
  external entities or DTDs (``file:///``, ``http://``) are refused before a reader sees them; for
  a PDF, its page count.
* After or while reading: the characters of extracted text (``check_text``), rows and cells per
  sheet (``SheetBudget``, used by readers/tabular.py).
* The time a read may take is enforced by readers/worker.py, which runs the reader in a child
  process and stops it.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import FileContentError, SourceFileError

MiB = 1024 * 1024
# A member this small cannot hurt whatever its ratio (a sheet of empty styled cells compresses 100:1).
RATIO_FLOOR_BYTES = 8 * MiB
XML_SUFFIXES = (".xml", ".rels", ".vml")
_RAISE = "raise {var} if it is a genuine document"


@dataclass(frozen=True)
class Limits:
    """The most one file may cost. Zero or less turns a limit off (not recommended)."""

    max_file_bytes: int = 100 * MiB  # MAX_FILE_BYTES: size on disk
    max_uncompressed_bytes: int = 512 * MiB  # MAX_UNCOMPRESSED_BYTES: sum of a ZIP container's members
    max_compression_ratio: float = 200.0  # MAX_COMPRESSION_RATIO: of one member over RATIO_FLOOR_BYTES
    max_sheet_rows: int = 1_048_576  # MAX_SHEET_ROWS: Excel's own maximum
    max_sheet_cells: int = 20_000_000  # MAX_SHEET_CELLS: rows x columns read from one sheet
    max_pdf_pages: int = 2_000  # MAX_PDF_PAGES
    max_text_chars: int = 20_000_000  # MAX_TEXT_CHARS: characters extracted from one file
    read_timeout_seconds: float = 120.0  # READ_TIMEOUT_SECONDS: one file's read, then the reader is stopped
    max_reader_memory_bytes: int = 4096 * MiB  # READ_MEMORY_BYTES: address space of the reading process


_current: contextvars.ContextVar[Limits] = contextvars.ContextVar("legal_rag_limits", default=Limits())  # noqa: B039 - frozen


def current() -> Limits:
    """The limits in force for the read in progress (the defaults outside a worker)."""
    return _current.get()


@contextlib.contextmanager
def use_limits(limits: Limits) -> Iterator[Limits]:
    token = _current.set(limits)
    try:
        yield limits
    finally:
        _current.reset(token)


def _mb(n: float) -> str:
    if n >= MiB:
        return f"{n / MiB:,.1f} MB"
    return f"{n / 1024:,.1f} KB" if n >= 1024 else f"{int(n):,} bytes"


def file_too_large(source: str, size: int, limit: int) -> SourceFileError:
    return FileContentError(
        source,
        f"it is {_mb(size)}, over the {_mb(limit)} limit for one file (MAX_FILE_BYTES)",
        "split it into smaller files, or " + _RAISE.format(var="MAX_FILE_BYTES"),
    )


def check_file_size(source: str, size: int, limits: Limits) -> None:
    if limits.max_file_bytes > 0 and size > limits.max_file_bytes:
        raise file_too_large(source, size, limits.max_file_bytes)


def check_text(source: str, chars: int, limits: Limits) -> None:
    if limits.max_text_chars > 0 and chars > limits.max_text_chars:
        raise FileContentError(
            source,
            f"it holds over {limits.max_text_chars:,} characters of text, the limit for one file (MAX_TEXT_CHARS)",
            "split it into smaller files, or " + _RAISE.format(var="MAX_TEXT_CHARS"),
        )


class SheetBudget:
    """Counts the rows and cells read from one sheet (or CSV file) and stops at the limits."""

    def __init__(self, source: str, where: str, limits: Limits | None = None) -> None:
        self.source, self.where = source, where
        self.limits = limits or current()
        self.rows = self.cells = 0

    def add(self, cells: int) -> None:
        self.rows += 1
        self.cells += cells
        if 0 < self.limits.max_sheet_rows < self.rows:
            raise FileContentError(
                self.source,
                f"{self.where} has more than {self.limits.max_sheet_rows:,} rows, the limit (MAX_SHEET_ROWS)",
                "split it into smaller sheets or files, or " + _RAISE.format(var="MAX_SHEET_ROWS"),
            )
        if 0 < self.limits.max_sheet_cells < self.cells:
            raise FileContentError(
                self.source,
                f"{self.where} has more than {self.limits.max_sheet_cells:,} cells (rows x columns), "
                "the limit (MAX_SHEET_CELLS)",
                "delete the unused columns and rows (Ctrl+End shows the last cell), split it, or "
                + _RAISE.format(var="MAX_SHEET_CELLS"),
            )


# ------------------------------------------------------------------------------------ pre-checks
def precheck(handle: IO[bytes], source: str, limits: Limits) -> None:
    """Refuse a file whose bytes are over a limit or hostile, before any reader opens it.

    ``handle`` is a seekable binary file over the opened descriptor. Dispatch is on the content
    (a ZIP bomb renamed .txt is still a ZIP), not the extension.
    """
    handle.seek(0, 2)
    check_file_size(source, handle.tell(), limits)
    handle.seek(0)
    head = handle.read(1024)
    handle.seek(0)
    if head.startswith(b"PK\x03\x04"):
        check_zip(handle, source, limits)
    elif b"%PDF-" in head:
        check_pdf(handle, source, limits)


def _name(member: str) -> str:
    return repr(member[:80])


def check_zip(handle: IO[bytes], source: str, limits: Limits) -> None:
    """Declared sizes and ratios from the central directory, then each XML member's prolog."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a readable ZIP: the reader says so in its own words
    with archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        if limits.max_uncompressed_bytes > 0 and total > limits.max_uncompressed_bytes:
            raise FileContentError(
                source,
                f"it would expand to {_mb(total)} when unpacked, over the {_mb(limits.max_uncompressed_bytes)} "
                "limit (MAX_UNCOMPRESSED_BYTES): it looks like a zip bomb",
                "open it in its application and save it again, or " + _RAISE.format(var="MAX_UNCOMPRESSED_BYTES"),
            )
        for m in members:
            ratio = m.file_size / max(1, m.compress_size)
            if limits.max_compression_ratio > 0 and m.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
                raise FileContentError(
                    source,
                    f"its part {_name(m.filename)} expands {ratio:,.0f} times when unpacked, over the "
                    f"{limits.max_compression_ratio:,.0f}:1 limit (MAX_COMPRESSION_RATIO): it looks like a zip bomb",
                    "open it in its application and save it again, or " + _RAISE.format(var="MAX_COMPRESSION_RATIO"),
                )
        for m in members:
            if m.filename.lower().endswith(XML_SUFFIXES) and not m.is_dir():
                _check_xml_prolog(archive, m, source)


def _check_xml_prolog(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: str) -> None:
    """Parse the member up to its root element with defusedxml: a DTD with entities or an external
    reference can only appear before it. Malformed XML is left to the reader."""
    from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
    from defusedxml.ElementTree import iterparse

    fix = "it is not a normal Office file (they never declare XML entities); do not ingest it, or save its text again in a new file"
    try:
        with archive.open(member) as stream:
            for _event, _element in iterparse(
                stream, events=("start",), forbid_dtd=False, forbid_entities=True, forbid_external=True
            ):
                return
    except EntitiesForbidden as exc:
        if getattr(exc, "sysid", None) or getattr(exc, "pubid", None):
            what = "declares an external XML entity, a reference to a file or URL (an external-entity attack)"
        else:
            what = "declares XML entities (an 'XML bomb', which expands to gigabytes when parsed)"
        raise FileContentError(source, f"its part {_name(member.filename)} {what}", fix) from None
    except (ExternalReferenceForbidden, DTDForbidden):
        raise FileContentError(
            source, f"its part {_name(member.filename)} refers to an external XML resource (file or URL)", fix
        ) from None
    except DefusedXmlException:
        raise FileContentError(source, f"its part {_name(member.filename)} uses forbidden XML features", fix) from None
    except Exception:  # noqa: BLE001 - malformed XML, bad CRC...: the reader reports it
        return


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_page_count(handle: IO[bytes]) -> int:
    """Pages of a PDF: pdfium's count when pypdfium2 is installed, and a byte-level count of
    ``/Type /Page`` objects (the larger of the two: pdfium may refuse a damaged file)."""
    count, tail = 0, b""
    handle.seek(0)
    while True:
        block = handle.read(1 << 20)
        data = tail + block
        cut = len(data) - 64 if block else len(data)  # a match starting in the last bytes is counted next time
        count += sum(1 for m in _PAGE.finditer(data) if m.start() < cut)
        if not block:
            break
        tail = data[cut:]
    try:
        import pypdfium2

        handle.seek(0)
        document = pypdfium2.PdfDocument(handle.read())
        try:
            count = max(count, len(document))
        finally:
            document.close()
    except Exception:  # noqa: BLE001, S110 - not installed, or a damaged PDF: the byte count stands
        pass
    handle.seek(0)
    return count


def check_pdf(handle: IO[bytes], source: str, limits: Limits) -> None:
    if limits.max_pdf_pages <= 0:
        return
    pages = pdf_page_count(handle)
    if pages > limits.max_pdf_pages:
        raise FileContentError(
            source,
            f"it has {pages:,} pages, over the {limits.max_pdf_pages:,}-page limit (MAX_PDF_PAGES)",
            "split it into smaller PDFs, or " + _RAISE.format(var="MAX_PDF_PAGES"),
        )
