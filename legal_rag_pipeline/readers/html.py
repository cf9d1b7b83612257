"""Saved web pages (vbpl.vn old and new layout, Word "Save as Web Page") → text, one line per block.

Text is joined per block element: vbpl.vn writes ``Điều <a name=…></a>1.`` inside a heading, which a
naive join of text nodes splits into ``Điều`` / ``1.``. The legal text is taken from where it is:

* vbpl.vn, older layout: ``#toanvancontent`` and the header tables just before it (issuer, "Số: …",
  date), i.e. their common parent;
* vbpl.vn, current layout: the parent of the paragraphs classed ``prov-article`` (with ``prov-chapter``,
  ``prov-section``, ``prov-clause``, ``prov-item`` beside them), which also holds the header table;
* any other page: the smallest element holding (nearly) every article heading, else the whole body
  without navigation, scripts and forms.

``page_validity`` reads the status vbpl.vn shows above the text ("Còn hiệu lực", "Ngày có hiệu lực: …").

selectolax's Lexbor parser never fetches anything a page refers to (no scripts, no images, no URLs).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from datetime import date
from typing import Any

from ..errors import FileContentError

_BLOCK = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul", "title",
}
_DROP = "script, style, noscript, template, iframe, object, embed, svg, canvas, button, select, input, textarea"
_CHROME = "nav, header, footer, form, aside, menu"
# "Điều 5." / "Điều 5: " / "Điều 5 - " (not the range "Điều 5-7")
_ARTICLE_LINE = re.compile(r"^\s*(?:Điều|ĐIỀU)\s*\d+[a-zđ]?\s*(?:[.:]|[-–—](?!\s*\d))", re.M)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def decode_html(data: bytes) -> tuple[str, str]:
    """(text, encoding label): a BOM, else the page's ``<meta charset>``, else UTF-8, else windows-1258."""
    for bom, label in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(label, errors="replace"), label
    head = data[: 1 << 21]
    match = _CHARSET.search(head)
    declared = match.group(1).decode("ascii", "replace").lower() if match else None
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            declared = None
    if declared and declared.replace("-", "").replace("_", "") not in ("utf8",):
        return data.decode(declared, errors="replace"), declared
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        if declared:
            return data.decode("utf-8", errors="replace"), "utf-8 (with invalid bytes replaced)"
        return data.decode("cp1258", errors="replace"), "windows-1258"


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes are an HTML document (also a Word page saved with a .doc name)."""
    sample = head[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if sample.startswith((b"<!doctype html", b"<html")):
        return True
    if sample.startswith((b"<!--", b"<?xml")) and b"<html" in sample:
        return True
    return bool(re.search(rb"<html[\s>]", sample)) and bool(re.search(rb"<(head|body|meta|title)[\s>]", sample))


def _lines(node: Any) -> list[str]:
    """One line per block element; inline text joined, whitespace collapsed as a browser does."""
    lines: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = _SPACES.sub(" ", "".join(current)).strip()
        current.clear()
        if line:
            lines.append(line)

    def walk(el: Any) -> None:
        tag = el.tag
        if tag == "-text":
            current.append(el.text_content or "")
            return
        if tag == "br":
            flush()
            return
        if tag in ("-comment", "-doctype"):
            return
        block = tag in _BLOCK
        if block:
            flush()
        child = el.child
        while child is not None:
            walk(child)
            child = child.next
        if block or tag in ("td", "th"):
            flush()

    walk(node)
    flush()
    return lines


def _parent_holding(tree: Any, selector: str) -> Any | None:
    first = tree.css_first(selector)
    if first is None:
        return None
    total = len(tree.css(selector))
    node = first.parent
    while node is not None and node.tag not in ("body", "html"):
        if len(node.css(selector)) >= 0.9 * total:
            return node
        node = node.parent
    return node


def _densest(tree: Any) -> Any | None:
    """The smallest element holding at least 90% of the article headings of the page."""
    body = tree.body
    if body is None:
        return None
    total = len(_ARTICLE_LINE.findall("\n".join(_lines(body))))
    if total == 0:
        return None
    best, best_len = body, len(body.text())
    for node in body.css("div, article, section, main, td"):
        text = node.text(separator="\n")
        if len(text) >= best_len:
            continue
        if len(_ARTICLE_LINE.findall(text)) >= 0.9 * total:
            best, best_len = node, len(text)
    return best


def html_text(data: bytes, source: str) -> tuple[str, str, str, dict[str, Any] | None]:
    """(text, encoding, layout, page validity) of a saved page; layout says where the text was found,
    page validity is the page's own status (``page_validity``), None when it shows none."""
    from selectolax.lexbor import LexborHTMLParser

    text, encoding = decode_html(data)
    try:
        tree = LexborHTMLParser(text)
    except Exception as exc:  # noqa: BLE001 - the parser's own errors
        raise FileContentError(source, f"not a readable HTML page ({exc})",
                              "save the page again from the browser (File → Save as, web page) and drop it in again") from exc
    validity = page_validity(tree)  # before anything is taken out of the page
    for node in tree.css(_DROP):
        node.decompose()
    content = tree.css_first("#toanvancontent")
    if content is not None:
        root, layout = content.parent or content, "vbpl.vn (older layout)"
    elif tree.css_first(".prov-article") is not None:
        root, layout = _parent_holding(tree, ".prov-article"), "vbpl.vn (prov-* layout)"
    else:
        root, layout = _densest(tree), "main text"
        if root is None:
            for node in tree.css(_CHROME):
                node.decompose()
            root, layout = tree.body, "page body"
    if root is None:
        raise FileContentError(source, "an HTML page with no body", "save the page again from the browser and drop it in again")
    return "\n".join(_lines(root)), encoding, layout, validity


# ---------------------------------------------------------------------------------------------------
# The page's own status: vbpl.vn shows the state's reading above the text, as of the day it was saved
# ---------------------------------------------------------------------------------------------------
# older layout: <div class="vbInfo"><ul><li><span>Hiệu lực: </span>Hết hiệu lực một phần</li>
#   <li><span>Ngày có hiệu lực: </span>01/01/2018</li> (also "Ngày hết hiệu lực: …"), outside #toanvancontent;
# current layout: <div class="lawDocumentHeader_…"> with <div class="effStatus_…">Còn hiệu lực</div> and
#   <span class="lawDocumentHeader_dateLabel_…">Ngày có hiệu lực:</span><span …>01/03/2026</span>.
_PAGE_HEADERS = ".vbInfo, [class*=\"lawDocumentHeader\"]"  # the first in the page: the outermost
_PAGE_STATUS_TAG = "[class*=\"effStatus\"], [class*=\"StatusTag\"]"
_PAGE_LABELS = {
    "hiệu lực": "status",
    "tình trạng hiệu lực": "status",
    "trạng thái hiệu lực": "status",
    "ngày có hiệu lực": "effective_from",
    "ngày hết hiệu lực": "valid_to",
    "ngày cập nhật": "updated_on",
}
_PAGE_DATE = re.compile(r"^(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*(\d{4})$")


def page_validity(page: bytes | Any) -> dict[str, Any] | None:
    """The status a vbpl.vn page shows for its document (``page``: the saved bytes, or the parsed
    tree), or None for a page that shows none.

    ``{"status": the page's words ("Hết hiệu lực một phần"), "in_force": True for "Còn hiệu lực" and
    "… một phần", False for "Hết hiệu lực toàn bộ" / "Ngưng hiệu lực", None for "Chưa có hiệu lực" or
    words not known, "effective_from": "Ngày có hiệu lực" as ISO date, "valid_to": "Ngày hết hiệu
    lực", "updated_on": "Ngày cập nhật"}`` (None where the page has no such line). Only the page's
    header block is read, never the legal text below it.
    """
    if isinstance(page, (bytes, bytearray)):
        from selectolax.lexbor import LexborHTMLParser

        page = LexborHTMLParser(decode_html(bytes(page))[0])
    header = page.css_first(_PAGE_HEADERS)
    if header is None:
        return None
    found: dict[str, str] = {}
    for label in header.css("span, b, strong, label, dt, th"):
        words = unicodedata.normalize("NFC", " ".join(label.text().split()))
        key = _PAGE_LABELS.get(words.rstrip(": ").casefold()) if words.endswith(":") else None
        if key is None or key in found or label.parent is None:
            continue
        line = unicodedata.normalize("NFC", " ".join(label.parent.text().split()))
        value = line.split(words, 1)[-1].strip()
        if value and len(value) <= 80:
            found[key] = value
    if "status" not in found:
        tag = header.css_first(_PAGE_STATUS_TAG)
        words = unicodedata.normalize("NFC", " ".join(tag.text().split())) if tag is not None else ""
        if "hiệu lực" in words.casefold() and len(words) <= 80:
            found["status"] = words
    if not found:
        return None
    status = found.get("status")
    return {
        "status": status,
        "in_force": _in_force(status),
        "effective_from": _page_date(found.get("effective_from")),
        "valid_to": _page_date(found.get("valid_to")),
        "updated_on": _page_date(found.get("updated_on")),
    }


def _in_force(status: str | None) -> bool | None:
    words = (status or "").casefold()
    if not words or words.startswith("chưa"):  # "Chưa có hiệu lực", "Chưa xác định"
        return None
    if "một phần" in words or words.startswith(("còn hiệu lực", "có hiệu lực", "đang có hiệu lực")):
        return True
    if words.startswith(("hết hiệu lực", "ngưng hiệu lực", "tạm ngưng hiệu lực", "đình chỉ")):
        return False
    return None


def _page_date(value: str | None) -> str | None:
    """The ISO date of a page's day-first date ("01/03/2026" → "2026-03-01"), None for none."""
    m = _PAGE_DATE.match(value or "")
    if not m:
        return None
    try:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1))).isoformat()
    except ValueError:
        return None
