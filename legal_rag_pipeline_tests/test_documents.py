"""Readers of the documents legal teams have (.docx, .doc, .rtf, .pdf, .html), on the real files of
../shared/data/documents (see its README), plus small generated fixtures for every bad input.

LibreOffice and Tesseract are real here (scripts/test.sh installs them); on a machine without them
the tests that need them are skipped with the reason, except in CI, where they must run.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from legal_rag_pipeline.errors import SourceFileError
from legal_rag_pipeline.readers import read_document
from legal_rag_pipeline.readers.formats import read_document_text, sniff
from legal_rag_pipeline.readers.header import document_info, number_key, parse_number
from legal_rag_pipeline.readers.legacy import TCVN3, VNI, convert, convert_run, guess_encoding
from legal_rag_pipeline.readers.scan import is_ignored
from legal_rag_pipeline.text.chunking import chunk_text
from legal_rag_pipeline.text.normalize import normalize_text
from legal_rag_pipeline_tests.pipeline_env import shared_data


def _need(tool: str, why: str) -> None:
    if shutil.which(tool) is None and not os.environ.get("CI"):
        pytest.skip(f"{tool} is not installed ({why}); scripts/test.sh installs it")


def needs_soffice() -> None:
    _need("soffice", "LibreOffice converts .doc and .rtf")


def needs_tesseract() -> None:
    _need("tesseract", "Tesseract reads scanned PDFs")


@pytest.fixture(scope="module")
def docs() -> Path:
    folder = shared_data() / "documents"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: these tests read the real documents there")
    return folder


def _read(path: Path) -> tuple[str, list]:
    read = read_document_text(path, path.name)
    text = normalize_text(read.text)
    return text, chunk_text(path.name, text)


def _articles(chunks) -> list[str]:
    seen: dict[str, None] = {}
    for c in chunks:
        if c.metadata.get("article"):
            seen.setdefault(c.metadata["article"], None)
    return list(seen)


def char_accuracy(text: str, truth: str) -> float:
    """Share of the transcript's characters found in ``text``, whitespace collapsed, after NFC.

    Layout order is not what a conversion gets right or wrong (pdfium and the transcript order the
    two header columns and the signature block differently), so words are matched as a multiset
    first; the words left over are then aligned character by character, in order."""
    from collections import Counter

    def words(s: str) -> list[str]:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFC", s)).strip().split(" ")

    a, b = words(text), words(truth)
    common = Counter(a) & Counter(b)
    matched = sum((len(w) + 1) * n for w, n in common.items())
    left_a, left_b = Counter(a) - common, Counter(b) - common
    rest_a = " ".join(w for w in a if left_a[w] and not left_a.subtract([w]))
    rest_b = " ".join(w for w in b if left_b[w] and not left_b.subtract([w]))
    sm = difflib.SequenceMatcher(None, rest_a, rest_b, autojunk=False)
    matched += sum(m.size for m in sm.get_matching_blocks())
    return min(1.0, matched / sum(len(w) + 1 for w in b))


# ------------------------------------------------------------------------------------- real files
# file → (articles, number, doc_type, issuer, issued_on); articles None: the text has no "Điều N."
EXPECTED = {
    "docx/bo_luat_91_2015_QH13.docx": (689, "91/2015/QH13", "Bộ luật", "Quốc hội", "2015-11-24"),
    "docx/nghi_dinh_19_2019_ND_CP.docx": (28, "19/2019/NĐ-CP", "Nghị định", "Chính phủ", "2019-02-19"),
    "docx/nghi_dinh_21_2021_ND_CP.docx": (62, "21/2021/NĐ-CP", "Nghị định", "Chính phủ", "2021-03-19"),
    "docx/nghi_quyet_01_2019_NQ_HDTP.docx": (14, "01/2019/NQ-HĐTP", "Nghị quyết",
                                             "Hội đồng Thẩm phán Tòa án nhân dân tối cao", "2019-01-11"),
    "html/vbpl-bo-luat-hinh-su-100-2015-QH13.html": (425, "100/2015/QH13", "Bộ luật", "Quốc hội", "2015-11-27"),
    "html/vbpl-new-layout-doc_000002.html": (45, "121/2025/QH15", "Luật", "Quốc hội", "2025-12-10"),
    # Word-saved HTML named .doc: its header has no number; the date is the closing "thông qua ngày …"
    "doc/Bo_luat_To_tung_Dan_su_2015.doc": (517, None, "Bộ luật", "Quốc hội", "2015-11-25"),
    "pdf/an_le_so_432021AL.pdf": (None, "43/2021/AL", "Án lệ", "Hội đồng Thẩm phán Tòa án nhân dân tối cao",
                                  "2021-02-24"),
    "pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf": (None, "01/2006/TT-NHNN", "Thông tư", "Ngân hàng Nhà nước Việt Nam",
                                              "2006-02-20"),
}
EXPECTED_OFFICE = {
    "doc/Luật-80-2015-QH13.doc": (173, "80/2015/QH13", "Luật", "Quốc hội", "2015-06-22"),
    "doc/2004-NghiDinh114_2003.doc": (29, "114/2003/NĐ-CP", "Nghị định", "Chính phủ", "2003-10-10"),
    "doc/2008-23.QD-991-UBND.doc": (3, "991/QĐ-UBND", "Quyết định", "Ủy ban nhân dân tỉnh Bình Phước", "2008-05-14"),
    "rtf/2003-A04.rtf": (None, "99/1998/TT-BTC", "Thông tư", "Bộ Tài chính", "1998-07-14"),
}


def _check(docs: Path, name: str, expected: tuple) -> None:
    articles, number, doc_type, issuer, issued_on = expected
    text, chunks = _read(docs / name)
    found = _articles(chunks)
    if articles is None:
        assert not found and chunks, name
    else:
        assert len(found) == articles, (name, len(found))
        assert found[:3] == ["1", "2", "3"], name
        assert all(c.text.startswith("Điều ") for c in chunks if c.metadata.get("article")), name
    info = document_info(text)
    assert (info["number"], info["doc_type"], info["issuer"], info["issued_on"]) == (number, doc_type, issuer,
                                                                                      issued_on), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_document_articles_and_metadata(docs, name):
    _check(docs, name, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED_OFFICE))
def test_real_word_97_and_rtf_documents_through_libreoffice(docs, name):
    needs_soffice()
    _check(docs, name, EXPECTED_OFFICE[name])


def test_civil_code_docx_has_the_articles_of_its_txt_version(docs):
    laws = shared_data() / "laws" / "Bo-luat-dan-su-2015-296215.txt"
    txt = normalize_text(laws.read_text(encoding="utf-8-sig"))
    _, docx_chunks = _read(docs / "docx/bo_luat_91_2015_QH13.docx")
    assert _articles(docx_chunks) == _articles(chunk_text("txt", txt))
    # the issuer/number/date block is a table at the top: it is read, in order, before the title
    text = normalize_text(read_document_text(docs / "docx/bo_luat_91_2015_QH13.docx", "x").text)
    assert text.index("Luật số: 91/2015/QH13") < text.index("BỘ LUẬT\nDÂN SỰ") < text.index("Điều 1.")
    assert unicodedata.is_normalized("NFC", text)


def test_vbpl_pages_join_headings_split_by_anchors(docs):
    text, chunks = _read(docs / "html/vbpl-bo-luat-hinh-su-100-2015-QH13.html")
    assert "Điều 1. Nhiệm vụ của Bộ luật hình sự" in text.split("\n")
    assert "\nĐiều\n" not in text
    assert {c.metadata["law"] for c in chunks} == {"Bộ luật Hình sự"}
    info = document_info(text)
    assert info["effective_from"] == "2016-07-01"
    _, chunks = _read(docs / "html/vbpl-new-layout-doc_000002.html")
    first = next(c for c in chunks if c.metadata.get("article") == "1")
    assert first.metadata["chapter"] == "Chương I — NHỮNG QUY ĐỊNH CHUNG"
    assert first.metadata["law"] == "Luật Hoạt động giám sát của Quốc hội và Hội đồng nhân dân"
    assert not any("font-family" in c.text or "{" in c.text for c in chunks)  # none of the 1 MB of CSS


def test_html_saved_as_doc_is_read_as_html(docs):
    read = read_document_text(docs / "doc/Bo_luat_To_tung_Dan_su_2015.doc", "x.doc")
    assert read.format == "html" and any("not as .doc" in n for n in read.notes)


@pytest.mark.parametrize(
    "name, truth",
    [
        ("doc/2004-NghiDinh114_2003.doc", "2004-NghiDinh114_2003.gt.txt"),
        ("doc/2008-23.QD-991-UBND.doc", "2008-23.QD-991-UBND.gt.txt"),
        ("pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf", "2006-16EZE_TT01.06GopvonDNNVV.gt.txt"),
    ],
)
def test_legacy_encodings_match_their_transcripts(docs, name, truth):
    if name.endswith(".doc"):
        needs_soffice()
    read = read_document_text(docs / name, name)
    assert read.legacy in (TCVN3, VNI)
    gt = (docs / "ground-truth" / truth).read_text(encoding="utf-8")
    # the transcripts keep the .VnTimeH capitals in lower case; we restore them from the font
    accuracy = char_accuracy(normalize_text(read.text).lower(), gt.lower())
    assert accuracy >= 0.98, (name, accuracy)
    assert char_accuracy(normalize_text(read.text), gt) >= 0.98


@pytest.mark.parametrize("name", ["docx/bo_luat_91_2015_QH13.docx", "html/vbpl-new-layout-doc_000002.html",
                                  "pdf/an_le_so_432021AL.pdf"])
def test_unicode_documents_are_never_converted(docs, name):
    read = read_document_text(docs / name, name)
    assert read.legacy is None


def test_no_real_unicode_law_is_taken_for_a_legacy_encoding():
    laws = sorted((shared_data() / "laws").glob("*.txt"))
    assert len(laws) > 100
    wrong = [p.name for p in laws if guess_encoding(p.read_text(encoding="utf-8-sig", errors="replace"))[0]]
    assert wrong == []


def test_signed_scan_is_read_by_ocr(docs, tmp_path):
    needs_tesseract()
    import pypdfium2 as pdfium

    src = pdfium.PdfDocument(str(docs / "pdf/80-qh-13.signed.pdf"))
    two = pdfium.PdfDocument.new()
    two.import_pages(src, [0, 1])  # two pages keep CI fast (the whole file takes minutes)
    path = tmp_path / "scan.pdf"
    two.save(str(path))
    read = read_document_text(path, "scan.pdf")
    assert read.ocr_pages == 2
    text = normalize_text(read.text)
    articles = _articles(chunk_text("scan.pdf", text))
    assert {"1", "2", "3"} <= set(articles)
    assert document_info(text)["number"] == "80/2015/QH13"


def test_scan_too_long_for_the_read_time_limit_fails_at_once_with_the_limit_it_needs(docs, tmp_path):
    needs_tesseract()
    import pypdfium2 as pdfium

    from legal_rag_pipeline.readers.limits import Limits, use_limits

    src = pdfium.PdfDocument(str(docs / "pdf/80-qh-13.signed.pdf"))
    three = pdfium.PdfDocument.new()
    three.import_pages(src, [0, 1, 2])
    path = tmp_path / "scan.pdf"
    three.save(str(path))
    with use_limits(Limits(read_timeout_seconds=1)), pytest.raises(SourceFileError) as info:
        read_document_text(path, "scan.pdf")
    assert "READ_TIMEOUT_SECONDS" in info.value.reason and "set READ_TIMEOUT_SECONDS to" in info.value.fix


def test_a_scan_refused_within_the_limit_is_not_said_to_be_over_it():
    from legal_rag_pipeline.readers.pdf import OCR_BUDGET_SHARE, ocr_too_slow

    # 80 pages at 1.4 s: 112 s, under the 120-second limit but past the share OCR may take of it
    assert 80 * 1.4 > OCR_BUDGET_SHARE * 120
    reason, fix = ocr_too_slow(80, 1.4, 120)
    assert "about 112 s" in reason and "more than 90% of the 120-second limit" in reason and "over" not in reason
    assert "set READ_TIMEOUT_SECONDS to 180 or more" in fix
    reason, _ = ocr_too_slow(80, 1.7, 120)  # 136 s
    assert "about 136 s here (1.7 s a page), over the 120-second limit" in reason


# ------------------------------------------------------------------------------------- legacy encodings
def test_legacy_conversion_by_font_per_run():
    assert convert_run("ChÝnh phñ", ".VnTime") == ("Chính phủ", TCVN3)
    assert convert_run("Bé tµi chÝnh", ".VnTimeH") == ("BỘ TÀI CHÍNH", TCVN3)  # capitals font
    assert convert_run("ng©n hµng nhµ n\u00adíc", ".VnArial") == ("ngân hàng nhà nước", TCVN3)  # soft hyphen = ư
    assert convert_run("UÛY BAN NHAÂN DAÂN", "VNI-Times") == ("ỦY BAN NHÂN DÂN", VNI)
    # a Unicode run in a legacy font, or legacy-looking text in a Unicode font, is left alone
    assert convert_run("Chính phủ", ".VnTime") == ("Chính phủ", None)
    assert convert_run("ChÝnh phñ", "Times New Roman") == ("ChÝnh phñ", None)
    assert convert("Thñ t\u2212íng 10\u221212", TCVN3) == "Thủ tướng 10\u221212"  # PDF glyph for ư, not a minus


def test_guess_encoding_by_content():
    assert guess_encoding("ng©n hµng nhµ n\u2212íc ChÝnh phñ ban hµnh th«ng t\u2212 " * 10)[0] == TCVN3
    assert guess_encoding("UÛY BAN NHAÂN DAÂN TÆNH quyeát ñònh cuûa vaø caùc " * 10)[0] == VNI
    assert guess_encoding("Chính phủ ban hành nghị định về ngân hàng nhà nước " * 10)[0] is None
    assert guess_encoding("Le café est très bon à Paris, déjà vu " * 10)[0] is None
    # full of Latin-1 letters, but neither table makes Vietnamese of it: flagged, never converted
    encoding, why = guess_encoding("Für die Straße ist größer schön über " * 30)
    assert encoding is None and why.startswith("undecided")


# ------------------------------------------------------------------------------------- header
def test_header_metadata_of_a_plain_text_law():
    text = normalize_text(
        "QUỐC HỘI -------\nCỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM Độc lập - Tự do - Hạnh phúc ---------------\n"
        "Luật số: 62/2006/QH 11\nHà Nội, ngày 29 tháng 6 năm 2006\nLUẬT\nSỬA ĐỔI, BỔ SUNG MỘT SỐ ĐIỀU CỦA LUẬT "
        "ĐIỆN ẢNH\nĐiều 1. Sửa đổi\nNội dung.\nĐiều 2. Hiệu lực thi hành\nLuật này có hiệu lực thi hành từ ngày "
        "01 tháng 01 năm 2007.\n"
    )
    assert document_info(text) == {
        "number": "62/2006/QH11", "doc_type": "Luật", "issuer": "Quốc hội", "issued_on": "2006-06-29",
        "effective_from": "2007-01-01", "amends": "Luật điện ảnh",
    }
    assert parse_number("Số: 99/ 1998/TT-BTC Hà Nội") == "99/1998/TT-BTC"
    assert parse_number("Số: 991/QĐ-UBND Đồng Xoài, ngày 14") == "991/QĐ-UBND"
    signed = document_info("CHÍNH PHỦ\nSố: 01/2021/NĐ-CP\nNGHỊ ĐỊNH\nĐiều 1. A\nĐiều 2. Nghị định này có hiệu "
                           "lực thi hành kể từ ngày ký ban hành.\n")
    assert signed["doc_type"] == "Nghị định" and signed["issued_on"] is None and signed["effective_from"] is None
    assert document_info("Chỉ là một đoạn văn.")["number"] is None


def test_header_metadata_of_the_real_laws():
    """The 208 laws of ../shared/data/laws: nearly all give number, type, issuer and date; where the
    file name carries the number (…-68-2020-QH14-…) the number read agrees, but for one file whose
    name is wrong (Luật thuế tiêu thụ đặc biệt is 27/2008/QH12, named 26-2008). One law has no
    header at all (Biên giới quốc gia: the text starts with its preamble)."""
    laws = sorted((shared_data() / "laws").glob("*.txt"))
    complete, mismatched = 0, []
    for path in laws:
        info = document_info(normalize_text(path.read_text(encoding="utf-8-sig", errors="replace")))
        complete += all(info[k] for k in ("number", "doc_type", "issuer", "issued_on"))
        named = re.search(r"-(\d+)-(\d{4})-QH(\d+)-", path.name)
        if named and info["number"] and info["number"] != f"{named.group(1)}/{named.group(2)}/QH{named.group(3)}":
            mismatched.append((path.name, info["number"]))
    assert complete >= 0.97 * len(laws), complete
    assert mismatched == [("Luat-thue-tieu-thu-dac-biet-2008-26-2008-QH12-82198.txt", "27/2008/QH12")]
    assert parse_number("Số: 18-L/CTN") == "18-L/CTN"
    assert number_key("91 / 2015 / qh13") == "91/2015/QH13"
    assert number_key("19/2019/ND-CP") == number_key("19/2019/NĐ-CP") == "19/2019/NĐ-CP"
    assert number_key("01/2019/NQ-HDTP") == "01/2019/NQ-HĐTP"


# ------------------------------------------------------------------------------------- docx details
def _docx(tmp_path: Path, build) -> Path:
    import docx

    document = docx.Document()
    build(document)
    path = tmp_path / "generated.docx"
    document.save(str(path))
    return path


def test_docx_tables_soft_hyphens_fonts_and_numbering(tmp_path):
    from docx.oxml import OxmlElement

    def build(d):
        table = d.add_table(rows=1, cols=2)
        table.cell(0, 0).text = "CHÍNH PHỦ"
        table.cell(0, 1).text = "Số: 07/2020/NĐ-CP"
        p = d.add_paragraph()
        run = p.add_run("Nghị định của ")
        legacy = p.add_run("ChÝnh phñ vÒ ng©n hµng nhµ n")
        legacy.font.name = ".VnTime"
        legacy._r.append(OxmlElement("w:softHyphen"))  # the letter ư in TCVN3
        tail = p.add_run("íc")
        tail.font.name = ".VnTime"
        del run
        d.add_paragraph("Phạm vi điều chỉnh", style="List Number")
        d.add_paragraph("Đối tượng áp dụng", style="List Number")

    read = read_document_text(_docx(tmp_path, build), "generated.docx")
    lines = normalize_text(read.text).split("\n")
    assert lines[:2] == ["CHÍNH PHỦ", "Số: 07/2020/NĐ-CP"]
    assert "Nghị định của Chính phủ về ngân hàng nhà nước" in lines
    assert lines[-2:] == ["1. Phạm vi điều chỉnh", "2. Đối tượng áp dụng"]  # numbering rendered
    assert read.legacy == TCVN3


# ------------------------------------------------------------------------------------- bad input
def _fails(path: Path, *words: str) -> SourceFileError:
    with pytest.raises(SourceFileError) as info:
        read_document(path, path.name)
    error = info.value
    assert error.source == path.name and error.reason and error.fix
    for word in words:
        assert word in error.reason, error.reason
    return error


def test_password_protected_docx_and_pdf(tmp_path):
    # how Office stores a password-protected .docx: an OLE container with an EncryptedPackage stream
    locked = tmp_path / "locked.docx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptedPackage".encode("utf-16-le")
                       + bytes(512))
    assert "password" in _fails(locked, "password").fix
    needs_soffice()
    text = tmp_path / "x.txt"
    text.write_text("Điều 1. Thử\n", encoding="utf-8")
    options = ('pdf:writer_pdf_Export:{"EncryptFile":{"type":"boolean","value":"true"},'
               '"DocumentOpenPassword":{"type":"string","value":"secret"}}')
    import subprocess

    subprocess.run(["soffice", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}", "--headless",
                    "--convert-to", options, "--outdir", str(tmp_path / "out"), str(text)],
                   check=True, capture_output=True, timeout=120)
    _fails(tmp_path / "out" / "x.pdf", "password")


def test_corrupt_and_truncated_files(tmp_path):
    good = _docx(tmp_path, lambda d: d.add_paragraph("Điều 1. Thử"))
    truncated = tmp_path / "truncated.docx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _fails(truncated, "corrupt")
    pdf = tmp_path / "corrupt.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    _fails(pdf, "corrupt")
    notdoc = tmp_path / "random.docx"
    notdoc.write_bytes(os.urandom(3000))
    _fails(notdoc, "not a .docx document")
    spreadsheet = tmp_path / "sheet.docx"
    import openpyxl

    openpyxl.Workbook().save(spreadsheet)
    _fails(spreadsheet, "spreadsheet")


def test_doc_libreoffice_cannot_convert_or_is_missing(tmp_path, monkeypatch):
    bad = tmp_path / "damaged.doc"
    bad.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(4000))
    rtf = tmp_path / "short.rtf"
    rtf.write_bytes(b"{\\rtf1\\ansi Dieu 1. Thu}")
    needs_soffice()
    _fails(bad, "LibreOffice could not convert")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no soffice on the PATH
    error = _fails(rtf, "LibreOffice", "not installed")
    assert "apt-get install" in error.fix


def test_scan_without_tesseract_and_pdf_without_vietnamese(tmp_path, monkeypatch):
    import pypdfium2 as pdfium

    blank = pdfium.PdfDocument.new()
    blank.new_page(595, 842)
    path = tmp_path / "images-only.pdf"
    blank.save(str(path))
    assert sniff(path.read_bytes()) == "pdf"
    if shutil.which("tesseract"):
        _fails(path, "no Vietnamese text")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    error = _fails(path, "without a text layer", "Tesseract")
    assert "tesseract-ocr-vie" in error.fix


def test_html_page_without_legal_text_and_document_names(tmp_path):
    page = tmp_path / "news.html"
    page.write_text("<html><head><title>Tin tức</title></head><body><nav>Trang chủ</nav>"
                    "<p>Hôm nay trời đẹp.</p></body></html>", encoding="utf-8")
    _fails(page, "no legal text")
    assert is_ignored("hợp đồng/văn bản.docx") is None and is_ignored("a/b.htm") is None
    assert is_ignored("~$bản nháp.docx")  # Word's lock file
