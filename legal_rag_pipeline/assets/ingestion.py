"""The four ingestion assets: wiring and reporting only; the work is in the ingest package (a module per stage).

Every asset is partitioned by source file and processes all the partitions of a run in one step
(single-run backfill), so one run can carry many files and keep embedding batches full;
``normalized_records``, ``embedding_batches`` and ``qdrant_collection`` share one step
(``chunk_embed_and_write``, the op ``qdrant_collection``), their stages overlapped (ingest/overlap.py).
The first three assets materialise every file of the run, with per-file metadata (``status``,
``error``, ``fix``) on the files that failed or were skipped;
``qdrant_collection`` records the files that reached the collection, each with its figures (a run of
more than ``NOTED_FILES_LIMIT`` files where every file went in: one result for all its partitions,
which Dagster writes in batches), plus one run summary, and fails the run at the end naming the files
that did not, so those show as failed partitions in the UI while every other file is searchable.
"""


import contextvars
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from datetime import date
from typing import Any

import dagster as dg

from .. import ingest
from ..artifacts import FileArtifacts, StageOutcome, records_batch, synced_sources
from ..errors import PipelineError
from ..instance import fewer_collections, prompt_requests
from ..memory import collect_and_give_back, one_heap
from ..partitions import source_files
from ..progress import for_run
from ..reporting import counts_line, outcome_metadata, run_counts, summary_markdown, validity_metadata
from ..resources.data_folder import DataFolder
from ..resources.embeddings import READY_CHECK, Embedder, RunPreflight
from ..resources.qdrant import QdrantStore
from ..settings import load_limits
from ..validity.sync import applied_status
from . import checks

GROUP = "ingestion"
WRITER_POOL = "qdrant_writer"
SINGLE_RUN = dg.BackfillPolicy.single_run()


# Files of a stage whose partitions get their own metadata (status, error, fix): the ones that failed or
# were skipped. Dagster's add_asset_metadata(partition_key=...) re-reads every partition of the instance
# at each call, so one call per file made a run quadratic in its files (2,000 files: 56 s of 145 s).
# A file that went through is described by its qdrant_collection materialisation and the run summary.
NOTED_FILES_LIMIT = 100


def _report(
    context: dg.AssetExecutionContext, outcomes: Sequence[StageOutcome], asset: dg.AssetKey | None = None,
    files: int | None = None,
) -> dg.MaterializeResult:
    """The stage's warnings and counts; ``files``: how many files it went through, when ``outcomes`` keeps
    only those that did not go through."""
    asset = asset or context.asset_key
    files = len(outcomes) if files is None else files
    stopped = [o for o in outcomes if not o.ok]
    for outcome in stopped[:NOTED_FILES_LIMIT]:
        context.add_asset_metadata(outcome_metadata(outcome), asset_key=asset, partition_key=outcome.source)
    for outcome in stopped:
        if outcome.status == "failed":
            context.log.warning(f"{outcome.source}: {outcome.error}: {outcome.fix}")
    if len(stopped) > NOTED_FILES_LIMIT:
        context.log.warning(
            f"{len(stopped)} files did not go through; the first {NOTED_FILES_LIMIT} have their error on their "
            "partition, every one is in the log above and in the run summary of qdrant_collection."
        )
    failed = sum(o.status == "failed" for o in outcomes)
    context.log.info(f"{asset.to_user_string()}: {files - failed} files ok, {failed} failed")
    collect_and_give_back(files)  # what the stage held, for the next one (memory.py)
    return dg.MaterializeResult()


def _each_file(context: dg.AssetExecutionContext, stage: str, work) -> list[StageOutcome]:
    """``work(keys)``'s outcome for every file of the run, counted as progress (files done of files)."""
    with fewer_collections():
        return _counted(context, stage, work)


def _counted(context: dg.AssetExecutionContext, stage: str, work) -> list[StageOutcome]:
    progress = for_run(context.log)
    keys = list(context.partition_keys)
    progress.start(stage, len(keys), "files")
    outcomes = []
    for outcome in work(keys):
        outcomes.append(outcome)
        progress.advance(stage)
    failed = sum(o.status == "failed" for o in outcomes)
    progress.finish(stage, f"{failed} failed" if failed else "")
    return outcomes


@dg.asset(
    partitions_def=source_files,
    backfill_policy=SINGLE_RUN,
    group_name=GROUP,
    kinds={"python", "file"},
    description="Each source file decoded to UTF-8 records (text, or question/answer rows), with its SHA-256.",
)
def raw_documents(context: dg.AssetExecutionContext, data_folder: DataFolder) -> dg.MaterializeResult:
    limits = load_limits()  # from the code location's environment: the launchpad cannot raise them
    return _report(
        context,
        _each_file(
            context,
            "read",
            lambda keys: ingest.read_stages(data_folder.data_path, keys, data_folder.state_path, context.run_id, limits,
                                        stop_reader=True),
        ),
    )


class CollectionConfig(dg.Config):
    confirm_mass_deletion: bool = False


CHUNKS = dg.AssetKey("normalized_records")
EMBEDDINGS = dg.AssetKey("embedding_batches")
COLLECTION = dg.AssetKey("qdrant_collection")
PER_FILE: dict[str, Any] = {"group_name": GROUP, "partitions_def": source_files}


@dg.multi_asset(
    name="qdrant_collection",  # the op: its config (confirm_mass_deletion) keeps the name users know
    partitions_def=source_files,
    backfill_policy=SINGLE_RUN,
    pool=WRITER_POOL,
    can_subset=True,  # normalized_records alone from the UI chunks without embedding (see chunk_embed_and_write)
    specs=[
        dg.AssetSpec(
            CHUNKS, kinds={"python"}, deps=[raw_documents], skippable=True, **PER_FILE,
            description="Unicode NFC, clean whitespace, then chunks: one per Q&A row, one per article (Điều) "
            "split at clauses (khoản) and points (điểm) to fit the model's token budget.",
        ),
        dg.AssetSpec(
            EMBEDDINGS, kinds={"huggingface"}, deps=[CHUNKS], skippable=True, **PER_FILE,
            description="Dense vectors for new or changed chunks, saved per file before anything is written to "
            "Qdrant, so a failed run never pays twice. Nothing is embedded for unchanged chunks, nor for chunks "
            "the collection already holds with this model (their vectors are taken from it).",
        ),
        dg.AssetSpec(
            COLLECTION, kinds={"qdrant"}, deps=[EMBEDDINGS], skippable=True, **PER_FILE,
            description="The Qdrant collection in sync with the data folder: new and changed chunks upserted by "
            "stable id, stale points deleted after the upsert, removed files' points deleted.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            READY_CHECK,
            asset=EMBEDDINGS,
            description="Before the first paid call: token valid and allowed to call Inference Providers, or "
            "the endpoint healthy (`legal-rag doctor` without the probe call); fails when a call met an error "
            "that stops the run's calls (bad token, no credits, model not served). Not checked when nothing "
            "needs embedding.",
        ),
        *checks.COLLECTION_CHECKS,
        checks.NUMBER_CHECK_SPEC,
    ],
)
def chunk_embed_and_write(
    context: dg.AssetExecutionContext,
    config: CollectionConfig,
    data_folder: DataFolder,
    embedder: Embedder,
    qdrant: QdrantStore,
) -> Iterator[dg.AssetMaterialization | dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
    """``normalized_records``, ``embedding_batches`` and ``qdrant_collection`` in one step, overlapped
    (ingest/overlap.py): the chunking and the embedding each run in a thread of their own, the embedding
    sends a file's texts as soon as it is chunked, and the writer writes each file as soon as its vectors
    are saved, so the requests in flight and the CPU work of chunking and writing share the run's time.

    Any of the three can be materialised without those after it (``normalized_records`` alone chunks;
    without ``qdrant_collection`` nothing is written); ``qdrant_collection`` needs ``embedding_batches``
    in the same run, whose vectors it writes."""
    selected = context.selected_asset_keys
    if COLLECTION in selected and EMBEDDINGS not in selected:
        raise dg.Failure(
            description="qdrant_collection writes the vectors embedding_batches saves in the same run: "
            "select embedding_batches with it (or run the ingest job)",
            allow_retries=False,
        )
    keys = list(context.partition_keys)
    one_heap()  # the threads below share the main heap (memory.py)
    with fewer_collections():
        chunked = ingest.Chunked() if CHUNKS in selected else None
        chunking = _Thread("normalized_records", lambda: _counted(
            context, "chunk",
            lambda keys: ingest.normalize_stages(keys, data_folder.state_path, context.run_id,
                                                 data_folder.token_budget, chunked),
        )) if chunked is not None else None
        if chunking is not None and EMBEDDINGS not in selected:  # normalized_records alone
            yield _chunks_result(context, chunking)
            return
        if not embedder.enabled():
            context.log.warning(
                "No HF_TOKEN/HUGGINGFACE_API_KEY and no EMBEDDINGS_ENDPOINT_URL: ingesting with bm25 sparse vectors only."
            )
        with qdrant.connect(lazy=True) as collection, prompt_requests() if embedder.enabled() else nullcontext():
            yield from _embed_and_write(context, config, data_folder, embedder, collection, keys, chunked, chunking,
                                        write=COLLECTION in selected)
            # what the sync and the checks held, given back before the store closes: closing optimises the
            # points written since the last optimisation, which maps up to 180 MB of the store's files (memory.py)
            collect_and_give_back(len(keys))


class _Thread:
    """A function run in a thread of its own (in a copy of this context: the command's progress sink,
    progress.py, is a context variable); ``result()`` waits for it and returns or raises what it did."""

    def __init__(self, name: str, work) -> None:
        self._outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                self._outcome["value"] = work()
            except BaseException as exc:  # noqa: BLE001 - raised by result(), in the step
                self._outcome["error"] = exc

        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name=name, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def _chunks_result(context: dg.AssetExecutionContext, chunking: _Thread) -> dg.MaterializeResult:
    """normalized_records' result, once its thread ended (raising what it raised)."""
    outcomes = chunking.result()
    _report(context, outcomes, CHUNKS)
    return dg.MaterializeResult(asset_key=CHUNKS)


def _embed_and_write(context, config, data_folder, embedder, collection, keys, chunked, chunking, *, write: bool):
    preflight = RunPreflight(embedder)  # checked before the first call; none when nothing needs embedding
    embedded = ingest.Embedded()
    stage: dict[str, Any] = {}

    def embed() -> tuple[int, list[StageOutcome]]:
        try:  # the collection is looked up for vectors it already holds (opened only when a text needs one)
            waits = chunked
            if chunking is not None and not embedder.enabled():
                # bm25 only: nothing to embed, nothing to overlap; a wait per file would only take turns
                # with the chunking for Python's lock, so the stage runs once every file is chunked
                chunking.join()
                waits = None
            outcomes = ingest.embed_stage(
                keys, data_folder.state_path, context.run_id, preflight, for_run(context.log),
                collection=collection if embedder.enabled() else None, embedded=embedded, chunked=waits,
            )
            # reported after the write: the files that went through are counted, not kept meanwhile
            # (an outcome per file held 23 MB through the write of 70,624 files)
            return len(outcomes), [o for o in outcomes if not o.ok]
        finally:
            embedded.close()  # files not settled are not embedded; the writer goes on without them

    embedding = _Thread("embedding_batches", embed)

    def embeddings_result() -> Iterator[dg.MaterializeResult]:
        """embedding_batches' result, once its thread ended (raising what it raised)."""
        files, outcomes = embedding.result()
        stage["reported"] = True
        _report(context, outcomes, EMBEDDINGS, files=files)
        yield dg.MaterializeResult(asset_key=EMBEDDINGS, check_results=[preflight.check_result()])

    try:
        if chunking is not None:  # the plan of the write needs every file chunked
            yield _chunks_result(context, chunking)
        if not write:
            yield from embeddings_result()
            return
        embedded.collection_free.wait()  # the embedding's lookup done: the writer has the collection
        yield from _sync(context, config, data_folder, collection, embedder, keys, embedded, embeddings_result)
    except PipelineError as exc:  # one sentence in the UI, no stack trace
        if not stage.get("reported"):
            yield from embeddings_result()  # the vectors are saved: embedding_batches is materialised
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    finally:
        if chunking is not None:
            chunking.join()
        embedding.join()


def _sync(context, config, data_folder, collection, embedder, keys, embedded, embeddings_result):
    progress = for_run(context.log)
    state = data_folder.state_path
    synced = synced_sources(state)
    synced_before = [k for k in keys if k in synced]
    del synced
    outcomes, vanished = data_folder.sync(
        collection,
        embedder,
        keys,
        context.run_id,
        confirm_mass_deletion=config.confirm_mass_deletion,
        progress=progress,
        embedded=embedded,
    )
    yield from embeddings_result()
    validity = data_folder.update_validity(collection)  # the law in force across the folder (law_validity)
    collect_and_give_back(len(keys))  # the write's batches and the corpus view (memory.py)
    with records_batch(state):
        per_file = ingest.file_summaries(keys, state)
    if len(keys) > NOTED_FILES_LIMIT and all(o.ok for o in outcomes):
        # Every file of a large run is in: one result for the run's partitions, which Dagster
        # stores in batches; each file's figures are in the run summary and `legal-rag status`.
        yield dg.MaterializeResult(asset_key=COLLECTION)
    else:  # the files that reached the collection, each with its figures; the others fail below
        today = date.today().isoformat()
        for outcome in outcomes:
            if outcome.ok:
                document = FileArtifacts(state, outcome.source).document()
                yield dg.AssetMaterialization(
                    asset_key=COLLECTION,
                    partition=outcome.source,
                    metadata={**outcome_metadata(outcome, per_file.get(outcome.source)),
                              **validity_metadata(applied_status(document, today))},
                )
    counts = run_counts(per_file, vanished, synced_before)
    summary = summary_markdown(
        per_file, vanished, embedder.describe() if embedder.enabled() else None, counts
    )
    context.log.info(f"Run summary: {len(keys)} files, {counts_line(counts)}")
    yield dg.AssetObservation(
        asset_key=COLLECTION,
        metadata={
            "run_summary": dg.MetadataValue.md(summary),
            "files": len(keys),
            "removed_files": len(vanished),
            **{f"files_{name}": value for name, value in counts.items()},
        },
    )
    from .validity import validity_check, validity_materialization

    yield validity_materialization(validity)
    yield validity_check(validity, asset=COLLECTION)
    progress.start("check", len(checks.COLLECTION_CHECKS), "checks")
    yield from progress.counted(
        "check", checks.run_collection_checks(collection, keys, data_folder.state_path, embedder, outcomes), every=1
    )
    progress.finish("check")

    failed = [f for f in per_file.values() if f.failed_stage]
    if failed:
        lines = "\n".join(f"- {f.source}: {f.error}: {f.fix}" for f in failed)
        raise dg.Failure(
            description=f"{len(failed)} of {len(keys)} files failed (the others were ingested):\n{lines}",
            metadata={"failed_files": dg.MetadataValue.md(lines)},
            allow_retries=False,
        )


ASSETS = [raw_documents, chunk_embed_and_write]
