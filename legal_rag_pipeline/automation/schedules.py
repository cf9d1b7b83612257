"""The nightly re-ingestion: plan first, then one run over what changed, reconciling the collection
with the folder.

Each tick compares the data folder with what was last synced (``planning.plan_ingest``: a stat per
file, a hash only where the stat moved) and then:

* nothing changed: no run; the tick's skip message gives the plan (``N unchanged, 0 changed, ...``);
* files new, changed or failed last time: ONE run of ``ingest_job`` over the partition range that
  holds them (tags ``dagster/asset_partition_range_start``/``_end``, as the sensor does); that run's
  sync stage also removes the points of vanished files, behind the mass-deletion guard;
* only vanished files: no ingest run; the companion schedule ``nightly_prune_vanished`` (same time)
  starts ``prune_vanished_job``, which removes their points behind the same guard;
* the collection is due for its daily comparison with the folder (``ingest.VERIFY_AFTER_SECONDS``):
  the plan makes it (``ingest.verify``: each file's point count and ids, a few seconds) and only the
  files whose points differ run; every file runs when the collection holds points of unknown files,
  cannot be read now (a run holds the embedded folder) or cannot be looked at, as before the plan existed.

The tick registers the partitions of files the sensor has not registered yet and deletes those of
files no longer in the folder (as ``legal-rag ingest`` does), so it works with the sensor stopped.
It reads the store's catalog only (no lock is taken on the embedded folder: runs alone open it),
except once a day for that comparison.

NIGHTLY_CRON (default ``0 2 * * *``) and NIGHTLY_TIMEZONE (default ``Asia/Ho_Chi_Minh``, no DST)
are read when the definitions load (``.env`` included).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._check import CheckError
from dagster._utils.schedules import is_valid_cron_string

from .. import ingest
from ..errors import ConfigurationError
from ..instance import set_pool_limit
from ..partitions import register_files, source_files
from ..planning import IngestPlan, partition_spans, plan_ingest, span_keys
from ..readers import scan_data_dir
from ..registered import registered_already
from ..resources.data_folder import DataFolder
from ..resources.embeddings import Embedder
from ..resources.qdrant import QdrantStore
from ..settings import Settings
from .sensors import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG, prune_vanished_job

SCHEDULE_NAME = "nightly_reingest"
PRUNE_SCHEDULE_NAME = "nightly_prune_vanished"
DEFAULT_CRON = Settings.nightly_cron  # 02:00
DEFAULT_TIMEZONE = Settings.nightly_timezone
# How long a tick waits for the embedded folder for the daily comparison (a search holds it a moment);
# a run holding it is not waited for: the tick then launches the run over every file, as before.
TICK_LOCK_WAIT_SECONDS = 3.0
# The daily comparison looks up the next IDS_A_DAY ids (ingest/verify.py) while the collection's count
# is right: 2.7-3.2 s for the whole tick at 276,368 points. A count out of line has every file's count and
# ids compared, which a tick does up to this size (about 25 s on 2 cores: 276,368 points took some 10 s,
# under Dagster's 60 s limit for a tick); a larger one is compared by the run over every file, as before.
TICK_COMPARE_UP_TO_POINTS = 600_000


def nightly_settings() -> tuple[str, str]:
    """(cron, timezone) from NIGHTLY_CRON / NIGHTLY_TIMEZONE, validated with a one-sentence error."""
    from ..settings import load_nightly

    cron, timezone = load_nightly()
    if not is_valid_cron_string(cron):
        raise ConfigurationError(
            f"NIGHTLY_CRON={cron!r} is not a cron expression", f"use five fields such as {DEFAULT_CRON!r}"
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"NIGHTLY_TIMEZONE={timezone!r} is not a known time zone",
            f"use an IANA name such as {DEFAULT_TIMEZONE!r}",
        ) from None
    return cron, timezone


@dataclass
class NightlyPlan:
    """What a nightly tick found: the ingest plan (None: every file runs) and the partitions' order."""

    order: list[str]
    plan: IngestPlan | None
    reason: str = ""  # why every file runs (plan None or full)
    skip: str | None = None  # nothing can be planned (no folder, no files): the tick's message


def plan_nightly(
    instance: dg.DagsterInstance, data_folder: DataFolder, qdrant: QdrantStore, embedder: Embedder
) -> NightlyPlan:
    """Register the folder's files as partitions and plan the run (planning.py), as ``legal-rag ingest`` does."""
    data_dir = data_folder.data_path
    try:
        scan = scan_data_dir(data_dir)
    except FileNotFoundError:
        return NightlyPlan(
            [],
            None,
            skip=f"The data folder {data_dir} does not exist: nothing is ingested or "
            "deleted until it is back.",
        )
    if not scan.files:
        existing = list(instance.get_dynamic_partitions(source_files.name))
        return NightlyPlan(
            existing,
            None,
            skip=f"The data folder {data_dir} has no files to ingest: refusing to treat "
            f"that as deleting all {len(existing)} files (`legal-rag ingest --confirm-delete` does it).",
        )
    home, state_dir = _home(instance), data_folder.state_path
    # The same files as last registered in this instance: the 70,000 partitions are listed (and
    # registered again) only when a run is launched (registered.py).
    registered = home is not None and registered_already(state_dir, scan.files, home)
    order = None if registered else register_files(instance, scan.files, state_dir, home)

    def listed() -> list[str]:
        return order if order is not None else register_files(instance, scan.files, state_dir, home)

    model = embedder.model_id() if embedder.enabled() else ingest.BM25_ONLY_MODEL
    # the collection is read only for the daily comparison (ingest/verify.py); an embedded folder a run
    # holds is not waited for (the run over every file compares instead)
    store = qdrant.model_copy(update={"lock_wait_seconds": TICK_LOCK_WAIT_SECONDS})
    with ExitStack() as stack:
        try:
            collection = stack.enter_context(store.connect(lazy=True))
            physical = collection.physical_name()
        except Exception as exc:  # noqa: BLE001 - the run itself reports what is wrong with the store
            return NightlyPlan(listed(), None, reason=f"the collection could not be looked at ({exc})")
        plan = plan_ingest(
            data_dir,
            scan.files,
            state_dir,
            model=model,
            location=qdrant.location(),
            physical=physical,
            token_budget=data_folder.token_budget,
            collection=collection,
            compare_up_to_points=TICK_COMPARE_UP_TO_POINTS,
        )
    # the partitions' order makes the runs' ranges: not needed when nothing runs
    return NightlyPlan(listed() if plan.full or plan.to_run else order or [], plan, reason=plan.reason if plan.full else "")


def _home(instance: dg.DagsterInstance) -> Path | None:
    """The instance's home folder (where ``registered.py`` looks for ``dagster.yaml``), if it has one."""
    try:
        return Path(instance.root_directory)
    except Exception:  # noqa: BLE001 - an instance without local artifact storage: register every tick
        return None


def nightly_run_request(nightly: NightlyPlan, tick: str = "") -> list[dg.RunRequest] | dg.SkipReason:
    """Runs over the new, changed and failed files (one per group of nearby files, ``partition_spans``;
    every file when the plan says so), or a skip. ``tick`` (the scheduled time) makes the run keys."""
    if nightly.skip:
        return dg.SkipReason(nightly.skip)
    plan, order = nightly.plan, nightly.order
    if plan is None or plan.full:
        spans, targets, why = [(order[0], order[-1])], order, f"every file runs: {nightly.reason}"
    else:
        targets = plan.to_run
        if not targets:
            return dg.SkipReason(
                f"Nothing changed since the last run: {plan.summary()}; no ingest run launched"
                + (
                    f" (the {PRUNE_SCHEDULE_NAME} schedule removes the points of the {len(plan.vanished)} removed files)."
                    if plan.vanished
                    else "."
                )
                + (f" The daily comparison of the collection with the folder {plan.compared}." if plan.compared else "")
            )
        spans, why = partition_spans(order, targets), plan.summary()
        if not spans:  # cannot happen: every planned file was registered above
            return dg.SkipReason(f"The planned files are not registered as partitions: {plan.summary()}.")
    wanted = set(targets)
    requests = []
    for i, (start, end) in enumerate(spans):
        files = span_keys(order, (start, end))
        requests.append(
            dg.RunRequest(
                run_key=f"nightly:{tick}:{i + 1}/{len(spans)}:{start}",
                tags={
                    RANGE_START_TAG: start,
                    RANGE_END_TAG: end,
                    TRIGGER_TAG: "nightly",
                    "legal_rag/files": str(len(files)),
                    "legal_rag/planned_files": str(sum(key in wanted for key in files)),
                    "legal_rag/plan": (why if len(spans) == 1 else f"run {i + 1} of {len(spans)}; {why}")[:200],
                },
            )
        )
    return requests


def prune_run_request(nightly: NightlyPlan) -> dg.RunRequest | dg.SkipReason:
    """``prune_vanished_job`` when files vanished and no ingest run (which prunes too) is launched."""
    if nightly.skip:
        return dg.SkipReason(nightly.skip)
    plan = nightly.plan
    if plan is None or plan.full or plan.to_run:
        return dg.SkipReason(f"The {SCHEDULE_NAME} run removes the points of vanished files itself.")
    if not plan.vanished:
        return dg.SkipReason(f"No file removed from the folder: {plan.summary()}.")
    return dg.RunRequest(tags={TRIGGER_TAG: "nightly", "legal_rag/deleted_files": str(len(plan.vanished))})


def _tick_time(context: dg.ScheduleEvaluationContext) -> str:
    """The tick's scheduled time (it makes the run keys); empty when evaluated outside the daemon."""
    try:
        return context.scheduled_execution_time.isoformat()
    except CheckError:  # build_schedule_context() without a time: tests, benchmarks/nightly_tick.py
        return ""


def build_nightly_schedule(ingest_job) -> dg.ScheduleDefinition:
    cron, timezone = nightly_settings()

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=ingest_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Plan, then re-ingest in one run the files new, changed or failed since the last run ({cron}, "
        f"{timezone}); no run when nothing changed (every file once a day when the collection is due for a full "
        "comparison). NIGHTLY_CRON / NIGHTLY_TIMEZONE change it.",
    )
    def nightly_reingest(
        context: dg.ScheduleEvaluationContext,
        data_folder: DataFolder,
        qdrant: QdrantStore,
        embedder: Embedder,
    ):
        set_pool_limit(context.instance)
        requests = nightly_run_request(plan_nightly(context.instance, data_folder, qdrant, embedder), _tick_time(context))
        if isinstance(requests, list):
            for request in requests:
                context.log.info(f"Nightly plan: {request.tags['legal_rag/plan']}")
        return requests

    return nightly_reingest


def build_nightly_prune_schedule() -> dg.ScheduleDefinition:
    cron, timezone = nightly_settings()

    @dg.schedule(
        name=PRUNE_SCHEDULE_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=prune_vanished_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Remove the points of files deleted from the folder when the {SCHEDULE_NAME} tick launches no "
        "ingest run (nothing else changed); the mass-deletion guard applies.",
    )
    def nightly_prune_vanished(
        context: dg.ScheduleEvaluationContext,
        data_folder: DataFolder,
        qdrant: QdrantStore,
        embedder: Embedder,
    ):
        set_pool_limit(context.instance)
        return prune_run_request(plan_nightly(context.instance, data_folder, qdrant, embedder))

    return nightly_prune_vanished
