"""Reading a Vietnamese legal question before it is searched. Plain functions, no collection here.

* ``question_with_options``: a multiple-choice question is its stem and its options ("A. …", "B. …"):
  the options are content (they hold the article's own words), so they are searched with it.
* ``find_laws``, ``find_numbers``, ``find_articles``: a law named by its title ("theo Luật Cư trú",
  "Bộ luật Dân sự 2015"), a document number (``68/2020/QH14``; 31/12/2022 is a date, not a number),
  an article ("Điều 5", "khoản 2 Điều 5 Luật Cư trú") and the law it belongs to.
* ``strip_scaffolding``: the words of the question's frame ("…, đúng hay sai?", "Trường hợp nào sau
  đây…", "theo quy định của pháp luật", "Chọn câu trả lời đúng nhất", "Cả A, B, C đều đúng").

What the search does with them was chosen by measurement (docs/retrieval.md): options are kept;
an article named together with its law comes first (search.py); a law named alone is not a filter
nor a boost, because true/false statements name the wrong law on purpose ("… theo quy định của Luật
Tố tụng hành chính, đúng hay sai?"); the scaffolding is left in, since removing it changed no rank.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .lexical import fold_tone_marks
from .normalize import normalize_text

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPACES = re.compile(r"\s+")

# Scaffolding, written lower-case and tone-folded (as ``_folded`` writes the question). Each match is
# replaced by a phrase break, so no bigram is made across the gap.
_SCAFFOLDING = [
    # true/false: "…, đúng hay sai?", "là đúng hay sai", "Đúng hoặc sai", "nhận định trên đúng hay sai"
    (r"(?:(?:nhận định|khẳng định|phát biểu|mệnh đề|câu)(?: sau| trên| này| dưới)?(?: đây)? )?"
     r"(?:là |thì )?(?:đúng|sai) (?:hay|hoặc) (?:sai|đúng)(?: không)?"),
    r"(?:là |thì )?(?:đúng|chính xác) (?:hay|hoặc) không",
    # multiple choice: "Chọn câu trả lời đúng nhất", "Cả 3 phương án trên đều đúng", "Cả A, B, C đều sai"
    r"(?:hãy )?chọn (?:một |các )?(?:câu trả lời|đáp án|phương án|ý|câu)(?: đúng| sai| chính xác| phù hợp)*(?: nhất)?",
    (r"(?:cả|tất cả) (?:\d |hai |ba |bốn )?(?:các )?(?:(?:phương án|đáp án|câu trả lời|ý)(?: trên| đã nêu)? ?)?"
     r"(?:[a-f](?: ?,| và| hoặc)? ?)*(?:đều )(?:đúng|sai)"),
    r"(?:cả|tất cả) (?:\d |hai |ba |bốn )?(?:các )?(?:phương án|đáp án|câu trả lời|ý)(?: trên| đã nêu)?(?: [a-f](?: ?,| và)?)*",
    r"(?:sau|dưới|trên) đây",
    # the law in general: "theo quy định của pháp luật (hiện hành)", "theo luật định"
    r"theo (?:quy định (?:của |tại )?)?(?:pháp luật|luật định)(?: hiện hành| việt nam)?",
    r"theo quy định hiện hành",
    # question words and particles (their subject stays: "thời hạn … là bao lâu" keeps "thời hạn")
    r"là (?:gì|ai|bao lâu|bao nhiêu|như thế nào|thế nào|sao)",
    r"như thế nào|như nào|thế nào|ra sao|bao gồm những gì|những gì|hay không|có phải",
    r"bao lâu|bao nhiêu|nào|gì|đâu|ai",
]
_SCAFFOLDING_RE = re.compile(r"(?<![^\W_])(?:" + "|".join(_SCAFFOLDING) + r")(?![^\W_])")
# Option letters: "A. …", "b) …" at the start of a line or after a space.
_OPTION = re.compile(r"(?:(?<=\s)|^)([A-Fa-f])\s*[.):]\s+")
# "68/2020/QH14", "19/2019/NĐ-CP", "91 / 2015 / QH13": the year is required (31/12/2022 is a date)
_NUMBER = re.compile(
    r"(?<![\w/])(\d{1,5})\s*/\s*((?:19|20)\d{2})\s*/\s*"
    r"([A-Za-zĐđ]{1,8}\d{0,2}(?:\s?-\s?[A-Za-zĐđ]{1,10}\d{0,2})*)(?![\w/])"
)
_ARTICLE = re.compile(r"(?<![^\W_])điều (\d{1,4}[a-zđ]?)(?![^\W_/])")
# What may sit between an article and the law it belongs to: "Điều 5 Luật …", "Điều 5, của Luật …",
# "Điều 5 Luật số 68/2020/QH14", "Điều 5 của 68/2020/QH14"
_ARTICLE_TO_LAW = re.compile(r"\s*,?\s*(?:(?:của|thuộc|trong|tại|theo)\s+)?(?:(?:bộ )?luật (?:số )?)?$")


@dataclass(frozen=True)
class Mention:
    """Something the question names: a law's ``title`` (as the collection writes it) or a document
    ``number`` ("68/2020/QH14"), and where it is in the folded question."""

    value: str
    start: int
    end: int


@dataclass(frozen=True)
class ArticleMention:
    """An article the question names ("5", "12a") and the law it belongs to, when the question says
    so: ``law`` is a title, ``number`` a document number, both None when the question names no law
    or several (then the article alone does not say which law)."""

    article: str
    law: str | None = None
    number: str | None = None


def _folded(text: str) -> str:
    """Lower-case, NFC, one tone placement per word; punctuation and spacing kept (same length per word)."""
    return _WORD.sub(lambda m: fold_tone_marks(m.group()), normalize_text(text).lower())


def _plain(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _title_words(title: str) -> tuple[str, ...]:
    return tuple(fold_tone_marks(w) for w in _WORD.findall(unicodedata.normalize("NFC", title).lower()))


def question_with_options(text: str, choices: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> str:
    """The question as a person reads it: its stem, then one line per option ("A. Dịch vụ thể thao.")."""
    items = list(choices.items() if isinstance(choices, Mapping) else choices or [])
    lines = [text.strip()] + [f"{str(key).strip()}. {str(value).strip()}" for key, value in items if str(value).strip()]
    return "\n".join(lines)


def find_laws(text: str, titles: Iterable[str]) -> list[Mention]:
    """The laws of ``titles`` that ``text`` names, left to right, the longest title at each place.

    Case, tone placement, punctuation and (when nothing matches with them) diacritics do not
    matter: "theo luật phòng chống ma tuý" names "Luật Phòng, chống ma túy"; "Luật Giáo dục nghề
    nghiệp" is that law, not "Luật Giáo dục". A title must be named in full and have two words or
    more, so "cư trú" alone never counts as a law.
    """
    folded = _folded(text)
    words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(folded)]
    keyed = [(key, title) for title in titles if len(key := _title_words(title)) >= 2]
    for compare in (lambda w: w, _plain):
        index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for key, title in keyed:
            index.setdefault(compare(key[0]), []).append((tuple(compare(w) for w in key), title))
        for entries in index.values():
            entries.sort(key=lambda e: -len(e[0]))
        seq = [compare(w) for w, _, _ in words]
        mentions: list[Mention] = []
        i = 0
        while i < len(seq):
            for key, title in index.get(seq[i], ()):
                if tuple(seq[i:i + len(key)]) == key:
                    mentions.append(Mention(title, words[i][1], words[i + len(key) - 1][2]))
                    i += len(key)
                    break
            else:
                i += 1
        if mentions:
            return mentions
    return []


def find_numbers(text: str) -> list[Mention]:
    """Document numbers (số hiệu) in ``text``: "Luật số 68/2020/QH14" → 68/2020/QH14 (upper case)."""
    folded = _folded(text)
    return [
        Mention(f"{m.group(1)}/{m.group(2)}/{_SPACES.sub('', m.group(3)).upper()}", m.start(), m.end())
        for m in _NUMBER.finditer(folded)
    ]


def find_articles(text: str, titles: Iterable[str] = ()) -> list[ArticleMention]:
    """Articles ``text`` names ("Điều 5", never "Điều nào"), each with its law when the question says it.

    The law is the one named right after the article ("Điều 5 (của) Luật Cư trú", "Điều 5 Luật số
    68/2020/QH14"), else the only law the question names; with no law or several, None.
    """
    folded = _folded(text)
    laws = find_laws(text, titles)
    numbers = find_numbers(text)
    named = sorted(laws + numbers, key=lambda m: m.start)
    only = named[0] if len({m.value for m in named}) == 1 else None
    found: list[ArticleMention] = []
    for m in _ARTICLE.finditer(folded):
        ref = next((x for x in named if x.start >= m.end() and _ARTICLE_TO_LAW.fullmatch(folded[m.end():x.start])), only)
        if ref is None:
            found.append(ArticleMention(m.group(1)))
        elif ref in numbers:
            found.append(ArticleMention(m.group(1), number=ref.value))
        else:
            found.append(ArticleMention(m.group(1), law=ref.value))
    return list(dict.fromkeys(found))


def strip_scaffolding(text: str) -> str:
    """The question without its frame: lower-case and tone-folded, scaffolding and option letters
    replaced by phrase breaks ("Hành vi nào sau đây bị cấm?" → "hành vi . . bị cấm?")."""
    folded = _folded(text)
    if len({m.group(1).lower() for m in _OPTION.finditer(folded)}) >= 2:  # a lone "a)" is a point of a clause
        folded = _OPTION.sub(" . ", folded)
    return _SPACES.sub(" ", _SCAFFOLDING_RE.sub(" . ", folded)).strip()
