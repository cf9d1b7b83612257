"""Dagster's in-process step loop without every event of a step held to the step's end, and a
partition's materialisation stored without a trip through Python's logging.

Dagster's ``inner_plan_execution_iterator`` (dagster/_core/execution/plan/execute_plan.py) keeps
each event a step yields in a list, to hand it to the step's hooks when the step ends, and keeps it
when the step has no hook. An ingestion step yields a materialisation per file and asset: at 5,148
one-article files, 10,317 events of about 1.2 kB were alive when ``qdrant_collection`` ran its
checks, at 70,624 files some 170 MB, which was the ×4 split's peak (docs/performance.md, fourteenth
pass). ``step_loop`` is that function with one change: the list is kept only for a step that has
hooks (none of ours has). Every job of this project runs in process (``dg.in_process_executor``), so
``install`` puts it where Dagster's in-process executor looks it up. Dagster is pinned;
``ORIGINAL_SHA256`` is the digest of the function this copies, and ``test_dagster_steps.py`` fails
when a Dagster upgrade changes it, so the copy is looked at again.

``asset_event`` is the second change. Dagster hands each partition's materialisation of a result
over many files to its log manager, which makes it a ``logging.LogRecord``, passes it through
``logging``'s handlers, converts it to a Dagster record and from that to the ``EventLogEntry`` the
instance stores: 18 of the 124 s of the 17,656-file split's first ingest under a profiler, the storage
itself 9 of them (docs/performance.md, eighteenth pass). When nothing but the instance would receive the
event (the run's loggers do not show DEBUG, as ``legal-rag ingest``'s console logger at CRITICAL;
no other handler, filter or parent logger), ``asset_event`` builds the same ``DagsterEvent`` and
``EventLogEntry`` and hands the entry to the instance with its batch; otherwise Dagster's own path
runs. ``ASSET_EVENT_SHA256`` is the digest of the Dagster functions that path goes through, checked
like the loop's, and ``test_dagster_steps.py`` compares what both paths store, event for event.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

# sha256 of inspect.getsource(dagster._core.execution.plan.execute_plan.inner_plan_execution_iterator), dagster 1.13.27
ORIGINAL_SHA256 = "87243a56e08e8a6aea84fe2ad40e0e910b3ec177644bef898ca91c9502c024af"
# sha256 of the sources of the functions a materialisation goes through from the step to the instance
# (``asset_event_path``), dagster 1.13.27
ASSET_EVENT_SHA256 = "1396e162e00815ef601b27bf2d05316965b85debd8a6a02183f584e800d5e5d5"


def step_loop(job_context, execution_plan, instance_concurrency_context=None) -> Iterator:
    """``inner_plan_execution_iterator`` (dagster 1.13.27), the step's events kept only for its hooks."""
    import dagster._check as check
    from dagster._core.events import DagsterEvent
    from dagster._core.execution.compute_logs import create_compute_log_file_key
    from dagster._core.execution.context.system import PlanExecutionContext
    from dagster._core.execution.plan.execute_plan import (
        _handle_compute_log_setup_error,
        _handle_compute_log_teardown_error,
        _trigger_hook,
        dagster_event_sequence_for_step,
    )
    from dagster._core.execution.plan.plan import ExecutionPlan

    check.inst_param(job_context, "pipeline_context", PlanExecutionContext)
    check.inst_param(execution_plan, "execution_plan", ExecutionPlan)
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    with execution_plan.start(
        retry_mode=job_context.retry_mode,
        instance_concurrency_context=instance_concurrency_context,
        step_dependency_config=job_context.step_dependency_config,
    ) as active_execution:
        with ExitStack() as capture_stack:
            file_key = create_compute_log_file_key()
            log_key = compute_log_manager.build_log_key_for_run(job_context.run_id, file_key)
            try:
                log_context = capture_stack.enter_context(compute_log_manager.capture_logs(log_key))
                yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            except Exception:
                yield from _handle_compute_log_setup_error(job_context, sys.exc_info())
            while not active_execution.is_complete:
                step = active_execution.get_next_step()
                yield from active_execution.concurrency_event_iterator(job_context)
                if not step:
                    active_execution.sleep_til_ready()
                    continue
                step_context = job_context.for_step(step, active_execution.get_known_state())
                # the one change: the events are kept only when a hook will be handed them
                hooked = bool(step_context.job_def.get_all_hooks_for_handle(step_context.node_handle))
                step_event_list = []
                missing_resources = [
                    resource_key
                    for resource_key in step_context.required_resource_keys
                    if not hasattr(step_context.resources, resource_key)
                ]
                check.invariant(
                    len(missing_resources) == 0,
                    f"Expected step context for solid {step_context.op.name} to have all required"
                    f" resources, but missing {missing_resources}.",
                )
                for step_event in check.generator(dagster_event_sequence_for_step(step_context)):
                    dagster_event = check.inst(step_event, DagsterEvent)
                    if hooked:
                        step_event_list.append(dagster_event)
                    yield dagster_event
                    active_execution.handle_event(dagster_event)
                active_execution.verify_complete(job_context, step.key)
                for event in active_execution.plan_events_iterator(job_context):
                    if hooked:
                        step_event_list.append(event)
                    yield event
                yield from _trigger_hook(step_context, step_event_list)
            try:
                capture_stack.close()
            except Exception:
                yield from _handle_compute_log_teardown_error(job_context, sys.exc_info())


def asset_event_path() -> list:
    """The Dagster functions a step's asset event goes through to the instance, which ``asset_event`` does
    in one: the step's function, the event's constructor and its logging, the log handler's conversion,
    the instance's handler."""
    from dagster._core.events import DagsterEvent, log_step_event
    from dagster._core.events.log import construct_event_record
    from dagster._core.execution.plan import execute_step
    from dagster._core.instance.types import _EventListenerLogHandler
    from dagster._core.log_manager import DagsterLogHandler, DagsterLogManager, construct_log_record_metadata

    stock = execute_step._dagster_event_for_asset_event
    return [
        execute_step._log_materialization_or_observation_events_for_asset,
        _stock_asset_event if stock is asset_event else stock,
        DagsterEvent.asset_materialization,
        DagsterEvent.from_step,
        log_step_event,
        DagsterLogManager.log_dagster_event,
        DagsterLogManager.log,
        DagsterLogHandler.emit,
        DagsterLogHandler._convert_record,
        DagsterLogHandler.filter,
        construct_log_record_metadata,
        _EventListenerLogHandler.emit,
        construct_event_record,
    ]


def _digest(functions) -> str:
    """The sha256 of the sources of ``functions``, one after the other."""
    import hashlib
    import inspect

    return hashlib.sha256("".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


def asset_event_digest() -> str:
    """The sha256 of the installed Dagster's ``asset_event_path`` sources."""
    return _digest(asset_event_path())


def _only_to_the_instance(log):
    """The instance's event handler when it alone would receive a DEBUG event logged on ``log`` (the
    step's log manager), else None (a logger that shows DEBUG, another handler, a filter)."""
    from dagster._core.instance.types import _EventListenerLogHandler
    from dagster._core.log_manager import DagsterLogHandler

    if log.disabled or log.filters or log.parent is not None or logging.root.manager.disable >= logging.DEBUG:
        return None
    if len(log.handlers) != 1 or type(log.handlers[0]) is not DagsterLogHandler:
        return None
    handler = log.handlers[0]
    if handler.filters or handler.level > logging.DEBUG:
        return None
    if not getattr(handler._local_thread_context, "should_capture", True):  # inside another record's emit
        return None
    if any(logger.isEnabledFor(logging.DEBUG) for logger in handler._loggers):
        return None
    inner = handler._handlers
    if len(inner) != 1 or type(inner[0]) is not _EventListenerLogHandler:
        return None
    if inner[0].filters or inner[0].level > logging.DEBUG:
        return None
    return handler, inner[0]


_stock_asset_event = None


def asset_event(step_context, materialization, batch_metadata):
    """``_dagster_event_for_asset_event`` (dagster 1.13.27): a partition's materialisation stored as
    Dagster's logging would store it, without the logging, when only the instance would receive it."""
    from dagster._core.definitions.events import AssetMaterialization
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    route = None
    if batch_metadata is not None and isinstance(materialization, AssetMaterialization):
        route = _only_to_the_instance(step_context.log)
    if route is None:
        return _stock_asset_event(step_context, materialization, batch_metadata)
    handler, listener = route
    step = step_context.step
    # DagsterEvent.asset_materialization → from_step
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name=step_context.job_name,
        step_handle=step.handle,
        node_handle=step.node_handle,
        step_kind_value=step.kind.value,
        logging_tags=step_context.event_tags,
        event_specific_data=StepMaterializationData(materialization),
        message=materialization.description
        or "Materialized value{}.".format(f" {materialization.label}" if materialization.label else ""),
        pid=os.getpid(),
    )
    # log_step_event → DagsterLogHandler._convert_record → _EventListenerLogHandler.emit → construct_event_record
    metadata = handler.metadata
    entry = EventLogEntry(
        error_info=None,
        level=logging.DEBUG,
        user_message=event.message,
        run_id=metadata["run_id"],
        timestamp=time.time(),
        step_key=metadata["step_key"] or event.step_key,
        job_name=metadata["job_name"],
        dagster_event=event,
    )
    listener._instance.handle_new_event(entry, batch_metadata=batch_metadata)
    return event


def original_digest() -> str:
    """The sha256 of the installed Dagster's ``inner_plan_execution_iterator`` source."""
    from dagster._core.execution.plan import execute_plan

    return _digest([execute_plan.inner_plan_execution_iterator])


def install() -> bool:
    """Dagster's in-process executor runs its steps with ``step_loop``, and a step's asset events go
    through ``asset_event``, each when the installed Dagster's functions are the ones it copies (else
    Dagster's own is left, and False returned)."""
    global _stock_asset_event
    from dagster._core.execution.plan import execute_step
    from dagster._core.executor import in_process

    if execute_step._dagster_event_for_asset_event is not asset_event and asset_event_digest() == ASSET_EVENT_SHA256:
        _stock_asset_event = execute_step._dagster_event_for_asset_event
        execute_step._dagster_event_for_asset_event = asset_event
    if in_process.inner_plan_execution_iterator is not step_loop and original_digest() == ORIGINAL_SHA256:
        in_process.inner_plan_execution_iterator = step_loop
    return in_process.inner_plan_execution_iterator is step_loop and execute_step._dagster_event_for_asset_event is asset_event
