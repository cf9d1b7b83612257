"""Readers: scanning the data folder, decoding, Excel/CSV/JSON rows, and the errors users meet."""

from __future__ import annotations

import csv
import json
import os
import tracemalloc
from pathlib import Path

import openpyxl
import pytest

from legal_rag_pipeline.errors import SourceFileError
from legal_rag_pipeline.readers import Document, is_ignored, read_document, scan_data_dir
from legal_rag_pipeline.records import Row, SkippedRow
from legal_rag_pipeline.text import chunk_text, normalize_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ORIGINAL = SHARED / "original_project"


def need_shared() -> None:
    if not ORIGINAL.is_dir():
        pytest.skip(f"real data folder {SHARED} is absent (only present beside the project checkout and in CI)")


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r, values in enumerate(rows, 1):
            for c, value in enumerate(values, 1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
    wb.save(path)
    return path


def all_rows(doc: Document) -> list[Row | SkippedRow]:
    assert doc.kind == "rows" and doc.rows is not None
    return list(doc.rows())


# --------------------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------------------
def test_legalrag_xlsx_has_85_aligned_rows():
    need_shared()
    doc = read_document(ORIGINAL / "LegalRAG.xlsx", "LegalRAG.xlsx")
    rows = all_rows(doc)
    assert doc.encoding is None
    assert len(rows) == 85 and all(isinstance(r, Row) for r in rows)
    assert rows[0].location == "Trang tính1!2"
    assert rows[0].metadata == {"sheet": "Trang tính1", "row": 2}
    biển = [r for r in rows if normalize_text(r.question) == "Nội dung Điều 1 Luật Biển Việt Nam 2013?"]
    assert len(biển) == 1
    answer = biển[0].answer
    assert answer.startswith("Điều 1. Phạm vi điều chỉnh")
    assert "đường cơ sở, nội thủy, lãnh hải" in answer
    # every "Nội dung Điều N ..." question is answered by that very article: no shifted pair
    asks = [r for r in rows if r.question.startswith("Nội dung Điều ")]
    assert len(asks) == 55
    for r in asks:
        number = r.question.split()[3]
        assert r.answer.startswith(f"Điều {number}."), (r.location, r.question, r.answer[:40])


def test_nttu_xlsx_english_headers():
    need_shared()
    rows = all_rows(read_document(ORIGINAL / "NTTU_DATA.xlsx", "NTTU_DATA.xlsx"))
    assert len(rows) == 145 and all(isinstance(r, Row) for r in rows)
    assert rows[0].question.startswith("Thời gian đào tạo")
    assert rows[0].question == rows[0].question.strip()


def test_luat2008_utf16_has_articles_1_to_89_once():
    need_shared()
    doc = read_document(ORIGINAL / "luat2008.txt", "luat2008.txt")
    assert doc.kind == "text" and doc.encoding == "utf-16-le"
    assert doc.text.startswith("QUỐC HỘI")
    chunks = chunk_text("luat2008.txt", normalize_text(doc.text))
    keys = {c.chunk_key.split("/")[0] for c in chunks if c.metadata["kind"] == "law"}
    assert keys == {f"dieu-{n}" for n in range(1, 90)}
    articles = {c.chunk_key.split("/")[0]: c.metadata["article"] for c in chunks if c.metadata["kind"] == "law"}
    assert sorted(articles.values(), key=int) == [str(n) for n in range(1, 90)]
    assert {c.metadata["law"] for c in chunks} == {"Luật Giao thông đường bộ"}


def test_sotay_utf8():
    need_shared()
    doc = read_document(ORIGINAL / "sotay.txt", "sotay.txt")
    assert doc.encoding == "utf-8"
    chunks = chunk_text("sotay.txt", normalize_text(doc.text))
    assert {c.metadata["article"] for c in chunks if c.metadata["kind"] == "law"} == {str(n) for n in range(1, 21)}


# --------------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------------
def test_blank_cells_keep_pairs_aligned(tmp_path):
    path = write_xlsx(tmp_path / "qa.xlsx", {
        "Notes": [["just some notes"], ["nothing tabular"]],
        "Hỏi đáp": [
            ["Bộ câu hỏi pháp luật"],          # a title row above the header
            [None],
            ["  CÂU HỎI ", "đáp án", "Ghi chú"],  # header on row 3, other case/spaces
            ["Câu 1?", "Trả lời 1", "x"],
            ["Câu 2?", None],                   # blank answer
            [None, "Trả lời 3 (mồ côi)"],        # blank question
            [None, None, "only a note"],         # no question, no answer: ignored silently
            [],
            ["Câu 6?", 42],                     # number cell
            ["Câu 7?", "Trả lời 7"],
        ],
    })
    rows = all_rows(read_document(path, "qa.xlsx"))
    assert rows == [
        Row("Hỏi đáp!4", "Câu 1?", "Trả lời 1", {"sheet": "Hỏi đáp", "row": 4}),
        SkippedRow("Hỏi đáp!5", "blank answer"),
        SkippedRow("Hỏi đáp!6", "blank question"),
        Row("Hỏi đáp!9", "Câu 6?", "42", {"sheet": "Hỏi đáp", "row": 9}),
        Row("Hỏi đáp!10", "Câu 7?", "Trả lời 7", {"sheet": "Hỏi đáp", "row": 10}),
    ]


def test_text_record_sheet_and_english_headers(tmp_path):
    path = write_xlsx(tmp_path / "records.xlsx", {
        "A": [["Question", "Answer"], ["What?", "That."]],
        "B": [["page_content", "Source"], ["Điều 1. Văn bản.", "luat.pdf"], [None, None], ["Chỉ văn bản", None]],
    })
    rows = all_rows(read_document(path, "records.xlsx"))
    assert rows == [
        Row("A!2", "What?", "That.", {"sheet": "A", "row": 2}),
        Row("B!2", None, "Điều 1. Văn bản.", {"sheet": "B", "row": 2, "original_source": "luat.pdf"}),
        Row("B!4", None, "Chỉ văn bản", {"sheet": "B", "row": 4}),
    ]


def test_xlsx_rows_stream_read_only_and_can_be_read_twice(tmp_path, monkeypatch):
    path = tmp_path / "big.xlsx"
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("S")
    ws.append(["Câu hỏi", "Đáp án"])
    for i in range(3_000):
        ws.append([f"Câu hỏi số {i}?", f"Đáp án số {i}"])
    wb.save(path)
    calls = []
    real_load = openpyxl.load_workbook

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(openpyxl, "load_workbook", spy)
    doc = read_document(path, "big.xlsx")
    rows = doc.rows()
    first = next(rows)
    assert first.location == "S!2"
    rows.close()
    assert sum(1 for _ in doc.rows()) == 3_000
    assert calls and all(c.get("read_only") is True for c in calls)


# --------------------------------------------------------------------------------------------------
# CSV / JSON / JSONL
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding,delimiter", [("utf-8-sig", ";"), ("utf-8", ","), ("utf-16", "\t")])
def test_csv_encodings_and_delimiters(tmp_path, encoding, delimiter):
    path = tmp_path / "qa.csv"
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(["Câu hỏi", "Trả lời"])
        w.writerow(["Nội thuỷ là gì?", "Vùng nước, phía trong đường cơ sở; gồm nhiều dòng\nthứ hai"])
        w.writerow(["", "mồ côi"])
        w.writerow(["Câu 3?", "Đáp 3"])
    doc = read_document(path, "qa.csv")
    assert doc.encoding.startswith(encoding.split("-sig")[0][:6]) or doc.encoding == encoding
    rows = all_rows(doc)
    assert rows[0] == Row("row 2", "Nội thuỷ là gì?", "Vùng nước, phía trong đường cơ sở; gồm nhiều dòng\nthứ hai",
                          {"row": 2})
    assert rows[1] == SkippedRow("row 3", "blank question")
    assert rows[2].question == "Câu 3?" and rows[2].location == "row 4"


def test_csv_streams(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        for i in range(30_000):
            w.writerow([f"q{i}", f"a{i}"])
    doc = read_document(path, "big.csv")
    tracemalloc.start()
    count = sum(1 for _ in doc.rows())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 30_000 and peak < 2_000_000, peak


def test_json_and_jsonl(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"records": [
        {"question": "Q1", "answer": "A1"},
        {"page_content": "Văn bản", "metadata": {"law": "Luật X"}, "source": "x.pdf"},
        {"foo": 1},
        "not an object",
    ]}, ensure_ascii=False), encoding="utf-8")
    rows = all_rows(read_document(tmp_path / "a.json", "a.json"))
    assert rows == [
        Row("item 1", "Q1", "A1", {"item": 1}),
        Row("item 2", None, "Văn bản", {"law": "Luật X", "item": 2, "original_source": "x.pdf"}),
        SkippedRow("item 3", "no question/answer or page_content field"),
        SkippedRow("item 4", "not a JSON object (str)"),
    ]
    (tmp_path / "b.jsonl").write_text('{"Câu hỏi": "Q", "Đáp án": "A"}\n\n{"text": "T"}\n', encoding="utf-8")
    rows = all_rows(read_document(tmp_path / "b.jsonl", "b.jsonl"))
    assert rows == [Row("line 1", "Q", "A", {"line": 1}), Row("line 3", None, "T", {"line": 3})]


def test_jsonl_bad_line_names_its_number(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"question": "Q", "answer": "A"}\n{"question": "Q2", "answer": "A2"}\n{"question": oops}\n',
                    encoding="utf-8")
    doc = read_document(path, "c.jsonl")
    with pytest.raises(SourceFileError, match=r"c\.jsonl: invalid JSON on line 3"):
        all_rows(doc)


# --------------------------------------------------------------------------------------------------
# Text decoding
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding,label", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16-le"),
    ("utf-16-be", "utf-16-be"), ("utf-16-le", "utf-16-le"),
])
def test_text_encodings(tmp_path, encoding, label):
    text = "LUẬT\r\nCƯ TRÚ\r\nĐiều 1. Phạm vi điều chỉnh\r\nNội thuỷ và lãnh hải.\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    (tmp_path / "a.txt").write_bytes(data)
    doc = read_document(tmp_path / "a.txt", "a.txt")
    assert doc.encoding == label
    assert normalize_text(doc.text) == normalize_text(text)


# --------------------------------------------------------------------------------------------------
# Errors a user can cause
# --------------------------------------------------------------------------------------------------
def _make_bad(tmp_path: Path, case: str) -> Path:
    if case == "corrupt.xlsx":
        (tmp_path / case).write_bytes(b"PK\x03\x04 this is not really a zip file" * 10)
    elif case == "text-as.xlsx":
        (tmp_path / case).write_text("Câu hỏi,Đáp án\n", encoding="utf-8")
    elif case == "nocolumns.xlsx":
        write_xlsx(tmp_path / case, {"S1": [["Tên", "Tuổi"], ["An", 3]], "S2": [["x"]]})
    elif case == "empty.txt":
        (tmp_path / case).write_bytes(b"")
    elif case == "blank.txt":
        (tmp_path / case).write_bytes(b"\xef\xbb\xbf  \r\n\r\n ")
    elif case == "binary.txt":
        (tmp_path / case).write_bytes(bytes(range(256)) * 20)
    elif case == "image.txt":
        (tmp_path / case).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    elif case == "cp1258.txt":
        # Windows-1258 (legacy Vietnamese code page) bytes: invalid as UTF-8
        (tmp_path / case).write_bytes("Đơn vị: Luật này được áp dụng từ năm 2020. ".encode("cp1258", "ignore") * 3)
    elif case == "nocolumns.csv":
        (tmp_path / case).write_text("name,age\nAn,3\n", encoding="utf-8")
    elif case == "bad.json":
        (tmp_path / case).write_text('[\n  {"question": "Q", "answer": "A"},\n  {"question": }\n]', encoding="utf-8")
    elif case == "empty.xlsx":
        (tmp_path / case).write_bytes(b"")
    return tmp_path / case


@pytest.mark.parametrize("case,reason", [
    ("corrupt.xlsx", "not a readable Excel .xlsx workbook"),
    ("text-as.xlsx", "not a readable Excel .xlsx workbook"),
    ("nocolumns.xlsx", "no sheet has recognisable column names"),
    ("empty.txt", "empty file"),
    ("blank.txt", "empty file"),
    ("empty.xlsx", "empty file"),
    ("binary.txt", "binary data, not text"),
    ("image.txt", "a PNG image, not text"),
    ("cp1258.txt", r"not valid UTF-8 or UTF-16 text \(byte 0x\w\w at offset \d+"),
    ("nocolumns.csv", "no recognisable column names"),
    ("bad.json", "invalid JSON at line 3"),
])
def test_bad_inputs_raise_source_file_error(tmp_path, case, reason):
    path = _make_bad(tmp_path, case)
    with pytest.raises(SourceFileError, match=reason) as info:
        read_document(path, f"inbox/{case}")
    err = info.value
    assert err.source == f"inbox/{case}"
    assert str(err).startswith(f"inbox/{case}: ")
    assert err.fix and str(err).endswith(".")
    assert "\n" not in str(err)


def test_vanished_file(tmp_path):
    for name in ("gone.txt", "gone.xlsx", "gone.csv", "gone.jsonl"):
        with pytest.raises(SourceFileError, match="disappeared") as info:
            read_document(tmp_path / name, name)
        assert info.value.source == name


def test_file_vanishing_while_rows_stream(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps({"question": f"Q{i}", "answer": "A"}) + "\n" for i in range(5)))
    doc = read_document(path, "v.jsonl")
    path.unlink()
    with pytest.raises(SourceFileError, match="disappeared"):
        all_rows(doc)


# --------------------------------------------------------------------------------------------------
# Scanning the data folder
# --------------------------------------------------------------------------------------------------
def test_scan_data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "Luật 2020").mkdir(parents=True)
    (data / ".git").mkdir()
    (data / ".git" / "config.txt").write_text("x")
    (data / "Luật 2020" / "Luật Cư trú – bản mới.txt").write_text("Điều 1. A")
    (data / "qa.XLSX").write_bytes(b"x")
    (data / "~$qa.xlsx").write_bytes(b"lock")
    (data / ".~lock.qa.xlsx#").write_bytes(b"lock")
    (data / ".hidden.txt").write_text("x")
    (data / "slides.pptx").write_bytes(b"PK")
    (data / "README").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    os.symlink(outside, data / "link-out.txt")
    os.symlink(data / "qa.XLSX", data / "link-in.xlsx")
    os.symlink(tmp_path / "missing.txt", data / "broken.txt")
    os.symlink(data / "Luật 2020", data / "dir-link")
    result = scan_data_dir(data)
    assert list(result.files) == ["Luật 2020/Luật Cư trú – bản mới.txt", "link-in.xlsx", "qa.XLSX"]
    assert result.files["qa.XLSX"] == data / "qa.XLSX"
    skipped = dict(result.skipped)
    assert set(skipped) == {".git/", "~$qa.xlsx", ".~lock.qa.xlsx#", ".hidden.txt", "slides.pptx", "README",
                            "link-out.txt", "broken.txt", "dir-link/"}
    assert "lock file" in skipped["~$qa.xlsx"] and "lock file" in skipped[".~lock.qa.xlsx#"]
    assert "outside the data folder" in skipped["link-out.txt"]
    assert "unsupported file type '.pptx'" in skipped["slides.pptx"]
    with pytest.raises(FileNotFoundError):
        scan_data_dir(tmp_path / "nope")


def test_is_ignored():
    assert is_ignored("a/b/c.jsonl") is None
    assert is_ignored("a/.cache/c.txt") == "inside hidden folder '.cache'"
    assert "lock" in is_ignored("sub/~$Book.xlsx")
    assert "unsupported" in is_ignored("x.pptx")
