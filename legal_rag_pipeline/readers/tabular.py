"""Row sources: Excel workbooks, CSV, JSON and JSONL, streamed row by row.

Columns are recognised by name, case- and accent-insensitively: question ("Câu hỏi", "Question"),
answer ("Đáp án", "Answer", "Trả lời"), text ("page_content", "content", "Nội dung") and source.
Rows stay aligned: a blank question or answer gives a ``SkippedRow`` for that row only (the old
script's ``dropna()`` per column shifted every later pair).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FileContentError, SourceFileError
from ..records import Row, SkippedRow
from .decode import Encoding, decode_bytes, validate_stream
from .limits import SheetBudget

HEADER_SEARCH_ROWS = 20

QUESTION_NAMES = {"cau hoi", "question", "questions", "query", "hoi"}
ANSWER_NAMES = {"dap an", "answer", "answers", "tra loi", "cau tra loi", "response"}
CONTENT_NAMES = {"page content", "pagecontent", "content", "text", "noi dung", "van ban"}
SOURCE_NAMES = {"source", "nguon", "original source"}
METADATA_NAMES = {"metadata"}

_COLUMNS_FIX = ("name the columns 'Câu hỏi' and 'Đáp án' (or 'Question' and 'Answer', or 'page_content' for "
                "plain texts) in the header row and drop it in again")

try:
    csv.field_size_limit(sys.maxsize)
except OverflowError:  # pragma: no cover - 32-bit platforms
    csv.field_size_limit(2**31 - 1)


def fold_name(value: Any) -> str:
    """A column name for matching: NFC, lower case, no accents (đ → d), non-letters → one space."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFD", str(value).strip().lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").replace("đ", "d")
    return re.sub(r"[^0-9a-z]+", " ", text).strip()


def cell_text(value: Any) -> str:
    """A cell as text: ``None`` → "", numbers via ``str()`` (12.0 → "12"), stripped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass(frozen=True)
class ColumnMap:
    question: int | str | None
    answer: int | str | None  # the answer column, or the text column of a text-record sheet
    source: int | str | None
    metadata: int | str | None = None

    @property
    def is_qa(self) -> bool:
        return self.question is not None


def map_columns(names: list[Any] | dict[str, Any]) -> ColumnMap | None:
    """Recognise the columns of a header row (a list of cells) or the keys of a JSON object."""
    keys = list(names.keys()) if isinstance(names, dict) else list(range(len(names)))
    labels = list(names.keys()) if isinstance(names, dict) else names
    found: dict[str, int | str] = {}
    for key, label in zip(keys, labels):
        folded = fold_name(label)
        for role, choices in (("question", QUESTION_NAMES), ("answer", ANSWER_NAMES),
                              ("content", CONTENT_NAMES), ("source", SOURCE_NAMES),
                              ("metadata", METADATA_NAMES)):
            if folded in choices or folded.replace(" ", "") in {c.replace(" ", "") for c in choices}:
                found.setdefault(role, key)
    answer = found.get("answer", found.get("content"))
    if "question" in found and answer is not None:
        return ColumnMap(found["question"], answer, found.get("source"), found.get("metadata"))
    if "content" in found:
        return ColumnMap(None, found["content"], found.get("source"), found.get("metadata"))
    return None


def make_row(location: str, cols: ColumnMap, get: Callable[[int | str | None], Any],
             metadata: dict[str, Any]) -> Row | SkippedRow | None:
    """A Row, a SkippedRow (blank question/answer), or None for an entirely empty record."""
    answer = cell_text(get(cols.answer))
    source = cell_text(get(cols.source)) if cols.source is not None else ""
    meta = dict(metadata)
    extra = get(cols.metadata) if cols.metadata is not None else None
    if isinstance(extra, dict):
        meta = {**extra, **meta}
    if source:
        meta["original_source"] = source
    if cols.is_qa:
        question = cell_text(get(cols.question))
        if not question and not answer:
            return None
        if not question:
            return SkippedRow(location, "blank question")
        if not answer:
            return SkippedRow(location, "blank answer")
        return Row(location, question, answer, meta)
    if not answer:
        return None if not source else SkippedRow(location, "blank text")
    return Row(location, None, answer, meta)


# ---------------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------------
def _open_workbook(path: Path, source: str):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError,
            IndexError, AttributeError, EOFError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise FileContentError(source, f"not a readable Excel .xlsx workbook ({detail})",
                              "open it in Excel or LibreOffice, save it again as .xlsx (Excel Workbook) "
                              "and drop it in again") from exc
    except OSError:
        raise
    except Exception as exc:
        raise FileContentError(source, f"damaged Excel workbook ({type(exc).__name__}: {exc})",
                              "open it in Excel or LibreOffice, save it again as .xlsx and drop it in again"
                              ) from exc


def _find_header(rows: Iterator[tuple[Any, ...]]) -> tuple[int, ColumnMap | None, list[tuple[Any, ...]]]:
    """Read up to HEADER_SEARCH_ROWS rows: (header row number, columns, rows read)."""
    seen: list[tuple[Any, ...]] = []
    for number, values in enumerate(rows, 1):
        seen.append(values)
        cols = map_columns(list(values))
        if cols is not None:
            return number, cols, seen
        if number >= HEADER_SEARCH_ROWS:
            break
    return 0, None, seen


def _first_cells(seen: list[tuple[Any, ...]]) -> str:
    for values in seen:
        cells = [cell_text(v) for v in values if cell_text(v)]
        if cells:
            return ", ".join(repr(c[:30]) for c in cells[:4])
    return "nothing"


def excel_plan(path: Path, source: str) -> list[tuple[str, int, ColumnMap]]:
    """(sheet, header row, columns) of each recognisable sheet; SourceFileError when there is none."""
    wb = _open_workbook(path, source)
    try:
        plan, unknown = [], []
        for ws in wb.worksheets:
            try:
                ws.reset_dimensions()
                number, cols, seen = _find_header(ws.iter_rows(values_only=True))
            except Exception as exc:
                raise FileContentError(source, f"damaged sheet {ws.title!r} ({type(exc).__name__}: {exc})",
                                      "open it in Excel or LibreOffice, save it again and drop it in again") from exc
            if cols is None:
                unknown.append(f"sheet {ws.title!r} starts with {_first_cells(seen)}")
            else:
                plan.append((ws.title, number, cols))
        if not plan:
            detail = "; ".join(unknown) if unknown else "the workbook has no sheets"
            raise FileContentError(source, f"no sheet has recognisable column names in its first "
                                          f"{HEADER_SEARCH_ROWS} rows ({detail})", _COLUMNS_FIX)
        return plan
    finally:
        wb.close()


def excel_rows(path: Path, source: str) -> Iterator[Row | SkippedRow]:
    """Stream the rows of every recognisable sheet (openpyxl read-only mode: constant memory)."""
    plan = {sheet: (header, cols) for sheet, header, cols in excel_plan(path, source)}
    wb = _open_workbook(path, source)
    try:
        for ws in wb.worksheets:
            if ws.title not in plan:
                continue
            header, cols = plan[ws.title]
            ws.reset_dimensions()
            budget = SheetBudget(source, f"sheet {ws.title!r}")
            try:
                for number, values in enumerate(ws.iter_rows(values_only=True), 1):
                    budget.add(len(values))
                    if number <= header:
                        continue

                    def get(i, values=values):
                        return values[i] if i is not None and i < len(values) else None

                    row = make_row(f"{ws.title}!{number}", cols, get, {"sheet": ws.title, "row": number})
                    if row is not None:
                        yield row
            except SourceFileError:
                raise
            except Exception as exc:
                raise FileContentError(source, f"damaged sheet {ws.title!r} ({type(exc).__name__}: {exc})",
                                      "open it in Excel or LibreOffice, save it again and drop it in again"
                                      ) from exc
    finally:
        wb.close()


# ---------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------
def _csv_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        first = sample.split("\n", 1)[0]
        delimiter = max(",;\t", key=first.count)
        return type("Sniffed", (csv.excel,), {"delimiter": delimiter})


def _open_csv(path: Path, enc: Encoding) -> tuple[io.TextIOWrapper, Any]:
    fh = path.open("r", encoding=enc.codec, newline="")
    sample = fh.read(65536)
    fh.seek(0)
    return fh, _csv_dialect(sample)


def csv_plan(path: Path, source: str) -> tuple[Encoding, int, ColumnMap]:
    enc = validate_stream(path, source)
    fh, dialect = _open_csv(path, enc)
    with fh:
        try:
            number, cols, seen = _find_header(iter(csv.reader(fh, dialect)))
        except csv.Error as exc:
            raise FileContentError(source, f"malformed CSV ({exc})", "fix the quoting or save it again as CSV") from exc
    if cols is None:
        raise FileContentError(source, f"no recognisable column names in the first {HEADER_SEARCH_ROWS} rows "
                                      f"(it starts with {_first_cells(seen)})", _COLUMNS_FIX)
    return enc, number, cols


def csv_rows(path: Path, source: str) -> Iterator[Row | SkippedRow]:
    """Stream CSV records; location "row N" counts records with the header as row 1 (as a spreadsheet shows)."""
    enc, header, cols = csv_plan(path, source)
    fh, dialect = _open_csv(path, enc)
    number = header
    budget = SheetBudget(source, "the CSV file")
    with fh:
        try:
            for number, values in enumerate(csv.reader(fh, dialect), 1):
                budget.add(len(values))
                if number <= header:
                    continue

                def get(i, values=values):
                    return values[i] if i is not None and i < len(values) else None

                row = make_row(f"row {number}", cols, get, {"row": number})
                if row is not None:
                    yield row
        except csv.Error as exc:
            raise FileContentError(source, f"malformed CSV near record {number + 1} ({exc})",
                                  "fix the quoting or save it again as CSV") from exc


# ---------------------------------------------------------------------------------------------------
# JSON / JSONL
# ---------------------------------------------------------------------------------------------------
_JSON_FIX = "fix the syntax there (a JSON validator shows the spot) and drop it in again"
_RECORDS_FIX = ("use objects with 'question' and 'answer' keys, or 'page_content' (and optional 'metadata', "
                "'source'), and drop it in again")


def _record_row(location: str, obj: Any, meta: dict[str, Any]) -> Row | SkippedRow | None:
    if not isinstance(obj, dict):
        return SkippedRow(location, f"not a JSON object ({type(obj).__name__})")
    cols = map_columns(obj)
    if cols is None:
        return SkippedRow(location, "no question/answer or page_content field")
    return make_row(location, cols, lambda k: obj.get(k) if k is not None else None, meta)


def json_records(path: Path, source: str) -> tuple[list[Any], str]:
    """(records, encoding) of a JSON file: a list of objects, or {"records"|"data"|"items"|"rows": [...]}."""
    text, encoding = decode_bytes(path.read_bytes(), source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileContentError(source, f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})",
                              _JSON_FIX) from exc
    if isinstance(data, dict):
        for key in ("records", "data", "items", "rows"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list):
        raise FileContentError(source, f"JSON top level is a {type(data).__name__}, not a list of objects",
                              _RECORDS_FIX)
    if not any(isinstance(o, dict) and map_columns(o) is not None for o in data):
        raise FileContentError(source, "no JSON object has question/answer or page_content fields", _RECORDS_FIX)
    return data, encoding


def json_rows(path: Path, source: str) -> Iterator[Row | SkippedRow]:
    for i, obj in enumerate(json_records(path, source)[0], 1):
        row = _record_row(f"item {i}", obj, {"item": i})
        if row is not None:
            yield row


def _jsonl_lines(path: Path, source: str, enc: Encoding) -> Iterator[tuple[int, Any]]:
    with path.open("r", encoding=enc.codec) as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileContentError(source, f"invalid JSON on line {number}, column {exc.colno} ({exc.msg})",
                                      _JSON_FIX) from exc


def jsonl_plan(path: Path, source: str) -> Encoding:
    """Check the encoding of the whole file and that one of the first records is recognisable."""
    enc = validate_stream(path, source)
    for count, (_number, obj) in enumerate(_jsonl_lines(path, source, enc), 1):
        if isinstance(obj, dict) and map_columns(obj) is not None:
            return enc
        if count >= HEADER_SEARCH_ROWS:
            break
    raise FileContentError(source, f"none of the first {HEADER_SEARCH_ROWS} JSON lines has question/answer or "
                                  "page_content fields", _RECORDS_FIX)


def jsonl_rows(path: Path, source: str) -> Iterator[Row | SkippedRow]:
    """Stream a JSON Lines file; a bad line raises SourceFileError naming its line number."""
    enc = jsonl_plan(path, source)
    for number, obj in _jsonl_lines(path, source, enc):
        row = _record_row(f"line {number}", obj, {"line": number})
        if row is not None:
            yield row
