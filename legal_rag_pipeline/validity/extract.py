"""Read what one document says about validity (hiệu lực): its own date of effect, and what it
repeals, abolishes or amends in other documents.

Plain functions on one document's normalised text (NFC, stripped lines, "\\n" separated; see
``text.normalize.normalize_text``); no I/O. The entry point is ``read_validity``.

What is read, and where (see ``shared/design/VALIDITY.md``):

- the date of effect: "Luật này có hiệu lực thi hành từ ngày 01 tháng 01 năm 2021", "… từ ngày
  1/7/2016", "… kể từ ngày ký" (the date of issue), "… sau 45 ngày kể từ ngày công bố" (issue + 45
  days); parts with their own date: "2. Khoản 3 Điều 86, …, các điều 109, 110 … của Luật này có
  hiệu lực thi hành từ ngày 01 tháng 01 năm 2028";
- repeals ("hết hiệu lực"): "Luật Doanh nghiệp số 68/2014/QH13 hết hiệu lực kể từ ngày Luật này có
  hiệu lực thi hành", parts of a document ("Chương V của Luật khiếu nại số 02/2011/QH13 …"), lists
  ("Các pháp lệnh sau đây hết hiệu lực …:" then "a) Pháp lệnh … số …;"), exceptions ("…, trừ Điều 75
  của Luật Đầu tư số 67/2014/QH14");
- amendments and abolitions, one per clause of an article titled "Sửa đổi, bổ sung một số điều của
  Luật X số …" ("1. Sửa đổi, bổ sung điểm a và điểm b khoản 3 Điều 32 như sau:", "Bãi bỏ Điều 37 …"),
  and "Bãi bỏ Điều 5 của Luật X số …" anywhere after the preamble.

Precision before recall: a document named only as an earlier amendment of the target ("Luật Giáo
dục số 38/2005/QH11 đã được sửa đổi, bổ sung một số điều theo Luật số 44/2009/QH12 …") is not a
target; new wording in quotation marks (“…”) is never read as provisions; the document's own number
and "Luật này" are never targets; a part named only by its subject ("Các quy định về bảo hiểm thất
nghiệp của Luật …") gives no relation: the sentence goes to ``unreadable`` for a person to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from legal_rag_pipeline.readers.header import (
    _DATE_WORDS,
    _NUMBER,
    _OLD_NUMBER,
    _iso,
    document_info,
    number_key,
    parse_number,
)
from legal_rag_pipeline.text.chunking import _match_article, parse_law_title
from legal_rag_pipeline.validity.model import (
    ABOLISHES,
    AMENDS,
    ARTICLE,
    CHAPTER,
    CLAUSE,
    PART,
    POINT,
    REPEALS,
    SECTION,
    DocumentFacts,
    Relation,
    Scope,
    Target,
)

__all__ = ["find_targets", "parse_scopes", "read_validity", "roman_to_arabic", "target_key"]

# ---------------------------------------------------------------------------------------------------
# Words and patterns
# ---------------------------------------------------------------------------------------------------
_W = r"[\wÀ-ỹ]"
_TYPES = r"Bộ luật|Bộ Luật|Luật|Pháp lệnh|Nghị định|Nghị quyết liên tịch|Nghị quyết|Thông tư liên tịch|Thông tư|Quyết định|Hiến pháp"
# A document type starting a reference, never "Luật này" (the stating document itself).
_TYPE = re.compile(rf"(?<!{_W})({_TYPES})(?!{_W})(?!\s+này)")
# Titles of the named document may contain another type after "sửa đổi, bổ sung … của":
# "Luật sửa đổi, bổ sung một số điều của Luật hải quan" is one document, not two.
_INSIDE_TITLE = re.compile(
    r"(?:sửa\s+đổi|bổ\s+sung)(?:\s*,\s*bổ\s+sung)?(?:\s+(?:một\s+số\s+)?(?:điều|Điều)(?:\s+\d+[a-zđ]?)?"
    r"(?:\s+(?:của|và)\s+[^,;]{0,60}?)?)?\s+(?:của|đối\s+với)\s+(?:các\s+)?$",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?<!\d)năm\s+((?:19|20)\d{2})(?!\d)", re.IGNORECASE)
# "… đã được sửa đổi, bổ sung một số điều theo Luật số 44/2009/QH12, Luật số 74/2014/QH13 và …":
# the acts after "theo" / "bởi" only amended the target; they are not targets themselves.
_AMENDED_BY = re.compile(
    r"(?:,\s*)?(?:đã\s+)?(?:được|dược)\s+sửa\s+đổi(?:\s*,?\s*bổ\s+sung)?(?:\s+một\s+số\s+(?:điều|Điều))?"
    r"\s+(?:theo|bởi|tại)\s+",
    re.IGNORECASE,
)
_AMENDING_ACT = re.compile(
    rf"\s*(?:,|;|\s+và)?\s*(?:{_TYPES})\s+(?:số\s*)?(?:{_NUMBER.pattern}|{_OLD_NUMBER.pattern})"
    r"(?:\s+ngày\s+\d{1,2}\s+tháng\s+\d{1,2}\s+năm\s+\d{4})?"
)
_HET = re.compile(r"hết\s+hiệu\s+lực", re.IGNORECASE)
_HET_TAIL = re.compile(
    r"^(?:\s+(?:toàn\s+bộ|thi\s+hành))?\s*,?\s*(?:kể\s+)?từ\s+(?:ngày|khi|thời\s+điểm)\s*(.*)$", re.IGNORECASE)
_SELF = re.compile(r"(?:Bộ\s+luật|Luật|Pháp\s+lệnh|Nghị\s+định|Nghị\s+quyết|Thông\s+tư|Quyết\s+định|Hiến\s+pháp|"
                   r"[Vv]ăn\s+bản)\s+này", re.IGNORECASE)
_CLAUSE_LINE = re.compile(r"^(\d{1,3}[a-zđ]?)\s*[.)]\s*(.*)$")
_POINT_LINE = re.compile(r"^([a-zđ])\s*\)\s*(.*)$")
_LIST_ITEM = re.compile(r"^(?:[a-zđ]\s*\)|[-–+•]|\d{1,2}\s*[.)])\s*(.*)$")
_VERB = re.compile(
    r"^(bãi\s+bỏ(?!\s*,)|sửa\s+đổi|bổ\s+sung|thay\s+thế|sửa\s+cụm|sửa|bỏ\s+cụm|bỏ\s+(?=(?:điểm|khoản|Điều|đoạn|cụm)))"
    r"(?:\s*,\s*(?:bổ\s+sung|bãi\s+bỏ|sửa\s+đổi))*(?:\s+(?:và|hoặc)\s+(?:bổ\s+sung|bãi\s+bỏ))?\s*",
    re.IGNORECASE,
)
_VERB_START = re.compile(r"^(?:bãi\s+bỏ|sửa\s+đổi|bổ\s+sung|thay\s+thế|sửa\s+cụm|bỏ\s+cụm)", re.IGNORECASE)
# Older amending texts: "1. Điều 51 được sửa đổi, bổ sung như sau:" (never "đã được": that describes the past).
_PASSIVE = re.compile(
    r"^((?:(?:các|những)\s+)?(?:điểm|khoản|điều|đoạn|mục|chương|tên)\s[^“\"]{0,160}?)(?<!đã)\s+(?:được|bị)\s+"
    r"(sửa\s+đổi|bổ\s+sung|bãi\s+bỏ|thay\s+thế)", re.IGNORECASE)
_AS_FOLLOWS = re.compile(r"\s+như\s+sau\b.*$|\s*:\s*$", re.IGNORECASE)
_REPLACED_BY = re.compile(r"\s+(?:bằng|thành)\s+(?:các\s+)?(?:cụm\s+từ\s+)?“”", re.IGNORECASE)
_APPENDIX = re.compile(r"phụ\s+lục|danh\s+mục|biểu\s+(?:phí|thuế)|tiểu\s+mục|số\s+thứ\s+tự", re.IGNORECASE)
_INLINE_QUOTE = re.compile(r"“[^”]*”|\"[^\"]*\"|‘[^’]*’")
_BROKEN_VERB = re.compile(r"(?:^|\s)(?:Bãi\s+bỏ|Sửa\s+đổi|Sửa\s+đổi,\s*bổ\s+sung|Bổ\s+sung|Thay\s+thế)\s*$")
_SENTENCE = re.compile(r"(?<=[.])\s+(?=[A-ZĐÀ-Ỹ])")
_UNSPECIFIED = re.compile(r"quy\s+định|phụ\s+lục|danh\s+mục|biểu\s+|mục\s+[IVX\d.]+\s*,?\s*phần|văn\s+bản", re.IGNORECASE)

# Own date of effect.
_EFFECT = re.compile(r"có\s+hiệu\s+lực(?:\s+thi\s+hành)?", re.IGNORECASE)
_EFFECT_DATE = re.compile(
    r"^\s*,?\s*(?:kể\s+)?từ\s+ngày\s+(\d{1,2})\s*(?:tháng|/|-)\s*(\d{1,2})\s*(?:năm|/|-)\s*((?:19|20)\d{2})", re.IGNORECASE)
_EFFECT_SIGNED = re.compile(r"^\s*,?\s*(?:kể\s+)?từ\s+(?:ngày|khi)\s+(?:được\s+)?(ký|ban\s+hành|công\s+bố|thông\s+qua)", re.IGNORECASE)
_EFFECT_AFTER = re.compile(
    r"^\s*,?\s*(?:sau|kể\s+từ\s+sau)\s+(\d{1,3})\s+ngày\s*,?\s*(?:kể\s+)?từ\s+(?:ngày|khi)\s+(?:được\s+)?"
    r"(ký|ban\s+hành|công\s+bố|thông\s+qua)", re.IGNORECASE)
_SELF_EFFECT_START = re.compile(
    r"^(?:\d{1,2}\s*[.)]\s*)?(?:Bộ\s+luật|Luật|Pháp\s+lệnh|Nghị\s+định|Nghị\s+quyết|Thông\s+tư|Quyết\s+định|"
    r"Hiến\s+pháp|Văn\s+bản)\s+này\s+có\s+hiệu\s+lực", re.IGNORECASE)
_PART_START = re.compile(r"^(?:\d{1,2}\s*[.)]\s*)?(?:(?:Các\s+)?quy\s+định\s+tại\s+)?(?:các\s+)?(?:Điều|Khoản|Điểm|Chương|Mục)\s",
                         re.IGNORECASE)

_LEVEL_RANK = {POINT: 0, CLAUSE: 1, ARTICLE: 2, SECTION: 3, CHAPTER: 4, PART: 5}
_SCOPE_WORDS = {"điểm": POINT, "khoản": CLAUSE, "điều": ARTICLE, "mục": SECTION, "chương": CHAPTER, "phần": PART}
_SCOPE_ID = {
    POINT: r"[a-zđ]\d?",
    CLAUSE: r"\d{1,3}[a-zđ]?",
    ARTICLE: r"\d{1,4}[a-zđ]?",
    SECTION: r"\d{1,2}|[IVXLC]{1,7}",
    CHAPTER: r"\d{1,2}|[IVXLC]{1,7}",
    PART: r"thứ\s+[\wÀ-ỹ]+|\d{1,2}|[IVXLC]{1,7}",
}
_SCOPE_TOKEN = re.compile(
    r"(?:(?:các|những)\s+)?(điểm|khoản|điều|mục|chương|phần)\s+"
    r"(từ\s+(?:điều\s+)?\d{1,4}\s+đến\s+(?:điều\s+)?\d{1,4}"
    r"|[\wÀ-ỹ]{1,7}(?:\s*(?:,|và|;)\s*(?!(?:điểm|khoản|điều|mục|chương|phần|của|tại)\b)[\wÀ-ỹ]{1,7})*)"
    r"(?![\wÀ-ỹ\-]|\.\d)",
    re.IGNORECASE,
)
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def roman_to_arabic(numeral: str) -> str:
    """"V" → "5", "XIV" → "14"; Arabic numerals are returned as they are ("5" → "5")."""
    numeral = numeral.strip()
    if numeral.isdigit():
        return str(int(numeral))
    if not numeral or any(c not in _ROMAN for c in numeral.upper()):
        return numeral
    total, prev = 0, 0
    for c in reversed(numeral.upper()):
        value = _ROMAN[c]
        total = total - value if value < prev else total + value
        prev = max(prev, value)
    return str(total)


def target_key(target: Target) -> str:
    """A comparable key for a target: its ``number_key`` when numbered, else "title|year" lower case."""
    if target.number:
        return number_key(target.number)
    return f"{(target.title or '').lower()}|{target.year or ''}"


# ---------------------------------------------------------------------------------------------------
# Scopes: "Mục 3 Chương III, khoản 4 Điều 84, điểm b khoản 1 và điểm a khoản 2 Điều 86"
# ---------------------------------------------------------------------------------------------------
def _ids(level: str, raw: str) -> list[str]:
    raw = raw.strip()
    rng = re.match(r"từ\s+(?:điều\s+)?(\d{1,4})\s+đến\s+(?:điều\s+)?(\d{1,4})", raw, re.IGNORECASE)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        return [str(n) for n in range(lo, hi + 1)] if 0 < hi - lo < 300 else []
    out = []
    for part in re.split(r"\s*(?:,|;|\s+và\s+)\s*", raw):
        part = part.strip()
        if level == PART and part.lower().startswith("thứ"):
            out.append(part.lower())
            continue
        if re.fullmatch(_SCOPE_ID[level], part, re.IGNORECASE if level not in (SECTION, CHAPTER, PART) else 0):
            value = part.lower() if level in (POINT, CLAUSE, ARTICLE) else roman_to_arabic(part)
            out.append(value)
    return out


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """The parts of a document a phrase names, narrowest level per part.

    "điểm b khoản 1 và điểm a khoản 2 Điều 86" → (POINT 86/1/b, POINT 86/2/a); "các điều 104, 105 và
    106" → three ARTICLE scopes; "Mục 3 Chương III" → SECTION 3 of chapter 3; "Chương V" → CHAPTER
    "5". A wider unit written right after narrower ones applies to all of them ("khoản 3 và khoản 4
    Điều 19"); after a comma or "và" it starts a new part ("Điều 5, Điều 7").
    """
    text = _INLINE_QUOTE.sub(" ", text)
    items: list[dict[str, str]] = []
    prev_end = 0
    for m in _SCOPE_TOKEN.finditer(text):
        level = _SCOPE_WORDS[m.group(1).lower()]
        ids = _ids(level, m.group(2))
        if not ids:
            continue
        between = text[prev_end:m.start()]
        prev_end = m.end()
        rank = _LEVEL_RANK[level]
        separated = bool(re.search(r"[,;]|(?:^|\s)(?:và|hoặc)(?:\s|$)", between)) or not items
        attached = False
        if not separated or rank > _LEVEL_RANK[ARTICLE]:
            for item in items:
                widest = max(_LEVEL_RANK[k] for k in item)
                if widest < rank and level not in item and len(ids) == 1:
                    if separated and not (rank > _LEVEL_RANK[ARTICLE] and not re.search(r"[,;]", between)):
                        continue
                    item[level] = ids[0]
                    attached = True
        if not attached:
            items.extend({level: i} for i in ids)
    scopes = []
    for item in items:
        narrowest = min(item, key=lambda k: _LEVEL_RANK[k])
        scopes.append(Scope(level=narrowest, part=item.get(PART), chapter=item.get(CHAPTER),
                            section=item.get(SECTION), article=item.get(ARTICLE), clause=item.get(CLAUSE),
                            point=item.get(POINT)))
    return tuple(dict.fromkeys(scopes))


# ---------------------------------------------------------------------------------------------------
# Documents named in a phrase
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Ref:
    target: Target
    prefix: str  # the words before it: "Chương V của", "các quy định về … của"
    start: int
    end: int
    anchored: bool  # named with a number, a date or a year


def _strip_amended_by(text: str) -> str:
    """Remove "đã được sửa đổi, bổ sung (một số điều) theo Luật số x, Luật số y và Luật số z" spans."""
    out, pos = [], 0
    for m in _AMENDED_BY.finditer(text):
        if m.start() < pos:
            continue
        end = m.end()
        while act := _AMENDING_ACT.match(text, end):
            end = act.end()
        if end == m.end():  # nothing recognisable after "theo": keep the text as it is
            continue
        out.append(text[pos:m.start()])
        out.append(" ")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _year_of(number: str | None, rest: str) -> int | None:
    if number:
        m = re.search(r"/((?:19|20)\d{2})/", number)
        if m:
            return int(m.group(1))
    d = _DATE_WORDS.match(rest.strip())
    if d:
        return int(d.group(3))
    y = _YEAR.match(rest.strip())
    return int(y.group(1)) if y else None


def _clean_title(kind: str, words: str) -> str | None:
    words = re.sub(r"\s+", " ", words).strip(" ,;:.-–")
    words = re.sub(r"\s+(?:đã\s+)?được\s.*$", "", words)
    words = re.sub(r"\s+(?:số|ngày|năm)$", "", words).strip(" ,;:.-–")
    if not words:
        return None
    if kind.lower() == "bộ luật":
        kind = "Bộ luật"
    return f"{kind} {words}"


def find_targets(text: str) -> list[_Ref]:
    """The documents a phrase names, in order, each with the words before it.

    "Luật Giáo dục số 38/2005/QH11 đã được sửa đổi, bổ sung một số điều theo Luật số 44/2009/QH12"
    → one reference (38/2005/QH11); "Chương V của Luật khiếu nại số 02/2011/QH13" → 02/2011/QH13
    with prefix "Chương V của"; "Bộ luật hàng hải Việt Nam năm 2005" → title and year.
    """
    text = _strip_amended_by(text)
    starts = []
    for m in _TYPE.finditer(text):
        if _INSIDE_TITLE.search(text[max(0, m.start() - 120):m.start()]):
            continue
        starts.append(m)
    refs: list[_Ref] = []
    prev_end = 0
    for i, m in enumerate(starts):
        seg_end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        if m.start() < prev_end:
            continue
        seg = text[m.end():seg_end]
        kind = m.group(1)
        anchor = None
        for num in _NUMBER.finditer(seg):
            anchor = num
            break
        if anchor is None:
            old = _OLD_NUMBER.search(seg)
            anchor = old
        date_m = _DATE_WORDS.search(seg)
        year_m = _YEAR.search(seg)
        cands = [a for a in (anchor, date_m, year_m) if a is not None and a.start() < 160]
        first = min(cands, key=lambda a: a.start()) if cands else None
        if first is not None and ";" in seg[:first.start()]:
            first = None
        if first is not None:
            title = _clean_title(kind, seg[:first.start()])
            number = None
            if first is anchor:
                raw = parse_number(anchor.group(0))
                number = number_key(raw) if raw else None
                end = m.end() + anchor.end()
                after = seg[anchor.end():]
                year = _year_of(number, after.lstrip(" ,"))
                dm = re.match(r"\s*,?\s*ngày\s+\d{1,2}\s*(?:tháng|/)\s*\d{1,2}\s*(?:năm|/)\s*\d{4}", after)
                if dm:
                    end += dm.end()
            else:
                year = _year_of(None, seg[first.start():])
                end = m.end() + first.end()
            if title and re.fullmatch(r"(?:Bộ luật|Luật|Pháp lệnh|Nghị định|Nghị quyết|Thông tư|Quyết định)",
                                      title, re.IGNORECASE):
                title = None
            prefix, start = text[prev_end:m.start()], m.start()
            if refs and not refs[-1].anchored and not prefix.strip() \
                    and re.search(r"sửa\s+đổi|bổ\s+sung", refs[-1].target.title or "", re.IGNORECASE):
                # "Luật sửa đổi, bổ sung … của Luật A và Luật B số 57/2005/QH11": one document, whose
                # number is the amending law's; the words before it are its own ("Điều 2 của").
                popped = refs.pop()
                prefix, start = popped.prefix, popped.start
            if number or title:
                refs.append(_Ref(Target(number=number, title=None if number else title, year=year),
                                 prefix, start, end, True))
                prev_end = end
                continue
        # No number, date or year: the title runs to the end of the phrase ("Pháp lệnh về … hết hiệu lực").
        title = _clean_title(kind, re.split(r"[;(]|\s+(?:đã|được|hết)\s", seg, maxsplit=1)[0])
        if title:
            refs.append(_Ref(Target(title=title), text[prev_end:m.start()], m.start(), seg_end, False))
            prev_end = seg_end
    return refs


# ---------------------------------------------------------------------------------------------------
# Lines: quoted new wording, broken lines, articles and clauses
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Line:
    text: str
    article: str | None
    article_title: str
    clause: str | None
    point: str | None
    quoted: bool
    index: int


def _lines(text: str) -> list[_Line]:
    """Non-empty lines with their article and clause, quoted new wording marked, broken lines joined
    ("3. Bãi bỏ" / "khoản 3 và khoản 4 Điều 19 …" → one line)."""
    raw = [ln.strip().replace("Ð", "Đ") for ln in text.split("\n")]
    raw = [ln for ln in raw if ln]
    joined: list[str] = []
    i = 0
    while i < len(raw):
        line = raw[i]
        while i + 1 < len(raw) and _BROKEN_VERB.search(line) and len(line) < 60 and not raw[i + 1].startswith(("“", '"')):
            i += 1
            line = f"{line} {raw[i]}"
        joined.append(line)
        i += 1
    out: list[_Line] = []
    article: str | None = None
    title = ""
    clause: str | None = None
    point: str | None = None
    depth = 0  # open “ quotation marks
    straight = False  # open " quotation
    for idx, line in enumerate(joined):
        quoted = depth > 0 or straight
        if not quoted:
            if line.startswith("“"):
                quoted = True
            elif line.startswith('"') and line.count('"') % 2 == 1:
                quoted = True
                straight = True
                out.append(_Line(line, article, title, clause, point, True, idx))
                continue
        if quoted:
            if straight:
                if line.count('"') % 2 == 1:
                    straight = False
            else:
                depth = max(0, depth + line.count("“") - line.count("”"))
            out.append(_Line(line, article, title, clause, point, True, idx))
            continue
        heading = _match_article(line) if line[:5].lower().startswith("điều") else None
        if heading:
            article, title, clause, point = heading[0], heading[1], None, None
        else:
            cm = _CLAUSE_LINE.match(line)
            pm = _POINT_LINE.match(line)
            if cm and not re.match(r"\d{1,5}/", line):
                clause, point = cm.group(1), None
            elif pm:
                point = pm.group(1)
        # A quotation opened on this line after the provision ("… như sau: “1. …") stays open.
        opened = line.count("“") - line.count("”")
        if opened > 0:
            depth = opened
        out.append(_Line(line, article, title, clause, point, False, idx))
    return out


# ---------------------------------------------------------------------------------------------------
# Date of effect
# ---------------------------------------------------------------------------------------------------
def _date_after(rest: str, issued_on: str | None) -> tuple[str | None, bool]:
    """(ISO date, understood) for the words after "có hiệu lực (thi hành)"."""
    m = _EFFECT_DATE.match(rest)
    if m:
        return _iso(*m.groups()), _iso(*m.groups()) is not None
    m = _EFFECT_AFTER.match(rest)
    if m:
        if not issued_on:
            return None, False
        return (date.fromisoformat(issued_on) + timedelta(days=int(m.group(1)))).isoformat(), True
    m = _EFFECT_SIGNED.match(rest)
    if m:
        return issued_on, issued_on is not None
    return None, False


def _is_self_title(name: str, own_title: str | None) -> bool:
    return bool(own_title) and re.sub(r"\s+", " ", name).strip().lower() == own_title.lower()


def _read_effect(sentence: str, facts: DocumentFacts, own_title: str | None) -> bool:
    """Date-of-effect sentences: the document's own date, or parts with their own date. True when the
    sentence was one of them (read or not)."""
    body = re.sub(r"^\d{1,2}\s*[.)]\s*", "", sentence)
    if _SELF_EFFECT_START.match(sentence):
        m = _EFFECT.search(body)
        when, ok = _date_after(body[m.end():], facts.issued_on) if m else (None, False)
        if ok and facts.effective_from is None:
            facts.effective_from, facts.effective_rule = when, sentence
        elif not ok and facts.effective_from is None:
            facts.unreadable.append(sentence)
        return True
    if _PART_START.match(sentence):
        m = _EFFECT.search(body)
        if not m or _HET.search(body[:m.start()]):
            return False
        subject = body[:m.start()]
        # Parts of this document only: "… của Luật này", or no document named, or its own title.
        refs = find_targets(subject)
        if refs and not all(_is_self_title(r.target.title or "", own_title) and not r.target.number for r in refs):
            return False
        when, ok = _date_after(body[m.end():], facts.issued_on)
        scopes = parse_scopes(subject)
        if not scopes:
            return False
        if not ok:
            facts.unreadable.append(sentence)
            return True
        for s in scopes:
            if s.level == ARTICLE:
                facts.article_effective[s.article or ""] = when or ""
            else:
                facts.part_effective.append((s, when or ""))
        return True
    return False


# ---------------------------------------------------------------------------------------------------
# Repeals: "… hết hiệu lực kể từ ngày …"
# ---------------------------------------------------------------------------------------------------
def _exceptions(tail: str, facts: DocumentFacts, sentence: str) -> tuple[Scope, ...]:
    """Parts kept in force: ", trừ Điều 75 của Luật Đầu tư …", ", trừ các quy định tại Điều 159 …".
    Exceptions that point into the stating document ("trừ trường hợp quy định tại khoản 2 Điều
    này", "… của Luật này") or to cases listed below ("trừ trường hợp sau đây:") are transitional
    rules of the stating document, not parts of the target."""
    m = re.search(r"\btrừ\s+(.*)$", tail, re.IGNORECASE)
    if not m:
        return ()
    words = m.group(1)
    if _SELF.search(words) or re.search(r"Điều\s+này|khoản\s+này", words) or re.search(r"sau\s+đây", words):
        return ()
    words = re.split(r"\s+tiếp\s+tục\s+có\s+hiệu\s+lực", words)[0]
    refs = find_targets(words)
    scopes = parse_scopes(words[:refs[0].start] if refs else words)
    if not scopes:
        facts.unreadable.append(sentence)
    return scopes


def _repeal_relations(subject: str, tail: str, sentence: str, facts: DocumentFacts, article: str | None,
                      strong: bool) -> list[Relation]:
    """Relations of one "<subject> hết hiệu lực <tail>" sentence."""
    when = None
    if not _SELF.match(tail.strip()):
        d = re.match(r"(\d{1,2})\s*(?:tháng|/|-)\s*(\d{1,2})\s*(?:năm|/|-)\s*((?:19|20)\d{2})", tail.strip())
        if d:
            when = _iso(*d.groups())
    refs = find_targets(subject)
    anchored = [r for r in refs if r.anchored]
    if not anchored:
        # Named by title only: accepted alone and when the date is the stating document's own.
        if not (len(refs) == 1 and strong and refs[0].target.title
                and re.match(r"(?:Bộ luật|Luật|Pháp lệnh|Nghị định|Nghị quyết)\s", refs[0].target.title, re.IGNORECASE)):
            return []
        anchored = refs
    exceptions = _exceptions(tail, facts, sentence)
    relations = []
    for ref in anchored:
        scopes = () if _APPENDIX.search(ref.prefix) else parse_scopes(ref.prefix)
        if not scopes and _UNSPECIFIED.search(ref.prefix):
            facts.unreadable.append(sentence)
            continue
        mine = exceptions
        if exceptions and len(anchored) > 1:
            # "…, trừ Điều 75 của Luật Đầu tư số 67/2014/QH14": the exception names its document.
            named = find_targets(tail)
            if not any(target_key(n.target) == target_key(ref.target) for n in named):
                mine = ()
        relations.append(Relation(REPEALS, ref.target, scopes, mine, article, None, when, sentence))
    return relations


def _repeal_sentence(sentence: str, facts: DocumentFacts, article: str | None,
                     following: list[str]) -> list[Relation]:
    het = _HET.search(sentence)
    if not het:
        return []
    subject = re.sub(r"^\d{1,2}\s*[.)]\s*", "", sentence[:het.start()]).strip()
    tail_m = _HET_TAIL.match(sentence[het.end():])
    if not tail_m:
        return []
    tail = tail_m.group(1)
    strong = bool(_SELF.match(tail.strip()))
    if re.search(r"(?:sau\s+đây|dưới\s+đây)\s*$", subject, re.IGNORECASE) or (
            re.search(r"sau\s+đây", subject, re.IGNORECASE) and sentence.rstrip().endswith(":")):
        relations = []
        for item in following:
            relations += _repeal_relations(item.rstrip(" ;.,"), tail, sentence + " " + item, facts, article, strong)
        return relations
    return _repeal_relations(subject, tail, sentence, facts, article, strong)


# ---------------------------------------------------------------------------------------------------
# Amendments and abolitions: "1. Sửa đổi, bổ sung điểm a và điểm b khoản 3 Điều 32 như sau:"
# ---------------------------------------------------------------------------------------------------
def _article_target(title: str) -> Target | None:
    """The document an amending article's title names: "Sửa đổi, bổ sung một số điều của Luật Giáo dục
    nghề nghiệp số 74/2014/QH13 đã được sửa đổi, … theo Luật số 97/2015/QH13 …" → 74/2014/QH13."""
    if not _VERB_START.match(title):
        return None
    refs = find_targets(_AS_FOLLOWS.sub("", _VERB.sub("", title, count=1)))
    if len(refs) != 1:
        return None
    return refs[0].target


def _article_target_in(lines: list[_Line], pos: int, line: _Line) -> Target | None:
    """The target of the amending article ``line`` is in: from its title, or, when the title names the
    document without its number ("Điều 76. Sửa đổi, bổ sung một số điều của Luật giáo dục"), from the
    article's opening sentence ("Sửa đổi, bổ sung, bãi bỏ một số điều của Luật giáo dục số 38/2005/QH11 …")."""
    target = _article_target(line.article_title)
    if target is None or target.number:
        return target
    start = pos
    while start > 0 and lines[start - 1].article == line.article:
        start -= 1
    for other in lines[start:start + 3]:
        if other.quoted or _CLAUSE_LINE.match(other.text) or _match_article(other.text):
            continue
        found = _article_target(other.text)
        if found and found.number:
            return found
    return target


def _provision_relations(text: str, default: Target | None, facts: DocumentFacts, line: _Line,
                         explicit_only: bool) -> list[Relation]:
    """Relations of one amending provision ("Sửa đổi, bổ sung khoản 1 Điều 9 của Luật … như sau:",
    "Bãi bỏ Điều 37 và điểm đ khoản 1 Điều 38", "Khoản 1 Điều 14 được sửa đổi như sau:")."""
    body = re.sub(r"^(?:\d{1,3}[a-zđ]?\s*[.)]|[a-zđ]\s*\))\s*", "", text)
    body = _INLINE_QUOTE.sub(" “” ", body)
    passive = None
    if not _VERB_START.match(body):
        passive = _PASSIVE.match(body)
        if not passive or explicit_only:
            return []
    relations: list[Relation] = []
    kind = AMENDS
    parts = [passive.group(1)] if passive else re.split(r"\s*;\s*", body)
    for part in parts:
        if passive:
            kind = ABOLISHES if passive.group(2).lower().startswith("bãi") else AMENDS
            words = part
        else:
            verb = _VERB.match(part)
            if verb:
                kind = ABOLISHES if re.match(r"bãi\s+bỏ(?!\s*,)", verb.group(1), re.IGNORECASE) else AMENDS
                words = part[verb.end():]
            else:
                words = part  # "…; Điều 2 của Luật số 34/2009/QH12 …" continues the verb before it
        words = _REPLACED_BY.sub(" ", _AS_FOLLOWS.sub("", words))
        if not re.search(r"[\wÀ-ỹ]", words):
            continue
        where = re.match(r"^(.*?)\s+vào\s+(?:sau\s+|trước\s+|cuối\s+|đầu\s+)?(.*)$", words)
        refs = find_targets(words)
        refs = [r for r in refs if r.anchored or (default is None and not explicit_only and kind == AMENDS)]
        if refs:
            for ref in refs:
                if ref.target.number and facts.number and number_key(ref.target.number) == facts.number:
                    continue
                scopes = () if _APPENDIX.search(ref.prefix) else (
                    _scopes_added(ref.prefix) if where else parse_scopes(ref.prefix))
                if kind == ABOLISHES and not scopes and _UNSPECIFIED.search(ref.prefix):
                    facts.unreadable.append(text)
                    continue
                relations.append(Relation(kind, ref.target, scopes, (), line.article, line.clause, None, text))
            continue
        if default is None or _SELF.search(words) and not re.search(r"Điều|khoản|điểm", words):
            continue
        if re.search(rf"(?<!{_W})(?:Luật|Bộ luật|Pháp lệnh|Nghị định)\s+(?!này)", words):
            continue  # names another document we could not read: do not guess
        scopes = () if _APPENDIX.search(words) else (_scopes_added(words) if where else parse_scopes(words))
        if kind == ABOLISHES and not scopes:
            if _UNSPECIFIED.search(words) or not words.strip():
                facts.unreadable.append(text)
            continue
        relations.append(Relation(kind, default, scopes, (), line.article, line.clause, None, text))
    return relations


def _scopes_added(words: str) -> tuple[Scope, ...]:
    """"Bổ sung Điều 10a vào sau Điều 10" → article 10a; "Bổ sung khoản 5 vào Điều 82" → clause 5
    of article 82."""
    m = re.match(r"^(.*?)\s+vào\s+(?:sau\s+|trước\s+|cuối\s+|đầu\s+)?(.*)$", words)
    if not m:
        return parse_scopes(words)
    added, where = m.group(1), m.group(2)
    if re.search(r"(?<!\w)Điều\s+\d", added, re.IGNORECASE):
        return parse_scopes(added)
    return parse_scopes(f"{added} {where}")


def _sentences(line: str) -> list[str]:
    """A line cut into sentences ("… năm 2015. Luật doanh nghiệp số … hết hiệu lực …"), the clause
    number kept with its sentence ("1. Luật này …")."""
    out: list[str] = []
    for piece in _SENTENCE.split(line):
        if out and re.fullmatch(r"\d{1,3}[a-zđ]?\.", out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Context:
    facts: DocumentFacts
    own_title: str | None
    amended: Target | None  # the document a whole amending law amends
    seen: set[tuple] = field(default_factory=set)


def _amended_document(info: dict, own_number: str | None) -> Target | None:
    amends = info.get("amends")
    if not amends:
        return None
    raw = parse_number(amends)
    if raw and number_key(raw) != own_number:
        return Target(number=number_key(raw))
    title = re.sub(r"\s+(?:số|SỐ)\s*\S+.*$", "", amends).strip(" .,;")
    if raw and title == amends:
        return None
    return Target(title=title) if title else None


def read_validity(text: str, info: dict | None = None) -> DocumentFacts:
    """What one document says about validity: its number, title, type, year, date of issue and of
    effect (with the sentence), the parts with their own date, and the relations it states on other
    documents (repeals, abolishes, amends).

    ``text`` is the normalised text of one document; ``info`` is ``document_info(text)`` when the
    caller has it already (it is computed otherwise).
    """
    info = info if info is not None else document_info(text)
    number = number_key(info["number"]) if info.get("number") else None
    title = parse_law_title(text, "") or None
    year = None
    if number:
        m = re.search(r"/((?:19|20)\d{2})/", number)
        year = int(m.group(1)) if m else None
    if year is None and info.get("issued_on"):
        year = int(info["issued_on"][:4])
    facts = DocumentFacts(number=number, title=title, doc_type=info.get("doc_type"), year=year,
                          issued_on=info.get("issued_on"))
    ctx = _Context(facts, title, _amended_document(info, number))
    lines = _lines(text)
    relations: list[Relation] = []
    article_targets: dict[str | None, Target | None] = {}
    for pos, line in enumerate(lines):
        if line.quoted or line.article is None:
            continue
        low = line.text.lower()
        if "hiệu lực" in low:
            for sentence in _sentences(line.text):
                if _read_effect(sentence, facts, title):
                    continue
                if _HET.search(sentence):
                    following = []
                    if sentence.rstrip().endswith(":"):
                        for nxt in lines[pos + 1:pos + 40]:
                            if nxt.quoted or nxt.article != line.article:
                                break
                            item = _LIST_ITEM.match(nxt.text)
                            if not item or (_CLAUSE_LINE.match(nxt.text) and not _POINT_LINE.match(nxt.text)
                                            and not nxt.text.startswith(("-", "–", "+", "•"))):
                                break
                            following.append(item.group(1))
                    relations += _repeal_sentence(sentence, facts, line.article, following)
        body = re.sub(r"^(?:\d{1,3}[a-zđ]?\s*[.)]|[a-zđ]\s*\))\s*", "", line.text)
        if not (_VERB_START.match(body) or _PASSIVE.match(body)):
            continue
        if line.text.startswith(("Điều", "ĐIỀU")) and _match_article(line.text):
            continue
        if line.article not in article_targets:
            article_targets[line.article] = _article_target_in(lines, pos, line)
        article_target = article_targets[line.article]
        amending_article = bool(_VERB_START.match(line.article_title))
        default = article_target
        if default is None and ctx.amended is not None and not amending_article:
            default = ctx.amended
        # A clause "Sửa đổi, bổ sung một số điều của Luật X như sau:" sets X for its points "a) …".
        if _POINT_LINE.match(line.text) and line.clause:
            for back in reversed(lines[:pos]):
                if back.quoted or back.article != line.article:
                    continue
                cm = _CLAUSE_LINE.match(back.text)
                if cm and cm.group(1) == line.clause:
                    refs = [r for r in find_targets(back.text) if r.anchored]
                    if len(refs) == 1 and re.search(r"một\s+số|các\s+(?:điều|quy\s+định)", back.text, re.IGNORECASE):
                        default = refs[0].target
                    break
        explicit_only = default is None and not amending_article
        if explicit_only and not _VERB_START.match(body):
            continue
        found = _provision_relations(line.text, default, facts, line, explicit_only)
        # "1. Sửa đổi, bổ sung một số điều của Luật X như sau:" is a heading for its points: the
        # points carry the parts; keep the document-level relation only when no point follows.
        relations += found
    # No relation on the document itself, nor twice the same.
    out: list[Relation] = []
    for rel in relations:
        if rel.target.number and rel.target.number == number:
            continue
        if not rel.target.number and title and rel.target.title and rel.target.title.lower() == title.lower() \
                and (rel.target.year in (None, year)):
            continue
        key = (rel.kind, target_key(rel.target), rel.scopes, rel.source_article, rel.source_clause, rel.sentence)
        if key in ctx.seen:
            continue
        ctx.seen.add(key)
        out.append(rel)
    facts.relations = out
    if facts.effective_from is None and info.get("effective_from"):
        facts.effective_from = info["effective_from"]
    return facts
