"""Bytes → text: UTF-8 (with or without BOM), UTF-16/32 with BOM, UTF-16 without BOM; else a clear error.

Legacy code pages are never guessed (a wrong guess would silently ingest garbage): the error names
the likely encoding (charset-normalizer, as a hint only) and asks for UTF-8.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileContentError, SourceFileError

_SAVE_AS_UTF8 = "save it as UTF-8 text (e.g. Notepad: Save As → Encoding: UTF-8) and drop it in again"

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
]

_MAGIC = [
    (b"%PDF", "a PDF document, not text", "give it its real extension (.pdf) and drop it in again"),
    (b"PK\x03\x04", "a ZIP archive or Office document (.docx/.xlsx) renamed, not text",
     "give it its real extension (.xlsx or .docx) and drop it in again"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.doc/.xls), not text",
     "give it its real extension (.doc is read through LibreOffice; save a .xls as .xlsx)"),
    (b"\x89PNG", "a PNG image, not text", "drop only text, Markdown, CSV, JSON or .xlsx files here"),
    (b"\xff\xd8\xff", "a JPEG image, not text", "drop only text, Markdown, CSV, JSON or .xlsx files here"),
]


_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Encoding:
    """``label`` is what is recorded ("utf-8", "utf-8-sig", "utf-16-le", ...); ``codec`` decodes
    the file from its first byte (BOM included) in a text stream; ``bom`` is the BOM's length."""

    label: str
    codec: str
    bom: int


def detect_encoding(head: bytes) -> Encoding:
    """Guess from the first bytes: a BOM, else a UTF-16 NUL pattern, else UTF-8 (validated later)."""
    for bom, label, codec in _BOMS:
        if head.startswith(bom):
            return Encoding(label, codec, len(bom))
    sample = head[:4096]
    if b"\x00" in sample and len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        z_even, z_odd = even.count(0) / len(even), odd.count(0) / max(1, len(odd))
        if z_odd > 0.3 and z_even < 0.05:
            return Encoding("utf-16-le", "utf-16-le", 0)
        if z_even > 0.3 and z_odd < 0.05:
            return Encoding("utf-16-be", "utf-16-be", 0)
    return Encoding("utf-8", "utf-8", 0)


def _hint(data: bytes) -> str:
    """'; it looks like windows-1258' from charset-normalizer, or ''."""
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536]).best()
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    if best is None or best.encoding in ("utf_8", "ascii"):
        return ""
    return f"; it looks like {best.encoding.replace('_', '-')}"


def _check_magic(source: str, head: bytes) -> None:
    for magic, reason, fix in _MAGIC:
        if head.startswith(magic):
            raise FileContentError(source, reason, fix)


def _check_text(source: str, text: str, offset_base: int = 0) -> None:
    """Reject decoded text that is really binary (NUL bytes, many control characters)."""
    nul = text.find("\x00")
    if nul >= 0:
        raise FileContentError(source, f"binary data, not text (NUL character at position {nul + offset_base})",
                              "drop only text files here; convert documents to UTF-8 text first")
    sample = text[:100_000]
    if sample:
        controls = len(_CONTROL.findall(sample))
        if controls > max(8, len(sample) // 50):
            raise FileContentError(source, f"binary data, not text ({controls} control characters in the first "
                                          f"{len(sample)} characters)",
                                  "drop only text files here; convert documents to UTF-8 text first")


def undecodable(source: str, data: bytes, enc: Encoding, exc: UnicodeDecodeError, base: int = 0) -> SourceFileError:
    offset = base + enc.bom + exc.start
    byte = exc.object[exc.start] if exc.start < len(exc.object) else None
    what = f"byte 0x{byte:02x} at offset {offset}" if byte is not None else f"truncated at offset {offset}"
    name = "UTF-8 or UTF-16" if enc.label.startswith("utf-8") else enc.label.upper()
    return FileContentError(source, f"not valid {name} text ({what}{_hint(data)})", _SAVE_AS_UTF8)


def decode_bytes(data: bytes, source: str) -> tuple[str, str]:
    """(text, encoding label) of a whole file's bytes, or ``SourceFileError``."""
    if not data.strip(b" \t\r\n\x00") or data in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise FileContentError(source, "empty file", "put some content in it, or remove it")
    _check_magic(source, data[:8])
    enc = detect_encoding(data[:4096])
    try:
        text = data[enc.bom:].decode(enc.codec if enc.bom == 0 else enc.label.replace("-sig", ""))
    except UnicodeDecodeError as exc:
        if b"\x00" in data[:4096] and enc.label == "utf-8":
            raise FileContentError(source, f"binary data, not text (NUL byte at offset {data.index(0)})",
                                  "drop only text files here; convert documents to UTF-8 text first") from exc
        raise undecodable(source, data, enc, exc) from exc
    _check_text(source, text)
    if not text.strip():
        raise FileContentError(source, "empty file (only whitespace)", "put some content in it, or remove it")
    return text, enc.label


def validate_stream(path: Path, source: str, block: int = 1 << 20) -> Encoding:
    """Detect the encoding of a file and check the whole file decodes, reading it in blocks
    (constant memory: for CSV/JSONL files that are then streamed)."""
    with path.open("rb") as fh:
        head = fh.read(block)
        blank = not head.strip(b" \t\r\n\x00") or head in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE,
                                                             codecs.BOM_UTF16_BE)
        if blank and not fh.read(1):
            raise FileContentError(source, "empty file", "put some content in it, or remove it")
        _check_magic(source, head[:8])
        enc = detect_encoding(head)
        codec = enc.codec if enc.bom == 0 else enc.label.replace("-sig", "")
        decoder = codecs.getincrementaldecoder(codec)()
        offset, chunk, first = enc.bom, head[enc.bom:], True
        while chunk:
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                if b"\x00" in head[:4096] and enc.label == "utf-8":
                    raise FileContentError(source, "binary data, not text (NUL bytes)",
                                          "drop only text files here; convert documents to UTF-8 text first") from exc
                raise undecodable(source, head, enc, exc, base=offset - enc.bom) from exc
            if first:
                _check_text(source, text)
                first = False
            elif "\x00" in text:
                _check_text(source, text, offset)
            offset += len(chunk)
            chunk = fh.read(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise undecodable(source, head, enc, exc, base=offset - enc.bom) from exc
    return enc
