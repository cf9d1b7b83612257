"""The Dagster instance the CLI records its runs in (the same one `dagster dev` shows)."""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from .memory import LOADING_GC_THRESHOLD
from .registered import dagster_home

TEMPLATE = Path(__file__).parent / "instance_config" / "dagster.yaml"
# A home whose history is in Dagster's sharded layout (a database per run + index.db) keeps a
# storage that reads it: the one-file storage of new homes cannot.
SHARDED_TEMPLATE = Path(__file__).parent / "instance_config" / "dagster-sharded.yaml"
WRITER_POOL = "qdrant_writer"
EVENT_BATCH_SIZE = "1000"
# dagster.yaml files this project wrote before (sha256): replaced by the current one, since nobody
# edited them; an edited file is left alone.
EARLIER_TEMPLATES = {
    "6d3794fb5cf18be3770ba8028e408c78296072b6b75aa6f6804808af847b6c09",
    "893726a4e435ed3a2a5b2fa84f23d6bc83e84b55ff0e441d6833620cccb063d5",
    "4fe9f2af62ad9a1eb436017a73dffc4d4cd33e0fb7000e4c18d31df6f5df29f2",  # the sharded batched storage
    "c76c2a56ac307285f992788c1334f63ae14821111dbdcc2f72f4160a6d30681e",  # the same, kept for a sharded history
    "528669d27e6dbfb82482231754e10c49caeb88bdc2cb6591050598b4729b9871",  # the one-file storage, Dagster's compute logs
}


def use_event_batches() -> None:
    """Dagster writes a run's planned and materialisation events in batches when this is set (its
    own switch, off by default); with the batched SQLite storage (dagster_storage.py) and with
    PostgreSQL a batch is one write. Set in every process that creates or executes runs: the CLI,
    `legal-rag dev` (so the daemon and webserver inherit it) and the code location."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)


RUN_GC_THRESHOLD = LOADING_GC_THRESHOLD  # as while the modules load (memory.py); Python's default is (700, 10, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's garbage-collection threshold raised while a run works, then restored.

    A run over thousands of files makes millions of short-lived objects (Dagster's events and their
    records); at Python's default threshold the collector runs every 700 of them and re-scans the
    run's growing heap: 5,000 one-article files took 32 s instead of 34-38 s with the threshold
    raised (benchmarks/many_files.py measures the whole). What was alive when the outermost one began
    (modules, Dagster's definitions) is frozen (``gc.freeze``) until it ends, so the run's full
    collections do not scan it each time: the 17,656-file split's run spent 0.60 s instead of 1.32 s
    in the collector. The CLI wraps its runs in it and each ingestion asset its own work, so runs the
    daemon launches get it too."""
    global _RUNS_WORKING
    threshold = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLD)
    outermost = _RUNS_WORKING == 0
    _RUNS_WORKING += 1
    if outermost:
        gc.freeze()  # what was alive before the run (modules, definitions) is not scanned by its collections
    try:
        yield
    finally:
        _RUNS_WORKING -= 1
        if outermost:
            gc.unfreeze()
        gc.set_threshold(*threshold)


_RUNS_WORKING = 0

# How long a thread may hold Python's lock while another waits for it (Python's default: 5 ms).
REQUESTS_SWITCH_INTERVAL = 0.001


@contextmanager
def prompt_requests() -> Iterator[None]:
    """Python's switch interval lowered while a step has embedding requests in flight, then restored.

    A request's thread that gets its answer waits for Python's lock to read it and send the next
    request; the chunking and the writer's threads hold it up to the switch interval each time. At
    1 ms instead of 5 ms a dense ingest of the 208 laws took 56.2 / 56.7 s against 57.5 / 57.8 s
    (`benchmarks/in_flight.py`, interleaved; docs/performance.md, twenty-sixth pass). A bm25-only run,
    with no requests, keeps the default."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(REQUESTS_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


# The events a caller of ``execute_keeping_failures`` reads: why a step or the run failed.
KEPT_EVENTS = frozenset({"STEP_FAILURE", "RUN_FAILURE", "PIPELINE_FAILURE"})  # the run failure is "PIPELINE_FAILURE" in 1.13


def execute_keeping_failures(
    job: dg.JobDefinition, instance: dg.DagsterInstance, *, tags: dict[str, str], run_config: dict
) -> dg.ExecuteInProcessResult:
    """``job.execute_in_process(raise_on_error=False)``, holding only the failure events in memory.

    ``execute_in_process`` keeps every event of the run in a list for its result: one per file and
    asset (a materialisation), about 1.4 kB each, so a run held what the instance had already stored:
    81 MB of the peak at 17,656 one-article files (994 -> 913 MB), about four times that at 70,624. Here the run's events are recorded in the instance as usual and
    dropped from memory as they pass; the result keeps the run (``success``, ``run_id``) and the
    step and run failures (``all_events``). The steps are Dagster's own ``core_execute_in_process``
    (dagster is pinned; test_run_memory.py and every CLI test run this path)."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import (
        ExecuteRunWithPlanIterable,
        create_execution_plan,
        job_execution_iterator,
    )
    from dagster._core.execution.context_creation_job import (
        PlanOrchestrationContextManager,
        orchestration_context_event_generator,
    )
    from dagster._core.execution.execute_in_process import merge_run_tags

    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={})
    wrapped = InMemoryJob(job_def=ephemeral)
    plan = create_execution_plan(wrapped, run_config=run_config, instance_ref=instance.get_ref())
    run = instance.create_run_for_job(
        job_def=ephemeral,
        run_config=run_config,
        tags={**ephemeral.run_tags, **merge_run_tags(job, None, tags, None, instance, run_config)},
        execution_plan=plan,
    )
    events = ExecuteRunWithPlanIterable(
        execution_plan=plan,
        iterator=job_execution_iterator,
        execution_context_manager=PlanOrchestrationContextManager(
            context_event_generator=orchestration_context_event_generator,
            job=wrapped,
            execution_plan=plan,
            dagster_run=run,
            instance=instance,
            run_config=run_config,
            executor_defs=None,
            output_capture=None,
            raise_on_error=False,
        ),
    )
    kept = [event for event in events if event.event_type_value in KEPT_EVENTS]
    return dg.ExecuteInProcessResult(
        job_def=ephemeral, event_list=kept, dagster_run=instance.get_run_by_id(run.run_id), output_capture={}
    )


def ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or ./.dagster_home when unset; give a new one the project's dagster.yaml."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if not config.exists() or hashlib.sha256(config.read_bytes()).hexdigest() in EARLIER_TEMPLATES:
        sharded = (home / "history" / "runs" / "index.db").exists()
        template = SHARDED_TEMPLATE if sharded else TEMPLATE
        if not config.exists() or config.read_bytes() != template.read_bytes():
            shutil.copyfile(template, config)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    set_pool_limit(instance)
    return instance


def set_pool_limit(instance: dg.DagsterInstance, limit: int = 1) -> None:
    """Writers to the collection never overlap: the pool's limit is set explicitly, not defaulted."""
    storage = instance.event_log_storage
    try:
        if storage.get_concurrency_info(WRITER_POOL).slot_count != limit:
            storage.set_concurrency_slots(WRITER_POOL, limit)
    except NotImplementedError:  # storages without pools (in-memory test instances)
        pass
