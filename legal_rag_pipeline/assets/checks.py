"""Checks on the collection, run in the same step as the write (so they run even when a file failed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from .. import ingest
from ..artifacts import FileArtifacts, StageOutcome
from ..memory import mapped_kb
from ..stores.base import Collection
from ..text.lexical import lexical_tokens, query_sparse_vector

ASSET = "qdrant_collection"
COLLECTION_CHECKS = [
    dg.AssetCheckSpec("vector_size_matches_model", asset=ASSET, description="The collection exists with the configured model's vector size."),
    dg.AssetCheckSpec("points_match_chunks", asset=ASSET, description="Each file's point count equals its chunk count."),
    dg.AssetCheckSpec("vectors_valid", asset=ASSET, description="No zero or NaN dense vector among the points written (up to 8 points of up to 256 files per run, spread over them)."),
    dg.AssetCheckSpec("search_probe", asset=ASSET, description="A search finds a chunk of each newly ingested file (at most 100 per run, spread over it)."),
]

# Evaluated with the corpus view of validity (assets/validity.py), after the sync.
NUMBER_CHECK = "number_names_one_document"
NUMBER_CHECK_SPEC = dg.AssetCheckSpec(
    NUMBER_CHECK, asset=ASSET,
    description="No document number (số hiệu) is carried by two files: copies are reported, not merged (a warning).",
)


def run_collection_checks(
    collection: Collection,
    sources: Sequence[str],
    state_dir: Path,
    embedder: Any,
    outcomes: Sequence[StageOutcome],
) -> Iterator[dg.AssetCheckResult]:
    ok = [o for o in outcomes if o.ok]
    # Files in sync since their last run (ingest.sync_stage did not read the collection for them) are
    # not re-checked: their checks passed when they were written, a failed check clears their marker,
    # and the periodic full comparison re-reads them. A run where nothing changed opens no collection.
    checked = [o for o in ok if not o.counts.get(ingest.TRUSTED)]
    trusted = len(ok) - len(checked)
    if not checked and trusted:
        note = f"{trusted} files unchanged since their last sync: not re-checked (the collection was not opened)"
        for name in ("vector_size_matches_model", "points_match_chunks", "vectors_valid", "search_probe"):
            yield dg.AssetCheckResult(asset_key=ASSET, check_name=name, passed=True, metadata={"checked": 0, "note": note})
        return
    results = [_vector_size(collection, embedder, [o.source for o in checked], state_dir)]
    if not results[0].passed:  # the collection itself is in doubt: compare it in full next time
        ingest.forget_sync_state(state_dir, [o.source for o in ok], everything=True)
    results.append(_points_match(collection, checked, state_dir))
    written = [o for o in checked if o.counts.get("points_written")]
    results.append(_vectors_valid(collection, written, state_dir))
    results.append(_search_probe(collection, written, state_dir))
    collection.release_memory()  # what the probes read (the closing optimise comes next)
    yield from results


def _model_size(embedder: Any, sources: Sequence[str], state_dir: Path) -> int:
    """The model's real output size: from vectors it produced for these files, else one probe call."""
    model = embedder.model_id()
    for source in sources:
        for vector in FileArtifacts(state_dir, source).read_embeddings(model).values():
            return int(vector.shape[0])
    return int(embedder.dimension())


def _vector_size(collection: Collection, embedder: Any, sources: Sequence[str], state_dir: Path) -> dg.AssetCheckResult:
    if not collection.exists():
        return dg.AssetCheckResult(asset_key=ASSET, check_name="vector_size_matches_model", passed=False, metadata={"reason": "collection missing"})
    have = collection.dense_size()
    if embedder.enabled():
        want = _model_size(embedder, sources, state_dir)
        passed = have == want
    else:
        want = None
        passed = have is None
    return dg.AssetCheckResult(
        asset_key=ASSET,
        check_name="vector_size_matches_model",
        passed=passed,
        metadata={"collection_vector_size": str(have), "model_vector_size": str(want)},
    )


def _points_match(collection: Collection, ok: Sequence[StageOutcome], state_dir: Path) -> dg.AssetCheckResult:
    mismatched, bad = [], []
    counts = collection.counts_by_source([o.source for o in ok])  # one pass in embedded mode
    for outcome in ok:
        chunks = outcome.counts.get("chunks", 0)
        points = counts.get(outcome.source, 0)
        if points != chunks:
            mismatched.append(f"{outcome.source}: {points} points for {chunks} chunks")
            bad.append(outcome.source)
    if bad:
        ingest.forget_sync_state(state_dir, bad)
    return dg.AssetCheckResult(
        asset_key=ASSET,
        check_name="points_match_chunks",
        passed=not mismatched,
        metadata={"files_checked": len(ok), "mismatched": dg.MetadataValue.md("\n".join(mismatched) or "none")},
    )


def _spread(items: Sequence[Any], most: int) -> list[Any]:
    """At most ``most`` of ``items``, evenly spaced, the first and (when more than one fits) the last among them."""
    if len(items) <= most:
        return list(items)
    if most == 1:
        return [items[0]]
    step = (len(items) - 1) / (most - 1)
    return [items[round(i * step)] for i in range(most)]


# Dense vectors read back per run: the points of up to MAX_VECTOR_FILES files spread over the files
# written, up to VECTOR_POINTS_PER_FILE spread over each (its first and last among them). The embedding
# resource refuses NaN and infinite vectors before they are cached; this check catches what the write
# lost or mangled. Reading every point back cost 23 of a 190 s dense ingest of the 208 laws and paged
# the whole collection into the process (docs/performance.md, "Fourth pass").
MAX_VECTOR_FILES = 256
VECTOR_POINTS_PER_FILE = 8


def _vectors_valid(collection: Collection, written: Sequence[StageOutcome], state_dir: Path) -> dg.AssetCheckResult:
    if collection.dense_size() is None:
        return dg.AssetCheckResult(asset_key=ASSET, check_name="vectors_valid", passed=True, metadata={"checked": 0, "note": "bm25 only"})
    bad, checked, bad_files = [], 0, []
    files = _spread(list(written), MAX_VECTOR_FILES)
    for outcome in files:
        ids = _spread(FileArtifacts(state_dir, outcome.source).chunk_ids(), VECTOR_POINTS_PER_FILE)
        points = collection.retrieve(ids, vectors=True)
        checked += len(points)
        found = {str(p.id): p.dense for p in points}
        vectors = [found.get(i) for i in ids]  # a point gone counts as invalid (points_match_chunks names it too)
        present = [v for v in vectors if v]
        norms = np.linalg.norm(np.asarray(present, dtype=np.float64), axis=1) if present else np.zeros(0)
        invalid = (len(vectors) - len(present)) + int(np.count_nonzero(~(np.isfinite(norms) & (norms > 0))))
        if invalid:
            bad.extend([outcome.source] * invalid)
            bad_files.append(outcome.source)
    if bad_files:
        ingest.forget_sync_state(state_dir, bad_files)
    return dg.AssetCheckResult(
        asset_key=ASSET,
        check_name="vectors_valid",
        passed=not bad,
        metadata={
            "checked": checked,
            "files_checked": len(files),
            "files_written": len(written),
            "invalid": len(bad),
            "invalid_files": dg.MetadataValue.md(
                ("these files run and are checked again next time:\n" + "\n".join(f"- {f}" for f in bad_files))
                if bad_files else "none"
            ),
        },
    )


# Files probed per run, spread evenly over the files written: every file of a run up to MAX_PROBES
# (a search is about 0.5 ms in Qdrant Edge, so a 17,000-file run would spend its checks probing).
# qdrant-client's local mode scores every point of the collection in Python for each sparse search
# (about 1 s per 10,000 points): there, a few files, with their dense vector when the collection has
# one (one matrix product).
MAX_PROBES = 100
LOCAL_MAX_PROBES = 5
# Each probe reads the posting lists of its chunk's words, common ones included: 100 probes paged 336 MB
# of the ×4 laws' Edge files into the process, one probe of the 70,624-file split about 100 MB. Given back
# (Collection.release_memory) once the process's mapped pages grew RELEASE_AFTER_MB since the last time,
# and at least every RELEASE_EVERY_PROBES probes: on the split, every 20 probes held up to 238 MB of them
# at once and made the checks the run's peak; after each probe, 154 MB, for 0.9 s more over 100 probes
# (docs/performance.md). A smaller store maps less a probe and gives it back less often.
RELEASE_AFTER_MB = 32
RELEASE_EVERY_PROBES = 20
# A probe searches with PROBE_PAIRS of its chunk's distinct word pairs ("nghĩa_vụ"), spread over the
# chunk, when the collection's tokens have at least PROBE_MIN_PAIRS of them. Each term read maps pages of
# every segment's index: on the 70,624-file split (17 segments) a probe with all its chunk's tokens mapped
# 91 MB (median of 100 probes), with all its pairs 57 MB, with 32 of them 40 MB, and each found its
# file (docs/performance.md, seventeenth pass).
PROBE_PAIRS = 32
PROBE_MIN_PAIRS = 8


def _first_vector(art: FileArtifacts, point_id: str) -> list[float] | None:
    with_model = art.dir / "embeddings.npz"
    if not with_model.exists():
        return None
    try:
        with np.load(with_model, allow_pickle=False) as data:
            ids = [str(i) for i in data["ids"]]
            if point_id not in ids:
                return None
            return data["vectors"][ids.index(point_id)].astype(float).tolist()
    except (OSError, KeyError, ValueError):
        return None


def probe_chunk(chunks: Sequence[Any]) -> Any | None:
    """The chunk that best identifies its file: the one with the most distinct words. A file's first chunk
    is often a heading many files share (one-article files of one law all start with its title), and a
    search for it cannot tell them apart."""
    best, most = None, -1
    for chunk in chunks:
        words = len(set(chunk.text.lower().split()))
        if words > most:
            best, most = chunk, words
    return best


def probe_vector(text: str, variant: str) -> tuple[list[int], list[float]]:
    """The bm25 query of a probe: ``PROBE_PAIRS`` of the text's distinct word pairs (tokens joined by "_"),
    evenly spread over it, when it has ``PROBE_MIN_PAIRS`` of them; else all its tokens (``variant``: the
    collection's tokeniser)."""
    tokens = lexical_tokens(text, variant)
    pairs = list(dict.fromkeys(t for t in tokens if "_" in t))
    if len(pairs) < PROBE_MIN_PAIRS:
        return query_sparse_vector(tokens)
    if len(pairs) > PROBE_PAIRS:
        pairs = [pairs[i * len(pairs) // PROBE_PAIRS] for i in range(PROBE_PAIRS)]
    return query_sparse_vector(pairs)


def _search_probe(collection: Collection, written: Sequence[StageOutcome], state_dir: Path) -> dg.AssetCheckResult:
    """A search for each probed file's most distinctive chunk finds the file in the top 10, or scores it
    as high as the 10th hit (a tie with other files' identical text cannot decide, so it is no failure).
    A file not found loses its sync marker alone: the next run writes and checks it again; the others
    keep theirs, so a miss never turns the next runs into full runs."""
    missed, ties = [], []
    probed = list(written)
    most = LOCAL_MAX_PROBES if collection.scores_in_python else MAX_PROBES
    probed = _spread(probed, most)
    dense = collection.dense_size() if collection.scores_in_python else None
    variant = collection.lexical.variant
    mapped = mapped_kb()
    for n, outcome in enumerate(probed, 1):
        if n % RELEASE_EVERY_PROBES == 0 or mapped_kb() - mapped > RELEASE_AFTER_MB * 1024:
            collection.release_memory()
            mapped = mapped_kb()
        art = FileArtifacts(state_dir, outcome.source)
        chunk = probe_chunk(list(art.read_chunks()))
        if chunk is None:
            continue
        vector = None
        if dense:  # local mode: a dense search is one matrix product, a sparse one a Python loop
            vector = _first_vector(art, chunk.point_id)
            if vector is not None and len(vector) != dense:
                vector = None
        search = {"dense": vector} if vector is not None else {"sparse": probe_vector(chunk.text, variant)}
        hits = collection.query(limit=10, fields=["source"], **search)
        if any(h.payload.get("source") == outcome.source for h in hits):
            continue
        own = collection.query(limit=1, fields=["source"], where={"source": outcome.source}, **search)
        if own and len(hits) == 10 and own[0].score >= hits[-1].score - 1e-6:
            ties.append(outcome.source)  # as good as the 10th: other files hold the same text
        else:
            missed.append(outcome.source)
    if missed:
        ingest.forget_sync_state(state_dir, missed)
    return dg.AssetCheckResult(
        asset_key=ASSET,
        check_name="search_probe",
        passed=not missed,
        metadata={
            "files_probed": len(probed),
            "files_written": len(written),
            "not_found": dg.MetadataValue.md("\n".join(missed) or "none"),
            "tied_with_other_files": len(ties),
            "marked_for_recheck": dg.MetadataValue.md(
                ("these files run and are checked again next time; the others stay in sync:\n"
                 + "\n".join(f"- {m}" for m in missed)) if missed else "none"
            ),
        },
    )
