"""The data-folder sensor, evaluated tick by tick against a real (temporary) Dagster instance.

The test plays the daemon's part: it applies the partition requests of each tick to the instance
and passes the returned cursor to the next tick.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from legal_rag_pipeline.automation import sensors
from legal_rag_pipeline.automation.sensors import (
    MAX_HOLD_SECONDS,
    PRUNE_JOB_NAME,
    RANGE_END_TAG,
    RANGE_START_TAG,
    FolderState,
    build_data_folder_sensor,
    plan_tick,
)
from legal_rag_pipeline.definitions import defs, ingest_job
from legal_rag_pipeline.instance import WRITER_POOL
from legal_rag_pipeline.partitions import source_files
from legal_rag_pipeline.resources.data_folder import DataFolder

LAW = "Điều 1. Phạm vi điều chỉnh\nLuật này quy định về {what}.\n"


class Clock:
    now = 1_000_000.0


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch) -> None:
    monkeypatch.setattr(sensors, "clock", lambda: Clock.now)


class Daemon:
    """Evaluates the sensor like the daemon does: cursor carried over, partition requests applied,
    ticks 5 s apart."""

    def __init__(self, instance: dg.DagsterInstance, data: Path, cursor: str | None = None) -> None:
        self.instance, self.data, self.cursor = instance, data, cursor
        self.sensor = build_data_folder_sensor(ingest_job)
        self.run_keys: set[str] = set()

    def tick(self) -> dg.SensorResult:
        Clock.now += 5
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={
                "data_folder": DataFolder(data_dir=str(self.data), state_dir=str(self.data.parent / "state"))
            },
        ) as context:
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        for run in result.run_requests or []:
            assert run.run_key not in self.run_keys, "the same file versions triggered twice"
            self.run_keys.add(run.run_key)
        self.cursor = result.cursor
        return result

    def partitions(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions(source_files.name))


def write(path: Path, text: str, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def the_range(result: dg.SensorResult) -> tuple[str, str]:
    (run,) = result.run_requests
    assert run.job_name == "ingest_job"
    assert run.partition_key is None
    return run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]


def keys_in_range(instance: dg.DagsterInstance, span: tuple[str, str]) -> list[str]:
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(source_files.get_partition_keys_in_range(dg.PartitionKeyRange(*span)))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def test_sensor_is_in_the_definitions_and_on_by_default():
    sensor = defs.get_sensor_def("data_folder_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 10
    assert {j.name for j in sensor.jobs} == {"ingest_job", PRUNE_JOB_NAME}
    dg.Definitions.validate_loadable(defs)


def test_new_file_waits_one_tick_then_one_run(instance, data):
    daemon = Daemon(instance, data)
    assert daemon.tick().skip_reason  # empty folder, nothing registered
    write(data / "luat-a.txt", LAW.format(what="a"))
    first = daemon.tick()
    assert not first.run_requests and "waiting" in first.skip_reason.skip_message
    assert daemon.partitions() == []
    second = daemon.tick()
    assert the_range(second) == ("luat-a.txt", "luat-a.txt")
    assert daemon.partitions() == ["luat-a.txt"]
    assert not daemon.tick().run_requests  # unchanged: never again


def test_nested_folders_are_watched(instance, data):
    daemon = Daemon(instance, data)
    write(data / "sub" / "deeper" / "luat-b.txt", LAW.format(what="b"))
    daemon.tick()
    assert the_range(daemon.tick()) == ("sub/deeper/luat-b.txt",) * 2


def test_modified_file_triggers_again(instance, data):
    daemon = Daemon(instance, data)
    write(data / "luat-a.txt", LAW.format(what="a"), mtime_ns=1_000_000_000)
    write(data / "luat-b.txt", LAW.format(what="b"), mtime_ns=1_000_000_000)
    daemon.tick()
    assert the_range(daemon.tick()) == ("luat-a.txt", "luat-b.txt")
    # Same size, new time: still a new version (the sensor never reads or hashes).
    write(data / "luat-b.txt", LAW.format(what="c"), mtime_ns=2_000_000_000)
    assert not daemon.tick().run_requests
    result = daemon.tick()
    assert the_range(result) == ("luat-b.txt", "luat-b.txt")
    assert not result.dynamic_partitions_requests  # the partition exists already


def test_deleted_file_loses_its_partition_and_a_prune_run_starts(instance, data):
    daemon = Daemon(instance, data)
    for name in ("luat-a.txt", "luat-b.txt", "luat-c.txt"):
        write(data / name, LAW.format(what=name))
    daemon.tick()
    daemon.tick()
    (data / "luat-b.txt").unlink()
    result = daemon.tick()
    (run,) = result.run_requests
    assert run.job_name == PRUNE_JOB_NAME
    assert daemon.partitions() == ["luat-a.txt", "luat-c.txt"]
    assert not daemon.tick().run_requests  # handled once
    # A deletion together with a change: the ingest run prunes vanished files itself.
    (data / "luat-c.txt").unlink()
    write(data / "luat-a.txt", LAW.format(what="changed a"))
    daemon.tick()  # luat-a.txt just changed: the deletion waits with it, to make one run
    assert the_range(daemon.tick()) == ("luat-a.txt", "luat-a.txt")
    assert daemon.partitions() == ["luat-a.txt"]


def test_file_still_growing_waits_until_stable(instance, data):
    daemon = Daemon(instance, data)
    path = data / "luat-lon.txt"
    text = ""
    for i in range(4):  # a slow copy: bigger at every tick
        text += LAW.format(what=f"phần {i}") * 50
        write(path, text)
        result = daemon.tick()
        assert not result.run_requests, f"ingested while still growing (tick {i})"
    assert the_range(daemon.tick()) == ("luat-lon.txt", "luat-lon.txt")


def test_fifty_files_dropped_at_once_make_one_run(instance, data):
    daemon = Daemon(instance, data)
    write(data / "old.txt", LAW.format(what="old"))
    daemon.tick()
    daemon.tick()
    names = [f"dot-{i:02d}.txt" for i in range(50)]
    for name in names:
        write(data / name, LAW.format(what=name))
    daemon.tick()
    result = daemon.tick()
    span = the_range(result)
    assert len(result.run_requests) == 1
    assert sorted(keys_in_range(instance, span)) == names  # exactly the new files
    added = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
    assert sorted(added) == names


def test_range_spans_unchanged_files_between_changed_ones(instance, data):
    daemon = Daemon(instance, data)
    for name in ("a.txt", "b.txt", "c.txt"):
        write(data / name, LAW.format(what=name), mtime_ns=1_000_000_000)
    daemon.tick()
    daemon.tick()
    write(data / "a.txt", LAW.format(what="a2"))
    write(data / "c.txt", LAW.format(what="c2"))
    daemon.tick()
    span = the_range(daemon.tick())
    assert span == ("a.txt", "c.txt")
    assert keys_in_range(instance, span) == ["a.txt", "b.txt", "c.txt"]  # b costs a hash, nothing more


def test_files_copied_over_several_ticks_make_one_run(instance, data):
    daemon = Daemon(instance, data)
    write(data / "dau.txt", LAW.format(what="đầu"))
    daemon.tick()
    write(data / "giua.txt", LAW.format(what="giữa"))  # the copy goes on over the next ticks
    big = data / "cuoi.txt"
    text = ""
    for i in range(3):
        text += LAW.format(what=f"cuối {i}") * 20
        write(big, text)
        result = daemon.tick()
        assert not result.run_requests and "held back" in result.skip_reason.skip_message
    result = daemon.tick()  # nothing changed since the last tick: all three in one run
    assert keys_in_range(instance, the_range(result)) == ["cuoi.txt", "dau.txt", "giua.txt"]


def test_a_busy_folder_holds_stable_files_back_at_most_a_minute(instance, data):
    daemon = Daemon(instance, data)
    write(data / "san-sang.txt", LAW.format(what="sẵn sàng"))
    daemon.tick()
    grows = data / "khong-ngung.txt"
    text = ""
    for i in range(MAX_HOLD_SECONDS // 5 + 2):  # a copy that never ends
        text += LAW.format(what=f"{i}")
        write(grows, text)
        result = daemon.tick()
        if result.run_requests:
            break
    assert the_range(result) == ("san-sang.txt", "san-sang.txt")
    assert MAX_HOLD_SECONDS - 5 <= i * 5 <= MAX_HOLD_SECONDS + 5


def test_deleted_file_restored_with_its_old_time_is_ingested_again(instance, data):
    daemon = Daemon(instance, data)
    write(data / "giu.txt", LAW.format(what="giữ lại") * 5)
    write(data / "thung-rac.txt", LAW.format(what="thùng rác"), mtime_ns=1_500_000_000)
    daemon.tick()
    first = daemon.tick()
    (data / "thung-rac.txt").unlink()
    assert daemon.tick().run_requests[0].job_name == PRUNE_JOB_NAME
    write(data / "thung-rac.txt", LAW.format(what="thùng rác"), mtime_ns=1_500_000_000)  # same stat
    daemon.tick()
    again = daemon.tick()  # Daemon.tick asserts the run key is new (Dagster would drop a reused one)
    assert the_range(again) == ("thung-rac.txt", "thung-rac.txt")
    assert again.run_requests[0].run_key != first.run_requests[0].run_key


def test_restart_with_stored_cursor_does_not_trigger_again(instance, data):
    daemon = Daemon(instance, data)
    write(data / "luat-a.txt", LAW.format(what="a"))
    daemon.tick()
    daemon.tick()
    stored = daemon.cursor
    # A new daemon process: the cursor comes from storage, the sensor object is rebuilt.
    restarted = Daemon(instance, data, cursor=stored)
    restarted.run_keys = set(daemon.run_keys)
    assert not restarted.tick().run_requests
    write(data / "luat-b.txt", LAW.format(what="b"))
    restarted.tick()
    assert the_range(restarted.tick()) == ("luat-b.txt", "luat-b.txt")
    # A file dropped while the daemon was down is seen too (first tick: seen, second: ingested).
    down = Daemon(instance, data, cursor=restarted.cursor)
    write(data / "luat-c.txt", LAW.format(what="c"))
    assert not down.tick().run_requests
    assert the_range(down.tick()) == ("luat-c.txt", "luat-c.txt")


def test_a_failed_file_does_not_block_later_drops(instance, data):
    """The sensor hands each version over once: whatever its run did, later drops still trigger."""
    daemon = Daemon(instance, data)
    write(data / "hong.txt", "\x00\x01 not a law")
    daemon.tick()
    daemon.tick()  # its run fails (not simulated: the sensor does not wait for runs)
    write(data / "luat-moi.txt", LAW.format(what="mới"))
    daemon.tick()
    assert the_range(daemon.tick()) == ("luat-moi.txt", "luat-moi.txt")  # not blocked, not retried
    write(data / "hong.txt", LAW.format(what="sửa"))  # the fixed version triggers
    daemon.tick()
    assert the_range(daemon.tick()) == ("hong.txt", "hong.txt")


def test_missing_or_empty_folder_deletes_nothing(instance, data):
    daemon = Daemon(instance, data)
    write(data / "luat-a.txt", LAW.format(what="a"))
    daemon.tick()
    daemon.tick()
    (data / "luat-a.txt").unlink()
    result = daemon.tick()
    assert not result.run_requests and "confirm-delete" in result.skip_reason.skip_message
    assert daemon.partitions() == ["luat-a.txt"]
    data.rmdir()
    result = daemon.tick()
    assert not result.run_requests and "does not exist" in result.skip_reason.skip_message
    assert daemon.partitions() == ["luat-a.txt"]


def test_partition_deleted_by_hand_is_registered_again(instance, data):
    daemon = Daemon(instance, data)
    write(data / "luat-a.txt", LAW.format(what="a"))
    daemon.tick()
    daemon.tick()
    instance.delete_dynamic_partition(source_files.name, "luat-a.txt")
    assert the_range(daemon.tick()) == ("luat-a.txt", "luat-a.txt")
    assert daemon.partitions() == ["luat-a.txt"]


def test_tick_sets_the_writer_pool_limit(instance, data):
    assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count in (None, 0, 1)
    Daemon(instance, data).tick()
    assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count == 1


def test_plan_is_pure_and_cursor_round_trips():
    previous = FolderState(seen={"a": (1, 10), "b": (2, 20)}, done={"a": (1, 10)})
    plan = plan_tick({"a": (1, 10), "b": (2, 20), "c": (3, 30)}, previous, ["a"], now=100.0)
    assert (
        plan.ready == [] and plan.held == ["b"] and plan.waiting == ["c"] and plan.state.held_since == 100.0
    )
    assert FolderState.from_json(plan.state.to_json()) == plan.state
    plan = plan_tick({"a": (1, 10), "b": (2, 20), "c": (3, 30)}, plan.state, ["a"], now=105.0)
    assert plan.ready == ["b", "c"] and plan.added == ["b", "c"] and plan.deleted == []
    assert plan.state.held_since is None and plan.state.runs == 1
    assert FolderState.from_json(plan.state.to_json()) == plan.state
    assert FolderState.from_json("not json") == FolderState()


def test_thousands_of_files_dropped_at_once_make_one_run_and_a_small_cursor(instance, data):
    """3,000 files at once: their partitions are added in chunks (SQLite refuses one statement with
    that many variables), one run covers them all, and the cursor Dagster stores with every tick
    stays a few dozen bytes (the state is a file in the state folder, named by its digest)."""
    for i in range(3000):
        write(data / f"nghi-dinh-{i // 500}" / f"dieu-{i:04d}.txt", f"Điều {i}. Phạm vi\n")
    daemon = Daemon(instance, data)
    assert not daemon.tick().run_requests  # seen once: waits until they stop changing
    result = daemon.tick()
    assert len(result.dynamic_partitions_requests) == 3000 // sensors.PARTITION_REQUEST_BATCH
    assert len(daemon.partitions()) == 3000
    span = the_range(result)
    assert len(keys_in_range(instance, span)) == 3000
    assert daemon.cursor.startswith("file:") and len(daemon.cursor) < 40
    stored = list((data.parent / "state" / "sensor").glob("*.cursor"))
    assert [p.stem for p in stored if p.stem in daemon.cursor], stored
    for n in range(2 * sensors.KEEP_STATE_FILES):  # one file per distinct state, the newest few kept
        write(data / "nghi-dinh-0" / "dieu-0000.txt", f"Điều 0. Phạm vi {n}\n")
        daemon.tick()
    assert len(list((data.parent / "state" / "sensor").glob("*.cursor"))) <= sensors.KEEP_STATE_FILES
    # A restarted daemon reads the stored state: nothing triggers again.
    daemon.tick()  # the last change is handed to a run
    restarted = Daemon(instance, data, cursor=daemon.cursor)
    restarted.run_keys = set(daemon.run_keys)
    quiet = restarted.tick()
    assert not quiet.run_requests
    assert quiet.skip_reason.skip_message == "No change in 3000 files."


def test_a_cursor_written_before_the_compact_format_is_still_read():
    old = '{"done":{"a":[1,10]},"held_since":null,"runs":3,"seen":{"a":[1,10],"b":[2,20]},"v":1}'
    state = FolderState.from_json(old)
    assert state == FolderState(seen={"a": (1, 10), "b": (2, 20)}, done={"a": (1, 10)}, runs=3)
    assert FolderState.from_json(state.to_json()) == state
    assert state.to_json().startswith("z:")
    assert FolderState.from_json("z:not base64!") == FolderState()


def test_names_dagster_refuses_as_partition_keys_are_skipped_with_the_reason(instance, data):
    """'...' and a tab in a file name: Dagster refuses such partition keys (adding one fails the whole
    tick); the sensor skips those files, says why, and ingests the others."""
    write(data / "Luat...dat-dai.txt", LAW.format(what="đất đai"))
    write(data / "luat\tcu-tru.txt", LAW.format(what="cư trú"))
    write(data / "nghi-dinh" / "dieu...1.txt", LAW.format(what="nghị định"))
    write(data / "luat-dung.txt", LAW.format(what="đúng"))
    daemon = Daemon(instance, data)
    first = daemon.tick()
    assert not first.run_requests
    assert the_range(daemon.tick()) == ("luat-dung.txt", "luat-dung.txt")
    assert daemon.partitions() == ["luat-dung.txt"]
    quiet = daemon.tick().skip_reason.skip_message
    assert "No change in 1 files. 3 files are not ingestible" in quiet
    assert "contains a tab, which Dagster does not accept in a partition key: rename the file" in quiet
    assert "'Luat...dat-dai.txt': its path contains '...'" in quiet
    from legal_rag_pipeline.readers import scan_data_dir

    assert [k for k, _ in scan_data_dir(data).skipped] == ["Luat...dat-dai.txt", "luat\tcu-tru.txt", "nghi-dinh/dieu...1.txt"]
