"""Chunking: laws by article (Điều), Q&A sheets by row, other text by paragraph packing.

Every chunk fits the model's token budget (see ``tokens.py``): a long article is split at clause
boundaries ("1.", "2."), then points ("a)", "b)"), then lines, sentences and words, and every piece
repeats the article heading so it still says which article it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..records import Chunk, Row, SkippedRow
from .normalize import normalize_text
from .tokens import DEFAULT_TOKEN_BUDGET, SPECIAL_TOKENS
from .tokens import count_tokens as _estimate_tokens

TokenCounter = Callable[[str], int]

# ---------------------------------------------------------------------------------------------------
# Structure recognition (lines are already normalised: stripped, NFC)
# ---------------------------------------------------------------------------------------------------
_ARTICLE = re.compile(r"(?:Điều|ĐIỀU)\s*(\d+)([a-zđ]?)(?![\w/,])(.*)$")
# What separates an article's number from its title: "." / ":" (repeated, maybe a space before, maybe
# a dash after: "Điều 1 . ", "Điều 5.- ") or a dash not starting a range ("Điều 5- ", "Điều 5 – ";
# not "Điều 5-7").
_ARTICLE_SEPARATOR = re.compile(r"\s*(?:[.:]+(?:\s*[-–—])?|[-–—](?!\s*\d))\s*")
_NEXT_WITHIN = 3  # a loose heading may skip at most two missing articles ("Điều 12" → "Điều 15")
_CHAPTER = re.compile(r"(?:Chương|CHƯƠNG)\s+([IVXLCDM]+|\d+)(?![\w/])\s*(.*)$")
_SECTION = re.compile(r"(?:Mục|MỤC)\s+(\d+|[IVXLCDM]+)(?![\w/])\s*(.*)$")
_PART = re.compile(r"(?:Phần|PHẦN)\s+(thứ\s+\S+|THỨ\s+\S+|[IVXLCDM]+|\d+)(?![\w/])\s*(.*)$")
_CLAUSE = re.compile(r"(\d+[a-zđ]?)\s*[.)\-]\s*\S")
_POINT = re.compile(r"([a-zđ])\s*\)\s*\S")
_SENTENCE_END = re.compile(r"(?<=[.;:!?…])\s+")
_MAX_HEADING_SHARE = 3  # a heading longer than budget/3 tokens is not repeated in full in every piece


def _is_upperish(s: str) -> bool:
    letters = [c for c in s if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) >= 0.8 * len(letters)


def _match_article(line: str, after: str | None = None) -> tuple[str, str] | None:
    """(number, title) when ``line`` is an article heading, else None.

    Firm headings, a separator then a title, are taken wherever they are (an excerpt can skip
    articles; a law with appended regulations restarts at 1): "Điều 12. Tên", "Điều 12: Tên",
    "Điều 12.Tên", "Điều 5- Tên", "Điều 5 - Tên", "Điều 5.- Tên", "Điều 1 . Tên".
    Loose headings, "Điều 12" / "Điều 12." alone (title on the next line) or "Điều 10 Thanh tra..."
    (no separator, capital next), are what a line wrap makes of a cross-reference ("…quy định tại" /
    "Điều 116 Luật Doanh nghiệp…"), so when ``after`` (the previous article's number) is given they
    must follow it: a number up to ``_NEXT_WITHIN`` higher, the same number with a letter ("10a"
    after "10"), or 1. Never headings: "Điều 11 của Luật này.", "Điều 6, khoản 2 Điều 46", "Điều 5-7".
    """
    m = _ARTICLE.match(line)
    if not m:
        return None
    number, rest = m.group(1) + m.group(2).lower(), m.group(3)
    sep = _ARTICLE_SEPARATOR.match(rest)
    if (sep and sep.end() == len(rest)) or not rest.strip():
        title = ""  # "Điều 12." / "Điều 12": loose
    elif sep:
        return number, rest[sep.end():].strip()
    elif rest[0] == " " and (rest.strip()[0].isupper() or rest.strip()[0] in "\"“'("):
        title = rest.strip()
    else:
        return None
    if after is not None and not _follows(number, after):
        return None
    return number, title


def _follows(number: str, previous: str) -> bool:
    """True when article ``number`` can come right after article ``previous`` (see ``_match_article``)."""
    n, n_letter = int(number.rstrip("abcdefghijklmnopqrstuvwxyzđ")), number.lstrip("0123456789")
    p, p_letter = int(previous.rstrip("abcdefghijklmnopqrstuvwxyzđ")), previous.lstrip("0123456789")
    return n == 1 or p < n <= p + _NEXT_WITHIN or (n == p and n_letter != p_letter and bool(n_letter))


def _match_heading(regex: re.Pattern[str], line: str) -> tuple[str, str] | None:
    """(number, title-on-the-same-line) for a Chương / Mục / Phần heading, else None."""
    if len(line) > 200:
        return None
    m = regex.match(line)
    if not m:
        return None
    number, rest = m.group(1), m.group(2).strip()
    if not rest:
        return number, ""
    if rest[0] in ".:-–—":
        return number, rest.lstrip(".:-–— ").strip()
    if _is_upperish(rest):
        return number, rest
    return None


def has_law_structure(text: str) -> bool:
    """True when some line starts with an article heading ("Điều 1. ...")."""
    return any(_match_article(line) for line in text.split("\n") if line[:5].lower().startswith("điều"))


# ---------------------------------------------------------------------------------------------------
# Title
# ---------------------------------------------------------------------------------------------------
_DOC_KINDS = {
    "BỘ LUẬT": "Bộ luật",
    "LUẬT": "Luật",
    "HIẾN PHÁP": "Hiến pháp",
    "PHÁP LỆNH": "Pháp lệnh",
    "NGHỊ ĐỊNH": "Nghị định",
    "NGHỊ QUYẾT": "Nghị quyết",
    "THÔNG TƯ": "Thông tư",
    "QUYẾT ĐỊNH": "Quyết định",
}
_KIND_LINE = re.compile(r"(BỘ LUẬT|LUẬT|HIẾN PHÁP|PHÁP LỆNH|NGHỊ ĐỊNH|NGHỊ QUYẾT|THÔNG TƯ|QUYẾT ĐỊNH)\b\s*(.*)$")
# "CỦA QUỐC HỘI" is cut where it starts the old header's tail ("… CỦA QUỐC HỘI NƯỚC …", "… SỐ …"), not
# inside a name ("HOẠT ĐỘNG GIÁM SÁT CỦA QUỐC HỘI VÀ HỘI ĐỒNG NHÂN DÂN", from the vbpl.vn page too).
_NAME_CUT = re.compile(
    r"\s+(?:SỐ\s*:?\s*\d|CỦA QUỐC HỘI(?=\s+(?:NƯỚC|KH[OÓ][AÁ]|SỐ|NGÀY)|\s*$)|NGÀY\s+\d|\(|,?\s*KHO[AÁ]\s+[IVXLC]+).*$"
)
_PROPER = [("việt nam", "Việt Nam"), ("hồ chí minh", "Hồ Chí Minh"), ("quốc hội", "Quốc hội"),
           ("hội đồng nhân dân", "Hội đồng nhân dân")]


def _clean_name(name: str) -> str:
    name = name.strip(" .;:-–—")
    if name.startswith(("CỦA ", "SỐ ")) and " VỀ " in name:
        name = name.rsplit(" VỀ ", 1)[1]
    name = _NAME_CUT.sub("", name)
    name = name.removeprefix("VỀ ")
    return name.strip(" .;:-–—")


@lru_cache(maxsize=4)  # the chunker and the validity reader ask it of the same text, one after the other
def parse_law_title(text: str, fallback: str, /) -> str:  # positional only: one cache entry whoever asks
    """The law's title from its header: "LUẬT\\nCƯ TRÚ" → "Luật Cư trú", "BỘ LUẬT\\nDÂN SỰ" →
    "Bộ luật Dân sự", "HIẾN PHÁP" → "Hiến pháp". ``fallback`` (the file stem) when none is found.

    Looks only at the header (before the first article): the first all-capitals line that starts
    with a document kind (LUẬT, BỘ LUẬT, HIẾN PHÁP, NGHỊ ĐỊNH, ...), its name on the same line or the
    next one. Old headers ("CỦA QUỐC HỘI ... SỐ 23/2004/QH11 ... VỀ GIAO THÔNG ...") keep the subject.
    """
    lines = [line.strip() for line in normalize_text(text[:20_000]).split("\n")]
    lines = [line for line in lines if line]
    for i, line in enumerate(lines[:80]):
        if _match_article(line) or _match_heading(_CHAPTER, line):
            break
        if not _is_upperish(line) or line != line.upper():
            continue
        m = _KIND_LINE.match(line)
        if not m:
            continue
        kind = _DOC_KINDS[m.group(1)]
        if kind == "Hiến pháp":
            return kind
        name = m.group(2)
        if not name and i + 1 < len(lines):
            nxt = lines[i + 1]
            if _is_upperish(nxt) and not _match_article(nxt) and not _match_heading(_CHAPTER, nxt):
                name = nxt
        name = _clean_name(name)
        if not name:
            continue
        pretty = name[0].upper() + name[1:].lower()
        for low, proper in _PROPER:
            pretty = pretty.replace(low, proper)
        return f"{kind} {pretty}"
    return fallback


# ---------------------------------------------------------------------------------------------------
# Packing under the budget
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    text: str
    clauses: tuple[str, ...] = ()  # clause numbers the unit covers ("" for an article's intro)


# Levels of splitting, coarse to fine; each has the separator that joins its units back together.
_LAW_LEVELS = ("clause", "point", "line", "sentence", "word", "char")
_TEXT_LEVELS = ("block", "line", "sentence", "word", "char")
_JOIN = {"block": "\n\n", "clause": "\n", "point": "\n", "line": "\n", "sentence": " ", "word": " ", "char": ""}


def _split(unit: _Unit, level: str) -> list[_Unit]:
    """Split a unit into its parts at ``level`` (may return one part: nothing to split there)."""
    text, clauses = unit.text, unit.clauses
    if level == "block":
        return [_Unit(p.strip(), clauses) for p in re.split(r"\n\s*\n", text) if p.strip()]
    if level == "clause":
        groups: list[_Unit] = []
        for line in text.split("\n"):
            m = _CLAUSE.match(line)
            if m or not groups:
                groups.append(_Unit(line, (m.group(1),) if m else ("",)))
            else:
                groups[-1].text += "\n" + line
        return groups
    if level == "point":
        parts: list[str] = []
        for line in text.split("\n"):
            if _POINT.match(line) or not parts:
                parts.append(line)
            else:
                parts[-1] += "\n" + line
        return [_Unit(p, clauses) for p in parts]
    if level == "line":
        return [_Unit(p, clauses) for p in text.split("\n") if p]
    if level == "sentence":
        return [_Unit(p, clauses) for p in _SENTENCE_END.split(text) if p]
    if level == "word":
        return [_Unit(p, clauses) for p in text.split() if p]
    # "char": halves, until each half fits (the caller recurses)
    if len(text) <= 1:
        return [unit]
    mid = max(1, len(text) // 2)
    return [_Unit(text[:mid], clauses), _Unit(text[mid:], clauses)]


def _pack(prefix: str, units: list[_Unit], level: str, finer: tuple[str, ...], budget: int,
          count: TokenCounter, strict: bool = False) -> list[_Unit]:
    """Greedily pack ``units`` (parts at ``level``) into pieces whose ``prefix + text`` fits ``budget``;
    a unit too long alone is split at the ``finer`` levels.

    Fast mode adds up the units' own counts (without the special tokens), which over-estimates a
    joined text for the heuristic counter and is near-exact for SentencePiece; ``strict`` mode
    counts every candidate text (used to re-split the rare piece that fast mode got wrong).
    """
    sep = _JOIN[level]
    strict = strict or level == "char"  # halves of a word joined without a space may count more
    avail = budget - SPECIAL_TOKENS - (count(prefix) - SPECIAL_TOKENS if prefix else 0)
    pieces: list[_Unit] = []
    current: _Unit | None = None
    current_cost = 0

    for unit in units:
        cost = count(unit.text) - SPECIAL_TOKENS
        if current is not None:
            candidate = current.text + sep + unit.text
            if (count(prefix + candidate) <= budget) if strict else (current_cost + cost <= avail):
                current = _Unit(candidate, current.clauses + unit.clauses)
                current_cost += cost
                continue
            pieces.append(current)
            current = None
        if cost <= avail and (not strict or count(prefix + unit.text) <= budget):
            current, current_cost = _Unit(unit.text, unit.clauses), cost
            continue
        pieces.extend(_split_to_fit(prefix, unit, finer, budget, count, strict))
    if current is not None:
        pieces.append(current)
    return pieces


def _split_to_fit(prefix: str, unit: _Unit, levels: tuple[str, ...], budget: int, count: TokenCounter,
                  strict: bool = False) -> list[_Unit]:
    """Split a unit that is too long at the first of ``levels`` that actually splits it."""
    for i, level in enumerate(levels):
        parts = _split(unit, level)
        if len(parts) > 1:
            finer = levels[i:] if level == "char" else levels[i + 1:]  # halves are halved again
            return _pack(prefix, parts, level, finer, budget, count, strict)
    # a single character that does not fit: nothing more can be done (only with an absurd budget)
    return [unit]


def _fit(prefix: str, unit: _Unit, levels: tuple[str, ...], budget: int, count: TokenCounter) -> list[_Unit]:
    """Pieces of ``unit`` that each fit with ``prefix``: fast packing, then a strict re-split of any
    piece the fast estimate let through over the budget."""
    pieces = _split_to_fit(prefix, unit, levels, budget, count)
    if count is _estimate_tokens:
        # the estimate is additive over whitespace-joined units (the sum of the parts' ceilings is an
        # upper bound of the whole), so fast packing never overshoots: no second pass needed
        return pieces
    out: list[_Unit] = []
    for piece in pieces:
        if count(prefix + piece.text) <= budget:
            out.append(piece)
        else:
            out.extend(_split_to_fit(prefix, piece, levels, budget, count, strict=True))
    return out


def _pack_paragraphs(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Paragraph packing: blank-line blocks, then lines, sentences, words, each piece within budget."""
    whole = _Unit(text.strip())
    if count(whole.text) <= budget:
        return [whole.text]
    return [piece.text for piece in _fit("", whole, _TEXT_LEVELS, budget, count)]


# ---------------------------------------------------------------------------------------------------
# Law chunking
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Article:
    number: str
    title: str
    heading: str
    body: list[str]
    part: str | None
    chapter: str | None
    section: str | None


def _parse_law(lines: list[str]) -> tuple[list[str], list[_Article]]:
    preamble: list[str] = []
    articles: list[_Article] = []
    part = chapter = section = None
    i = 0
    n = len(lines)

    def title_after(idx: int, same_line: str) -> tuple[str, int]:
        """The heading's title (same line, or the next non-empty line) and the next index to read."""
        if same_line:
            return same_line, idx + 1
        j = idx + 1
        while j < n and not lines[j]:
            j += 1
        if j < n and not _match_article(lines[j]) and not _match_heading(_CHAPTER, lines[j]) \
                and not _match_heading(_SECTION, lines[j]) and len(lines[j]) <= 300:
            return lines[j], j + 1
        return "", idx + 1

    while i < n:
        line = lines[i]
        if not line:
            i += 1
            continue
        art = _match_article(line, articles[-1].number if articles else None)
        if art:
            number, title = art
            articles.append(_Article(number, title, line, [], part, chapter, section))
            i += 1
            continue
        heading = _match_heading(_PART, line)
        if heading:
            title, i = title_after(i, heading[1])
            part = f"Phần {heading[0]}" + (f" — {title}" if title else "")
            chapter = section = None
            continue
        heading = _match_heading(_CHAPTER, line)
        if heading:
            title, i = title_after(i, heading[1])
            chapter = f"Chương {heading[0]}" + (f" — {title}" if title else "")
            section = None
            continue
        heading = _match_heading(_SECTION, line)
        if heading:
            title, i = title_after(i, heading[1])
            section = f"Mục {heading[0]}" + (f" — {title}" if title else "")
            continue
        (articles[-1].body if articles else preamble).append(line)
        i += 1
    return preamble, articles


TITLE_LINE_MAX = 200  # characters: a longer single line before the first article is text, not a title


def _same_words(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _law_chunks(source: str, text: str, budget: int, count: TokenCounter) -> list[Chunk]:
    title = parse_law_title(text, "")
    preamble, articles = _parse_law([line.strip() for line in text.split("\n")])
    chunks: list[Chunk] = []
    header = [line for line in preamble if line]
    if not title and articles and len(header) == 1 and len(header[0]) <= TITLE_LINE_MAX:
        # articles under one line and nothing else (a folder of one file per article): that line names them
        title = header[0]
    title = title or source.rsplit("/", 1)[-1].rsplit(".", 1)[0]  # else the file's name

    preamble_text = "\n".join(preamble).strip()
    # A preamble that only repeats the title (a file of one article: "<law title>" then "Điều N. …") says
    # nothing its articles do not: each article chunk carries the title (``law``, and first in its bm25
    # text). As a chunk of its own it was a point that matched any question naming the law and answered
    # none (70,624 such files: 70,624 title-only points).
    if preamble_text and not (articles and _same_words(preamble_text, title)):
        pieces = _pack_paragraphs(preamble_text, budget, count)
        for k, piece in enumerate(pieces, 1):
            key = "preamble" if len(pieces) == 1 else f"preamble/{k}"
            chunks.append(Chunk(source, key, piece, {
                "kind": "law_preamble", "law": title, "part": None, "chapter": None, "section": None,
                "article": None, "article_title": None, "clause": None}))

    seen: dict[str, int] = {}
    for art in articles:
        seen[art.number] = seen.get(art.number, 0) + 1
        key = f"dieu-{art.number}" + (f"~{seen[art.number]}" if seen[art.number] > 1 else "")
        heading, body_lines, art_title = art.heading, list(art.body), art.title
        if count(heading) > budget // _MAX_HEADING_SHARE:
            # "Điều 1:Hội đồng nhân dân là ..." – the "title" is the article's first sentence
            heading = f"Điều {art.number}."
            body_lines.insert(0, art.title)
            art_title = ""
        body = "\n".join(line for line in body_lines if line)
        meta = {"kind": "law", "law": title, "part": art.part, "chapter": art.chapter, "section": art.section,
                "article": art.number, "article_title": art_title}
        whole = heading + ("\n" + body if body else "")
        if count(whole) <= budget:
            chunks.append(Chunk(source, key, whole, {**meta, "clause": None}))
            continue
        pieces = _fit(heading + "\n", _Unit(body, ()), _LAW_LEVELS, budget, count)
        for k, piece in enumerate(pieces, 1):
            labels = [c for c in piece.clauses if c]
            clause = None
            if labels:
                clause = labels[0] if labels[0] == labels[-1] else f"{labels[0]}-{labels[-1]}"
            chunks.append(Chunk(source, f"{key}/{k}", heading + "\n" + piece.text, {**meta, "clause": clause}))
    return chunks


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------
def chunk_text(source: str, text: str, budget: int = DEFAULT_TOKEN_BUDGET,
               count_tokens: TokenCounter = _estimate_tokens) -> list[Chunk]:
    """Chunks of an already normalised text: by article when it is a law, else by paragraph packing.

    Law chunks: ``dieu-12`` (or ``dieu-12/1``, ``dieu-12/2`` for the pieces of a long article,
    ``dieu-12~2`` for a repeated article number), ``preamble`` (or ``preamble/N``); metadata kind
    "law" / "law_preamble", law, part, chapter, section, article, article_title, clause.
    Other text: ``p1``, ``p2``, ... with metadata ``{"kind": "text"}``.
    Every chunk's ``count_tokens(text) <= budget``.
    """
    if not text.strip():
        return []
    if has_law_structure(text):
        return _law_chunks(source, text, budget, count_tokens)
    return [Chunk(source, f"p{k}", piece, {"kind": "text"})
            for k, piece in enumerate(_pack_paragraphs(text, budget, count_tokens), 1)]


def chunk_rows(source: str, rows: Iterable[Row | SkippedRow], budget: int = DEFAULT_TOKEN_BUDGET,
               count_tokens: TokenCounter = _estimate_tokens) -> Iterator[Chunk | SkippedRow]:
    """One chunk per row, never split: "question\\nanswer" (kind "qa") or the text alone (kind "record").

    ``chunk_key`` is the row's location ("Trang tính1!5"). Rows over the budget keep their full text
    and get ``metadata["over_budget"] = True`` (the model will only see the start). Skipped rows,
    and rows that are empty after normalisation, come out as ``SkippedRow``.
    """
    for row in rows:
        if isinstance(row, SkippedRow):
            yield row
            continue
        answer = normalize_text(row.answer or "")
        question = normalize_text(row.question) if row.question is not None else None
        if row.question is not None and not question:
            yield SkippedRow(row.location, "blank question")
            continue
        if not answer:
            yield SkippedRow(row.location, "blank answer" if row.question is not None else "blank text")
            continue
        kind = "qa" if question is not None else "record"
        text = f"{question}\n{answer}" if question is not None else answer
        meta = {"sheet": None, "row": None, **row.metadata, "kind": kind}
        if question is not None:
            meta["question"] = question
        if count_tokens(text) > budget:
            meta["over_budget"] = True
        yield Chunk(source, row.location, text, meta)
