"""Word .docx → text: the body walked in order (paragraphs and tables), legacy fonts converted per run.

python-docx opens the package (its XML parser does not expand entities); the body is then walked
directly, because ``Document.paragraphs`` skips tables, where the issuer / "Số: …" / date block of
every official text lives, and drops ``<w:softHyphen/>``, which is the letter ư in TCVN3 files.
Automatic numbering (``w:numPr``: "Điều 1.", "1.", "a)" typed by Word, not by the author) is
rendered, and each run's font (its own, its style's, the paragraph style's, the document default)
decides whether it is TCVN3 or VNI (see ``legacy.py``).
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileContentError
from . import legacy

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_SKIP = {"del", "moveFrom", "drawing", "pict", "object", "txbxContent", "instrText", "delText",
         "footnoteReference", "endnoteReference", "commentReference", "fldChar", "rPr", "pPr", "tblPr",
         "tcPr", "trPr", "sectPr", "tblGrid", "proofErr", "bookmarkStart", "bookmarkEnd"}


def _q(tag: str) -> str:
    return f"{{{W}}}{tag}"


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _val(el: Any, name: str = "val") -> str | None:
    return None if el is None else el.get(_q(name))


def _on(el: Any) -> bool:
    """A toggle property (``<w:caps/>``, ``<w:caps w:val="0"/>``) is on."""
    return el is not None and _val(el) not in ("0", "false", "off")


@dataclass
class _RunStyle:
    font: str | None = None
    caps: bool | None = None


@dataclass
class _Styles:
    by_id: dict[str, tuple[str | None, _RunStyle, tuple[str, str] | None]] = field(default_factory=dict)
    default_paragraph: str | None = None
    default_run: _RunStyle = field(default_factory=_RunStyle)

    def resolve(self, style_id: str | None) -> _RunStyle:
        """Font and caps of a style, following ``basedOn``."""
        out = _RunStyle()
        seen: set[str] = set()
        while style_id and style_id not in seen and style_id in self.by_id:
            seen.add(style_id)
            based_on, run, _ = self.by_id[style_id]
            out.font = out.font or run.font
            out.caps = out.caps if out.caps is not None else run.caps
            style_id = based_on
        return out

    def numbering(self, style_id: str | None) -> tuple[str, str] | None:
        seen: set[str] = set()
        while style_id and style_id not in seen and style_id in self.by_id:
            seen.add(style_id)
            based_on, _, num = self.by_id[style_id]
            if num:
                return num
            style_id = based_on
        return None


def _run_style(rpr: Any) -> _RunStyle:
    if rpr is None:
        return _RunStyle()
    fonts = rpr.find(_q("rFonts"))
    font = None
    if fonts is not None:
        font = fonts.get(_q("ascii")) or fonts.get(_q("hAnsi"))
    caps = rpr.find(_q("caps"))
    return _RunStyle(font, _on(caps) if caps is not None else None)


def _num_pr(ppr: Any) -> tuple[str, str] | None:
    if ppr is None:
        return None
    num = ppr.find(_q("numPr"))
    if num is None:
        return None
    num_id = _val(num.find(_q("numId")))
    if not num_id or num_id == "0":
        return None
    return num_id, _val(num.find(_q("ilvl"))) or "0"


def _load_styles(element: Any) -> _Styles:
    styles = _Styles()
    if element is None:
        return styles
    defaults = element.find(f"{_q('docDefaults')}/{_q('rPrDefault')}/{_q('rPr')}")
    styles.default_run = _run_style(defaults)
    for style in element.iter(_q("style")):
        sid = style.get(_q("styleId"))
        if not sid:
            continue
        if style.get(_q("type")) == "paragraph" and style.get(_q("default")) in ("1", "true"):
            styles.default_paragraph = sid
        styles.by_id[sid] = (_val(style.find(_q("basedOn"))), _run_style(style.find(_q("rPr"))),
                             _num_pr(style.find(_q("pPr"))))
    return styles


# ---------------------------------------------------------------------------------------------- numbering
def _roman(n: int) -> str:
    out = ""
    for value, letters in ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
                           (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= value:
            out, n = out + letters, n - value
    return out


def _letter(n: int) -> str:
    n = max(1, n)
    return chr(ord("a") + (n - 1) % 26) * ((n - 1) // 26 + 1)


def _format_number(n: int, fmt: str) -> str:
    if fmt == "lowerLetter":
        return _letter(n)
    if fmt == "upperLetter":
        return _letter(n).upper()
    if fmt == "lowerRoman":
        return _roman(n)
    if fmt == "upperRoman":
        return _roman(n).upper()
    if fmt in ("none", "bullet"):
        return ""
    return str(n)  # decimal and the many variants we render as decimal


class _Numbering:
    """Renders ``w:numPr`` labels ("Điều 3.", "2.", "a)") with Word's counters."""

    def __init__(self, element: Any) -> None:
        self.levels: dict[str, dict[int, tuple[int, str, str]]] = {}  # abstract id -> ilvl -> (start, fmt, text)
        self.nums: dict[str, tuple[str, dict[int, int]]] = {}  # numId -> (abstract id, start overrides)
        self.counters: dict[str, dict[int, int]] = {}
        if element is None:
            return
        for abstract in element.iter(_q("abstractNum")):
            aid = abstract.get(_q("abstractNumId"))
            levels: dict[int, tuple[int, str, str]] = {}
            for lvl in abstract.iter(_q("lvl")):
                try:
                    ilvl = int(lvl.get(_q("ilvl")) or 0)
                    start = int(_val(lvl.find(_q("start"))) or 1)
                except ValueError:
                    continue
                levels[ilvl] = (start, _val(lvl.find(_q("numFmt"))) or "decimal",
                                _val(lvl.find(_q("lvlText"))) or "")
            if aid is not None:
                self.levels[aid] = levels
        for num in element.iter(_q("num")):
            nid = num.get(_q("numId"))
            aid = _val(num.find(_q("abstractNumId")))
            overrides: dict[int, int] = {}
            for override in num.iter(_q("lvlOverride")):
                start = _val(override.find(_q("startOverride")))
                try:
                    if start is not None:
                        overrides[int(override.get(_q("ilvl")) or 0)] = int(start)
                except ValueError:
                    pass
            if nid is not None and aid is not None:
                self.nums[nid] = (aid, overrides)

    def label(self, num_id: str, ilvl_text: str) -> str:
        if num_id not in self.nums:
            return ""
        aid, overrides = self.nums[num_id]
        levels = self.levels.get(aid, {})
        try:
            ilvl = int(ilvl_text)
        except ValueError:
            return ""
        if ilvl not in levels:
            return ""
        counters = self.counters.setdefault(num_id, {})
        start, fmt, text = levels[ilvl]
        start = overrides.get(ilvl, start)
        counters[ilvl] = counters[ilvl] + 1 if ilvl in counters else start
        for deeper in [k for k in counters if k > ilvl]:
            del counters[deeper]
        if fmt == "bullet":
            return "-"
        out = text
        for k in range(ilvl, -1, -1):
            if f"%{k + 1}" in out:
                k_start, k_fmt, _ = levels.get(k, (1, "decimal", ""))
                out = out.replace(f"%{k + 1}", _format_number(counters.get(k, overrides.get(k, k_start)), k_fmt))
        return out.strip()


# ---------------------------------------------------------------------------------------------- body
@dataclass
class _Walker:
    styles: _Styles
    numbering: _Numbering
    legacy_runs: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def block(self, element: Any) -> None:
        for child in element:
            name = _local(child.tag)
            if name == "p":
                self.paragraph(child)
            elif name == "tbl":
                for row in child.iter(_q("tr")):
                    for cell in row.findall(_q("tc")):
                        self.block(cell)
            elif name in ("sdt", "sdtContent", "customXml", "ins", "moveTo"):
                self.block(child)

    def paragraph(self, p: Any) -> None:
        ppr = p.find(_q("pPr"))
        style_id = _val(ppr.find(_q("pStyle"))) if ppr is not None else None
        style_id = style_id or self.styles.default_paragraph
        base = self.styles.resolve(style_id)
        parts: list[str] = []
        num = _num_pr(ppr) or self.styles.numbering(style_id)
        if num:
            label = self.numbering.label(*num)
            if label:
                parts.append(label + " ")
        self._inline(p, base, parts)
        self.lines.append("".join(parts))

    def _inline(self, element: Any, base: _RunStyle, parts: list[str]) -> None:
        for child in element:
            name = _local(child.tag)
            if name == "r":
                parts.append(self.run(child, base))
            elif name not in _SKIP and name != "p":
                self._inline(child, base, parts)  # hyperlink, smartTag, ins, fldSimple, sdt ...

    def run(self, r: Any, base: _RunStyle) -> str:
        own = _run_style(r.find(_q("rPr")))
        rpr = r.find(_q("rPr"))
        char_style = self.styles.resolve(_val(rpr.find(_q("rStyle"))) if rpr is not None else None)
        font = own.font or char_style.font or base.font or self.styles.default_run.font
        caps = next((c for c in (own.caps, char_style.caps, base.caps) if c is not None), False)
        pieces: list[str] = []
        for child in r:
            name = _local(child.tag)
            if name == "t":
                pieces.append(child.text or "")
            elif name == "tab":
                pieces.append("\t")
            elif name in ("br", "cr"):
                pieces.append("\n")
            elif name == "softHyphen":
                pieces.append("\u00ad")
            elif name == "noBreakHyphen":
                pieces.append("-")
        text, applied = legacy.convert_run("".join(pieces), font)
        if applied:
            self.legacy_runs[applied] += 1
        return text.upper() if caps else text


@dataclass
class DocxText:
    text: str
    legacy_runs: dict[str, int]


def _open(data: bytes, source: str) -> Any:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise FileContentError(source, f"corrupt or truncated Word document ({exc})",
                              "open it in Word or LibreOffice, save it again as .docx and drop it in again") from exc
    if bad is not None:
        raise FileContentError(source, f"corrupt or truncated Word document (damaged part {bad})",
                              "open it in Word or LibreOffice, save it again as .docx and drop it in again")
    try:
        return docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise FileContentError(source, f"not a readable Word document ({type(exc).__name__}: {exc})",
                              "open it in Word or LibreOffice, save it again as .docx and drop it in again") from exc
    except Exception as exc:  # lxml XMLSyntaxError and the like: damaged XML inside
        if type(exc).__name__ in ("XMLSyntaxError", "BadZipFile"):
            raise FileContentError(source, f"corrupt Word document ({exc})",
                                  "open it in Word or LibreOffice, save it again as .docx and drop it in again") from exc
        raise


def read_docx_bytes(data: bytes, source: str) -> DocxText:
    """Text of a .docx held in ``data``: one line per paragraph (table cells row by row)."""
    document = _open(data, source)
    part = document.part
    try:
        styles_element = part.styles.element
    except Exception:  # noqa: BLE001 - no styles part: defaults only
        styles_element = None
    try:
        numbering_element = part.numbering_part.element
    except Exception:  # noqa: BLE001 - no numbering part
        numbering_element = None
    walker = _Walker(_load_styles(styles_element), _Numbering(numbering_element))
    body = document.element.find(_q("body"))
    if body is not None:
        walker.block(body)
    return DocxText("\n".join(walker.lines), dict(walker.legacy_runs))


def read_docx(path: Path, source: str) -> DocxText:
    return read_docx_bytes(Path(path).read_bytes(), source)
