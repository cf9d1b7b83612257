"""The daily history retention: a small job that prunes Dagster's run history (history.py).

It runs at HISTORY_CRON (default ``30 3 * * *``, after the nightly re-ingest) in NIGHTLY_TIMEZONE and
prunes runs older than DAGSTER_HISTORY_DAYS (default 30; the launchpad's ``older_than_days`` wins
for one run). It touches Dagster's storage only: never the data folder or the collection.
"""


from typing import Optional

import dagster as dg

from ..history import prune_history
from ..settings import load_settings

HISTORY_JOB_NAME = "history_retention_job"
HISTORY_SCHEDULE_NAME = "daily_history_retention"
DEFAULT_HISTORY_CRON = "30 3 * * *"


class HistoryRetentionConfig(dg.Config):
    older_than_days: Optional[float] = None  # None: DAGSTER_HISTORY_DAYS (default 30)


@dg.op(description="Prune runs older than N days; every file's latest status, error and run summary stay.")
def prune_dagster_history(context: dg.OpExecutionContext, config: HistoryRetentionConfig) -> None:
    days = config.older_than_days if config.older_than_days is not None else load_settings().history_days
    pruned = prune_history(context.instance, days)
    context.log.info(pruned.summary())
    context.add_output_metadata(
        {
            "older_than_days": days,
            "runs_pruned": pruned.runs_pruned,
            "runs_deleted": pruned.runs_deleted,
            "events_deleted": pruned.events_deleted,
            "mb_given_back": round(pruned.bytes_freed / 2**20, 1),
        }
    )


@dg.job(
    name=HISTORY_JOB_NAME,
    executor_def=dg.in_process_executor,
    description="Keep Dagster's storage bounded: prune runs older than DAGSTER_HISTORY_DAYS (history.py).",
)
def history_retention_job() -> None:
    prune_dagster_history()


def build_history_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=HISTORY_SCHEDULE_NAME,
        job=history_retention_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Prune Dagster's run history older than DAGSTER_HISTORY_DAYS ({cron}, {timezone}); each "
        "file's latest status stays visible.",
    )
