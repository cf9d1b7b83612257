"""The data-folder sensor: files dropped, changed or deleted in DATA_DIR are ingested without a click.

Design (one RunRequest per tick, or a few for files far apart; not one per file, not declarative
automation):

* Each tick stats the folder through ``readers.scan_data_dir`` (modification time in ns + size;
  nothing is read or hashed: the assets hash contents).
* The cursor (JSON, stored by Dagster, so it survives daemon restarts) keeps ``seen``, the stat of
  every file at the previous tick, and ``done``, the stat of the version last handed to a run.
  A file is *ready* when its stat equals the previous tick's (it stopped changing: a file still
  being copied waits) and differs from ``done``. Unchanged files never trigger again. Dagster
  stores the cursor with every tick, so it is kept small: compressed, ``done`` as its difference
  from ``seen``, and above INLINE_CURSOR_BYTES (a few hundred files) the state goes to
  ``<state folder>/sensor/<digest>.cursor`` and the cursor is ``file:<digest>`` (the newest few
  files are kept, so a replayed tick finds its own).
* The ready files of a tick go into a run of ``ingest_job`` over a partition range (tags
  ``dagster/asset_partition_range_start``/``_end``) in the dynamic partitions' insertion order:
  new files are added at the end, so files dropped together make one range and one run. A range
  may include unchanged files between changed ones; they cost a hash and their Dagster events, so
  files more than ``planning.SPAN_GAP`` partitions apart go to separate runs (at most
  ``planning.MAX_RUNS``). While other files are still changing (a folder being copied
  over several ticks), the stable ones are held back (at most MAX_HOLD_SECONDS) so that the whole
  batch makes one run. New files' partitions are added by the same ``SensorResult``: Dagster
  applies partition requests before it creates the tick's runs, so the range can name them.
* Deleted files: their partitions are deleted and, when no other file changed in that tick, a
  small ``prune_vanished_job`` removes their points (``ingest.sync_stage`` with no sources; any
  ingest run prunes vanished files too). The usual mass-deletion guard applies; a missing or
  empty data folder is not treated as "delete everything": the sensor skips and says why.
* ``run_key`` is the cursor's run number plus a digest of the (file, mtime, size) set: a tick
  replayed from the same stored cursor never starts a second run, while a version that must run
  again (a deleted file restored from the trash with its old time) does. A failed file does not
  block anything: the next version of that file (new stat) triggers again, and the nightly
  schedule retries the files that failed.

The sensor also sets the ``qdrant_writer`` pool limit to 1 on the instance at every tick (cheap
when already set), so a daemon started with plain ``dagster dev`` serialises writers too.
"""

import base64
import hashlib
import json
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ..artifacts import _atomic_write
from ..errors import PipelineError, SourceFileError
from ..instance import set_pool_limit
from ..partitions import PARTITION_BATCH, in_batches, source_files
from ..paths import source_path
from ..planning import partition_spans, span_keys
from ..resources.data_folder import DataFolder
from ..resources.embeddings import Embedder
from ..resources.qdrant import QdrantStore

SENSOR_NAME = "data_folder_sensor"
PRUNE_JOB_NAME = "prune_vanished_job"
WRITER_POOL = "qdrant_writer"
# The sensor daemon loops every 5 s and skips a sensor whose last tick *ended* less than this ago: 5
# would tick only every other loop (10 s). 1 lets every loop tick: a drop is seen within ~5 s.
MINIMUM_INTERVAL_SECONDS = 1
MAX_HOLD_SECONDS = 60  # longest wait for a busy folder to settle before stable files run anyway
CURSOR_VERSION = 2
PARTITION_REQUEST_BATCH = PARTITION_BATCH  # the sensor's add and delete requests (partitions.in_batches)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TRIGGER_TAG = "legal_rag/trigger"

Stat = tuple[int, int]  # (mtime_ns, size)
clock = time.time  # tests replace it


# ----------------------------------------------------------------------------- the pure decision
@dataclass
class FolderState:
    """What the cursor remembers between ticks."""

    seen: dict[str, Stat] = field(default_factory=dict)
    done: dict[str, Stat] = field(default_factory=dict)
    runs: int = 0  # run requests made so far: part of the run key
    held_since: float | None = None  # when ready files were first held back for a busy folder

    def to_json(self) -> str:
        """The cursor: compact JSON, zlib-compressed and base64-encoded (``z:`` prefix).

        Dagster stores the cursor with every tick, so its size is bounded: ``done`` is kept as its
        difference from ``seen`` (empty in the steady state, where every file's last-run version is
        the one seen), and 17,656 files take about 100 kB instead of 2.9 MB of plain JSON
        (``benchmarks/sensor_scale.py``).
        """
        done_diff = {k: v for k, v in self.done.items() if self.seen.get(k) != v}
        undone = sorted(k for k in self.seen if k not in self.done)
        raw = json.dumps(
            {
                "v": CURSOR_VERSION,
                "seen": self.seen,
                "done_diff": done_diff,
                "undone": undone,
                "runs": self.runs,
                "held_since": self.held_since,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return "z:" + base64.b64encode(zlib.compress(raw.encode(), 6)).decode("ascii")

    @classmethod
    def from_json(cls, cursor: str | None) -> "FolderState":
        if not cursor:
            return cls()
        try:
            if cursor.startswith("z:"):
                cursor = zlib.decompress(base64.b64decode(cursor[2:], validate=True)).decode()
            raw = json.loads(cursor)
            seen = {k: (int(v[0]), int(v[1])) for k, v in raw.get("seen", {}).items()}
            if "done_diff" in raw:  # version 2
                undone = set(raw.get("undone", []))
                done = {k: v for k, v in seen.items() if k not in undone}
                done.update({k: (int(v[0]), int(v[1])) for k, v in raw["done_diff"].items()})
            else:  # version 1 (plain JSON, ``done`` in full): a cursor stored before the upgrade
                done = {k: (int(v[0]), int(v[1])) for k, v in raw.get("done", {}).items()}
            return cls(seen=seen, done=done, runs=int(raw.get("runs", 0)), held_since=raw.get("held_since"))
        except (ValueError, TypeError, AttributeError, IndexError, zlib.error):
            return cls()  # an unreadable cursor costs one cheap re-check of every file, nothing more


# Dagster stores the cursor with every tick (every ~5 s): above this size the folder state goes to
# a file in the state folder, named by its digest, and the cursor holds only that name.
INLINE_CURSOR_BYTES = 8_000
KEEP_STATE_FILES = 8  # the newest state files kept: a tick replayed from an older stored cursor finds its own
CURSOR_FILE_PREFIX = "file:"


def save_cursor(state: FolderState, state_dir: Path) -> str:
    """The cursor Dagster stores: the state itself when small, else ``file:<digest>`` for
    ``<state_dir>/sensor/<digest>.cursor`` (written once: the same state makes the same file)."""
    body = state.to_json()
    if len(body) <= INLINE_CURSOR_BYTES:
        return body
    digest = hashlib.sha256(body.encode()).hexdigest()[:24]
    folder = state_dir / "sensor"
    path = folder / f"{digest}.cursor"
    if not path.exists():
        _atomic_write(path, lambda handle: handle.write(body.encode()))
    else:
        os.utime(path)  # the newest again: kept by the pruning below
    older = sorted(folder.glob("*.cursor"), key=lambda p: p.stat().st_mtime_ns, reverse=True)[KEEP_STATE_FILES:]
    for stale in older:
        if stale != path:
            stale.unlink(missing_ok=True)
    return CURSOR_FILE_PREFIX + digest


def load_cursor(cursor: str | None, state_dir: Path) -> FolderState:
    """The state a cursor stands for; a state file that is gone costs one cheap re-check of every file."""
    if cursor and cursor.startswith(CURSOR_FILE_PREFIX):
        digest = cursor[len(CURSOR_FILE_PREFIX) :]
        if not all(c in "0123456789abcdef" for c in digest):
            return FolderState()
        try:
            cursor = (state_dir / "sensor" / f"{digest}.cursor").read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return FolderState()
    return FolderState.from_json(cursor)


@dataclass
class Plan:
    """What one tick decided: partitions to add/delete, files to ingest, the next cursor."""

    ready: list[str]  # stable and changed since the last run: ingest these
    waiting: list[str]  # new or still changing: look again next tick
    added: list[str]  # partitions to create
    deleted: list[str]  # partitions of vanished files
    order: list[str]  # partition order after the requests are applied
    state: FolderState
    held: list[str] = field(default_factory=list)  # ready, but held while other files still change

    def run_key(self, current: Mapping[str, Stat]) -> str:
        """The (file, mtime, size) set, numbered by the cursor: a tick replayed from the same stored
        cursor gets the same key (Dagster drops the duplicate), while a file version that must run
        again (a file restored from the trash with its old time) gets a new one."""
        items = [(k, *current[k]) for k in sorted(self.ready)] + [("-", k) for k in sorted(self.deleted)]
        digest = hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:24]
        return f"{self.state.runs}:{digest}"

    def partition_ranges(self) -> list[tuple[str, str]]:
        """The ranges of partitions to run, one run each (``planning.partition_spans``)."""
        return partition_spans(self.order, self.ready) if self.ready else []


def plan_tick(
    current: Mapping[str, Stat], previous: FolderState, partitions: Sequence[str], now: float = 0.0
) -> Plan:
    """Decide from the folder's stats, the cursor and the instance's partitions (no I/O here).

    While some files still change (a copy in progress), the files already stable are held back,
    for at most MAX_HOLD_SECONDS, so that a batch of files copied over several ticks makes one run.
    """
    known = set(partitions)
    # A version counts as done only while its partition exists (someone may have deleted it).
    done = {k: v for k, v in previous.done.items() if k in current and k in known}
    ready, waiting = [], []
    for key in sorted(current):
        stat = current[key]
        if done.get(key) == stat:
            continue
        (ready if previous.seen.get(key) == stat else waiting).append(key)
    deleted = [k for k in partitions if k not in current]
    if (ready or deleted) and waiting:
        since = previous.held_since if previous.held_since is not None else now
        if now - since < MAX_HOLD_SECONDS:
            state = FolderState(seen=dict(current), done=done, runs=previous.runs, held_since=since)
            return Plan([], waiting, [], [], list(partitions), state, held=ready + deleted)
    added = [k for k in ready if k not in known]
    order = [k for k in partitions if k in current] + added
    for key in ready:
        done[key] = current[key]
    runs = previous.runs + (1 if ready or deleted else 0)
    return Plan(ready, waiting, added, deleted, order, FolderState(seen=dict(current), done=done, runs=runs))


def stat_folder(data_dir: Path) -> tuple[dict[str, Stat], list]:
    """(mtime_ns, size) of every ingestible file, and the skipped ones: stat only, no reads."""
    from ..readers import scan_data_dir

    scan = scan_data_dir(data_dir)
    current: dict[str, Stat] = {}
    skipped = list(scan.skipped)
    for key in scan.files:
        try:
            st = source_path(data_dir, key).stat()  # the same gate as the read: no link leading out
        except FileNotFoundError:  # deleted between the scan and the stat: seen as gone next tick
            continue
        except SourceFileError as exc:
            skipped.append((key, exc.reason))
            continue
        current[key] = (st.st_mtime_ns, st.st_size)
    return current, skipped


# ----------------------------------------------------------------------------- the prune job
class PruneConfig(dg.Config):
    confirm_mass_deletion: bool = False


@dg.op(
    pool=WRITER_POOL,
    description="Delete the points of files that are no longer in the data folder (the mass-deletion guard applies).",
)
def prune_vanished_files(
    context: dg.OpExecutionContext,
    config: PruneConfig,
    data_folder: DataFolder,
    qdrant: QdrantStore,
    embedder: Embedder,
) -> None:
    try:
        with qdrant.connect() as collection:
            if not collection.exists():
                context.log.info("No collection yet: nothing to remove.")
                return
            _, vanished = data_folder.sync(
                collection, embedder, [], context.run_id, confirm_mass_deletion=config.confirm_mass_deletion
            )
            validity = data_folder.update_validity(collection)  # a removed law's successors and predecessors
    except PipelineError as exc:  # one sentence in the UI, no stack trace
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    removed = {o.source: o.counts.get("points_deleted", 0) for o in vanished}
    context.log.info(f"Removed the points of {len(removed)} files no longer in the data folder: {removed}")
    from ..assets.validity import validity_materialization

    context.log_event(validity_materialization(validity))
    context.log_event(
        dg.AssetObservation(
            asset_key="qdrant_collection",
            metadata={
                "removed_files": len(removed),
                "points_deleted": sum(removed.values()),
                "removed": dg.MetadataValue.md(
                    "\n".join(f"- {k}: {v} points" for k, v in removed.items()) or "none"
                ),
            },
        )
    )


@dg.job(
    name=PRUNE_JOB_NAME,
    executor_def=dg.in_process_executor,
    description="Remove the points of deleted files (started by the data-folder sensor when only deletions happened).",
)
def prune_vanished_job() -> None:
    prune_vanished_files()


# ----------------------------------------------------------------------------- the sensor
def default_status() -> dg.DefaultSensorStatus:
    """On unless DATA_FOLDER_SENSOR=stopped (for people who only ingest by hand). A status set in the
    UI's Automation page is stored in the instance and wins over this default."""
    from ..settings import load_sensor_status

    return dg.DefaultSensorStatus.RUNNING if load_sensor_status() == "running" else dg.DefaultSensorStatus.STOPPED


def build_data_folder_sensor(ingest_job) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        jobs=[ingest_job, prune_vanished_job],
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        default_status=default_status(),
        description="Ingests files added to or changed in DATA_DIR (once they stop changing) in one run, "
        "and removes the points of deleted files. Stats files only: no reads, no hashing.",
    )
    def data_folder_sensor(context: dg.SensorEvaluationContext, data_folder: DataFolder) -> dg.SensorResult:
        return evaluate(context, data_folder, ingest_job.name)

    return data_folder_sensor


def evaluate(
    context: dg.SensorEvaluationContext, data_folder: DataFolder, ingest_job_name: str
) -> dg.SensorResult:
    instance = context.instance
    set_pool_limit(instance)
    data_dir = data_folder.data_path
    state_dir = data_folder.state_path
    previous = load_cursor(context.cursor, state_dir)
    if not data_dir.is_dir():
        return dg.SensorResult(
            skip_reason=f"The data folder {data_dir} does not exist: nothing is ingested or deleted until it is back.",
            cursor=context.cursor,
        )
    try:
        current, skipped = stat_folder(data_dir)
    except FileNotFoundError:  # removed between the check and the scan
        return dg.SensorResult(
            skip_reason=f"The data folder {data_dir} does not exist.", cursor=context.cursor
        )
    partitions = list(instance.get_dynamic_partitions(source_files.name))
    if not current and partitions:
        return dg.SensorResult(
            skip_reason=f"The data folder {data_dir} has no files to ingest: refusing to treat that as deleting "
            f"all {len(partitions)} files. If intended, run `legal-rag ingest --confirm-delete`.",
            cursor=context.cursor,
        )

    plan = plan_tick(current, previous, partitions, now=clock())
    requests: list = [source_files.build_add_request(list(b)) for b in in_batches(plan.added)]
    requests += [source_files.build_delete_request(list(b)) for b in in_batches(plan.deleted)]
    run_requests: list[dg.RunRequest] = []
    key = plan.run_key(current)
    spans = plan.partition_ranges()
    for i, (start, end) in enumerate(spans):
        ready = len(plan.ready) if len(spans) == 1 else len(set(plan.ready) & set(span_keys(plan.order, (start, end))))
        run_requests.append(
            dg.RunRequest(
                run_key=f"ingest:{key}" + (f":{i + 1}" if i else ""),
                job_name=ingest_job_name,
                tags={
                    RANGE_START_TAG: start,
                    RANGE_END_TAG: end,
                    TRIGGER_TAG: "sensor",
                    "legal_rag/changed_files": str(ready),
                    "legal_rag/deleted_files": str(len(plan.deleted)),
                },
            )
        )
    if not spans and plan.deleted:
        run_requests.append(
            dg.RunRequest(
                run_key=f"prune:{key}",
                job_name=PRUNE_JOB_NAME,
                tags={TRIGGER_TAG: "sensor", "legal_rag/deleted_files": str(len(plan.deleted))},
            )
        )

    if plan.ready or plan.deleted:
        context.log.info(
            f"{len(plan.ready)} files to ingest ({len(plan.added)} new), {len(plan.deleted)} deleted, "
            f"{len(plan.waiting)} still changing or just seen"
        )
    skip_reason = None
    if not run_requests:
        skip_reason = (
            f"{len(plan.waiting)} files changed since the last tick: waiting until they stop changing"
            + (f" ({len(plan.held)} files ready, held back to make one run)." if plan.held else ".")
            if plan.waiting
            else f"No change in {len(current)} files."
        )
        if skipped:
            skip_reason += f" {len(skipped)} files are not ingestible: " + "; ".join(
                f"{key!r}: {reason}" for key, reason in skipped[:3]
            ) + ("; ..." if len(skipped) > 3 else ".")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=requests,
        cursor=save_cursor(plan.state, state_dir),
        skip_reason=skip_reason,
    )
