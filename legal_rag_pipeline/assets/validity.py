"""``law_validity``: the corpus view of which documents and articles are in force (validity/).

Not partitioned: validity depends on every file (dropping Luật Doanh nghiệp 2020 in changes the
2014 law already ingested). Every run that writes the collection keeps it current: the writer step of
``qdrant_collection`` (runs of the CLI, the sensor, the nightly schedule, the UI) and the prune job
resolve the view after their sync, bring the points' validity fields in line (payload updates, no
embedding) and record a materialisation of ``law_validity`` with the view's figures (relations
found, documents not in force, references to documents not in the folder, problems). A number
carried by two files is a warning of the check ``number_names_one_document`` on ``qdrant_collection``
(evaluated by every writer step). Materialising ``law_validity`` alone in the UI applies and reports the
view without a sync.

It is recorded by the writer step rather than run as a downstream step because ``qdrant_collection``
reports per-file materialisations without an output, so Dagster skips anything downstream of it.
"""


from collections import Counter
from datetime import date

import dagster as dg

from ..resources.data_folder import DataFolder
from ..resources.qdrant import QdrantStore
from ..validity.resolve import APPLIED
from ..validity.sync import ValidityReport
from .checks import NUMBER_CHECK
from .ingestion import COLLECTION, WRITER_POOL

GROUP = "validity"
TABLE_ROWS = 300  # relations listed in the UI's table (every one: `legal-rag validity`)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


ASSET = "law_validity"


def validity_metadata(report: ValidityReport) -> dict:
    """The corpus view's figures and tables for the UI."""
    view = report.view
    today = date.today().isoformat()
    statuses = {s: view.status(s, today) for s in view.files}
    not_in_force = sorted(s for s, st in statuses.items() if st["status"].startswith("not in force"))
    partly = sorted(s for s, st in statuses.items() if st["status"].startswith("partly"))
    outcomes = Counter(r.outcome for r in view.relations)
    kinds = Counter(r.kind for r in view.relations if r.outcome == APPLIED)
    rows = [
        "| file | Điều | kind | target | scope | from | outcome |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {_md(r.source)} | {r.source_article or ''} | {r.kind} | {_md(r.target)} | {_md(r.scope)} | "
            f"{r.on or ''} | {r.outcome} |"
            for r in view.relations[:TABLE_ROWS]
        ),
    ]
    if len(view.relations) > TABLE_ROWS:
        rows.append(f"\n… and {len(view.relations) - TABLE_ROWS} more: `legal-rag validity` lists every one with its sentence.")
    documents = "\n".join(
        f"- {s}: {statuses[s]['status']}" for s in [*not_in_force, *partly][:TABLE_ROWS]
    ) or "every document is in force"
    return {
        "documents": len(view.files),
        "relations_found": len(view.relations),
        "relations_applied": outcomes.get(APPLIED, 0),
        "repeals": kinds.get("repeals", 0),
        "abolitions": kinds.get("abolishes", 0),
        "amendments": kinds.get("amends", 0),
        "relations_not_applied": sum(v for k, v in outcomes.items() if k != APPLIED),
        "documents_not_in_force": len(not_in_force),
        "documents_partly_not_in_force": len(partly),
        "files_updated": report.files_updated,
        "points_updated": report.points_updated,
        "not_in_force": dg.MetadataValue.md(documents),
        "relations": dg.MetadataValue.md("\n".join(rows)),
        "problems": dg.MetadataValue.md("\n".join(f"- {_md(p)}" for p in view.problems[:TABLE_ROWS]) or "none"),
        "seconds": round(report.seconds, 2),
    }


def validity_materialization(report: ValidityReport) -> dg.AssetMaterialization:
    """``law_validity``'s materialisation as a writer step records it."""
    return dg.AssetMaterialization(asset_key=ASSET, metadata=validity_metadata(report))


def validity_check(report: ValidityReport, asset: dg.AssetKey | str) -> dg.AssetCheckResult:
    """``number_names_one_document``: a warning naming the numbers carried by several files."""
    duplicates = report.view.duplicates
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=NUMBER_CHECK,
        passed=not duplicates,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "numbers_on_several_files": len(duplicates),
            "files": dg.MetadataValue.md(
                "\n".join(f"- {n}: {', '.join(files)}" for n, files in sorted(duplicates.items())) or "none"
            ),
        },
    )


@dg.asset(
    name=ASSET,
    group_name=GROUP,
    kinds={"qdrant"},
    deps=[COLLECTION],
    pool=WRITER_POOL,
    description="Which documents and articles are in force: repeals, abolitions and amendments read from every "
    "file's text (and vbpl.vn pages' official status), resolved across the folder, written to the points as "
    "valid_from / valid_to / repealed_by / amended_by (payload updates only). Kept current by every ingest run.",
)
def law_validity(context: dg.AssetExecutionContext, data_folder: DataFolder, qdrant: QdrantStore):
    with qdrant.connect(lazy=True) as collection:
        report = data_folder.update_validity(collection)
    metadata = validity_metadata(report)
    context.log.info(
        f"Validity: {metadata['documents']} documents, {metadata['relations_applied']} relations applied, "
        f"{metadata['documents_not_in_force']} not in force; {report.files_updated} files' points updated"
    )
    return dg.MaterializeResult(metadata=metadata)
