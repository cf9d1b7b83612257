"""Dagster's SQLite storage with event batches written as batches (the local instance's default).

Dagster's own SQLite event log writes a batch one event at a time, each in two fresh connections
(the run's database, then the cross-run index): about 17 ms per event on this machine, so a run
over 5,000 files spent 11 of its 14 minutes storing the ~40,000 planned and materialisation events
of its partitions. Here a batch (``DAGSTER_EVENT_BATCH_SIZE``, which ``legal-rag`` sets) is one
transaction in the run's database and one in the index, and each database keeps one open
connection; what is stored, and where, is exactly what Dagster stores (the same files under
``DAGSTER_HOME/history``, readable by the stock storage). PostgreSQL needs none of this: its
storage writes batches in one statement already.

A run's planned events are asked of Dagster as one event per asset carrying the run's partitions
(its ``supports_partition_subset_in_asset_materialization_planned_events``) instead of one per
partition and asset, which Dagster builds, logs and serialises one by one: about a third of its own
cost of a run over many files. The sharded storage of older homes stores them as the rows per
partition Dagster would otherwise have written. The one-file storage keeps each as one row (a run
over 70,624 files: 4 planned rows, not 282,496 written and deleted again) and answers per partition
the two questions Dagster asks of planned rows: which partitions a run planned and has not
materialised (in progress, or failed with their run: the UI's failed partitions), and a partition's
latest planned run. Events that differ only in partition and time (a stage's planned events and
materialisations) are serialised once per batch and the rest are that text with their own partition
and time.

Used through ``dagster.yaml``::

    storage:
      custom:
        module: legal_rag_pipeline.dagster_storage
        class: BatchedSqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}

A new ``DAGSTER_HOME`` gets ``OneFileSqliteStorage``: the same batches over Dagster's consolidated
SQLite event log (``ConsolidatedSqliteEventLogStorage``: every event once, in one database, as
PostgreSQL keeps them) instead of one database per run plus an index that holds every asset event a
second time. Its rows are written as compact JSON (the same values; Dagster's reader parses any
JSON) in 16 KiB pages with incremental vacuum, so the history retention (history.py) gives freed pages
back to the disk. A run over 5,148 one-article files wrote 157 MB into the sharded storage and
50 MB into this one (benchmarks/national_scale.py measures it at 70,000 files). A home that already
holds a sharded history keeps its storage (instance.py), since the other one cannot read it.
Dagster's own consolidated storage reads this database too, everything but a planned row's
partitions one by one (the failed partitions it then shows are the statuses the UI cached).

It relies on internals of the pinned Dagster version (``pyproject.toml``); test_dagster_storage.py
checks it against the stock storage event for event.
"""

from __future__ import annotations

import atexit
import json
import operator
import os
import sqlite3
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from dagster import AssetKey, AssetMaterialization
from dagster._core.events import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    EVENT_TYPE_TO_PIPELINE_RUN_STATUS,
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._core.storage.event_log.base import PlannedMaterializationInfo
from dagster._serdes import deserialize_value
from sqlalchemy.pool import StaticPool

# Dagster refuses control characters in a partition key, so this never is one.
_PARTITION_PLACEHOLDER = "\x00partition\x00"
_QUOTED_PLACEHOLDER = json.dumps(_PARTITION_PLACEHOLDER)
_TIME_PLACEHOLDER = 1.2345678901234567e-300  # no event's time
_QUOTED_TIME = json.dumps(_TIME_PLACEHOLDER)

OPEN_RUN_DATABASES = 4  # a run's database stays open while it is written; older ones are closed

_STORAGES: weakref.WeakSet[BatchedSqliteEventLogStorage] = weakref.WeakSet()


def _forget_connections_in_child() -> None:
    for storage in list(_STORAGES):
        storage._engines.clear()  # the parent's connections are not the child's to use


def _close_connections() -> None:
    for storage in list(_STORAGES):  # closing the last connection folds the WAL into the database
        storage._close_all()


os.register_at_fork(after_in_child=_forget_connections_in_child)
atexit.register(_close_connections)


PLANNED_PART = 2000  # partitions of a planned event stored per transaction


class _Batches:
    """What both SQLite storages share: a batch's rows built once, in compact JSON."""

    # a planned event over partitions stored as a row per partition (True), or as Dagster hands it over:
    # one row carrying its partitions (OneFileSqliteEventLogStorage, which reads them back from it)
    SPLITS_PLANNED = True

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True  # stored per partition below, or read back per partition (OneFileSqliteEventLogStorage)

    def _split_keys(self, event: EventLogEntry) -> Sequence[str] | None:
        """The partitions a planned event is stored as one row each for (else None: stored as it is)."""
        return _planned_keys(event) if self.SPLITS_PLANNED else None

    def store_event(self, event: EventLogEntry) -> None:
        if self._split_keys(event) is not None:  # outside a batch (DAGSTER_EVENT_BATCH_SIZE unset)
            self.store_event_batch([event])
        else:
            super().store_event(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events``; a planned event over many partitions goes in parts of ``PLANNED_PART``
        partitions, so that a run over 70,000 files does not build its 280,000 rows at once (600 MB)."""
        pending: list[EventLogEntry] = []
        for event in events:
            keys = self._split_keys(event)
            if keys is None or len(keys) <= PLANNED_PART:
                pending.append(event)
                continue
            for start in range(0, len(keys), PLANNED_PART):
                if pending:
                    self._store_batch(pending)
                    pending = []
                self._store_batch([_planned_for(event, key) for key in keys[start : start + PLANNED_PART]])
        if pending:
            self._store_batch(pending)

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        """Dagster's list of the definition's keys, each key the string every earlier list holds
        (``sys.intern``). A run asks for the list several times and keeps each answer to its end: over
        70,624 files, six lists of their own strings held 43 MB before the first file was read."""
        return [sys.intern(key) for key in super().get_dynamic_partitions(partitions_def_name)]

    def has_table(self, table_name: str) -> bool:
        # the stock check opens a new engine each time; a table, once there, stays
        if table_name not in self._tables:
            if not super().has_table(table_name):
                return False
            self._tables.add(table_name)
        return True

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()

    def _event_to_row(self, event: EventLogEntry) -> dict:
        """Dagster's row for ``event``, its JSON without the spaces after separators (the same value)."""
        row = super()._event_to_row(event)
        row["event"] = _compact(row["event"])
        return row

    def _rows(self, events: Sequence[EventLogEntry]) -> tuple[list[EventLogEntry], list[dict]]:
        """Each event and its row, serialised once for both databases.

        A planned event over partitions becomes one event and row per partition. An event that
        differs from the one before only in its partition and time (a stage's materialisations of
        many files) is not serialised again: its row is the text of the one before with its own
        partition and time put in, which is what serialising it gives (tested).
        """
        out_events, rows = [], []
        model, template = None, None  # the event the template was made from, and the template
        for event in events:
            keys = self._split_keys(event)
            for i, one in enumerate((event,) if keys is None else (_planned_for(event, key) for key in keys)):
                out_events.append(one)
                partition = _partition_of(one)
                # the partitions of one planned event share its shape: looked at for the first only
                if partition is not None and (keys is None or i == 0) and (model is None or not _same_shape(one, model)):
                    model, template = one, self._event_to_row(_shape(one))
                    if template["event"].count(_QUOTED_PLACEHOLDER) != 1 or template["event"].count(_QUOTED_TIME) != 1:
                        template = None  # not the expected text: serialised one by one
                if partition is None or template is None:
                    rows.append(self._event_to_row(one))
                    continue
                text = template["event"].replace(_QUOTED_PLACEHOLDER, _json_string(partition))
                rows.append({**template, "event": text.replace(_QUOTED_TIME, _json_number(one.timestamp)),
                             "timestamp": self._event_insert_timestamp(one), "partition": partition})
        return out_events, rows

    def _store_asset_event_tags(self, conn, events: Sequence[EventLogEntry], event_ids: Sequence[int],
                                rows: Sequence[dict] | None = None) -> None:
        """The stock rows (Dagster's own method), with each asset key's text made once per batch, each
        event's time taken from its row in ``rows`` when given and the planned events (which carry no
        tags) passed over."""
        names: dict[object, str] = {}
        indexed: dict[frozenset, set[str]] = {}  # the tags Dagster indexes, per set of tag names
        values = []
        for event_id, event, row in zip(event_ids, events, rows or [None] * len(events)):
            kind = _kind(event)
            if kind == _MATERIALIZATION:
                tags = event.dagster_event.event_specific_data.materialization.tags or {}
            elif kind == _OBSERVATION:
                tags = event.dagster_event.event_specific_data.asset_observation.tags or {}
            else:
                continue
            if not tags:
                continue
            names_of_tags = frozenset(tags)
            if names_of_tags not in indexed:
                indexed[names_of_tags] = self.get_asset_tags_to_index(set(names_of_tags))
            keep = indexed[names_of_tags]
            tags = {k: v for k, v in tags.items() if k in keep}
            if not tags:
                continue
            name = _asset_key_text(event, names)
            timestamp = self._event_insert_timestamp(event) if row is None else row["timestamp"]
            values.extend(
                {"event_id": event_id, "asset_key": name, "key": key, "value": value, "event_timestamp": timestamp}
                for key, value in tags.items()
            )
        if values and self.has_table(AssetEventTagsTable.name):
            conn.execute(AssetEventTagsTable.insert(), values)

    def _store_asset_rows(self, conn, events: Sequence[EventLogEntry], rows: list[dict]) -> list[int]:
        """Insert the asset events' rows, their tags and the asset rows' latest event; return the ids."""
        ids = _insert_returning_ids(conn, rows)
        self._store_asset_event_tags(conn, events, ids, rows)
        # the asset row keeps the latest event of each kind: write only the last of each
        last: dict[tuple[str, object], tuple[EventLogEntry, int]] = {}
        names: dict[object, str] = {}
        for event, event_id in zip(events, ids):
            if (kind := _kind(event)) in _ASSET_EVENT_VALUES:
                last[(_asset_key_text(event, names), kind)] = (event, event_id)
        for event, event_id in sorted(last.values(), key=lambda pair: pair[1]):
            self._store_asset_event(conn, event, event_id)
        return ids


class BatchedSqliteEventLogStorage(_Batches, SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that stores a batch in one transaction per database."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, object] = OrderedDict()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)
        _STORAGES.add(self)

    def _engine(self, shard: str):
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,  # one connection, used under self._db_lock only
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs_open = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in runs_open[:-OPEN_RUN_DATABASES]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def delete_events(self, run_id: str) -> None:
        with self._db_lock:
            engine = self._engines.pop(run_id, None)
            if engine is not None:
                engine.dispose()
        super().delete_events(run_id)

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def _store_batch(self, events: Sequence[EventLogEntry]) -> None:
        """The same rows as ``store_event`` for each event, in one transaction per database."""
        events = [e for e in events if _kind(e) != _FAILED_TO_MATERIALIZE]
        if not events:
            return
        events, rows = self._rows(events)  # serialised once, for both databases
        by_run: dict[str, list[dict]] = {}
        for event, row in zip(events, rows):
            by_run.setdefault(event.run_id, []).append(row)
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)

        indexed, indexed_rows, checks, statuses = [], [], [], []
        for event, row in zip(events, rows):
            kind = _kind(event)
            if kind in _ASSET_EVENT_VALUES:
                indexed.append(event)
                indexed_rows.append(row)
            elif kind in _CHECK_EVENT_VALUES:
                checks.append((event, row))
            elif kind in _RUN_STATUS_EVENT_VALUES:
                statuses.append(row)
        if not (indexed or checks or statuses):
            return
        check_ids = []
        with self.index_transaction() as conn:
            if indexed:
                self._store_asset_rows(conn, indexed, indexed_rows)
            for event, row in checks:
                check_ids.append((event, conn.execute(SqlEventLogStorageTable.insert().values(**row)).inserted_primary_key[0]))
            if statuses:
                conn.execute(SqlEventLogStorageTable.insert(), statuses)
        for event, event_id in check_ids:  # opens its own index connection
            self.store_asset_check_event(event, event_id)


PAGE_SIZE = 16384  # bytes: rows of 0.8-1.6 KB fill 16 KiB pages with less left over than 4 KiB ones


class OneFileSqliteEventLogStorage(_Batches, ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log (every event once, in ``event_log.db``), batched."""

    def __init__(self, base_dir: str, inst_data=None):
        self._tables: set[str] = set()
        self._engines: dict = {}
        self._db_lock = threading.Lock()
        super().__init__(base_dir, inst_data=inst_data)
        _STORAGES.add(self)

    @contextmanager
    def _connect(self) -> Iterator:
        """One open connection, used under a lock (the stock storage opens one per call)."""
        with self._db_lock:
            engine = self._engines.get("events")
            if engine is None:
                engine = self._engines["events"] = create_engine(
                    self._conn_string,
                    poolclass=StaticPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                )
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def _init_db(self) -> None:
        # page size and vacuum mode are fixed when the first table is made
        os.makedirs(self._base_dir, exist_ok=True)
        with sqlite3.connect(self.get_db_path()) as db:
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("VACUUM")
        super()._init_db()

    SPLITS_PLANNED = False  # a run's planned event stays one row per asset, read back by partition below

    def store_event(self, event: EventLogEntry) -> None:
        if _partition_of(event) is not None:  # a partition's materialisation: its row made from its stage's text
            self.store_event_batch([event])
        else:
            super().store_event(event)

    def _store_batch(self, events: Sequence[EventLogEntry]) -> None:
        """The same rows as ``store_event`` for each event, in one transaction."""
        events = [e for e in events if _kind(e) != _FAILED_TO_MATERIALIZE]
        if not events:
            return
        events, rows = self._rows(events)
        with self.index_transaction() as conn:
            ids = self._store_asset_rows(conn, events, rows)
        for event, event_id in zip(events, ids):  # opens its own connection
            if _kind(event) in _CHECK_EVENT_VALUES:
                self.store_asset_check_event(event, event_id)

    # ------------------------------------------------------------------ planned rows over partitions
    def planned_subsets(
        self, asset_key: AssetKey, after_storage_id: int | None = None, containing: str | None = None
    ) -> list[tuple[int, str, frozenset[str]]]:
        """The planned rows of ``asset_key`` that carry their partitions (one per asset and run), oldest
        first, each as (storage id, run id, partitions); ``containing``: only those that plan that partition."""
        table = SqlEventLogStorageTable
        query = db.select(table.c.id, table.c.run_id, table.c.event).where(
            table.c.asset_key == asset_key.to_string(),
            table.c.dagster_event_type == _PLANNED,
            table.c.partition.is_(None),
        )
        if after_storage_id is not None:
            query = query.where(table.c.id > after_storage_id)
        query = self._add_assets_wipe_filter_to_query(query, self._get_assets_details([asset_key]), [asset_key])
        quoted = None if containing is None else _json_string(containing)
        found = []
        with self.index_connection() as conn:
            for event_id, run_id, text in conn.execute(query.order_by(table.c.id)):
                if quoted is not None and quoted not in text:  # not in its text: not among its partitions
                    continue
                keys = plan_partitions(text)
                if keys is not None and (containing is None or containing in keys):
                    found.append((event_id, run_id, frozenset(keys)))
        return found

    def get_latest_asset_partition_materialization_attempts_without_materializations(
        self, asset_key: AssetKey, after_storage_id: int | None = None
    ) -> Mapping[str, tuple[str, int]]:
        """Dagster's answer (each partition whose latest planned row has no materialisation after it: in
        progress, or failed with its run), the planned rows that carry their partitions read per partition."""
        attempts = dict(
            super().get_latest_asset_partition_materialization_attempts_without_materializations(asset_key, after_storage_id)
        )
        plans = self.planned_subsets(asset_key, after_storage_id)
        if not plans:
            return attempts
        planned: dict[str, tuple[str, int]] = {}
        for event_id, run_id, keys in plans:  # oldest first: each partition ends with its latest plan
            for key in keys:
                planned[key] = (run_id, event_id)
        latest = self._latest_event_ids_by_partition_subquery(  # Dagster's, wiped assets left out
            asset_key, [DagsterEventType.ASSET_MATERIALIZATION], after_cursor=plans[0][0]
        )
        with self.index_connection() as conn:
            materialized = dict(conn.execute(db.select(latest.c.partition, latest.c.id)).fetchall())
        for key, (run_id, event_id) in planned.items():
            if materialized.get(key, 0) > event_id or (key in attempts and attempts[key][1] > event_id):
                continue
            attempts[key] = (run_id, event_id)
        return attempts

    def get_latest_planned_materialization_info(
        self, asset_key: AssetKey, partition: str | None = None
    ) -> PlannedMaterializationInfo | None:
        """Dagster's answer; for one partition, also the planned rows that carry it among their partitions."""
        info = super().get_latest_planned_materialization_info(asset_key, partition)
        if partition is None:
            return info
        plans = self.planned_subsets(asset_key, info.storage_id if info else None, containing=partition)
        if not plans:
            return info
        event_id, run_id, _ = plans[-1]
        return PlannedMaterializationInfo(storage_id=event_id, run_id=run_id)

    def give_back_free_pages(self) -> int:
        """Return the pages deleted rows left to the file system (after the history retention); bytes."""
        with self._db_lock, sqlite3.connect(self.get_db_path(), timeout=SQLITE_BUSY_TIMEOUT_SECONDS) as db:
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            # one page per step of the statement: Python's execute() steps it once whatever is read after
            # (one page a prune was all that went back), sqlite3_exec (executescript) to its end
            db.executescript("PRAGMA incremental_vacuum;")
            left = db.execute("PRAGMA freelist_count").fetchone()[0]
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return (free - left) * PAGE_SIZE


def _compact(text: str) -> str:
    """JSON text without the spaces after separators: the same value, about 8 % fewer bytes."""
    return json.dumps(json.loads(text), separators=(",", ":"))


def _insert_returning_ids(conn, rows: list[dict]) -> list[int]:
    """Insert ``rows`` into the index's event table and return their ids, in order.

    SQLAlchemy's ``RETURNING`` in parameter order runs one statement per row on SQLite (40,000 of
    them for a run over 5,000 files). One ``executemany`` and one read of the ids is the same inside
    this transaction: from its first insert it holds the database's write lock, and ``id`` is the
    rowid, so the rows get the next ids in the order they are inserted."""
    _insert(conn, rows)
    newest = conn.execute(
        SqlEventLogStorageTable.select()
        .with_only_columns(SqlEventLogStorageTable.c.id)
        .order_by(SqlEventLogStorageTable.c.id.desc())
        .limit(len(rows))
    )
    ids = [row[0] for row in newest][::-1]
    if len(ids) != len(rows) or ids[-1] - ids[0] != len(rows) - 1:
        raise RuntimeError(f"the index stored {len(rows)} events but their ids are not consecutive: {ids[:3]}…")
    return ids


# An event's type as the text it is stored as. DagsterEvent's own tests (``is_step_materialization``,
# ``asset_key``, ``dagster_event_type``) build a DagsterEventType from that text on every call: about a
# tenth of what storing a run's events over many files cost, for the same answers.
_MATERIALIZATION = DagsterEventType.ASSET_MATERIALIZATION.value
_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value
_OBSERVATION = DagsterEventType.ASSET_OBSERVATION.value
_FAILED_TO_MATERIALIZE = DagsterEventType.ASSET_FAILED_TO_MATERIALIZE.value
_ASSET_EVENT_VALUES = frozenset(kind.value for kind in ASSET_EVENTS)
_CHECK_EVENT_VALUES = frozenset(kind.value for kind in ASSET_CHECK_EVENTS)
_RUN_STATUS_EVENT_VALUES = frozenset(kind.value for kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS)


def _kind(event: EventLogEntry) -> str | None:
    """The Dagster event type of ``event`` as stored (``event_type_value``), None for a plain log line."""
    dagster_event = event.dagster_event
    return None if dagster_event is None else dagster_event.event_type_value


def _asset_key_text(event: EventLogEntry, names: dict[object, str]) -> str:
    """The stored text of the asset key of an asset event (``names``: the texts made so far, by key)."""
    dagster_event = event.dagster_event
    kind, data = dagster_event.event_type_value, dagster_event.event_specific_data
    if kind == _MATERIALIZATION:
        key = data.materialization.asset_key
    elif kind == _PLANNED:
        key = data.asset_key
    elif kind == _OBSERVATION:
        key = data.asset_observation.asset_key
    else:
        key = dagster_event.asset_key
    name = names.get(key)
    if name is None:
        name = names[key] = key.to_string()
    return name


_COLUMNS = ("run_id", "event", "dagster_event_type", "timestamp", "step_key", "asset_key", "partition")
_INSERT = (f"INSERT INTO {SqlEventLogStorageTable.name} ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
_STORED_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's text for a SQLite DATETIME (what the stock insert stores)


def _insert(conn, rows: list[dict]) -> None:
    """``rows`` (``_event_to_row``'s) into the event table in one ``executemany`` of the driver: the
    values SQLAlchemy's insert would bind, without its per-row processing (a tenth of storing a batch)."""
    if set(rows[0]) != set(_COLUMNS):  # a Dagster with other columns: its own insert
        conn.execute(SqlEventLogStorageTable.insert(), rows)
        return
    conn.exec_driver_sql(_INSERT, [
        (r["run_id"], r["event"], r["dagster_event_type"], r["timestamp"].strftime(_STORED_TIME),
         r["step_key"], r["asset_key"], r["partition"])
        for r in rows
    ])


def _planned_keys(event: EventLogEntry) -> Sequence[str] | None:
    """The partitions of a planned event that carries them as a subset (else None)."""
    if _kind(event) != _PLANNED:
        return None
    subset = event.dagster_event.event_specific_data.partitions_subset
    return None if subset is None else list(subset.get_partition_keys())


def plan_partitions(text: str) -> list[str] | None:
    """The partitions a stored planned row lists (a run's plan as one row per asset), else None."""
    return _planned_keys(deserialize_value(text, EventLogEntry))


def _partition_of(event: EventLogEntry) -> str | None:
    """The partition of a planned event or a materialisation (else None)."""
    kind = _kind(event)
    if kind == _PLANNED:
        return event.dagster_event.event_specific_data.partition
    if kind == _MATERIALIZATION:
        return event.dagster_event.event_specific_data.materialization.partition
    return None


def _shape(event: EventLogEntry) -> EventLogEntry:
    """The event with placeholders for its partition and time (what a stage's events share)."""
    dagster_event = event.get_dagster_event()
    data = dagster_event.event_specific_data
    if dagster_event.is_asset_materialization_planned:
        data = data._replace(partition=_PARTITION_PLACEHOLDER)
    else:
        data = data._replace(materialization=data.materialization._replace(partition=_PARTITION_PLACEHOLDER))
    return event._replace(timestamp=_TIME_PLACEHOLDER, dagster_event=dagster_event._replace(event_specific_data=data))


def _all_fields_but(kind: type, *names: str) -> operator.itemgetter:
    """The values of every field of the named tuple ``kind`` but ``names``, as one tuple."""
    return operator.itemgetter(*(i for i, name in enumerate(kind._fields) if name not in names))


_ENTRY_SHAPE = _all_fields_but(EventLogEntry, "timestamp", "dagster_event")
_EVENT_SHAPE = _all_fields_but(DagsterEvent, "event_specific_data")
_PLANNED_SHAPE = _all_fields_but(AssetMaterializationPlannedData, "partition")
_MATERIALIZED_SHAPE = _all_fields_but(StepMaterializationData, "materialization")
_ASSET_MATERIALIZATION_SHAPE = _all_fields_but(AssetMaterialization, "partition")


def _same_shape(a: EventLogEntry, b: EventLogEntry) -> bool:
    """``_shape(a) == _shape(b)`` for planned events or materialisations of a partition, compared field by
    field instead of building the shapes (building them was a twentieth of storing a run's events)."""
    da, db = a.dagster_event, b.dagster_event
    sa, sb = da.event_specific_data, db.event_specific_data
    if not (type(a) is type(b) is EventLogEntry and type(da) is type(db) is DagsterEvent and type(sa) is type(sb)):
        return _shape(a) == _shape(b)
    if not (_ENTRY_SHAPE(a) == _ENTRY_SHAPE(b) and _EVENT_SHAPE(da) == _EVENT_SHAPE(db)):
        return False
    if type(sa) is AssetMaterializationPlannedData:
        return _PLANNED_SHAPE(sa) == _PLANNED_SHAPE(sb)
    ma, mb = sa.materialization, sb.materialization
    if not (type(sa) is StepMaterializationData and type(ma) is type(mb) is AssetMaterialization):
        return _shape(a) == _shape(b)
    return _MATERIALIZED_SHAPE(sa) == _MATERIALIZED_SHAPE(sb) and _ASSET_MATERIALIZATION_SHAPE(ma) == _ASSET_MATERIALIZATION_SHAPE(mb)


_json_string = json.encoder.encode_basestring_ascii  # json.dumps of a str, without its per-call set-up


def _json_number(value: float) -> str:
    """json.dumps of a time (its ``repr``, which json.dumps gives a finite float)."""
    return float.__repr__(value) if type(value) is float and value - value == 0 else json.dumps(value)


def _planned_for(event: EventLogEntry, key: str) -> EventLogEntry:
    """The planned event of one partition, as Dagster builds it when it plans partition by partition."""
    dagster_event = event.get_dagster_event()
    data = dagster_event.event_specific_data._replace(partition=key, partitions_subset=None)
    return event._replace(dagster_event=dagster_event._replace(event_specific_data=data))


class BatchedSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, events, schedules under ``base_dir``) with batched event writes."""

    def __init__(self, base_dir: str, inst_data=None):  # noqa: D107  (same layout as DagsterSqliteStorage)
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = BatchedSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class OneFileSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage with every event once, in one database, written in batches."""

    def __init__(self, base_dir: str, inst_data=None):  # noqa: D107
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = OneFileSqliteEventLogStorage(os.path.join(base_dir, "history", "events"))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> OneFileSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
