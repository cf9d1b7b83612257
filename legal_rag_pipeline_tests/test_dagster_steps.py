"""dagster_steps.py: a step's per-partition events are not held to the step's end, hooks still get
theirs, a partition's materialisation is stored as Dagster's logging stores it, and the copies are of
the installed Dagster's functions."""

import gc

import dagster as dg
import pytest
from dagster._core.execution.plan import execute_plan
from dagster._core.executor import in_process

from legal_rag_pipeline import dagster_steps
from legal_rag_pipeline.dagster_steps import (
    ASSET_EVENT_SHA256,
    ORIGINAL_SHA256,
    asset_event_digest,
    install,
    original_digest,
)
from legal_rag_pipeline.instance import execute_keeping_failures

FILES = [f"law-{i:04d}.txt" for i in range(150)]
FIRST, SECOND = dg.AssetKey("first"), dg.AssetKey("second")
alive: list[int] = []


def _materialisations_of_first() -> int:
    gc.collect()
    from dagster._core.events import DagsterEvent

    return sum(
        1 for o in gc.get_objects()
        if isinstance(o, DagsterEvent) and o.event_type_value == "ASSET_MATERIALIZATION" and o.asset_key == FIRST
    )


@dg.multi_asset(
    partitions_def=dg.StaticPartitionsDefinition(FILES),
    backfill_policy=dg.BackfillPolicy.single_run(),
    specs=[dg.AssetSpec(FIRST), dg.AssetSpec(SECOND, deps=[FIRST])],
)
def two_stages(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(asset_key=FIRST)  # one event per file, stored before the body goes on
    alive.append(_materialisations_of_first())
    yield dg.MaterializeResult(asset_key=SECOND)


JOB = dg.Definitions(assets=[two_stages]).resolve_implicit_global_asset_job_def()


def _run(instance, job=None, run_config=None):
    """One run of ``job`` (``JOB``) over every file, as the CLI launches it."""
    return execute_keeping_failures(
        job or JOB, instance,
        tags={"dagster/asset_partition_range_start": FILES[0], "dagster/asset_partition_range_end": FILES[-1]},
        run_config=run_config or {},
    )


def _installed(copy: str):
    """What Dagster runs where ``copy`` (a function of dagster_steps.py) is meant to be."""
    from dagster._core.execution.plan import execute_step

    if copy == "step_loop":
        return in_process.inner_plan_execution_iterator
    return execute_step._dagster_event_for_asset_event


@pytest.mark.parametrize(
    ("copy", "digest", "expected", "of_what"),
    [
        ("step_loop", original_digest, ORIGINAL_SHA256, "inner_plan_execution_iterator"),
        ("asset_event", asset_event_digest, ASSET_EVENT_SHA256, "a function of asset_event_path()"),
    ],
)
def test_each_copy_is_of_the_installed_dagster_and_is_installed(copy, digest, expected, of_what):
    assert digest() == expected, (
        f"Dagster's {of_what} changed: compare it with dagster_steps.{copy}, carry the changes over and "
        "update its digest"
    )
    assert install() is True
    assert _installed(copy) is getattr(dagster_steps, copy)


def test_a_step_does_not_hold_the_events_of_its_files(monkeypatch):
    assert install() is True
    with dg.instance_for_test() as instance:
        alive.clear()
        result = _run(instance)
        assert result.success
        stored = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                                              limit=5000).records
        assert len(stored) == 2 * len(FILES)  # every file's materialisation of both assets is in the instance
        held_with_ours = alive[-1]

        # Dagster's own loop, to show what the check measures: every event of the step is held
        monkeypatch.setattr(in_process, "inner_plan_execution_iterator", execute_plan.inner_plan_execution_iterator)
        assert _run(instance).success
        held_with_dagster_s = alive[-1]
    assert held_with_dagster_s >= len(FILES)
    assert held_with_ours < 20, f"{held_with_ours} materialisations of the step's first asset still held"


calls: list[str] = []


@dg.success_hook
def on_success(context: dg.HookContext):
    calls.append(f"ok {context.op.name}")


@dg.failure_hook
def on_failure(context: dg.HookContext):
    calls.append(f"failed {context.op.name}")


@dg.op
def reads_fine() -> int:
    return 1


@dg.op
def cannot_read(n: int) -> None:
    raise dg.Failure(description="the file cannot be read")


@dg.job(hooks={on_success, on_failure}, executor_def=dg.in_process_executor)
def hooked():
    cannot_read(reads_fine())


@pytest.mark.parametrize("loop", ["ours", "dagster's"])
def test_hooks_still_get_their_step_s_events(loop, monkeypatch):
    if loop == "ours":
        assert install() is True
    else:
        monkeypatch.setattr(in_process, "inner_plan_execution_iterator", execute_plan.inner_plan_execution_iterator)
    calls.clear()
    with dg.instance_for_test() as instance:
        result = execute_keeping_failures(hooked, instance, tags={}, run_config={})
    assert not result.success
    assert calls == ["ok reads_fine", "failed cannot_read"]


# --- asset_event: a partition's materialisation stored without Python's logging, as logging stores it ---

@dg.multi_asset(
    partitions_def=dg.StaticPartitionsDefinition(FILES),
    backfill_policy=dg.BackfillPolicy.single_run(),
    specs=[dg.AssetSpec(FIRST), dg.AssetSpec(SECOND, deps=[FIRST])],
)
def described_stages(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(asset_key=FIRST, metadata={"files": len(context.partition_keys)})
    yield dg.MaterializeResult(asset_key=SECOND)


DESCRIBED = dg.Definitions(assets=[described_stages]).resolve_implicit_global_asset_job_def()
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # legal-rag ingest's console logger


def _stored(instance, run_id) -> list[str]:
    """The run's stored materialisations as text, with what differs between two runs made alike (run id,
    time, the data version Dagster derives from the run id)."""
    import re

    from dagster._serdes import serialize_value

    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=5000).records
    texts = []
    for record in records:
        text = serialize_value(record.event_log_entry._replace(timestamp=0.0)).replace(run_id, "RUN")
        # the data versions and event pointers Dagster derives from the run and the stored event ids
        texts.append(re.sub(r'("dagster/(?:data_version|input_data_version/\w+|input_event_pointer/\w+)": ?)"?\w+"?',
                            r'\1"V"', text))
    return sorted(texts)


def test_a_partition_s_materialisation_is_stored_as_dagster_s_logging_stores_it(monkeypatch):
    from dagster._core.execution.plan import execute_step

    assert install() is True
    stock = dagster_steps._stock_asset_event
    with dg.instance_for_test() as instance:
        ours = _run(instance, DESCRIBED, QUIET)
        monkeypatch.setattr(execute_step, "_dagster_event_for_asset_event", stock)
        theirs = _run(instance, DESCRIBED, QUIET)
        assert ours.success and theirs.success
        stored_ours, stored_theirs = _stored(instance, ours.run_id), _stored(instance, theirs.run_id)
        # every partition of both assets, in the UI's partition status too
        assert len(stored_ours) == 2 * len(FILES)
        assert stored_ours == stored_theirs
        for key in (FIRST, SECOND):
            assert set(instance.get_materialized_partitions(key)) == set(FILES)


def test_a_logger_that_shows_debug_still_sees_every_partition_s_materialisation(capfd):
    assert install() is True
    with dg.instance_for_test() as instance:
        result = _run(instance, DESCRIBED, {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}})
        assert result.success
        assert len(_stored(instance, result.run_id)) == 2 * len(FILES)
    shown = capfd.readouterr().err
    assert shown.count("ASSET_MATERIALIZATION") >= 2 * len(FILES), "the console logger missed materialisations"
