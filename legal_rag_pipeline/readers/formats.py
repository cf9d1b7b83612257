"""Documents (.docx, .doc, .rtf, .pdf, .html/.htm) → Unicode text, the format told by the bytes.

The extension only says a file is meant to be a document: a ".doc" that is really Word-saved HTML
is read as HTML, a ".docx" that is really an old .doc goes through LibreOffice, and a password-
protected Office file (an OLE container holding an ``EncryptedPackage``) is refused with the fix.
Every reader returns plain text, one line per paragraph, which the law chunker then splits by
article, clause and point like any .txt.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileContentError

DOCUMENT_SUFFIXES = {".docx", ".doc", ".rtf", ".pdf", ".html", ".htm"}

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


@dataclass
class DocumentText:
    """``format``: what the bytes are (docx, doc, rtf, pdf, html); ``notes``: what was done to read them."""

    text: str
    format: str
    encoding: str
    notes: list[str] = field(default_factory=list)
    legacy: str | None = None  # "tcvn3", "vni", "tcvn3+vni" when a conversion was applied
    ocr_pages: int = 0
    page_validity: dict | None = None  # a saved vbpl.vn page's own status (readers/html.py page_validity)


def is_legal_text(text: str) -> bool:
    """True when ``text`` has articles ("Điều 1.") or an official header (a number or a document type)."""
    from ..text.chunking import has_law_structure
    from ..text.normalize import normalize_text
    from .header import document_info

    clean = normalize_text(text)
    if has_law_structure(clean):
        return True
    info = document_info(clean)
    return bool(info["number"] or info["doc_type"])


def sniff(data: bytes) -> str | None:
    """The document format of ``data``: "docx", "xlsx", "zip", "damaged-zip", "ole", "encrypted-office",
    "rtf", "pdf", "html", or None when none of these."""
    from .html import looks_like_html

    head = data[:8192]
    if head.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return "damaged-zip"
        if "word/document.xml" in names or any(n.startswith("word/") for n in names):
            return "docx"
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
        return "zip"
    if head.startswith(_OLE):
        return "encrypted-office" if _ENCRYPTED in data else "ole"
    if head.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"{\\rtf"):
        return "rtf"
    if looks_like_html(head):
        return "html"
    return None


def _from_docx(data: bytes, source: str, fmt: str, notes: list[str]) -> DocumentText:
    from .docx import read_docx_bytes

    result = read_docx_bytes(data, source)
    legacy = "+".join(sorted(result.legacy_runs)) or None
    if legacy:
        runs = ", ".join(f"{k.upper()} {v} runs" for k, v in sorted(result.legacy_runs.items()))
        notes.append(f"legacy encoding converted to Unicode by font ({runs})")
    return DocumentText(result.text, fmt, "docx (XML, UTF-8)", notes, legacy)


def read_document_text(path: Path, source: str) -> DocumentText:
    """Read one document file, or raise ``SourceFileError`` (the reason and the fix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    data = path.read_bytes()
    fmt = sniff(data)
    notes: list[str] = []
    if fmt in ("docx", "html", "pdf", "rtf") and fmt != suffix.lstrip(".") and not (fmt == "html" and suffix == ".htm"):
        notes.append(f"read as {fmt.upper()} (what its bytes are), not as {suffix}")
    if fmt == "docx":
        return _from_docx(data, source, "docx", notes)
    if fmt == "encrypted-office":
        raise FileContentError(source, "a password-protected (encrypted) Office document",
                              "open it, remove the password (File → Info → Protect document), save it and "
                              "drop it in again")
    if fmt in ("ole", "rtf"):
        from .office import convert_to_docx

        if fmt == "ole" and suffix not in (".doc", ".docx", ".rtf"):
            raise FileContentError(source, "an old Office file that is not a Word document",
                                  "save it as .docx (or .xlsx for a spreadsheet) and drop that in instead")
        converted = convert_to_docx(data, source, ".rtf" if fmt == "rtf" else ".doc")
        notes.append("converted to .docx by LibreOffice")
        return _from_docx(converted, source, "rtf" if fmt == "rtf" else "doc", notes)
    if fmt == "pdf":
        from .pdf import read_pdf_bytes

        pdf = read_pdf_bytes(data, source)
        return DocumentText(pdf.text, "pdf", "pdf text layer" if not pdf.ocr_pages else "pdf (OCR)",
                            notes + pdf.notes, pdf.legacy, pdf.ocr_pages)
    if fmt == "html":
        from . import legacy as legacy_mod
        from .html import html_text

        text, encoding, layout, validity = html_text(data, source)
        notes.append(f"HTML, text from {layout}")
        applied = None
        guess, why = legacy_mod.guess_encoding(text)
        if guess:
            text, applied = legacy_mod.convert(text, guess), guess
            notes.append(f"legacy encoding {guess.upper()} converted to Unicode ({why})")
        if not is_legal_text(text):
            raise FileContentError(source, "an HTML page with no legal text (no article \"Điều …\", no document "
                                          "number or type in its header)",
                                  "save the page of the document itself (on vbpl.vn: the \"Toàn văn\" tab) "
                                  "and drop it in again")
        return DocumentText(text, "html", encoding, notes, applied, page_validity=validity)
    if fmt == "damaged-zip":
        raise FileContentError(source, "a corrupt or truncated Office document (its ZIP container is damaged)",
                              "open it in Word or LibreOffice, save it again and drop it in again (or copy it "
                              "again if the copy was cut short)")
    if fmt in ("xlsx", "zip"):
        raise FileContentError(source, f"a {'spreadsheet' if fmt == 'xlsx' else 'ZIP archive'}, not a {suffix} document",
                              "give it its real extension (.xlsx) or drop the document itself")
    raise FileContentError(source, f"not a {suffix} document (its first bytes are none of Word, RTF, PDF or HTML)",
                          "check that the file is complete and has the right extension, then drop it in again")
