"""Checks on the collection, run in the same step as the write (so they run even when a file failed)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from qdrant_client import models

from ..artifacts import FileArtifacts, StageOutcome
from ..resources.qdrant import SPARSE_NAME, Collection
from ..text.lexical import query_vector

ASSET = "qdrant_collection"
COLLECTION_CHECKS = [
    dg.AssetCheckSpec("vector_size_matches_model", asset=ASSET, description="The collection exists with the configured model's vector size."),
    dg.AssetCheckSpec("points_match_chunks", asset=ASSET, description="Each file's point count equals its chunk count."),
    dg.AssetCheckSpec("vectors_valid", asset=ASSET, description="No zero or NaN dense vector among the points written."),
    dg.AssetCheckSpec("search_probe", asset=ASSET, description="A search finds a chunk of each newly ingested file."),
]


def run_collection_checks(
    collection: Collection,
    sources: Sequence[str],
    state_dir: Path,
    embedder: Any,
    outcomes: Sequence[StageOutcome],
) -> Iterator[dg.AssetCheckResult]:
    ok = [o for o in outcomes if o.ok]
    yield _vector_size(collection, embedder, [o.source for o in ok], state_dir)
    yield _points_match(collection, ok)
    written = [o for o in ok if o.counts.get("points_written")]
    yield _vectors_valid(collection, written, state_dir)
    yield _search_probe(collection, written, state_dir)


def _model_size(embedder: Any, sources: Sequence[str], state_dir: Path) -> int:
    """The model's real output size: from vectors it produced for these files, else one probe call."""
    model = embedder.model_id()
    for source in sources:
        for vector in FileArtifacts(state_dir, source).read_embeddings(model).values():
            return int(vector.shape[0])
    return int(embedder.dimension())


def _vector_size(collection: Collection, embedder: Any, sources: Sequence[str], state_dir: Path) -> dg.AssetCheckResult:
    if not collection.exists():
        return dg.AssetCheckResult(check_name="vector_size_matches_model", passed=False, metadata={"reason": "collection missing"})
    have = collection.dense_size()
    if embedder.enabled():
        want = _model_size(embedder, sources, state_dir)
        passed = have == want
    else:
        want = None
        passed = have is None
    return dg.AssetCheckResult(
        check_name="vector_size_matches_model",
        passed=passed,
        metadata={"collection_vector_size": str(have), "model_vector_size": str(want)},
    )


def _points_match(collection: Collection, ok: Sequence[StageOutcome]) -> dg.AssetCheckResult:
    mismatched = []
    for outcome in ok:
        chunks = outcome.counts.get("chunks", 0)
        points = collection.count(outcome.source)
        if points != chunks:
            mismatched.append(f"{outcome.source}: {points} points for {chunks} chunks")
    return dg.AssetCheckResult(
        check_name="points_match_chunks",
        passed=not mismatched,
        metadata={"files_checked": len(ok), "mismatched": dg.MetadataValue.md("\n".join(mismatched) or "none")},
    )


def _vectors_valid(collection: Collection, written: Sequence[StageOutcome], state_dir: Path) -> dg.AssetCheckResult:
    if collection.dense_size() is None:
        return dg.AssetCheckResult(check_name="vectors_valid", passed=True, metadata={"checked": 0, "note": "bm25 only"})
    bad, checked = [], 0
    for outcome in written:
        ids = FileArtifacts(state_dir, outcome.source).chunk_ids()
        for start in range(0, len(ids), 512):
            for point in collection.client.retrieve(collection.name, ids[start : start + 512], with_vectors=[""]):
                vector = point.vector.get("") if isinstance(point.vector, dict) else point.vector
                checked += 1
                norm = math.fsum(v * v for v in vector or [])
                if not vector or norm == 0 or math.isnan(norm):
                    bad.append(str(point.id))
    return dg.AssetCheckResult(
        check_name="vectors_valid", passed=not bad, metadata={"checked": checked, "invalid": len(bad)}
    )


def _search_probe(collection: Collection, written: Sequence[StageOutcome], state_dir: Path) -> dg.AssetCheckResult:
    missed = []
    for outcome in written:
        first = next(iter(FileArtifacts(state_dir, outcome.source).read_chunks()), None)
        if first is None:
            continue
        indices, values = query_vector(first.text)
        hits = collection.client.query_points(
            collection.name,
            query=models.SparseVector(indices=indices, values=values),
            using=SPARSE_NAME,
            limit=10,
            with_payload=["source"],
        ).points
        if not any((h.payload or {}).get("source") == outcome.source for h in hits):
            missed.append(outcome.source)
    return dg.AssetCheckResult(
        check_name="search_probe",
        passed=not missed,
        metadata={"files_probed": len(written), "not_found": dg.MetadataValue.md("\n".join(missed) or "none")},
    )
