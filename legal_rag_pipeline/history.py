"""Dagster's run history, kept bounded: what runs older than N days leave behind is what a view needs.

A run over 70,000 files records a materialisation per file and stage; a nightly run over a few
changed files records a few more. Nothing in Dagster removes them (its tick retention covers sensor
and schedule ticks only), so ``DAGSTER_HOME`` grows with every run. ``prune_history`` takes the runs
that ended more than ``older_than_days`` ago and deletes from each:

* the events that say nothing any more: a file's materialisation, observation or planned row of an
  asset when a later one of the same asset and file exists (a planned row also when a later
  materialisation does; a run's planned row that carries its files, when each of them has been
  materialised or planned again since), and the run's log (step, engine and captured-log events);
* the run itself once none of its asset events is the latest of its file: Dagster's ``delete_run``.

What stays: every file's latest materialisation with its metadata (status, error, fix, figures),
the planned rows that make a failed file show as failed, the latest run summary, and the runs those
belong to with their status. The UI shows every file as before; the run pages of pruned runs show
their status and those events only. Works on the SQLite storages and on PostgreSQL (the same tables).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as db
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.events import EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetEventTagsTable, SqlEventLogStorageTable

from .dagster_storage import plan_partitions

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
ASSET_TYPES = [
    DagsterEventType.ASSET_MATERIALIZATION.value,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
    DagsterEventType.ASSET_OBSERVATION.value,
    DagsterEventType.ASSET_FAILED_TO_MATERIALIZE.value,
]
# what a pruned run keeps besides its latest asset events: its status and its asset checks
KEPT_TYPES = [
    *ASSET_TYPES,
    *(t.value for t in EVENT_TYPE_TO_PIPELINE_RUN_STATUS),
    DagsterEventType.ASSET_CHECK_EVALUATION.value,
    DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
]
CHUNK = 500  # ids per DELETE statement
PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value
MATERIALIZED = DagsterEventType.ASSET_MATERIALIZATION.value


@dataclass(frozen=True)
class HistoryPruned:
    older_than_days: float
    runs_pruned: int
    runs_deleted: int
    events_deleted: int
    bytes_freed: int

    def summary(self) -> str:
        freed = f"; {self.bytes_freed / 2**20:.1f} MB given back to the disk" if self.bytes_freed else ""
        return (
            f"Runs older than {self.older_than_days:g} days: {self.runs_pruned} pruned, {self.runs_deleted} of them "
            f"deleted (nothing left that a view shows), {self.events_deleted:,} events deleted{freed}; "
            "every file's latest status is kept."
        )


def prune_history(instance: DagsterInstance, older_than_days: float, now: float | None = None) -> HistoryPruned:
    """Prune the runs that ended more than ``older_than_days`` days before ``now`` (see the module)."""
    cutoff = (time.time() if now is None else now) - older_than_days * 86_400
    records = instance.get_run_records(
        RunsFilter(statuses=FINISHED, updated_before=datetime.fromtimestamp(cutoff, tz=timezone.utc))
    )
    storage = instance.event_log_storage
    deleted_events = deleted_runs = 0
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run_id = record.dagster_run.run_id
        deleted_events += _prune_run(storage, run_id)
        if not _keeps_asset_events(storage, run_id):
            with storage.index_transaction() as conn:
                conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id == run_id))
            instance.delete_run(run_id)
            deleted_runs += 1
    give_back = getattr(storage, "give_back_free_pages", None)
    freed = give_back() if give_back is not None and records else 0
    return HistoryPruned(older_than_days, len(records), deleted_runs, deleted_events, freed)


def _superseded(run_id: str):
    """The asset events of ``run_id`` that a later event of the same asset and file makes void."""
    events, later = SqlEventLogStorageTable, SqlEventLogStorageTable.alias("later")
    same_file = db.and_(
        later.c.asset_key == events.c.asset_key,
        later.c.partition.is_not_distinct_from(events.c.partition),
        later.c.id > events.c.id,
    )
    newer_same_kind = db.exists().where(same_file, later.c.dagster_event_type == events.c.dagster_event_type)
    materialised_since = db.exists().where(
        same_file, later.c.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION.value
    )
    planned = events.c.dagster_event_type == PLANNED
    return (
        db.select(events.c.id, events.c.asset_key, events.c.dagster_event_type, events.c.partition)
        .where(events.c.run_id == run_id, events.c.dagster_event_type.in_(ASSET_TYPES))
        .where(db.not_(db.and_(planned, events.c.partition.is_(None))))  # _void_plans
        .where(db.or_(newer_same_kind, db.and_(planned, materialised_since)))
    )


def _void_plans(conn, run_id: str) -> list[tuple]:
    """The planned rows of ``run_id`` without a partition column that say nothing any more: an
    unpartitioned asset's when a later plan or materialisation of it exists; one that carries the run's
    partitions when each of them was materialised or planned again since (a file that failed in that
    run and was not run again keeps it: the row is what shows it as failed)."""
    events = SqlEventLogStorageTable
    rows = conn.execute(
        db.select(events.c.id, events.c.asset_key, events.c.event)
        .where(events.c.run_id == run_id, events.c.dagster_event_type == PLANNED, events.c.partition.is_(None))
    ).fetchall()
    void = []
    for event_id, asset_key, text in rows:
        later = (events.c.asset_key == asset_key, events.c.id > event_id,
                 events.c.dagster_event_type.in_([PLANNED, MATERIALIZED]))
        keys = plan_partitions(text)
        if keys is None:
            done = conn.execute(db.select(events.c.id).where(*later, events.c.partition.is_(None)).limit(1)).first()
        else:
            left = set(keys)
            for start in range(0, len(keys), CHUNK):
                found = db.select(events.c.partition).where(*later, events.c.partition.in_(keys[start : start + CHUNK]))
                left.difference_update(row[0] for row in conn.execute(found.distinct()))
            if left:  # planned again by a later plan that carries its partitions
                for (later_text,) in conn.execute(db.select(events.c.event).where(*later, events.c.partition.is_(None))):
                    left.difference_update(plan_partitions(later_text) or ())
            done = not left
        if done:
            void.append((event_id, asset_key, PLANNED, None))
    return void


def _prune_run(storage, run_id: str) -> int:
    events = SqlEventLogStorageTable
    with storage.index_transaction() as conn:
        void = conn.execute(_superseded(run_id)).fetchall() + _void_plans(conn, run_id)
        ids = [row[0] for row in void]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(chunk)))
            conn.execute(events.delete().where(events.c.id.in_(chunk)))
    sharded = isinstance(storage, SqliteEventLogStorage)  # the run's own database holds its events again
    with storage.run_connection(run_id) if sharded else storage.index_transaction() as conn:
        log = events.delete().where(
            events.c.run_id == run_id,
            db.or_(events.c.dagster_event_type.is_(None), events.c.dagster_event_type.not_in(KEPT_TYPES)),
        )
        removed = conn.execute(log).rowcount
        if sharded:
            _delete_copies(conn, run_id, void)
    return len(ids) + removed


def _delete_copies(conn, run_id: str, void: Sequence) -> None:
    """In a run's own database (the sharded layout), the rows of the events deleted from the index."""
    events = SqlEventLogStorageTable
    by_kind: dict[tuple[str, str], list] = {}
    for _, asset_key, kind, partition in void:
        by_kind.setdefault((asset_key, kind), []).append(partition)
    for (asset_key, kind), partitions in by_kind.items():
        keyed = [p for p in partitions if p is not None]
        where = [events.c.run_id == run_id, events.c.asset_key == asset_key, events.c.dagster_event_type == kind]
        for start in range(0, len(keyed), CHUNK):
            conn.execute(events.delete().where(*where, events.c.partition.in_(keyed[start : start + CHUNK])))
        if len(keyed) < len(partitions):
            conn.execute(events.delete().where(*where, events.c.partition.is_(None)))


def _keeps_asset_events(storage, run_id: str) -> bool:
    events = SqlEventLogStorageTable
    with storage.index_transaction() as conn:
        row = conn.execute(
            db.select(events.c.id).where(events.c.run_id == run_id, events.c.dagster_event_type.in_(ASSET_TYPES)).limit(1)
        ).first()
    return row is not None
