"""Search the collection: bm25 and dense candidates fused by reciprocal rank, one hit per article.

* Hybrid when a dense query vector is given and the collection has dense vectors: two prefetches
  (``bm25`` sparse and the unnamed dense vector, same filter) fused with Qdrant's reciprocal-rank
  fusion (Query API). ``bm25`` alone otherwise; dense alone when the query has no words.
* Article-level answers: the pieces of one article share ``group_key`` (``<file>#dieu-<N>``); only
  the best piece of each article is kept, so the top-k are k different articles (or Q&A rows).
* Filters: ``law`` matches the law title case-, accent-form- and NFC-insensitively ("luật cư trú"
  finds "Luật Cư trú"); when no title equals it, titles containing it are used ("cư trú" finds
  "Luật Cư trú mẫu"). ``source`` is the file path relative to the data folder.
* An article named with its law ("Điều 5 Luật Cư trú", "Điều 5 Luật số 68/2020/QH14") comes
  first, the usual ranking after it (text/query.py reads the question). A law named alone is
  neither a filter nor a boost: its title is in every piece's ``bm25`` text already, and true/false
  statements name the wrong law on purpose (measured in docs/retrieval.md).
* The law in force: by default only points in force **today** (``as_of="today"``): not starting
  after the day (``valid_from``), not ended on or before it (``valid_to``); ``as_of="2020-06-30"``
  gives the law as it stood that day, ``as_of=None`` every version. Each hit carries ``number``,
  ``valid_from``, ``valid_to``, ``repealed_by`` and ``amended_by`` (validity/).
* ``fusion_weights`` (``FUSION_WEIGHTS``): the weights of the ``bm25`` and dense lists in the
  reciprocal-rank fusion; None is Qdrant's plain fusion (equal weights).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from .stores.base import VALID_ON, Collection
from .text.lexical import DEFAULT_LEXICAL, Lexical, fold_tone_marks, query_vector
from .text.query import find_articles

_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
# A quick test before reading a question for articles: "Điều 5", "điều 12a" (not "Điều nào").
_ARTICLE_HINT = re.compile(r"(?<![^\W_])(?:điều|Điều|ĐIỀU)\s*\d", re.UNICODE)

# Candidates fetched per requested hit before grouping pieces of one article together; the fetch
# grows (up to MAX_CANDIDATES) when the candidates hold fewer than top_k different articles.
CANDIDATES_PER_HIT = 8
MAX_CANDIDATES = 2000


@dataclass
class Hit:
    id: str
    score: float
    source: str | None
    law: str | None
    article: str | None
    question: str | None
    page_content: str
    group: str | None = field(default=None, repr=False)  # the article (or row) it stands for
    number: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    repealed_by: str | None = None
    amended_by: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("group")
        return data

    def validity_note(self, as_of: str | None = None) -> str:
        """What a lawyer needs beside the text: "hết hiệu lực từ 01/01/2021 (thay thế bởi 59/2020/QH14)",
        "sửa đổi bởi 43/2019/QH14, Điều 113, từ 01/07/2020"; "" for a point in force, unamended."""
        day = as_of or date.today().isoformat()
        notes = []
        if self.valid_from and self.valid_from > day:
            notes.append(f"chưa có hiệu lực (từ {_vn_date(self.valid_from)})")
        if self.valid_to:
            by = f" (bởi {self.repealed_by})" if self.repealed_by else ""
            verb = "hết hiệu lực từ" if self.valid_to <= day else "hết hiệu lực từ ngày"
            notes.append(f"{verb} {_vn_date(self.valid_to)}{by}")
        for change in self.amended_by:
            if change.get("from") and change["from"] > day:
                continue
            parts = [f"sửa đổi bởi {change.get('number')}"]
            if change.get("article"):
                parts.append(f"Điều {change['article']}")
            if change.get("from"):
                parts.append(f"từ {_vn_date(change['from'])}")
            notes.append(", ".join(parts))
        return "; ".join(notes)


def _vn_date(iso: str) -> str:
    """"2020-07-01" → "01/07/2020"."""
    return f"{iso[8:10]}/{iso[5:7]}/{iso[:4]}" if len(iso) >= 10 else iso


TODAY = "today"


def as_of_day(as_of: str | None) -> str | None:
    """``"today"`` → today's ISO date; an ISO date as is; None (every version) as is."""
    if as_of == TODAY:
        return date.today().isoformat()
    if as_of is not None:
        date.fromisoformat(as_of)  # ValueError for anything but YYYY-MM-DD
    return as_of


def normalise_title(title: str) -> str:
    """Comparable form of a law title: its words NFC, case-folded and tone-folded, punctuation dropped
    ("Luật Phòng, chống ma tuý" → "luật phòng chống ma túy")."""
    text = unicodedata.normalize("NFC", title or "").casefold()
    return " ".join(fold_tone_marks(w) for w in _WORDS.findall(text))


def law_titles(collection: Collection) -> list[str]:
    """Distinct ``law`` payload values of the collection (a keyword facet)."""
    return collection.facet_values("law")


def strip_accents(text: str) -> str:
    """"luật cư trú" → "luat cu tru" (đ → d): for users typing without diacritics."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def match_law_titles(wanted: str, titles: list[str]) -> list[str]:
    """Titles equal to ``wanted`` after ``normalise_title``, else equal without diacritics, else the
    titles containing it (with, then without diacritics): "cư trú" finds "Luật Cư trú mẫu"."""
    key = normalise_title(wanted)
    if not key:
        return []
    plain = strip_accents(key)
    normalised = [(t, normalise_title(t)) for t in titles]
    for test in (
        lambda n: n == key,
        lambda n: strip_accents(n) == plain,
        lambda n: key in n,
        lambda n: plain in strip_accents(n),
    ):
        found = [t for t, n in normalised if test(n)]
        if found:
            return found
    return []


@dataclass(frozen=True)
class DocumentFilter:
    """What a lawyer filters by besides the law's title: the document's own header (readers/header.py).

    ``number`` (số hiệu) is compared as ``number_key`` ("19/2019/ND-CP" finds "19/2019/NĐ-CP");
    ``doc_type`` and ``issuer`` like law titles (case, tone marks, accents; else "contains");
    ``issued_after`` / ``issued_before`` (YYYY-MM-DD, inclusive) against ``issued_on``.
    """

    number: str | None = None
    doc_type: str | None = None
    issuer: str | None = None
    issued_after: str | None = None
    issued_before: str | None = None

    def __bool__(self) -> bool:
        return any((self.number, self.doc_type, self.issuer, self.issued_after, self.issued_before))


def _document_conditions(collection: Collection | None, wanted: DocumentFilter) -> dict[str, Any]:
    from .readers.header import number_key

    where: dict[str, Any] = {}
    if not wanted:
        return where
    values = (lambda key: collection.facet_values(key)) if collection is not None else (lambda key: [])
    if wanted.number:
        key = number_key(wanted.number)
        where["number"] = [n for n in values("number") if number_key(n) == key] or [wanted.number]
    if wanted.doc_type:
        where["doc_type"] = match_law_titles(wanted.doc_type, values("doc_type")) or [wanted.doc_type]
    if wanted.issuer:
        where["issuer"] = match_law_titles(wanted.issuer, values("issuer")) or [wanted.issuer]
    if wanted.issued_after or wanted.issued_before:
        low, high = wanted.issued_after or "", wanted.issued_before or "9999-99-99"
        # no date in range: a value no point has, so the search answers "no results"
        where["issued_on"] = [d for d in values("issued_on") if low <= d[:10] <= high] or ["(none in range)"]
    return where


def _filter(
    collection: Collection | None, law: str | None, source: str | None, document: DocumentFilter | None = None,
    as_of: str | None = None,
) -> dict[str, Any] | None:
    where: dict[str, Any] = {}
    if as_of:
        where[VALID_ON] = as_of
    if law:
        titles = match_law_titles(law, law_titles(collection)) if collection is not None else [law]
        # no matching title: a condition nothing satisfies, so the search answers "no results"
        where["law"] = titles or [law]
    if source:
        where["source"] = source
    where.update(_document_conditions(collection, document or DocumentFilter()))
    return where or None


def search(
    collection: Collection | SparseIndex,
    query: str,
    top_k: int = 5,
    *,
    dense_vector: list[float] | None = None,
    law: str | None = None,
    source: str | None = None,
    variant: str | None = None,
    document: DocumentFilter | None = None,
    fusion_weights: tuple[float, float] | None = None,
    as_of: str | None = TODAY,
) -> list[Hit]:
    """Top ``top_k`` hits, each a different article (or Q&A row): hybrid when a dense vector is given.

    An article the question names with its law comes first (``named_article_conditions``). Only the
    law in force ``as_of`` ("today", a "YYYY-MM-DD" day, or None for every version) is searched.
    """
    if top_k < 1:
        return []
    indices, values = query_vector(query, variant or collection.lexical.variant)
    if not indices and dense_vector is None:
        return []
    sparse = (indices, values) if indices else None
    flt = _filter(collection, law, source, document, as_of_day(as_of))
    pinned: list[Hit] = []
    for where in named_article_conditions(collection, query, flt):
        points = collection.query(sparse=sparse, dense=dense_vector, where=where, limit=CANDIDATES_PER_HIT,
                                  fields=True, fusion_weights=fusion_weights)
        pinned += [h for h in group_hits(points, 1) if _hit_group(h) not in {_hit_group(p) for p in pinned}]
    pinned = pinned[:top_k]
    want = top_k - len(pinned)
    if want == 0:
        return pinned
    limit = top_k * CANDIDATES_PER_HIT
    skip = {_hit_group(h) for h in pinned}
    while True:
        points = collection.query(sparse=sparse, dense=dense_vector, where=flt, limit=limit, fields=True,
                                  fusion_weights=fusion_weights)
        hits = group_hits((p for p in points if group_key(p.payload or {}, p.id) not in skip), want)
        if len(hits) >= want or len(points) < limit or limit >= MAX_CANDIDATES:
            return pinned + hits
        limit = min(limit * 4, MAX_CANDIDATES)


def _hit_group(hit: Hit) -> str:
    return hit.group or hit.id


def named_article_conditions(
    collection: Collection | SparseIndex, query: str, where: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One filter per article the question names with its law (by title or document number), within
    ``where``; none for an article without a law ("Điều 5" alone: of which law?) or outside ``where``."""
    if not _ARTICLE_HINT.search(query):
        return []
    from .readers.header import number_key

    titles = law_titles(collection)
    conditions: list[dict[str, Any]] = []
    for mention in find_articles(query, titles):
        if mention.law:
            key, values = "law", [mention.law]
        elif mention.number:
            key = "number"
            values = [n for n in collection.facet_values("number") if number_key(n) == number_key(mention.number)]
        else:
            continue
        if where and key in where:  # the question's law must be one the filter allows
            allowed = where[key] if isinstance(where[key], list) else [where[key]]
            values = [v for v in values if v in allowed]
        if values:
            conditions.append({**(where or {}), key: values, "article": mention.article})
    return conditions


def group_key(payload: dict[str, Any], point_id: Any) -> str:
    """The article (or row) a point belongs to: ``group_key``, else source + article, else the id."""
    if payload.get("group_key"):
        return str(payload["group_key"])
    if payload.get("source") and payload.get("article"):
        return f"{payload['source']}#dieu-{payload['article']}"
    return str(point_id)


def best_first(point: Any) -> tuple[float, str, int, str]:
    """Sort key of a scored point: the higher score first, then (equal scores) the file's name, the
    piece's place in it and its id. Equal scores are common in a hybrid search (a piece first by
    words and second by meaning fuses to the same score as one second by words and first by
    meaning), and the store returns them in an order of its own that changes from one process to the
    next: the same question would get its answers in another order each time it is asked."""
    payload = point.payload or {}
    index = payload.get("chunk_index")
    return (-float(point.score), str(payload.get("source") or ""), index if isinstance(index, int) else 0, str(point.id))


def group_hits(points: Iterable[Any], top_k: int) -> list[Hit]:
    """Keep the best piece of each article: the top-k hits are k different articles.

    ``points`` are taken best first (``best_first``: by score, equal scores in the files' order); the
    first piece seen of an article is its best one and carries the article's score (max over its pieces).
    """
    hits: list[Hit] = []
    seen: set[str] = set()
    if top_k < 1:
        return hits
    for point in sorted(points, key=best_first):
        payload = point.payload or {}
        group = group_key(payload, point.id)
        if group in seen:
            continue
        seen.add(group)
        hits.append(
            Hit(
                id=str(point.id),
                score=float(point.score),
                source=payload.get("source"),
                law=payload.get("law"),
                article=payload.get("article"),
                question=payload.get("question"),
                page_content=payload.get("page_content", ""),
                group=group,
                number=payload.get("number"),
                valid_from=payload.get("valid_from"),
                valid_to=payload.get("valid_to"),
                repealed_by=payload.get("repealed_by"),
                amended_by=list(payload.get("amended_by") or []),
            )
        )
        if len(hits) == top_k:
            break
    return hits


@dataclass
class _Scored:
    id: str
    score: float
    payload: dict[str, Any]


class SparseIndex:
    """The collection's ``bm25`` vectors in memory, scored exactly as Qdrant scores them.

    qdrant-client's local mode (QDRANT_ENGINE=client) scores a sparse query against every point in Python (about a second per query
    over the 7,000 pieces of 17 laws); an evaluation of hundreds of questions loads the vectors once
    and scores through an inverted index instead: the dot product of the query with each point's
    stored weights times Qdrant's IDF, ``ln((N - df + 0.5) / (df + 0.5) + 1)`` over the points that
    have the vector. Same ranking as ``search`` with ``bm25`` alone (ties aside), a hundred times faster.
    """

    def __init__(self, points: list[tuple[str, dict[int, float], dict[str, Any]]], lexical: Lexical = DEFAULT_LEXICAL) -> None:
        import numpy as np

        self.lexical = lexical  # the collection's: queries tokenised as its points were

        self._np = np
        self.ids = [p[0] for p in points]
        self.payloads = [p[2] for p in points]
        postings: dict[int, tuple[list[int], list[float]]] = {}
        for row, (_, weights, _) in enumerate(points):
            for index, weight in weights.items():
                rows, values = postings.setdefault(index, ([], []))
                rows.append(row)
                values.append(weight)
        n = sum(1 for p in points if p[1])
        self.postings = {
            i: (np.asarray(r, dtype=np.int64), np.asarray(v, dtype=np.float64)) for i, (r, v) in postings.items()
        }
        self.idf = {i: math.log((n - len(r) + 0.5) / (len(r) + 0.5) + 1) for i, (r, _) in postings.items()}

    @classmethod
    def from_collection(cls, collection: Collection) -> SparseIndex:
        points: list[tuple[str, dict[int, float], dict[str, Any]]] = []
        for record in collection.iter_points(fields=True, vectors=True):
            weights = dict(zip(*record.sparse, strict=True)) if record.sparse is not None else {}
            points.append((record.id, weights, record.payload))
        return cls(points, collection.lexical)

    def facet_values(self, key: str) -> list[str]:
        """Distinct values of a payload field (as ``Collection.facet_values``)."""
        return sorted({str(p[key]) for p in self.payloads if p.get(key)})

    def query(
        self,
        *,
        sparse: tuple[list[int], list[float]] | None = None,
        dense: Any = None,
        where: dict[str, Any] | None = None,
        limit: int = 10,
        fields: Any = True,
        fusion_weights: tuple[float, float] | None = None,
    ) -> list[_Scored]:
        """Best first, as ``Collection.query`` with ``bm25`` alone (``dense`` is not held here)."""
        if dense is not None:
            raise ValueError("SparseIndex scores bm25 only: query the collection for dense or hybrid search")
        np = self._np
        if sparse is None:
            return []
        scores = np.zeros(len(self.ids))
        touched = np.zeros(len(self.ids), dtype=bool)
        for index, value in zip(*sparse, strict=True):
            if index in self.postings:
                rows, weights = self.postings[index]
                scores[rows] += weights * (self.idf[index] * value)
                touched[rows] = True
        keep = touched
        for key, wanted in (where or {}).items():
            if key == VALID_ON:  # as the stores filter: not starting after the day, not ended by it
                keep = keep & np.array([not ((p.get("valid_from") or "") > wanted)
                                        and not (p.get("valid_to") and p["valid_to"] <= wanted)
                                        for p in self.payloads], dtype=bool)
                continue
            allowed = set(wanted) if isinstance(wanted, list | tuple | set) else {wanted}
            keep = keep & np.array([p.get(key) in allowed for p in self.payloads], dtype=bool)
        rows = np.flatnonzero(keep)
        order = rows[np.argsort(-scores[rows], kind="stable")][:limit]
        return [_Scored(self.ids[r], float(scores[r]), self.payloads[r]) for r in order]

    def search(self, query: str, top_k: int = 5, *, law: str | None = None, source: str | None = None,
               variant: str | None = None, as_of: str | None = TODAY) -> list[Hit]:
        """``search.search`` over these vectors."""
        return search(self, query, top_k, law=law, source=source, variant=variant, as_of=as_of)
