"""Dagster's in-process step loop without every event of a step held to the step's end.

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
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack

# sha256 of inspect.getsource(dagster._core.execution.plan.execute_plan.inner_plan_execution_iterator), dagster 1.13.27
ORIGINAL_SHA256 = "87243a56e08e8a6aea84fe2ad40e0e910b3ec177644bef898ca91c9502c024af"


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


def original_digest() -> str:
    """The sha256 of the installed Dagster's ``inner_plan_execution_iterator`` source."""
    import hashlib
    import inspect

    from dagster._core.execution.plan import execute_plan

    return hashlib.sha256(inspect.getsource(execute_plan.inner_plan_execution_iterator).encode()).hexdigest()


def install() -> bool:
    """Dagster's in-process executor runs its steps with ``step_loop``, when the installed Dagster's
    function is the one it copies (else Dagster's own is left, and False returned)."""
    from dagster._core.executor import in_process

    if in_process.inner_plan_execution_iterator is step_loop:
        return True
    if original_digest() != ORIGINAL_SHA256:
        return False
    in_process.inner_plan_execution_iterator = step_loop
    return True
