"""The nightly re-ingestion schedule: when it fires and what it covers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from legal_rag_pipeline.automation.schedules import build_nightly_schedule
from legal_rag_pipeline.automation.sensors import RANGE_END_TAG, RANGE_START_TAG
from legal_rag_pipeline.definitions import defs, ingest_job
from legal_rag_pipeline.errors import ConfigurationError
from legal_rag_pipeline.instance import WRITER_POOL
from legal_rag_pipeline.partitions import source_files


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_nightly_at_two_in_ho_chi_minh_city_and_on_by_default(monkeypatch):
    monkeypatch.delenv("NIGHTLY_CRON", raising=False)
    monkeypatch.delenv("NIGHTLY_TIMEZONE", raising=False)
    schedule = defs.get_schedule_def("nightly_reingest")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "ingest_job"
    nightly = build_nightly_schedule(ingest_job)
    assert nightly.cron_schedule == "0 2 * * *"
    assert nightly.execution_timezone == "Asia/Ho_Chi_Minh"
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    ticks = cron_string_iterator(start, nightly.cron_schedule, nightly.execution_timezone)
    first, second = next(ticks), next(ticks)
    assert first.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m-%d %H:%M") == "2026-03-02 02:00"
    assert first.astimezone(UTC).strftime("%H:%M") == "19:00"  # UTC+7, no daylight saving
    assert (second - first).total_seconds() == 24 * 3600


def test_cron_and_timezone_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("NIGHTLY_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("NIGHTLY_TIMEZONE", "Europe/Paris")
    nightly = build_nightly_schedule(ingest_job)
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("30 3 * * 1-5", "Europe/Paris")
    monkeypatch.setenv("NIGHTLY_CRON", "every night")
    with pytest.raises(ConfigurationError, match="NIGHTLY_CRON"):
        build_nightly_schedule(ingest_job)
    monkeypatch.setenv("NIGHTLY_CRON", "0 2 * * *")
    monkeypatch.setenv("NIGHTLY_TIMEZONE", "Asia/Saigon City")
    with pytest.raises(ConfigurationError, match="NIGHTLY_TIMEZONE"):
        build_nightly_schedule(ingest_job)


def test_one_run_targets_every_file(instance):
    keys = ["b-luat.txt", "a-luat.txt", "sub/hoi-dap.xlsx", "z.txt"]  # insertion order, not sorted
    instance.add_dynamic_partitions(source_files.name, keys)
    nightly = build_nightly_schedule(ingest_job)
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),
    )
    request = nightly.evaluate_tick(context).run_requests
    assert len(request) == 1
    (run,) = request
    assert run.partition_key is None
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == ("b-luat.txt", "z.txt")
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        covered = source_files.get_partition_keys_in_range(
            dg.PartitionKeyRange(run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG])
        )
    assert list(covered) == keys
    assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count == 1


def test_no_files_no_run(instance):
    nightly = build_nightly_schedule(ingest_job)
    result = nightly.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert not result.run_requests
    assert "No files" in result.skip_message
