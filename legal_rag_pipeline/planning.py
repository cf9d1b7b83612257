"""Plan an ingest before running it: which files changed since their last sync, which are new,
which failed last time, which vanished. Plain functions over the data folder and the state folder.

A file is *in sync* when everything its points depend on is as it was at its last successful sync:

* its bytes: the stat (size, modification time) equals the one recorded when it was read; when the
  stat moved, its content is hashed and compared (a file touched but not changed stays in sync, and
  its new stat is recorded so the next plan does not hash it again);
* the reader and chunker versions and the token budget its chunks were made with;
* its last run: no stage failed or was skipped. A file that failed because of its own bytes and has
  not changed since (nor the reader, chunker or limits) is *failing as before* and not run again
  (``ingest.failures``; ``--retry-failed`` runs it);
* its sync marker (``ingest.marks``): same chunks file, model, store and physical collection.

The whole plan is void (every file runs) when there is no collection yet or it was never compared
in full with this folder. When its last comparison is only older than ``ingest.VERIFY_AFTER_SECONDS``,
the plan compares it itself, given the collection (``ingest.verify``: each file's point count and
point ids, a few seconds), and only the files whose points differ run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ingest
from .ingest.marks import read_sync_state
from .artifacts import FileArtifacts, each_chunk_ids, known_sources, plan_rows, records_batch
from .errors import PipelineError
from .stores.base import Collection

log = logging.getLogger(__name__)


@dataclass
class IngestPlan:
    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # failed or not finished in their last run
    # failed because of their own bytes, unchanged since (ingest/failures.py): not run again
    failing_as_before: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # in the state folder, no longer in the data folder
    full: bool = False  # every file runs: the collection is due for a full comparison
    reason: str = ""
    compared: str = ""  # what the plan's own comparison with the collection found (ingest/verify.py)

    @property
    def to_run(self) -> list[str]:
        return sorted({*self.changed, *self.new, *self.failed})

    def summary(self) -> str:
        parts = [f"{len(self.unchanged)} unchanged", f"{len(self.changed)} changed", f"{len(self.new)} new",
                 f"{len(self.failed)} failed last time", f"{len(self.vanished)} removed"]
        if self.failing_as_before:
            parts.append(f"{len(self.failing_as_before)} failing as before (unchanged since they failed)")
        return ", ".join(parts)


# A run covers a contiguous range of partitions (Dagster's single-run backfill), and every file in
# the range gets its planned and materialisation events even when it is unchanged. Files to run that
# lie far apart go to separate runs: a run's own cost (about 3 s) is that of some 500 untouched files
# in a range (about 6 ms each, events and checks; benchmarks/many_files.py).
SPAN_GAP = 500
MAX_RUNS = 8


def partition_span(order: Sequence[str], keys: Sequence[str]) -> tuple[str, str] | None:
    """The smallest contiguous range of ``order`` (the partitions' order) holding every key."""
    spans = partition_spans(order, keys, max_runs=1)
    return spans[0] if spans else None


def partition_spans(
    order: Sequence[str], keys: Sequence[str], *, max_gap: int | None = None, max_runs: int | None = None
) -> list[tuple[str, str]]:
    """Contiguous ranges of ``order`` holding every key, one run each: a new range starts where more
    than ``max_gap`` (SPAN_GAP) partitions not in ``keys`` lie between two keys; past ``max_runs``
    (MAX_RUNS) ranges the closest ones are merged (fewer, longer runs)."""
    max_gap = SPAN_GAP if max_gap is None else max_gap
    max_runs = MAX_RUNS if max_runs is None else max_runs
    wanted = set(keys)
    positions = [i for i, key in enumerate(order) if key in wanted]
    if not positions:
        return []
    groups = [[positions[0], positions[0]]]
    for position in positions[1:]:
        if position - groups[-1][1] - 1 > max_gap:
            groups.append([position, position])
        else:
            groups[-1][1] = position
    while len(groups) > max(1, max_runs):
        gaps = [groups[i + 1][0] - groups[i][1] for i in range(len(groups) - 1)]
        i = gaps.index(min(gaps))
        groups[i : i + 2] = [[groups[i][0], groups[i + 1][1]]]
    return [(order[first], order[last]) for first, last in groups]


def span_keys(order: Sequence[str], span: tuple[str, str]) -> list[str]:
    """The partitions a range covers, in order."""
    return list(order[order.index(span[0]) : order.index(span[1]) + 1])


def span_size(order: Sequence[str], span: tuple[str, str]) -> int:
    """How many partitions a range covers."""
    return len(span_keys(order, span))


def file_in_sync(
    art: FileArtifacts, row: tuple | None, path: Path, *, model: str, location: str, physical: str | None, token_budget: int
) -> bool | None:
    """True: in sync; False: changed; None: never ingested (new). ``row``: the file's record as
    ``artifacts.plan_rows`` reads it (None when it has none)."""
    if row is None:
        return None
    sha256, reader_version, chunked, size, mtime_ns, chunks, synced, stamp = row[:8]
    if not sha256:
        return None
    if reader_version != ingest.READER_VERSION:
        return False
    if chunked != f"{ingest.CHUNKER_VERSION}:{token_budget}:{sha256}":
        return False
    try:
        st = path.stat()
    except OSError:
        return False  # it runs, and its read says what is wrong
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        if st.st_size != size or ingest.file_sha256(path) != sha256:
            return False
        art.write_document({**(art.document() or {}), "mtime_ns": st.st_mtime_ns})  # touched, not changed
    version = ["files.db", stamp] if stamp is not None else art.chunks_version()
    mark = ingest.sync_mark(chunked, int(chunks or 0), version, model, location, physical)
    return mark is not None and synced is not None and json.loads(synced) == mark


def last_run_failed(row: tuple | None) -> bool:
    """No stage status recorded, or a stage that did not end "ok" (``row`` from ``artifacts.plan_rows``)."""
    if row is None or not row[-1]:
        return True
    return any(status in {None, "failed", "skipped"} for status in row[8:-1])


def plan_ingest(
    data_dir: Path,
    files: dict[str, Path],
    state_dir: Path,
    *,
    model: str,
    location: str,
    physical: str | None,
    token_budget: int,
    limits=None,
    collection: Collection | None = None,
    compare_up_to_points: int | None = None,
) -> IngestPlan:
    """Compare the folder's ``files`` (key → path, from the scan) with what was last synced; ``limits``:
    the per-file limits the read would run under (``settings.load_limits()`` when None). Given the
    ``collection`` and only due for its daily comparison, the plan compares it (``_compare``); a count out
    of line over ``compare_up_to_points`` points is left to a run (a caller with a time limit: the nightly tick)."""
    plan = IngestPlan()
    condition_of = _conditions(limits, token_budget)
    state = read_sync_state(state_dir)
    if physical is None:
        plan.full, plan.reason = True, "there is no collection yet"
    elif state.get("location") != location or state.get("collection") != physical:
        plan.full, plan.reason = True, "the collection was not compared with the folder yet"
    elif time.time() - float(state.get("verified_at", 0)) >= ingest.VERIFY_AFTER_SECONDS:
        plan.full, plan.reason = True, DUE
    plan.vanished = sorted(set(known_sources(state_dir)) - set(files))
    rows = plan_rows(state_dir, ingest.STAGES)  # one query for every file's record
    with records_batch(state_dir):  # a touched file's new time is a write
        for key, path in files.items():
            row = rows.get(key)
            try:
                verdict = file_in_sync(FileArtifacts(state_dir, key), row, path, model=model, location=location,
                                       physical=physical, token_budget=token_budget)
            except (OSError, PipelineError, ValueError):
                verdict = False
            if verdict is None and not (row and row[-1]):
                plan.new.append(key)
            elif last_run_failed(row) or verdict is None:
                if _fails_as_before(FileArtifacts(state_dir, key), row, path, condition_of):
                    plan.failing_as_before.append(key)
                else:
                    plan.failed.append(key)
            elif verdict:
                plan.unchanged.append(key)
            else:
                plan.changed.append(key)
        if plan.full and plan.reason == DUE and collection is not None:
            _compare(plan, collection, state_dir, location, physical, rows, compare_up_to_points)
    return plan


DUE = "the last full comparison with the collection is older than a day"


def _compare(
    plan: IngestPlan, collection: Collection, state_dir: Path, location: str, physical: str | None,
    rows: dict[str, tuple], up_to_points: int | None = None,
) -> None:
    """The daily comparison made here (``ingest.verify``) instead of a run over every file: the files
    whose points differ from their chunks lose their sync marker and run as changed; the collection
    counts as compared. When its point count is what the files' chunks (``rows``, from
    ``artifacts.plan_rows``) say, only the next files' ids are looked up (``ingest.next_files``, from
    where the last comparison stopped); else every file's count and ids, unless the collection holds
    more than ``up_to_points``. Left to a run over every file then, and when the collection holds points
    of unknown files or cannot be read now (in use by a run, unreachable)."""
    state = read_sync_state(state_dir)
    after = str(state.get("looked_up_to") or "")
    try:
        points = {key: int(rows[key][5] or 0) for key in plan.unchanged}  # each unchanged file's chunks
        others = [*plan.changed, *plan.new, *plan.failed, *plan.failing_as_before, *plan.vanished]
        if ingest.count_as_expected(collection, points, others):
            turn = ingest.next_files(points, after, ingest.IDS_A_DAY)
            out = sorted(ingest.files_missing_points(collection, dict(each_chunk_ids(state_dir, turn))))
            whole = len(turn) == len(points)
            after = turn[-1] if turn and turn[-1] != max(points) else ""
            found = (f"found the points of {len(turn) - len(out):,} files in place" if whole else (
                f"found {sum(points.values()):,} points, as many as the chunks of its {len(points):,} files, and the "
                f"points of {len(turn) - len(out):,} of them in place by id (the next ones' at the next comparison)"))
        else:
            if up_to_points is not None and collection.count() > up_to_points:
                plan.reason = f"the collection is too large to compare here (over {up_to_points:,} points)"
                return
            expected = dict(each_chunk_ids(state_dir, plan.unchanged))
            out = ingest.files_out_of_line(collection, expected, others + [k for k in plan.unchanged if k not in expected])
            after, found = "", f"found the points of {len(expected) - len(out or ()):,} files in place"
    except Exception as exc:  # noqa: BLE001 - the run over every file compares instead
        log.warning("the collection could not be compared with the folder (%s): every file runs", exc)
        return
    if out is None:
        plan.reason = "the collection holds points of files neither the folder nor the state knows"
        return
    ingest.forget_sync_state(state_dir, out)
    if out:
        moved = set(out)
        plan.unchanged = [key for key in plan.unchanged if key not in moved]
        plan.changed = sorted([*plan.changed, *out])
    ingest.write_sync_state(state_dir, {"location": location, "collection": physical, "verified_at": time.time(),
                                        "run_id": None, "looked_up_to": after})
    plan.full, plan.reason = False, ""
    plan.compared = found + (f" and {len(out):,} whose points differ (they run again)" if out else "")


def _conditions(limits, token_budget: int):
    """``stage`` → the digest of its conditions now (``ingest.failures.conditions``), each made once."""
    made: dict[str, str] = {}

    def condition_of(stage: str) -> str:
        if stage not in made:
            made[stage] = ingest.failure_conditions(stage, limits=limits, token_budget=token_budget)
        return made[stage]

    return condition_of


def _fails_as_before(art: FileArtifacts, row: tuple | None, path: Path, condition_of) -> bool:
    """Whether the file failed in raw_documents or normalized_records because of its own bytes and
    neither they nor the conditions changed since (``row`` from ``artifacts.plan_rows``)."""
    if row is None or "failed" not in row[8:10]:
        return False
    stage = "raw_documents" if row[8] == "failed" else "normalized_records"
    try:
        stat = path.stat()
    except OSError:
        return False
    return ingest.fails_as_before(art.status().get(stage), stat, condition_of)
