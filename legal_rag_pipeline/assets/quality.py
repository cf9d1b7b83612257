"""Retrieval quality in the UI: the golden-set evaluation as an asset check, and the rebuild job.

* ``golden_set_recall`` checks ``qdrant_collection`` after each ingest: the project's own questions
  about its sample ``data/`` (``golden/sample_questions.json``, ALQAC format) are searched as users
  search, and recall@1/5/10 and MRR@10 are recorded. It passes when recall@5 reaches
  ``GOLDEN_MIN_RECALL_AT_5``; questions whose law is not in the collection are left out, so on
  other data the check passes with "not applicable" (it warns, never blocks).
* ``rebuild_job`` (Jobs → rebuild_job → Launchpad) runs ``rebuild.rebuild``: new versioned
  collection, checks, atomic alias move, old collection dropped; in the ``qdrant_writer`` pool so
  it never overlaps an ingest run.
"""


from pathlib import Path

import dagster as dg

from .. import evaluation
from ..artifacts import FileArtifacts, each_known_document
from ..resources.data_folder import DataFolder
from ..resources.embeddings import Embedder
from ..resources.qdrant import QdrantStore
from ..search import normalise_title
from .ingestion import WRITER_POOL

GOLDEN_SET = Path(__file__).resolve().parents[1] / "golden" / "sample_questions.json"
GOLDEN_MIN_RECALL_AT_5 = 0.9


@dg.asset_check(
    asset="qdrant_collection",
    name="golden_set_recall",
    blocking=False,
    description=(
        "Recall@1/5/10 and MRR@10 of the search on the project's golden questions about the sample data/ "
        f"(passes at recall@5 ≥ {GOLDEN_MIN_RECALL_AT_5}; not applicable when the sample laws are not ingested)."
    ),
)
def golden_set_recall(data_folder: DataFolder, qdrant: QdrantStore, embedder: Embedder) -> dg.AssetCheckResult:
    return golden_check_result(qdrant, embedder, GOLDEN_SET, state_dir=data_folder.state_path)


def _ingests_any(state_dir: Path, laws: set[str]) -> bool:
    """Whether an ingested file is one of ``laws`` (normalised titles; Qdrant stays closed): its title is
    the first chunk's, which the document record keeps, or read from the chunks of a file chunked by an
    earlier version. The records are read one at a time and the first match ends it: at 70,624 files
    all of them decoded at once were this process's peak, 150-260 MB above the write's
    (docs/performance.md)."""
    for source, document in each_known_document(state_dir):
        if "law" in document:
            law = document["law"]
        else:
            art = FileArtifacts(state_dir, source)
            first = next(iter(art.read_chunks()), None) if art.has_chunks() else None
            law = first.metadata.get("law") if first is not None else None
        if law and normalise_title(law) in laws:
            return True
    return False


def golden_check_result(qdrant: QdrantStore, embedder: Embedder, path: Path,
                        state_dir: Path | None = None) -> dg.AssetCheckResult:
    if not path.exists():
        return dg.AssetCheckResult(passed=True, metadata={"note": f"golden set {path.name} is not installed"})
    questions = evaluation.load_questions(path)
    if state_dir is not None:
        # cheap pre-check: without the sample laws in the data folder, do not open the collection
        golden_laws = {normalise_title(law) for q in questions for law, _ in q.relevant}
        if not _ingests_any(state_dir, golden_laws):
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"note": "not applicable: the sample laws of data/ are not ingested"},
            )
    with qdrant.connect() as collection:
        if not collection.exists():
            return dg.AssetCheckResult(passed=False, metadata={"reason": "the collection does not exist"})
        laws = evaluation.ingested_laws(collection)
        mapped = evaluation.map_laws(sorted({law for q in questions for law, _ in q.relevant}), laws, {})
        applicable = [q for q in questions if all(mapped[law] for law, _ in q.relevant)]
        if not applicable:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"note": "not applicable: the sample laws of data/ are not in the collection"},
            )
        report = evaluation.evaluate(collection, applicable, embedder=embedder)
    overall = report.metrics()
    passed = overall.recall[5] >= GOLDEN_MIN_RECALL_AT_5
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "questions": overall.questions,
            "recall@1": overall.recall[1],
            "recall@5": overall.recall[5],
            "recall@10": overall.recall[10],
            "mrr@10": overall.mrr,
            "search": report.mode,
            "table": dg.MetadataValue.md(evaluation.markdown_table(report)),
            "threshold (recall@5)": GOLDEN_MIN_RECALL_AT_5,
        },
        description=None if passed else f"recall@5 {overall.recall[5]:.2f} < {GOLDEN_MIN_RECALL_AT_5}",
    )


class RebuildConfig(dg.Config):
    only_if_needed: bool = False
    confirm_delete: bool = False


@dg.op(
    pool=WRITER_POOL,
    description="Build a new versioned collection from the saved chunks and embeddings, run the collection "
    "checks on it, move the alias atomically, drop the old collection; on failure the alias stays.",
)
def rebuild_collection(
    context: dg.OpExecutionContext,
    config: RebuildConfig,
    data_folder: DataFolder,
    qdrant: QdrantStore,
    embedder: Embedder,
) -> None:
    from .. import rebuild
    from ..errors import PipelineError
    from ..progress import for_run

    try:
        report = rebuild.rebuild(
            qdrant,
            embedder,
            data_folder.state_path,
            data_folder.data_path,
            confirm_delete=config.confirm_delete,
            limits=data_folder.deletion_limits,
            only_if_needed=config.only_if_needed,
            progress=for_run(context.log),
        )
    except PipelineError as exc:  # one sentence in the UI, no stack trace
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if report is None:
        context.log.info("Nothing to rebuild: the collection fits the configuration.")
        return
    context.log.info(report.summary())
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey("qdrant_collection"),
            metadata={
                "rebuild": dg.MetadataValue.md(report.summary()),
                "collection": report.new,
                "previous_collection": str(report.old),
                "points": report.points,
                "files": report.files,
                "embedded": report.embedded,
                "seconds": round(report.seconds, 1),
                "reasons": "; ".join(report.reasons) or "on request",
            },
        )
    )


@dg.job(
    name="rebuild_job",
    executor_def=dg.in_process_executor,
    description="Zero-downtime rebuild of the Qdrant collection (new versioned collection, checks, alias swap). "
    "Run it after changing the embedding model, its vector size or the lexical layout.",
)
def rebuild_job() -> None:
    rebuild_collection()


QUALITY_CHECKS = [golden_set_recall]
QUALITY_JOBS = [rebuild_job]
