"""Hostile files, generated on the fly (never stored): zip bombs, XML bombs, external entities, a huge
PDF, a CSV that keeps its reader busy. Each writes one file and returns its path."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl

MiB = 1024 * 1024
SHEET = "xl/worksheets/sheet1.xml"
SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

_DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _docx(path: Path, document_xml: bytes | None = None, *, padding: int = 0) -> Path:
    """A minimal .docx; ``padding`` bytes of spaces inside document.xml make it a bomb (about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _DOCX_TYPES)
        archive.writestr("_rels/.rels", _DOCX_RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(document_xml or f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>'.encode())
            block = b" " * MiB
            for _ in range(padding // MiB):
                member.write(block)
            if document_xml is None:
                member.write(b"<w:p><w:r><w:t>Dieu 1. Pham vi</w:t></w:r></w:p></w:body></w:document>")
    return path


def docx(path: Path, text: str = "Điều 1. Phạm vi\nLuật này quy định thử.") -> Path:
    body = "".join(f"<w:p><w:r><w:t>{line}</w:t></w:r></w:p>" for line in text.splitlines())
    return _docx(path, f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>{body}</w:body></w:document>'.encode())


def docx_zip_bomb(path: Path, expanded: int = 300 * MiB) -> Path:
    """One small .docx whose document.xml inflates to ``expanded`` bytes of spaces."""
    return _docx(path, padding=expanded)


def docx_billion_laughs(path: Path) -> Path:
    """document.xml declares ten levels of entities, ten times each: 10^9 "lol"s if expanded."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
        f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>'
    )
    return _docx(path, xml.encode())


def qa_workbook(path: Path, rows: int = 2) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "QA"
    ws.append(["Câu hỏi", "Đáp án"])
    for i in range(1, rows + 1):
        ws.append([f"Câu hỏi thử số {i}?", f"Đáp án thử số {i}."])
    wb.save(path)
    return path


def _rewrite_member(path: Path, name: str, content: bytes | None = None, *, padding: int = 0) -> Path:
    """Copy a ZIP container, replacing one member (streamed: ``padding`` spaces before its end tag)."""
    source = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(source)) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename != name:
                new.writestr(item, data)
                continue
            data = content if content is not None else data
            with new.open(name, "w", force_zip64=True) as member:
                if padding:
                    head, tail = data.rsplit(b"</sheetData>", 1)
                    member.write(head)
                    block = b" " * MiB
                    for _ in range(padding // MiB):
                        member.write(block)
                    member.write(b"</sheetData>" + tail)
                else:
                    member.write(data)
    return path


def xlsx_zip_bomb(path: Path, expanded: int = 700 * MiB) -> Path:
    """A real Q&A workbook whose sheet inflates to ``expanded`` bytes (over the 512 MB default)."""
    qa_workbook(path)
    return _rewrite_member(path, SHEET, padding=expanded)


def xlsx_external_entity(path: Path, target: Path) -> Path:
    """A Q&A workbook whose answer cell is an external entity pointing at ``target`` (file:// URL)."""
    qa_workbook(path)
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [<!ENTITY secret SYSTEM "{target.as_uri()}">]>'
        f'<worksheet xmlns="{SHEET_NS}"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Câu hỏi</t></is></c><c r="B1" t="inlineStr"><is><t>Đáp án</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>Bí mật là gì?</t></is></c><c r="B2" t="inlineStr"><is><t>&secret;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    return _rewrite_member(path, SHEET, sheet.encode("utf-8"))


def pdf_pages(path: Path, pages: int = 10_000) -> Path:
    """A valid PDF (cross-reference table and all) with ``pages`` empty pages: about 0.5 MB for 10,000."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * pages
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    path.write_bytes(out.getvalue())
    return path


def csv_that_keeps_the_reader_busy(path: Path, repeats: int = 21_000) -> Path:
    """63 KB that Python's csv.Sniffer (the CSV reader's dialect guess) needs about 14 s of CPU for
    (measured on Python 3.11): its quote regex backtracks quadratically over ``,"a`` on one line."""
    path.write_text("Câu hỏi,Đáp án\n" + ',"a' * repeats + "\n", encoding="utf-8")
    return path
