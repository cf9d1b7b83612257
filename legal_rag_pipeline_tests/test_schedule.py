"""The nightly re-ingestion schedule: when it fires and what it covers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from legal_rag_pipeline.automation.schedules import (
    PRUNE_SCHEDULE_NAME,
    build_nightly_prune_schedule,
    build_nightly_schedule,
)
from legal_rag_pipeline.automation.sensors import RANGE_END_TAG, RANGE_START_TAG
from legal_rag_pipeline.definitions import build_resources, defs, ingest_job
from legal_rag_pipeline.errors import ConfigurationError
from legal_rag_pipeline.instance import WRITER_POOL, get_instance
from legal_rag_pipeline.partitions import source_files
from legal_rag_pipeline.resources.data_folder import DataFolder
from legal_rag_pipeline.resources.embeddings import Embedder
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env

LAW = "Điều 1. Phạm vi điều chỉnh\nLuật số {n} này quy định về cư trú.\n\nĐiều 2. Hiệu lực\nLuật có hiệu lực.\n"


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


def _tick(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, resources: dict):
    with dg.build_schedule_context(  # closed: it sets the instance's state storage for its duration
        instance=instance,
        scheduled_execution_time=datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),
        resources=resources,
    ) as context:
        return schedule.evaluate_tick(context)


def _folder(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {
        "data_folder": DataFolder(data_dir=str(data), state_dir=str(tmp_path / "state")),
        "qdrant": QdrantStore(path=str(tmp_path / "state" / "qdrant")),
        "embedder": Embedder(),
    }


def test_without_a_collection_one_run_targets_every_file(instance, tmp_path):
    keys = ["b-luat.txt", "a-luat.txt", "sub/hoi-dap.xlsx", "z.txt"]  # insertion order, not sorted
    instance.add_dynamic_partitions(source_files.name, keys)
    resources = _folder(tmp_path)
    for key in keys:
        path = tmp_path / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Điều 1. Phạm vi\nLuật này quy định.\n", encoding="utf-8")
    nightly = build_nightly_schedule(ingest_job)
    request = _tick(nightly, instance, resources).run_requests
    assert len(request) == 1
    (run,) = request
    assert run.partition_key is None
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == ("b-luat.txt", "z.txt")
    assert "every file runs: there is no collection yet" in run.tags["legal_rag/plan"]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        covered = source_files.get_partition_keys_in_range(
            dg.PartitionKeyRange(run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG])
        )
    assert list(covered) == keys
    assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count == 1
    prune = _tick(build_nightly_prune_schedule(), instance, resources)
    assert not prune.run_requests and "removes the points of vanished files itself" in prune.skip_message


def test_no_files_no_run(instance, tmp_path):
    nightly = build_nightly_schedule(ingest_job)
    result = _tick(nightly, instance, _folder(tmp_path))
    assert not result.run_requests
    assert "no files to ingest" in result.skip_message
    instance.add_dynamic_partitions(source_files.name, ["a.txt"])
    result = _tick(nightly, instance, {**_folder(tmp_path), "data_folder": DataFolder(data_dir=str(tmp_path / "gone"))})
    assert not result.run_requests and "does not exist" in result.skip_message
    assert instance.get_dynamic_partitions(source_files.name) == ["a.txt"]  # an unmounted folder deletes nothing


def test_the_night_runs_only_what_changed(tmp_path, monkeypatch):
    """After a real ingest: nothing changed → no run, and the tick says so; one changed file and one new
    file → one run over exactly their range; a deleted file alone → the prune job, no ingest run."""
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    names = [f"luat-{i:02d}.txt" for i in range(6)]
    for i, name in enumerate(names):
        (env.data / name).write_text(LAW.format(n=i), encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    resources = build_resources(load_settings())
    nightly, prune = build_nightly_schedule(ingest_job), build_nightly_prune_schedule()
    with get_instance() as instance:  # closed before the next `legal-rag ingest` opens its own
        listed = []  # the same files as `legal-rag ingest` registered: the partitions are not listed
        real = instance.get_dynamic_partitions
        monkeypatch.setattr(instance, "get_dynamic_partitions", lambda name: listed.append(name) or real(name))
        quiet = _tick(nightly, instance, resources)
        assert not quiet.run_requests
        assert listed == []
        assert quiet.skip_message == (
            "Nothing changed since the last run: 6 unchanged, 0 changed, 0 new, 0 failed last time, 0 removed; "
            "no ingest run launched."
        )
        assert "No file removed" in _tick(prune, instance, resources).skip_message

        (env.data / "luat-02.txt").write_text(LAW.format(n=102), encoding="utf-8")
        (env.data / "luat-09.txt").write_text(LAW.format(n=9), encoding="utf-8")  # new: the sensor never saw it
        (run,) = _tick(nightly, instance, resources).run_requests
        assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == ("luat-02.txt", "luat-09.txt")
        assert run.tags["legal_rag/planned_files"] == "2"
        assert run.tags["legal_rag/plan"] == "5 unchanged, 1 changed, 1 new, 0 failed last time, 0 removed"
        assert instance.get_dynamic_partitions(source_files.name)[-1] == "luat-09.txt"  # registered by the tick
        assert listed  # a run is launched: its range needs the partitions' order
        assert not _tick(prune, instance, resources).run_requests  # the ingest run prunes by itself

    code, out = env.ingest()
    assert code == 0, out
    (env.data / "luat-04.txt").unlink()
    with get_instance() as instance:
        quiet = _tick(nightly, instance, resources)
        assert not quiet.run_requests
        assert "6 unchanged, 0 changed, 0 new, 0 failed last time, 1 removed" in quiet.skip_message
        assert PRUNE_SCHEDULE_NAME in quiet.skip_message
        (removal,) = _tick(prune, instance, resources).run_requests
        assert removal.tags["legal_rag/deleted_files"] == "1"
        assert "luat-04.txt" not in instance.get_dynamic_partitions(source_files.name)
