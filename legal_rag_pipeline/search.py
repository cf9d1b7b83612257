"""Search the collection: bm25 and dense candidates fused by reciprocal rank, one hit per article."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qdrant_client import models

from .resources.qdrant import SPARSE_NAME, Collection
from .text.lexical import query_vector

# Candidates fetched per requested hit before grouping pieces of one article together.
CANDIDATES_PER_HIT = 8


@dataclass
class Hit:
    id: str
    score: float
    source: str | None
    law: str | None
    article: str | None
    question: str | None
    page_content: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _filter(law: str | None, source: str | None) -> models.Filter | None:
    must = []
    if law:
        must.append(models.FieldCondition(key="law", match=models.MatchValue(value=law)))
    if source:
        must.append(models.FieldCondition(key="source", match=models.MatchValue(value=source)))
    return models.Filter(must=must) if must else None


def search(
    collection: Collection,
    query: str,
    top_k: int = 5,
    *,
    dense_vector: list[float] | None = None,
    law: str | None = None,
    source: str | None = None,
) -> list[Hit]:
    """Top ``top_k`` hits, each a different article (or Q&A row): hybrid when a dense vector is given."""
    indices, values = query_vector(query)
    sparse = models.SparseVector(indices=indices, values=values)
    limit = top_k * CANDIDATES_PER_HIT
    flt = _filter(law, source)
    if dense_vector is not None:
        response = collection.client.query_points(
            collection.name,
            prefetch=[
                models.Prefetch(query=sparse, using=SPARSE_NAME, limit=limit, filter=flt),
                models.Prefetch(query=dense_vector, limit=limit, filter=flt),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit,
            with_payload=True,
        )
    else:
        if not indices:
            return []
        response = collection.client.query_points(
            collection.name, query=sparse, using=SPARSE_NAME, limit=limit, query_filter=flt, with_payload=True
        )
    return group_hits(response.points, top_k)


def group_hits(points: list[Any], top_k: int) -> list[Hit]:
    """Keep the best piece of each article: the top-k hits are k different articles."""
    hits: list[Hit] = []
    seen: set[str] = set()
    for point in points:
        payload = point.payload or {}
        group = payload.get("group_key") or str(point.id)
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
            )
        )
        if len(hits) == top_k:
            break
    return hits
