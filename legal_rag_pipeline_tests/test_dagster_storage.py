"""The batched SQLite storages (dagster_storage.py) store what Dagster's own SQLite storages store.

The same partitioned run (a single-run backfill over 200 dynamic partitions, per-partition metadata,
two files that fail in the last stage, an asset check) is executed on a stock SQLite instance and on
the project's instance; the UI-facing answers (materialised and failed partitions, planned events,
latest materialisation, asset checks, run status) must be identical, while the batched storage opens
a handful of connections instead of several per event, and Dagster builds one planned event per asset
instead of one per partition and asset. The one-file storage of new homes answers the same from one
planned row per asset and run, which carries the run's partitions.
"""


import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import EventRecordsFilter
from sqlalchemy import event
from sqlalchemy.engine import Engine

from legal_rag_pipeline import instance as project_instance
from legal_rag_pipeline.dagster_storage import BatchedSqliteEventLogStorage, OneFileSqliteEventLogStorage

FILES = dg.DynamicPartitionsDefinition(name="files")
KEYS = [f"luat-{i:03d}/dieu-{i:04d}.txt" for i in range(200)]
BROKEN = {KEYS[7], KEYS[150]}


@dg.asset(partitions_def=FILES, backfill_policy=dg.BackfillPolicy.single_run())
def read(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for key in context.partition_keys:
        context.add_asset_metadata({"chunks": len(key)}, partition_key=key)
    return dg.MaterializeResult()


@dg.asset(
    partitions_def=FILES,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[read],
    output_required=False,
    check_specs=[dg.AssetCheckSpec("points_match", asset="sync")],
)
def sync(context: dg.AssetExecutionContext):
    for key in context.partition_keys:
        if key not in BROKEN:
            yield dg.AssetMaterialization(asset_key="sync", partition=key, metadata={"points": 3})
    yield dg.AssetCheckResult(check_name="points_match", passed=True)
    raise dg.Failure(description=f"{len(BROKEN)} files failed")


JOB = dg.define_asset_job("sync_job", selection=[read, sync], partitions_def=FILES)
DEFS = dg.Definitions(assets=[read, sync], jobs=[JOB])


def _run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(FILES.name, KEYS)
    return DEFS.resolve_job_def("sync_job").execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]},
        raise_on_error=False,
    )


def _answers(instance: dg.DagsterInstance, run_id: str) -> dict:
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    out: dict = {"run": instance.get_run_by_id(run_id).status}
    for name in ("read", "sync"):
        key = dg.AssetKey(name)
        attempts = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)
        cache = get_and_update_asset_status_cache_value(instance, key, FILES)  # what the asset pages show
        planned = instance.get_event_records(
            EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=key), limit=10_000
        )
        latest = instance.get_latest_materialization_event(key)
        out[name] = {
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "not_materialized": sorted(attempts),
            "not_materialized_in_this_run": all(run == run_id for run, _ in attempts.values()),
            "failed_in_the_ui": sorted(cache.deserialize_failed_partition_subsets(FILES).get_partition_keys()),
            "materialized_in_the_ui": len(cache.deserialize_materialized_partition_subsets(FILES)),
            # the UI's "latest run" of a partition, a failed one and one that went through
            "planned_in_this_run": [
                getattr(instance.get_latest_planned_materialization_info(key, partition), "run_id", None) == run_id
                for partition in (KEYS[7], KEYS[8], KEYS[150])
            ],
            "planned": sorted(r.event_log_entry.dagster_event.partition for r in planned),
            "latest": (latest.asset_materialization.partition, dict(latest.asset_materialization.metadata)),
            "materialization_count": len(
                instance.fetch_materializations(key, limit=10_000).records
            ),
            # the indexed tags of its events (a data version per materialisation; values differ by run)
            "tags": sorted(
                tuple(sorted(tags)) for tags in instance.event_log_storage.get_event_tags_for_asset(key)
            ),
        }
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("sync"), "points_match"), limit=10
    )
    out["checks"] = [c.status for c in checks]
    out["run_events"] = sorted(
        (e.dagster_event.event_type_value, e.dagster_event.partition or "")
        for e in instance.all_logs(run_id)
        if e.is_dagster_event
    )
    return out


def _instance(home: Path, storage_yaml: str) -> dg.DagsterInstance:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(storage_yaml, encoding="utf-8")
    return dg.DagsterInstance.from_config(str(home))


STOCK = f"storage:\n  sqlite:\n    base_dir: {{}}\n"
# Dagster's own consolidated event log, reading the one-file storage's database
STOCK_ONE_FILE = """
run_storage:
  module: dagster._core.storage.runs
  class: SqliteRunStorage
  config: {{base_dir: {0}/history}}
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config: {{base_dir: {0}/history/events}}
schedule_storage:
  module: dagster._core.storage.schedules
  class: SqliteScheduleStorage
  config: {{base_dir: {0}/schedules}}
"""
SHARDED = project_instance.SHARDED_TEMPLATE.read_text(encoding="utf-8")
ONE_FILE = project_instance.TEMPLATE.read_text(encoding="utf-8")


def _one_planned_row_per_asset(answers: dict) -> dict:
    """The answers with each asset's planned rows as one row carrying the run's partitions (as the
    one-file storage keeps them)."""
    out = {**answers, **{name: dict(answers[name]) for name in ("read", "sync")}}
    for name in ("read", "sync"):
        out[name]["planned"] = [None]
    one_each = [("ASSET_MATERIALIZATION_PLANNED", "")] * 2
    out["run_events"] = sorted([e for e in answers["run_events"] if e[0] != "ASSET_MATERIALIZATION_PLANNED"] + one_each)
    return out


def test_the_batched_storage_answers_exactly_as_dagsters_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    connections = []

    def count(dbapi_connection, _record):  # every SQLite connection any engine opens
        connections.append(1)

    event.listen(Engine, "connect", count)
    built = []  # the planned events Dagster hands the batched storage
    from legal_rag_pipeline.dagster_storage import _Batches

    rows = _Batches._rows

    def watched(storage, events):
        built.extend(e for e in events if e.dagster_event and e.dagster_event.is_asset_materialization_planned)
        return rows(storage, events)

    monkeypatch.setattr(_Batches, "_rows", watched)
    try:
        answers, opened = {}, {}
        for name, yaml_text in (
            ("stock", STOCK.format(tmp_path / "stock")),
            ("batched", SHARDED),
            ("one_file", ONE_FILE),
        ):
            home = tmp_path / name
            monkeypatch.setenv("DAGSTER_HOME", str(home))
            with _instance(home, yaml_text) as instance:
                connections.clear()
                result = _run(instance)
                opened[name] = len(connections)
                assert not result.success  # the two broken files fail the run, as in the ingest
                answers[name] = _answers(instance, result.run_id)
                if name == "batched":
                    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
                if name == "one_file":
                    assert isinstance(instance.event_log_storage, OneFileSqliteEventLogStorage)
    finally:
        event.remove(Engine, "connect", count)

    assert answers["batched"] == answers["stock"]
    # the one-file storage: the same answers, from one planned row per asset instead of one per partition
    one_file = answers["one_file"]
    assert one_file == _one_planned_row_per_asset(answers["stock"])
    sync = answers["batched"]["sync"]
    assert len(sync["materialized"]) == 198 and sync["not_materialized"] == sorted(BROKEN)
    assert sync["failed_in_the_ui"] == sorted(BROKEN) and sync["materialized_in_the_ui"] == 198
    assert sync["planned_in_this_run"] == [True, True, True] and sync["not_materialized_in_this_run"]
    assert len(answers["batched"]["read"]["materialized"]) == 200
    assert answers["batched"]["read"]["materialization_count"] == 200
    assert answers["batched"]["read"]["tags"] == [("dagster/data_version",)] * 200
    # 200 partitions x 2 assets, planned and materialised: the stock storage opens connections per
    # event; the batched one keeps one per database
    assert opened["stock"] > 800, opened
    assert opened["batched"] < 40, opened
    assert opened["one_file"] < 80, opened
    # the same 400 planned rows, of which Dagster built two events (one per asset) instead of 400
    assert len(answers["batched"]["read"]["planned"]) + len(answers["batched"]["sync"]["planned"]) == 400
    assert sorted(e.dagster_event.asset_key.to_user_string() for e in built) == ["read", "read", "sync", "sync"]
    assert all(len(e.dagster_event.event_specific_data.partitions_subset) == 200 for e in built)


def test_a_planned_event_is_stored_as_each_partitions_own(tmp_path):
    """The row written for each partition holds the event Dagster builds for that partition alone."""
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent
    from dagster._core.events.log import EventLogEntry
    from dagster._serdes import deserialize_value, serialize_value

    from legal_rag_pipeline.dagster_storage import _planned_for

    keys = ['luật-đất-đai/điều-1.txt', 'a "quoted" \\ name.txt', "thông tư 01/2024.docx"]
    subset = FILES.empty_subset().with_partition_keys(keys)
    event = EventLogEntry(
        error_info=None, level=10, user_message="", run_id="r1", timestamp=1.5, step_key="read",
        job_name="sync_job",
        dagster_event=DagsterEvent.build_asset_materialization_planned_event(
            "sync_job", "read", AssetMaterializationPlannedData(dg.AssetKey("read"), partitions_subset=subset)
        ),
    )
    storage = BatchedSqliteEventLogStorage(str(tmp_path))
    try:
        events, rows = storage._rows([event])
    finally:
        storage.dispose()
    assert sorted(row["partition"] for row in rows) == sorted(keys)
    for stored, row in zip(events, rows):
        alone = _planned_for(event, row["partition"])
        assert stored == alone and json.loads(row["event"]) == json.loads(serialize_value(alone))
        assert len(row["event"]) < len(serialize_value(alone))  # compact JSON
        assert deserialize_value(row["event"], EventLogEntry).dagster_event.partition == row["partition"]
        assert deserialize_value(row["event"], EventLogEntry).dagster_event.event_specific_data.partitions_subset is None


@pytest.mark.parametrize(
    ("ours", "theirs", "stock_class"),
    [(SHARDED, STOCK, "SqliteEventLogStorage"), (ONE_FILE, STOCK_ONE_FILE, "ConsolidatedSqliteEventLogStorage")],
    ids=["sharded", "one-file"],
)
def test_runs_written_in_batches_are_read_by_the_stock_storage(tmp_path, monkeypatch, ours, theirs, stock_class):
    """Same files, same schema: going back to Dagster's own storage loses nothing."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with _instance(home, ours) as instance:
        run_id = _run(instance).run_id
        written = _answers(instance, run_id)
    (home / "dagster.yaml").write_text(theirs.format(home), encoding="utf-8")
    with dg.DagsterInstance.from_config(str(home)) as stock:
        assert type(stock.event_log_storage).__name__ == stock_class
        read_back = _answers(stock, run_id)
    if ours == ONE_FILE:
        # one planned row per asset carries the run's partitions (Dagster writes it so itself with
        # DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS), which Dagster's own storage does not read
        # partition by partition: everything else reads back, the failed partitions from the statuses the
        # asset pages cache, but not which partitions the run planned and left
        assert read_back["sync"]["failed_in_the_ui"] == written["sync"]["failed_in_the_ui"] == sorted(BROKEN)
        for name in ("read", "sync"):
            assert read_back[name]["not_materialized"] == []
            written[name].update(not_materialized=[], planned_in_this_run=[False] * 3)
    assert read_back == written


@pytest.mark.parametrize("template", [SHARDED, ONE_FILE], ids=["sharded", "one-file"])
def test_a_second_process_sees_the_events_as_they_are_written(tmp_path, monkeypatch, template):
    """The webserver and daemon read the same files while a run writes: nothing is held back."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with _instance(home, template) as instance:
        run_id = _run(instance).run_id  # the connections stay open in this process
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, dagster as dg\n"
                "with dg.DagsterInstance.get() as i:\n"
                "    print(len(i.get_materialized_partitions(dg.AssetKey('sync'))),"
                " i.get_run_by_id(sys.argv[1]).status.value)",
                run_id,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            timeout=120,
        )
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.split() == ["198", "FAILURE"]


def test_a_new_or_untouched_dagster_home_gets_the_batched_storage(tmp_path, monkeypatch):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    old = subprocess.run(
        ["git", "show", "913e00d:legal_rag_pipeline/instance_config/dagster.yaml"],
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    if old.returncode != 0:
        pytest.skip("this checkout has no history to take the earlier dagster.yaml from")
    assert hashlib.sha256(old.stdout).hexdigest() in project_instance.EARLIER_TEMPLATES
    (earlier / "dagster.yaml").write_bytes(old.stdout)
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "dagster.yaml").write_bytes(old.stdout + b"# mine\n")
    # a home with a history in the sharded layout keeps a storage that reads it
    earlier_with_history = tmp_path / "earlier-with-history"
    (earlier_with_history / "history" / "runs").mkdir(parents=True)
    (earlier_with_history / "history" / "runs" / "index.db").write_bytes(b"")
    (earlier_with_history / "dagster.yaml").write_bytes(old.stdout)
    sharded = tmp_path / "sharded"
    (sharded / "history" / "runs").mkdir(parents=True)
    (sharded / "history" / "runs" / "index.db").write_bytes(b"")
    (sharded / "dagster.yaml").write_bytes(project_instance.SHARDED_TEMPLATE.read_bytes())
    for home, expected in (
        (tmp_path / "new", project_instance.TEMPLATE.read_bytes()),
        (earlier, project_instance.TEMPLATE.read_bytes()),
        (edited, old.stdout + b"# mine\n"),
        (earlier_with_history, project_instance.SHARDED_TEMPLATE.read_bytes()),
        (sharded, project_instance.SHARDED_TEMPLATE.read_bytes()),
    ):
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        project_instance.ensure_dagster_home()
        assert (home / "dagster.yaml").read_bytes() == expected, home


def test_every_row_is_what_dagster_serialises_for_that_event(tmp_path, monkeypatch):
    """A real run's events, stored by the stock storage, become the same rows in the batched one;
    a stage's materialisations of many partitions are serialised once, not once each."""
    from dagster._serdes import serialize_value

    home = tmp_path / "stock"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with _instance(home, STOCK.format(home)) as instance:
        run_id = _run(instance).run_id
        entries = list(instance.all_logs(run_id))
    materialised = [e for e in entries if e.dagster_event and e.dagster_event.is_step_materialization]
    planned = [e for e in entries if e.dagster_event and e.dagster_event.is_asset_materialization_planned]
    assert len(materialised) == 398 and len(planned) == 400  # read 200, sync 198 (two failed)

    storage = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    serialised = []
    to_row = storage._event_to_row
    monkeypatch.setattr(storage, "_event_to_row", lambda e: serialised.append(e) or to_row(e))
    try:
        events, rows = storage._rows(entries)
        assert events == entries
        for entry, row in zip(entries, rows):
            assert row == to_row(entry) and json.loads(row["event"]) == json.loads(serialize_value(entry))
    finally:
        storage.dispose()
    # each stage's planned events share one text, and so do its materialisations; the rest one by one
    assert len(serialised) == len(entries) - len(materialised) - len(planned) + 4, (len(serialised), len(entries))


def test_the_stored_columns_are_the_stock_storages(tmp_path):
    """Rows inserted by the driver's executemany hold what SQLAlchemy's insert stores: the same time
    text (whole seconds too), event type, asset key, partition and step (the retention and Dagster's
    queries filter on them)."""
    import sqlite3
    import time

    from dagster._core.events import DagsterEvent, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage

    now = time.time()

    def materialised(at: float, partition: str) -> EventLogEntry:
        mat = dg.AssetMaterialization(asset_key=["law", "văn bản"], partition=partition, tags={"dagster/data_version": "v"})
        return EventLogEntry(
            error_info=None, level=10, user_message="", run_id="run", timestamp=at, step_key="write", job_name="j",
            dagster_event=DagsterEvent("ASSET_MATERIALIZATION", "j", event_specific_data=StepMaterializationData(mat),
                                       step_key="write"),
        )

    events = [materialised(now, "luat-dat-dai.txt"), materialised(float(int(now)), "dieu-0001.txt")]
    stored = {}
    for name, storage_class in (("stock", ConsolidatedSqliteEventLogStorage), ("ours", OneFileSqliteEventLogStorage)):
        storage = storage_class(str(tmp_path / name))
        try:
            for one in events:
                storage.store_event(one)
        finally:
            storage.dispose()
        with sqlite3.connect(tmp_path / name / "event_log.db") as db:
            stored[name] = db.execute(
                "SELECT run_id, dagster_event_type, timestamp, step_key, asset_key, partition FROM event_logs ORDER BY id"
            ).fetchall()
        with sqlite3.connect(tmp_path / name / "event_log.db") as db:
            stored[name + " tags"] = db.execute("SELECT asset_key, key, value, event_timestamp FROM asset_event_tags").fetchall()
    assert len(stored["ours"]) == 2 and stored["ours"][1][2].endswith(".000000")
    assert stored["ours"] == stored["stock"]
    assert stored["ours tags"] == stored["stock tags"] and len(stored["ours tags"]) == 2


WRITER = """
import os, sys, time
import dagster as dg
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from legal_rag_pipeline import dagster_storage

base, name, kind = sys.argv[1], sys.argv[2], sys.argv[3]
storage = getattr(dagster_storage, kind)(base)
# both writers start writing together (one's imports can outlast the other's whole write on a busy machine)
open(f"{base}/ready-{name}", "w").close()
deadline = time.monotonic() + 120
while not all(os.path.exists(f"{base}/ready-{n}") for n in ("luat_a", "luat_b")):
    assert time.monotonic() < deadline, "the other writer never started"
    time.sleep(0.01)
for batch in range(15):
    events = []
    for i in range(200):
        key = f"{name}-{batch:02d}-{i:03d}.txt"
        mat = dg.AssetMaterialization(asset_key=name, partition=key, tags={"dagster/data_version": key})  # an indexed tag
        events.append(EventLogEntry(
            error_info=None, level=10, user_message="", run_id=f"run-{name}", timestamp=time.time(),
            step_key=name, job_name="j",
            dagster_event=DagsterEvent("ASSET_MATERIALIZATION", "j", event_specific_data=StepMaterializationData(mat)),
        ))
    storage.store_event_batch(events)
storage.dispose()
"""


@pytest.mark.parametrize(
    ("kind", "database"),
    [("BatchedSqliteEventLogStorage", "index.db"), ("OneFileSqliteEventLogStorage", "event_log.db")],
    ids=["sharded", "one-file"],
)
def test_two_processes_writing_at_once_get_each_event_its_own_id(tmp_path, kind, database):
    """The index's ids are read back after one insert per batch: with two writers at once, every tag
    row still points at its own event (each event's data-version tag names its own file)."""
    import sqlite3

    base = tmp_path / "events"
    base.mkdir()
    from legal_rag_pipeline import dagster_storage

    getattr(dagster_storage, kind)(str(base)).dispose()  # the schema, before both start
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(base), name, kind], stderr=subprocess.PIPE, text=True)
        for name in ("luat_a", "luat_b")
    ]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    db = sqlite3.connect(base / database)
    pairs = db.execute(
        "SELECT t.value, e.partition, t.asset_key, e.asset_key FROM asset_event_tags t "
        "JOIN event_logs e ON e.id = t.event_id WHERE t.key = 'dagster/data_version'"
    ).fetchall()
    assert len(pairs) == 2 * 15 * 200
    assert all(tag == partition and tag_key == event_key for tag, partition, tag_key, event_key in pairs)
    assert db.execute("SELECT count(DISTINCT event_id) FROM asset_event_tags WHERE key = 'dagster/data_version'").fetchone()[0] == 6000
    spans = dict(db.execute("SELECT asset_key, min(id) || '-' || max(id) FROM event_logs GROUP BY asset_key").fetchall())
    (a_first, a_last), (b_first, b_last) = (map(int, spans[k].split("-")) for k in ('["luat_a"]', '["luat_b"]'))
    assert a_first < b_last and b_first < a_last, spans  # the two wrote at the same time


def _planned_over(keys: list[str], run_id: str = "r1", timestamp: float = 1.5):
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None, level=10, user_message="", run_id=run_id, timestamp=timestamp, step_key="read",
        job_name="sync_job",
        dagster_event=DagsterEvent.build_asset_materialization_planned_event(
            "sync_job", "read",
            AssetMaterializationPlannedData(dg.AssetKey("read"), partitions_subset=FILES.empty_subset().with_partition_keys(keys)),
        ),
    )


def _materialized(key: str, run_id: str = "r1", timestamp: float = 2.5):
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None, level=10, user_message="", run_id=run_id, timestamp=timestamp, step_key="read",
        job_name="sync_job",
        dagster_event=DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value, "sync_job",
            event_specific_data=StepMaterializationData(dg.AssetMaterialization("read", partition=key)),
        ),
    )


def test_a_planned_event_over_many_partitions_is_stored_in_parts(tmp_path, monkeypatch):
    """A run over 70,000 files plans 280,000 rows in the sharded storage of older homes: they are built and
    written a part at a time, all of them."""
    from legal_rag_pipeline import dagster_storage

    monkeypatch.setattr(dagster_storage, "PLANNED_PART", 50)
    keys = [f"luat/dieu-{i:04d}.txt" for i in range(130)]
    event = _planned_over(keys)
    storage = dagster_storage.BatchedSqliteEventLogStorage(str(tmp_path))
    parts = []
    store = storage._store_batch
    monkeypatch.setattr(storage, "_store_batch", lambda events: parts.append(len(events)) or store(events))
    try:
        storage.store_event_batch([event])
        records = storage.get_records_for_run("r1", of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    finally:
        storage.dispose()
    assert parts == [50, 50, 30]
    assert sorted(r.event_log_entry.dagster_event.partition for r in records) == keys


def test_a_planned_row_over_many_partitions_is_read_partition_by_partition(tmp_path):
    """The one-file storage keeps a run's plan as one row per asset (70,000 files: 4 rows, not 280,000) and
    answers from it what Dagster reads from one row per partition: which partitions a run planned and has
    not materialised (in progress, or failed with their run), and each partition's latest planned run."""
    from legal_rag_pipeline.dagster_storage import OneFileSqliteEventLogStorage

    keys = [f"luat/dieu-{i:04d}.txt" for i in range(129)] + ["luật/điều-130.txt"]  # a file named in Vietnamese
    storage = OneFileSqliteEventLogStorage(str(tmp_path))
    read = dg.AssetKey("read")
    try:
        storage.store_event_batch([_planned_over(keys)])
        planned = storage.get_records_for_run("r1", of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
        assert len(planned) == 1 and planned[0].event_log_entry.dagster_event.partition is None
        first = planned[0].storage_id
        storage.store_event_batch([_materialized(key) for key in keys[:127]])

        # the three the run did not materialise, with that run
        assert storage.get_latest_asset_partition_materialization_attempts_without_materializations(read) == {
            key: ("r1", first) for key in keys[127:]
        }
        assert storage.get_latest_asset_partition_materialization_attempts_without_materializations(read, first) == {}
        for key in (keys[0], keys[129]):
            assert storage.get_latest_planned_materialization_info(read, key).run_id == "r1"
        assert storage.get_latest_planned_materialization_info(read, "luat/khac.txt") is None
        assert storage.get_latest_planned_materialization_info(read).run_id == "r1"

        # a second run plans two of them and one materialised file; it materialises one
        storage.store_event_batch([_planned_over([keys[0], keys[128], keys[129]], "r2", 3.5)])
        storage.store_event_batch([_materialized(keys[129], "r2", 4.5)])
        second = storage.planned_subsets(read)[-1][0]
        assert [(run, len(k)) for _, run, k in storage.planned_subsets(read)] == [("r1", 130), ("r2", 3)]
        assert storage.get_latest_asset_partition_materialization_attempts_without_materializations(read) == {
            keys[0]: ("r2", second), keys[127]: ("r1", first), keys[128]: ("r2", second),
        }
        assert storage.get_latest_planned_materialization_info(read, keys[0]).run_id == "r2"
        assert storage.get_latest_planned_materialization_info(read, keys[1]).run_id == "r1"
        assert [run for _, run, _ in storage.planned_subsets(read, containing=keys[1])] == ["r1"]
    finally:
        storage.dispose()


@pytest.mark.parametrize("kind", ["BatchedSqliteEventLogStorage", "OneFileSqliteEventLogStorage"])
def test_every_list_of_partition_keys_shares_its_strings(tmp_path, kind):
    """A run asks for the files' keys several times and keeps each list: the lists hold one string per
    key between them, and a key added or deleted since is in (or out of) the next list."""
    from legal_rag_pipeline import dagster_storage

    storage = getattr(dagster_storage, kind)(str(tmp_path))
    try:
        storage.add_dynamic_partitions("files", KEYS[:150])
        first, second = storage.get_dynamic_partitions("files"), storage.get_dynamic_partitions("files")
        assert first == second == KEYS[:150]
        assert all(a is b for a, b in zip(first, second, strict=True))
        storage.add_dynamic_partitions("files", KEYS[150:])
        storage.delete_dynamic_partition("files", KEYS[0])
        third = storage.get_dynamic_partitions("files")
        assert third == KEYS[1:]
        assert third[5] is first[6]
    finally:
        storage.dispose()


def _materialisation(partition: str = "luật-1/điều-1.txt", timestamp: float = 1.5, **changes):
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    fields = {"asset_key": dg.AssetKey("read"), "metadata": {"chunks": 3}, "tags": {"dagster/data_version": "a"},
              "description": None, "run_id": "r1", "step_key": "read", "message": None}
    fields.update(changes)
    materialization = dg.AssetMaterialization(
        asset_key=fields["asset_key"], partition=partition, metadata=fields["metadata"], tags=fields["tags"],
        description=fields["description"],
    )
    return EventLogEntry(
        error_info=None, level=10, user_message="", run_id=fields["run_id"], timestamp=timestamp,
        step_key=fields["step_key"], job_name="sync_job",
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value, job_name="sync_job",
            step_key=fields["step_key"], event_specific_data=StepMaterializationData(materialization),
            message=fields["message"], pid=1,
        ),
    )


@pytest.mark.parametrize(
    "changes",
    [{}, {"asset_key": dg.AssetKey("sync")}, {"metadata": {"chunks": 4}}, {"tags": {"dagster/data_version": "b"}},
     {"description": "x"}, {"run_id": "r2"}, {"step_key": "sync"}, {"message": "Materialized"}],
    ids=["partition-and-time-only", "asset", "metadata", "tags", "description", "run", "step", "message"],
)
def test_two_events_share_a_shape_exactly_when_their_shapes_are_equal(changes):
    """``_same_shape`` (the field-by-field test the batched storage uses to reuse a serialised row) answers
    what comparing the built shapes answers: equal when two events differ in partition and time alone."""
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    from legal_rag_pipeline.dagster_storage import _planned_for, _same_shape, _shape

    first = _materialisation()
    other = _materialisation("luật-2/điều-9.txt", 2.5, **changes)
    assert _same_shape(first, other) == (_shape(first) == _shape(other)) == (not changes)
    subset = FILES.empty_subset().with_partition_keys(KEYS[:3])
    planned = first._replace(dagster_event=DagsterEvent.build_asset_materialization_planned_event(
        "sync_job", "read", AssetMaterializationPlannedData(dg.AssetKey("read"), partitions_subset=subset)))
    one, two = _planned_for(planned, KEYS[0]), _planned_for(planned._replace(timestamp=9.0), KEYS[2])
    assert _same_shape(one, two) and _shape(one) == _shape(two)
    assert not _same_shape(one, first) and _shape(one) != _shape(first)
    assert not _same_shape(one, _planned_for(planned._replace(run_id="r2"), KEYS[0]))


def test_the_pages_deleted_rows_leave_go_back_to_the_disk(tmp_path):
    """After the history retention deletes rows, the one-file storage returns their pages to the file
    system (incremental vacuum), all of them."""
    import sqlite3

    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

    from legal_rag_pipeline.dagster_storage import PAGE_SIZE, OneFileSqliteEventLogStorage

    storage = OneFileSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event_batch([_planned_over([f"luat/dieu-{i:05d}.txt" for i in range(20_000)])])  # ~0.8 MB
        storage.store_event_batch([_materialized(f"luat/dieu-{i:05d}.txt") for i in range(2_000)])
        with storage.index_transaction() as conn:
            conn.execute(SqlEventLogStorageTable.delete())
        with sqlite3.connect(storage.get_db_path()) as db:
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
        assert free > 40  # 16 KiB pages
        assert storage.give_back_free_pages() == free * PAGE_SIZE
        with sqlite3.connect(storage.get_db_path()) as db:
            assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        storage.dispose()
