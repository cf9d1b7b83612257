"""Automation: the data-folder sensor, the nightly schedule and the small prune job they use.

``build_automation(ingest_job)`` takes the job from definitions.py (which imports this package, so
the job is passed in rather than imported back).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from .schedules import (
    PRUNE_SCHEDULE_NAME,
    SCHEDULE_NAME,
    build_nightly_prune_schedule,
    build_nightly_schedule,
)
from .sensors import SENSOR_NAME, build_data_folder_sensor, prune_vanished_job


@dataclass(frozen=True)
class Automation:
    jobs: list
    sensors: list[dg.SensorDefinition]
    schedules: list[dg.ScheduleDefinition]


def build_automation(ingest_job) -> Automation:
    return Automation(
        jobs=[prune_vanished_job],
        sensors=[build_data_folder_sensor(ingest_job)],
        schedules=[build_nightly_schedule(ingest_job), build_nightly_prune_schedule()],
    )


__all__ = ["PRUNE_SCHEDULE_NAME", "SCHEDULE_NAME", "SENSOR_NAME", "Automation", "build_automation"]
