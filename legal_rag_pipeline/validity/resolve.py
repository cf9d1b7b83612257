"""The law in force across the folder: each file's validity from what every file states.

A plain function over every document's ``DocumentFacts`` (read per file by ``validity.extract``):
relations are resolved to the files they name (by number; by title and year where no number is
given, only when one document matches), then folded into one ``FileValidity`` per file, which says
for any chunk of it (by its article, chapter, section) the flat payload fields a point carries:
``valid_from``, ``valid_to`` (None while in force), ``repealed_by``, ``amended_by``,
``validity_source``, and on an amending provision ``amends_articles`` (the articles it changes).

Rules (Luật Ban hành văn bản quy phạm pháp luật 80/2015/QH13, Điều 151 and 154):

* a document is law from its effective date: the vbpl.vn page's official date where the file is
  such a page (the text's kept beside it as ``valid_from_text``), else the date its text states;
  an article given its own later date starts then;
* a repeal or abolition ends what it names (the document, a part, chapter, section or articles) on
  the date the clause gives, else when the stating document takes effect; what an exception names
  ("trừ Điều 75 …") stays in force;
* an amended article stays law: its points say by what and from when (``amended_by``), and the
  amending provision is its own chunk, linked back by ``amends_articles``. A clause or point that is
  abolished is an amendment of its article, not the end of it;
* precision first: a relation is not applied when it names the stating document itself, a
  document issued later than the one that states it, a title that matches several documents, when
  no date can be found for it, or when two documents end each other (each is reported instead).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from ..readers.header import number_key
from .model import (
    ARTICLE,
    CHAPTER,
    CLAUSE,
    DOCUMENT,
    ENDING_KINDS,
    PART,
    POINT,
    SECTION,
    DocumentFacts,
    Relation,
    Scope,
    plain,
)

# The flat payload fields every point of a law carries (None where not known), besides ``number``.
VALIDITY_FIELDS = ("valid_from", "valid_to", "repealed_by", "amended_by", "validity_source", "valid_from_text",
                   "amends_articles")

# Outcome of a relation, as listed by `legal-rag validity`.
APPLIED = "applied"
NOT_IN_FOLDER = "target not in the folder"
AMBIGUOUS = "title matches several documents"
NO_DATE = "no date can be read"
SELF = "names the stating document itself"
LATER = "names a document issued later"
CIRCULAR = "circular: the two documents end each other"

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def arabic(numeral: str | None) -> str | None:
    """"V" → "5", "XIV" → "14", "5" → "5"; None for anything else."""
    if not numeral:
        return None
    numeral = numeral.strip().upper()
    if numeral.isdigit():
        return str(int(numeral))
    if not numeral or any(c not in _ROMAN for c in numeral):
        return None
    total = 0
    for i, c in enumerate(numeral):
        value = _ROMAN[c]
        total += -value if i + 1 < len(numeral) and _ROMAN[numeral[i + 1]] > value else value
    return str(total)


def _heading_number(heading: str | None) -> str | None:
    """"Chương V — KHIẾU NẠI" → "5", "Mục 3 — …" → "3" (chunk metadata)."""
    if not heading:
        return None
    parts = heading.split()
    return arabic(parts[1]) if len(parts) > 1 else None


def title_key(title: str | None) -> str:
    """A law title as a comparable key: NFC, case-folded, punctuation and a trailing year dropped
    ("Luật Thi đua, Khen thưởng năm 2003" → "luật thi đua khen thưởng")."""
    text = unicodedata.normalize("NFC", title or "").casefold()
    words = _WORDS.findall(text)
    if words and re.fullmatch(r"(?:19|20)\d{2}", words[-1]):
        words = words[:-2] if len(words) > 1 and words[-2] == "năm" else words[:-1]
    return " ".join(words)


def _year(value: str | None) -> int | None:
    return int(value[:4]) if value and value[:4].isdigit() else None


def _doc_year(facts: DocumentFacts) -> int | None:
    if facts.year:
        return facts.year
    if facts.number:
        m = re.search(r"/((?:19|20)\d{2})/", facts.number)
        if m:
            return int(m.group(1))
    return _year(facts.issued_on)


def _scope_text(scope: Scope) -> str:
    """Scope(POINT, article="86", clause="1", point="b") → "điểm b khoản 1 Điều 86"."""
    named = (("điểm", scope.point), ("khoản", scope.clause), ("Điều", scope.article), ("Mục", scope.section),
             ("Chương", scope.chapter), ("Phần", scope.part))
    parts = [f"{label} {value}" for label, value in named if value]
    return " ".join(parts) or "toàn văn"


# ---------------------------------------------------------------------------------------------------
# What a file's points carry
# ---------------------------------------------------------------------------------------------------

def view_digest(view: Mapping[str, Any]) -> str:
    """``FileValidity.digest`` of the validity whose ``to_json`` is ``view``."""
    return hashlib.sha256(json.dumps(view, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]

@dataclass
class Ending:
    """A part of the file that stops being law on ``on``, by ``by`` (number) ``by_article``."""

    scope: Scope
    on: str
    by: str | None
    by_article: str | None = None
    exceptions: tuple[Scope, ...] = ()


@dataclass
class Amendment:
    """An article changed by ``number`` (its ``article``) from ``on``."""

    article: str | None  # None: the document as a whole ("thay thế cụm từ … trong toàn bộ Luật")
    number: str | None
    by_article: str | None
    on: str | None
    kind: str


@dataclass
class FileValidity:
    """Everything that decides the validity payload of one file's points."""

    number: str | None = None
    valid_from: str | None = None
    valid_from_text: str | None = None
    source: str = "text"  # where valid_from / valid_to come from: "text" or "page"
    page_valid_to: str | None = None
    article_from: dict[str, str] = field(default_factory=dict)
    endings: list[Ending] = field(default_factory=list)
    amendments: list[Amendment] = field(default_factory=list)
    # own article → what its clauses change: [{"number", "article", "clause": the amending clause}]
    amends_articles: dict[str, list[dict[str, str | None]]] = field(default_factory=dict)

    # -------------------------------------------------------------- (de)serialisation
    def to_json(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FileValidity | None:
        if not data:
            return None
        value = cls(**{k: v for k, v in data.items() if k not in ("endings", "amendments")})
        value.endings = [
            Ending(Scope(**e["scope"]), e["on"], e.get("by"), e.get("by_article"),
                   tuple(Scope(**s) for s in e.get("exceptions") or ()))
            for e in data.get("endings") or []
        ]
        value.amendments = [Amendment(**a) for a in data.get("amendments") or []]
        return value

    def digest(self) -> str:
        return view_digest(self.to_json())

    # -------------------------------------------------------------- per chunk
    def ending_for(self, metadata: Mapping[str, Any]) -> Ending | None:
        """The earliest ending that covers a chunk with this metadata (article, chapter, section)."""
        best: Ending | None = None
        for ending in self.endings:
            covered = _covers(ending.scope, metadata) and not any(_covers(x, metadata) for x in ending.exceptions)
            if covered and (best is None or ending.on < best.on):
                best = ending
        return best

    def payload(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The flat validity fields of a point whose chunk has ``metadata``."""
        article = metadata.get("article")
        valid_from = self.valid_from
        if article and article in self.article_from and (not valid_from or self.article_from[article] > valid_from):
            valid_from = self.article_from[article]
        ending = self.ending_for(metadata)
        valid_to, repealed_by = (ending.on, ending.by) if ending else (self.page_valid_to, None)
        if ending and self.page_valid_to and self.page_valid_to < ending.on and not ending.scope.article:
            valid_to = self.page_valid_to
        amended = []
        seen = set()
        for a in self.amendments:
            if a.article is None or a.article != article:  # a whole-document amendment: in the status only
                continue
            entry = {"number": a.number, "article": a.by_article, "from": a.on}
            key = (a.number, a.by_article, a.on)
            if key not in seen:
                seen.add(key)
                amended.append(entry)
        amended.sort(key=lambda e: (e["from"] or "", e["number"] or ""))
        links: list[dict[str, str | None]] = []
        for link in self.amends_articles.get(article or "", []) if article else []:
            if _in_clauses(link.get("clause"), metadata.get("clause")):
                entry = {"number": link["number"], "article": link["article"]}
                if entry not in links:
                    links.append(entry)
        return {
            "valid_from": valid_from,
            "valid_to": valid_to,
            "repealed_by": repealed_by,
            "amended_by": amended,
            "validity_source": self.source,
            "valid_from_text": self.valid_from_text if self.source == "page" else None,
            "amends_articles": links,
        }


def _in_clauses(clause: str | None, chunk_clauses: str | None) -> bool:
    """True when the amending clause ``clause`` ("2") lies in a chunk's clauses ("2", "1-3"; None: the
    whole article): each piece of an amending article links to what its own clauses change."""
    if not clause or not chunk_clauses:
        return True
    low, _, high = str(chunk_clauses).partition("-")
    try:
        return int(low) <= int(clause) <= int(high or low)
    except ValueError:
        return clause in (low, high)


def _covers(scope: Scope, metadata: Mapping[str, Any]) -> bool:
    """True when a chunk (its metadata) lies inside ``scope`` as an ending: a document, part, chapter,
    section or article. A clause or point never ends its article (that is an amendment)."""
    if scope.level == DOCUMENT:
        return True
    article = metadata.get("article")
    if scope.level == ARTICLE:
        return bool(article) and str(article).lower() == (scope.article or "").lower()
    if scope.level in (CLAUSE, POINT):
        return False
    chapter = _heading_number(metadata.get("chapter"))
    if scope.level == CHAPTER:
        return chapter is not None and chapter == arabic(scope.chapter)
    if scope.level == SECTION:
        section = _heading_number(metadata.get("section"))
        if section is None or section != arabic(scope.section):
            return False
        return scope.chapter is None or chapter == arabic(scope.chapter)
    if scope.level == PART:
        part = metadata.get("part") or ""
        return bool(scope.part) and title_key(part).startswith(title_key(f"Phần {scope.part}"))
    return False


def point_validity(validity: FileValidity | dict[str, Any] | None, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The validity payload fields of one chunk; every field None (in force, nothing known) without a view."""
    if isinstance(validity, dict):
        validity = FileValidity.from_json(validity)
    if validity is None:
        return {"valid_from": None, "valid_to": None, "repealed_by": None, "amended_by": [],
                "validity_source": None, "valid_from_text": None, "amends_articles": []}
    return validity.payload(metadata)


# ---------------------------------------------------------------------------------------------------
# The corpus view
# ---------------------------------------------------------------------------------------------------
@dataclass
class RelationRow:
    """One relation found in the folder, as `legal-rag validity` lists it."""

    source: str
    source_number: str | None
    source_article: str | None
    kind: str
    target: str
    scope: str
    on: str | None
    outcome: str
    targets: list[str]
    sentence: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CorpusValidity:
    files: dict[str, FileValidity]
    relations: list[RelationRow]
    duplicates: dict[str, list[str]]  # number → the files that carry it
    problems: list[str]  # circular or contradictory relations, unreadable dates (with their sentence)

    def status(self, source: str, today: str | None = None) -> dict[str, Any]:
        """One file's validity as a person reads it: status, dates, by what."""
        today = today or date.today().isoformat()
        fv = self.files.get(source)
        if fv is None:
            return {"status": "unknown"}
        return file_status(fv, today)


def file_status(fv: FileValidity, today: str) -> dict[str, Any]:
    doc = fv.payload({})  # the document as a whole (no article)
    whole = [e for e in fv.endings if e.scope.level == DOCUMENT and not e.exceptions]
    ended_parts = [e for e in fv.endings if e.scope.level != DOCUMENT or e.exceptions]
    if doc["valid_from"] and doc["valid_from"] > today:
        status = f"not yet in force (from {doc['valid_from']})"
    elif doc["valid_to"] and doc["valid_to"] <= today and (whole or fv.page_valid_to):
        status = f"not in force since {doc['valid_to']}" + (f" (repealed by {doc['repealed_by']})" if doc["repealed_by"] else "")
    elif any(e.on <= today for e in ended_parts):
        status = "partly not in force"
    else:
        status = "in force"
    if fv.amendments and status in ("in force", "partly not in force"):
        status += ", amended"
    return {
        "status": status,
        "number": fv.number,
        "valid_from": doc["valid_from"],
        "valid_to": doc["valid_to"] if whole or fv.page_valid_to else None,
        "repealed_by": doc["repealed_by"],
        "parts_ended": [f"{_scope_text(e.scope)} from {e.on} by {e.by}" for e in ended_parts],
        "amended_by": sorted({f"{a.number}" + (f" Điều {a.by_article}" if a.by_article else "") for a in fv.amendments}),
        "validity_source": fv.source,
    }


def resolve(facts: Mapping[str, DocumentFacts]) -> CorpusValidity:
    """Every file's ``FileValidity`` from what all files state (``facts``: source → its facts)."""
    by_number: dict[str, list[str]] = defaultdict(list)
    by_title: dict[str, list[str]] = defaultdict(list)
    for source, f in facts.items():
        if f.number:
            by_number[number_key(f.number)].append(source)
        if f.title:
            by_title[title_key(f.title)].append(source)

    files: dict[str, FileValidity] = {}
    problems: list[str] = []
    for source, f in facts.items():
        page = f.page or {}
        fv = FileValidity(number=number_key(f.number) if f.number else None, article_from=dict(f.article_effective))
        if page.get("effective_from") or page.get("valid_to") or page.get("status"):
            fv.source = "page"
            fv.valid_from = page.get("effective_from") or f.effective_from
            fv.valid_from_text = f.effective_from
            fv.page_valid_to = page.get("valid_to")
        else:
            fv.valid_from = f.effective_from
        files[source] = fv
        for sentence in f.unreadable:
            problems.append(f"{source}: a date could not be read, the document stays in force: {sentence}")

    def targets_of(relation: Relation) -> tuple[list[str], str | None]:
        t = relation.target
        if t.number:
            found = by_number.get(number_key(t.number), [])
            return list(found), None if found else NOT_IN_FOLDER
        candidates = by_title.get(title_key(t.title), [])
        if t.year:
            candidates = [s for s in candidates if _doc_year(facts[s]) == t.year]
        numbers = {number_key(facts[s].number or s) for s in candidates}
        if not candidates:
            return [], NOT_IN_FOLDER
        if len(numbers) > 1:
            return [], AMBIGUOUS
        return list(candidates), None

    # First pass: which relations hold, and between which files.
    planned: list[tuple[str, Relation, list[str], str | None, str]] = []
    ends_whole: set[tuple[str, str]] = set()
    for source, f in facts.items():
        for relation in f.relations:
            targets, outcome = targets_of(relation)
            on = relation.effective or files[source].valid_from
            own = number_key(f.number) if f.number else None
            if outcome is None and (source in targets or (own and relation.target.number
                                                          and number_key(relation.target.number) == own)):
                targets, outcome = [], SELF
            if outcome is None:
                year = _doc_year(f)
                later = [t for t in targets if year and _doc_year(facts[t]) and _doc_year(facts[t]) > year]  # type: ignore[operator]
                if later:
                    targets, outcome = [t for t in targets if t not in later], (LATER if len(later) == len(targets) else None)
            if outcome is None and not on:
                outcome = NO_DATE
                problems.append(f"{source}: a {relation.kind} of {relation.target.label()} has no readable date, "
                                f"nothing changes: {relation.sentence[:300]}")
            if outcome is None and relation.kind in ENDING_KINDS and not relation.scopes:
                for t in targets:
                    ends_whole.add((source, t))
            planned.append((source, relation, targets, outcome, on or ""))

    rows: list[RelationRow] = []
    for source, relation, targets, outcome, on in planned:
        if outcome is None and relation.kind in ENDING_KINDS and not relation.scopes:
            circular = [t for t in targets if (t, source) in ends_whole]
            if circular:
                outcome = CIRCULAR
                problems.append(f"{source} and {', '.join(circular)} end each other; neither relation is applied: "
                                f"{relation.sentence[:300]}")
        f = facts[source]
        by = number_key(f.number) if f.number else source
        if outcome is None:
            for target in targets:
                _apply(files[target], relation, by, on)
            if relation.kind not in ENDING_KINDS and relation.source_article:
                links = files[source].amends_articles.setdefault(relation.source_article, [])
                for scope in relation.scopes or (Scope(DOCUMENT),):
                    link = {"number": relation.target.label(), "article": scope.article, "clause": relation.source_clause}
                    if link not in links:
                        links.append(link)
        rows.append(RelationRow(
            source=source,
            source_number=by if f.number else None,
            source_article=relation.source_article,
            kind=relation.kind,
            target=relation.target.label(),
            scope=", ".join(_scope_text(s) for s in relation.scopes) or "toàn văn",
            on=on or None,
            outcome=outcome or APPLIED,
            targets=sorted(targets) if outcome is None else [],
            sentence=relation.sentence,
        ))

    for fv in files.values():  # one order whatever the files' order: the digest changes only with the view
        fv.endings.sort(key=lambda e: (e.on, e.by or "", repr(e.scope), repr(e.exceptions)))
        fv.amendments.sort(key=lambda a: (a.on or "", a.number or "", a.article or "", a.by_article or "", a.kind))
        for links in fv.amends_articles.values():
            links.sort(key=lambda link: (link["number"] or "", link["article"] or "", link["clause"] or ""))
    duplicates = {n: sorted(s) for n, s in by_number.items() if len(s) > 1}
    return CorpusValidity(files=files, relations=rows, duplicates=duplicates, problems=problems)


def _apply(target: FileValidity, relation: Relation, by: str, on: str) -> None:
    if relation.kind in ENDING_KINDS:
        scopes = relation.scopes or (Scope(DOCUMENT),)
        for scope in scopes:
            if scope.level in (CLAUSE, POINT):  # a clause or point abolished: its article is amended
                target.amendments.append(Amendment(scope.article, by, relation.source_article, on, relation.kind))
            else:
                target.endings.append(Ending(scope, on, by, relation.source_article, relation.exceptions))
        return
    scopes = relation.scopes or (Scope(DOCUMENT),)
    for scope in scopes:
        article = scope.article if scope.level in (ARTICLE, CLAUSE, POINT) else None
        target.amendments.append(Amendment(article, by, relation.source_article, on, relation.kind))
