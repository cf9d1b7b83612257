"""PDF → text with pypdfium2 (20–50× faster than pdfminer-based readers here, and it reads the 2006
TCVN3 PDFs pypdf 7 crashes on); pages without a text layer (signed scans) are read by Tesseract OCR.

OCR is slow (6–8 s a page on two cores) and optional: without ``tesseract`` and its Vietnamese data
(Debian: ``tesseract-ocr tesseract-ocr-vie``) a scan fails alone with that fix. Its result is cached
with the file's other artifacts (by sha256), so a scan is read once. Hard line wraps are joined back
(a line ending mid-sentence followed by one starting in lower case) and bare page numbers dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileContentError, SourceFileError
from . import legacy

OCR_DPI = 300
OCR_LANGUAGE = "vie"
OCR_PAGE_TIMEOUT_SECONDS = 180
_MIN_PAGE_TEXT = 16  # characters: below this a page is taken as an image (a scan)
_PAGE_NUMBER = re.compile(r"^\s*(?:-\s*)?\d{1,4}(?:\s*-)?\s*$")
_INSTALL_OCR = ("install Tesseract with Vietnamese (Debian/Ubuntu: apt-get install tesseract-ocr tesseract-ocr-vie) "
                "and run again, or drop a PDF that has a text layer")


@dataclass
class PdfText:
    text: str
    pages: int
    ocr_pages: int = 0
    legacy: str | None = None
    notes: list[str] = field(default_factory=list)


def _open(data: bytes, source: str) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise FileContentError(source, "a password-protected PDF",
                                  "save a copy without a password (print to PDF, or remove the protection) "
                                  "and drop that in instead") from exc
        raise FileContentError(source, f"a corrupt or truncated PDF ({message})",
                              "download or export it again and drop it in again") from exc


def _unwrap(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines: a line not ending a sentence, followed by one starting in lower case."""
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        if (
            out
            and stripped
            and out[-1]
            and stripped[0].islower()
            and out[-1][-1] not in ".:;!?"
        ):
            out[-1] = out[-1].rstrip() + " " + stripped
        else:
            out.append(stripped)
    return out


def _page_lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _PAGE_NUMBER.match(lines[0]):
        lines.pop(0)
    if lines and _PAGE_NUMBER.match(lines[-1]):
        lines.pop()
    return lines


def tesseract_ready() -> str | None:
    """Why OCR cannot run here (None when it can)."""
    exe = shutil.which("tesseract")
    if exe is None:
        return "Tesseract OCR is not installed"
    try:
        langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Tesseract OCR does not run ({exc})"
    if OCR_LANGUAGE not in langs:
        return "Tesseract's Vietnamese language data (tesseract-ocr-vie) is not installed"
    return None


def _write_pgm(bitmap: Any, path: Path) -> None:
    """A grey bitmap as a binary PGM (Tesseract reads it; no imaging library needed)."""
    width, height, stride = bitmap.width, bitmap.height, bitmap.stride
    raw = bytes(bitmap.buffer)
    rows = raw if stride == width else b"".join(raw[y * stride: y * stride + width] for y in range(height))
    path.write_bytes(f"P5\n{width} {height}\n255\n".encode("ascii") + rows)


def _render(pdf: Any, index: int, folder: Path) -> Path:
    """Page ``index`` as a grey 300-dpi image file (pdfium is not thread-safe: the caller's thread only)."""
    page = pdf[index]
    try:
        bitmap = page.render(scale=OCR_DPI / 72, grayscale=True)
        image = folder / f"page-{index + 1}.pgm"
        _write_pgm(bitmap, image)
        bitmap.close()
    finally:
        page.close()
    return image


def _tesseract(image: Path, index: int, source: str) -> str:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one page per core, run side by side
    try:
        result = subprocess.run(
            ["tesseract", str(image), "stdout", "-l", OCR_LANGUAGE, "--psm", "3"],
            capture_output=True, text=True, timeout=OCR_PAGE_TIMEOUT_SECONDS, env=env, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceFileError(source, f"OCR of page {index + 1} took over {OCR_PAGE_TIMEOUT_SECONDS} s",
                              "drop a PDF with a text layer instead") from exc
    finally:
        image.unlink(missing_ok=True)
    if result.returncode != 0:
        raise SourceFileError(source, f"OCR failed on page {index + 1} ({result.stderr.strip()[-200:]})",
                              "check the Tesseract installation, or drop a PDF with a text layer instead")
    return result.stdout


# A scan whose OCR would take more than this share of the read time limit fails at once (the rest of
# the read, the pages still to render and the text's decoding, needs the remainder).
OCR_BUDGET_SHARE = 0.9


def ocr_too_slow(pages: int, per_page: float, budget: float) -> tuple[str, str]:
    """The reason and the fix of a scan of ``pages`` pages whose OCR, at ``per_page`` seconds a page,
    does not fit the ``budget`` seconds of READ_TIMEOUT_SECONDS (more than ``OCR_BUDGET_SHARE`` of it)."""
    needed = per_page * pages
    where = "over" if needed > budget else f"more than {OCR_BUDGET_SHARE:.0%} of"
    reason = (f"a scanned PDF of {pages} pages: OCR needs about {needed:.0f} s here ({per_page:.1f} s a page), "
              f"{where} the {budget:g}-second limit for reading one file (READ_TIMEOUT_SECONDS)")
    fix = (f"set READ_TIMEOUT_SECONDS to {int(needed * 1.5 / 60 + 1) * 60} or more and run again (the result is "
           "cached: a scan is read once), or drop a PDF with a text layer")
    return reason, fix


def _ocr(pdf: Any, pages: list[int], source: str) -> dict[int, str]:
    """OCR of ``pages``: rendered one by one here, read by Tesseract on every core.

    A read has a time limit (READ_TIMEOUT_SECONDS, readers/limits.py): once the first pages show how
    fast OCR goes on this machine, a scan that cannot finish in time fails at once, with the limit
    it needs, instead of being stopped at the end of it.
    """
    from .limits import current

    why = tesseract_ready()
    if why:
        raise SourceFileError(source, f"a scanned PDF without a text layer ({len(pages)} pages) and {why}",
                              _INSTALL_OCR)
    budget = current().read_timeout_seconds
    workers = max(1, min(len(pages), os.cpu_count() or 1))
    texts: dict[int, str] = {}
    started = time.monotonic()

    def collect(index: int, future: Future[str], pending: list[tuple[int, Future[str]]]) -> None:
        texts[index] = future.result()
        elapsed = time.monotonic() - started
        if budget <= 0 or len(texts) < workers:
            return  # the first pages ran side by side: their time says nothing yet
        needed = elapsed / len(texts) * len(pages)
        if needed > OCR_BUDGET_SHARE * budget:
            for _, other in pending:
                other.cancel()
            raise FileContentError(source, *ocr_too_slow(len(pages), elapsed / len(texts), budget))

    with tempfile.TemporaryDirectory(prefix="legal_rag_ocr_") as tmp, ThreadPoolExecutor(workers) as pool:
        pending: list[tuple[int, Future[str]]] = []
        for index in pages:
            image = _render(pdf, index, Path(tmp))
            pending.append((index, pool.submit(_tesseract, image, index, source)))
            if len(pending) >= 2 * workers:  # a few images on disk at a time (9 MB each)
                collect(*pending.pop(0), pending)
        while pending:
            collect(*pending.pop(0), pending)
    return texts


_VIETNAMESE = re.compile("[ăâđêôơưĂÂĐÊÔƠƯạ-ỹẠ-Ỹàáãèéìíòóõùúýỳ]")


def read_pdf_bytes(data: bytes, source: str) -> PdfText:
    pdf = _open(data, source)
    try:
        count = len(pdf)
        if count == 0:
            raise FileContentError(source, "a PDF with no pages", "export it again and drop it in again")
        texts: list[str] = []
        for i in range(count):
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        empty = [i for i, t in enumerate(texts) if len(t.strip()) < _MIN_PAGE_TEXT]
        ocr_pages = 0
        if empty and len(empty) >= count / 2:
            for i, text in _ocr(pdf, empty, source).items():
                texts[i] = text
            ocr_pages = len(empty)
            if len(_VIETNAMESE.findall("".join(texts))) < 20:
                raise FileContentError(source, f"OCR found no Vietnamese text in its {count} pages (images only?)",
                                      "check that it is the right file; a legible scan or a PDF with a text layer "
                                      "is needed")
    finally:
        pdf.close()
    lines: list[str] = []
    for text in texts:
        lines.extend(_page_lines(text))
        lines.append("")
    text = "\n".join(_unwrap(lines))
    result = PdfText(text, count, ocr_pages)
    if ocr_pages:
        result.notes.append(f"OCR (Tesseract, {OCR_LANGUAGE}) of {ocr_pages} of {count} pages")
        return result
    encoding, why = legacy.guess_encoding(text)
    if encoding:
        result.text = legacy.convert(text, encoding)
        result.legacy = encoding
        result.notes.append(f"legacy encoding {encoding.upper()} converted to Unicode ({why})")
    elif why.startswith("undecided"):
        result.notes.append(f"possibly legacy-encoded text left as is ({why})")
    return result


def read_pdf(path: Path, source: str) -> PdfText:
    return read_pdf_bytes(Path(path).read_bytes(), source)
