"""What the texts say about validity (hiệu lực), as plain records.

``DocumentFacts`` is what one file states: its own number, title, dates, and the relations it
states on other documents (repeals, abolishes, amends). They are read per file in the normalize
stage (``validity.extract``), kept with the file's other records as JSON, and resolved across
the whole folder by ``validity.resolve``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

_PRIMITIVE = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """``dataclasses.asdict`` of a record of this package (dataclasses, lists, tuples, dicts and plain
    values), the same result without its generic walk: a run asks it of every file several times, and
    ``asdict`` was 2 % of an ingest of 17,656 one-article files."""
    if isinstance(value, _PRIMITIVE):
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and hasattr(type(value), "__dataclass_fields__"):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if type(value) in (list, tuple):
        return type(value)(plain(v) for v in value)
    if type(value) is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    return copy.deepcopy(value)  # what asdict does with any other value


# Relation kinds.
REPEALS = "repeals"  # "… hết hiệu lực kể từ ngày …" (hết hiệu lực): the scope stops being law
ABOLISHES = "abolishes"  # "Bãi bỏ Điều 37 …": the scope stops being law
AMENDS = "amends"  # "Sửa đổi, bổ sung / Bổ sung / Thay thế … Điều N": the article stays law, in new words
ENDING_KINDS = (REPEALS, ABOLISHES)

# Scope levels, widest first.
DOCUMENT, PART, CHAPTER, SECTION, ARTICLE, CLAUSE, POINT = (
    "document", "part", "chapter", "section", "article", "clause", "point")


@dataclass(frozen=True)
class Target:
    """The document a relation names: by number (``number_key`` form, e.g. "68/2014/QH13"), or,
    when the sentence gives none, by title (e.g. "Luật Doanh nghiệp") with the year when given."""

    number: str | None = None
    title: str | None = None
    year: int | None = None

    def label(self) -> str:
        if self.number:
            return self.number
        return f"{self.title or '?'}{f' {self.year}' if self.year else ''}"


@dataclass(frozen=True)
class Scope:
    """Part of a document. ``level`` is the narrowest part named; wider parts give context:
    "điểm b khoản 1 Điều 86" → Scope(POINT, article="86", clause="1", point="b");
    "Chương V" → Scope(CHAPTER, chapter="5") (Roman numerals as Arabic, so "Chương 5" matches);
    "Mục 3 Chương III" → Scope(SECTION, chapter="3", section="3"). Article numbers as written
    ("10a"), lower case."""

    level: str
    part: str | None = None
    chapter: str | None = None
    section: str | None = None
    article: str | None = None
    clause: str | None = None
    point: str | None = None


@dataclass(frozen=True)
class Relation:
    """One relation stated by a document on another.

    ``scopes`` empty means the whole document. ``exceptions`` are parts kept in force ("trừ Điều 75
    …"). ``source_article`` / ``source_clause`` locate the provision that states it (the amending
    article "113", its clause "1"). ``effective`` is the ISO date the sentence gives of its own;
    None means when the stating document takes effect. ``sentence`` is the text it was read from,
    for a lawyer to check."""

    kind: str
    target: Target
    scopes: tuple[Scope, ...] = ()
    exceptions: tuple[Scope, ...] = ()
    source_article: str | None = None
    source_clause: str | None = None
    effective: str | None = None
    sentence: str = ""


@dataclass
class DocumentFacts:
    """What one document says about itself and others.

    ``effective_from``: ISO date its text gives ("có hiệu lực thi hành từ ngày 01 tháng 01 năm 2021";
    "kể từ ngày ký" → the date of issue; "sau 45 ngày kể từ ngày công bố" → computed when the date it
    counts from is known), None when none can be read. ``effective_rule``: the sentence it came from.
    ``article_effective``: articles given their own later date {"86": "2022-01-01"} (whole articles;
    a clause's own date is in ``part_effective`` as (Scope, date)). ``unreadable``: sentences about
    dates or validity that could not be read (listed for a person, change nothing).
    ``page``: official metadata where the file carries it (vbpl.vn: {"status": "Hết hiệu lực một phần",
    "effective_from": ISO, "valid_to": ISO or None}), None otherwise."""

    number: str | None = None
    title: str | None = None
    doc_type: str | None = None
    year: int | None = None
    issued_on: str | None = None
    effective_from: str | None = None
    effective_rule: str | None = None
    article_effective: dict[str, str] = field(default_factory=dict)
    part_effective: list[tuple[Scope, str]] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    page: dict[str, Any] | None = None

    # ------------------------------------------------------------------ JSON (kept in files.db)
    def to_json(self) -> dict[str, Any]:
        data = plain(self)
        data["part_effective"] = [[plain(s), d] for s, d in self.part_effective]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DocumentFacts:
        if not data:
            return cls()

        def scope(d: dict[str, Any]) -> Scope:
            return Scope(**d)

        def relation(d: dict[str, Any]) -> Relation:
            return Relation(
                kind=d["kind"],
                target=Target(**d["target"]),
                scopes=tuple(scope(s) for s in d.get("scopes") or ()),
                exceptions=tuple(scope(s) for s in d.get("exceptions") or ()),
                source_article=d.get("source_article"),
                source_clause=d.get("source_clause"),
                effective=d.get("effective"),
                sentence=d.get("sentence", ""),
            )

        return cls(
            number=data.get("number"),
            title=data.get("title"),
            doc_type=data.get("doc_type"),
            year=data.get("year"),
            issued_on=data.get("issued_on"),
            effective_from=data.get("effective_from"),
            effective_rule=data.get("effective_rule"),
            article_effective=dict(data.get("article_effective") or {}),
            part_effective=[(scope(s), d) for s, d in data.get("part_effective") or []],
            relations=[relation(r) for r in data.get("relations") or []],
            unreadable=list(data.get("unreadable") or []),
            page=data.get("page"),
        )
