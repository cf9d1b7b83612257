"""The nightly re-ingestion: one run over every file, reconciling the collection with the folder.

Unchanged files cost a hash and no embedding call; files that failed before are retried; the
points of files no longer in the folder are removed (``ingest.sync_stage`` prunes vanished files
in every run of ``qdrant_collection``, behind the mass-deletion guard).

NIGHTLY_CRON (default ``0 2 * * *``) and NIGHTLY_TIMEZONE (default ``Asia/Ho_Chi_Minh``, no DST)
are read when the definitions load (``.env`` included).
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from ..errors import ConfigurationError
from ..instance import set_pool_limit
from ..partitions import source_files
from .sensors import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG

SCHEDULE_NAME = "nightly_reingest"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


def nightly_settings() -> tuple[str, str]:
    """(cron, timezone) from NIGHTLY_CRON / NIGHTLY_TIMEZONE, validated with a one-sentence error."""
    cron = (os.environ.get("NIGHTLY_CRON") or "").strip() or DEFAULT_CRON
    timezone = (os.environ.get("NIGHTLY_TIMEZONE") or "").strip() or DEFAULT_TIMEZONE
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


def nightly_run_request(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    keys = instance.get_dynamic_partitions(source_files.name)
    if not keys:
        return dg.SkipReason(
            "No files registered yet (the data-folder sensor registers them): nothing to re-ingest."
        )
    return dg.RunRequest(
        tags={
            RANGE_START_TAG: keys[0],
            RANGE_END_TAG: keys[-1],
            TRIGGER_TAG: "nightly",
            "legal_rag/files": str(len(keys)),
        }
    )


def build_nightly_schedule(ingest_job) -> dg.ScheduleDefinition:
    cron, timezone = nightly_settings()

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=ingest_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Re-ingest every file in one run ({cron}, {timezone}): retries failed files, removes the "
        "points of deleted files, embeds nothing for unchanged files. NIGHTLY_CRON / NIGHTLY_TIMEZONE change it.",
    )
    def nightly_reingest(context: dg.ScheduleEvaluationContext):
        set_pool_limit(context.instance)
        return nightly_run_request(context.instance)

    return nightly_reingest
