"""Time one tick of the nightly schedule (its plan) on the project the environment configures.

Run it after `legal-rag ingest` with the same DATA_DIR, LEGAL_RAG_STATE_DIR, QDRANT_PATH and
DAGSTER_HOME: it evaluates `nightly_reingest` and `nightly_prune_vanished` as the daemon does (their
resources, the instance) and prints how long each took and what it decided. Nothing is launched.

    DATA_DIR=... LEGAL_RAG_STATE_DIR=... QDRANT_PATH=... DAGSTER_HOME=... python benchmarks/nightly_tick.py
"""

from __future__ import annotations

import os
import time

import dagster as dg


def main() -> int:
    from legal_rag_pipeline.automation import PRUNE_SCHEDULE_NAME, SCHEDULE_NAME
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.instance import get_instance
    from legal_rag_pipeline.settings import load_settings

    defs = build_definitions(load_settings())
    with get_instance() as instance:
        for name in (SCHEDULE_NAME, PRUNE_SCHEDULE_NAME):
            schedule = defs.resolve_schedule_def(name)
            began = time.perf_counter()
            with dg.build_schedule_context(instance=instance, resources=defs.resources) as context:
                data = schedule.evaluate_tick(context)
            elapsed = time.perf_counter() - began
            decided = (
                "; ".join(
                    f"run over {r.tags.get('dagster/asset_partition_range_start')} .. "
                    f"{r.tags.get('dagster/asset_partition_range_end')} {dict(r.tags)}"
                    for r in data.run_requests
                )
                if data.run_requests
                else f"skipped: {data.skip_message}"
            )
            print(f"{name}: {elapsed:.2f} s; {decided}")
    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores, dagster {dg.__version__}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
