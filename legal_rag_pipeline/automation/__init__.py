"""Automation: the data-folder sensor, the nightly schedule, the small prune job they use and the daily
history retention.

``build_automation(ingest_job)`` takes the job from definitions.py (which imports this package, so
the job is passed in rather than imported back).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from .retention import DEFAULT_HISTORY_CRON, HISTORY_SCHEDULE_NAME, build_history_schedule, history_retention_job
from .schedules import (
    PRUNE_SCHEDULE_NAME,
    SCHEDULE_NAME,
    build_nightly_prune_schedule,
    build_nightly_schedule,
    nightly_settings,
)
from .sensors import SENSOR_NAME, build_data_folder_sensor, prune_vanished_job


@dataclass(frozen=True)
class Automation:
    jobs: list
    sensors: list[dg.SensorDefinition]
    schedules: list[dg.ScheduleDefinition]


def build_automation(ingest_job) -> Automation:
    _, timezone = nightly_settings()
    return Automation(
        jobs=[prune_vanished_job, history_retention_job],
        sensors=[build_data_folder_sensor(ingest_job)],
        schedules=[
            build_nightly_schedule(ingest_job),
            build_nightly_prune_schedule(),
            build_history_schedule(DEFAULT_HISTORY_CRON, timezone),
        ],
    )


__all__ = [
    "HISTORY_SCHEDULE_NAME", "PRUNE_SCHEDULE_NAME", "SCHEDULE_NAME", "SENSOR_NAME", "Automation", "build_automation",
]
