"""What Dagster's own bookkeeping costs for N per-file partitions: the ingest's four assets, doing nothing.

Four assets in a chain, partitioned like the pipeline's (one dynamic partition per file), each
returning an empty result for every partition of a single run, in a fresh DAGSTER_HOME with the
project's dagster.yaml (the batched SQLite storage), ``DAGSTER_EVENT_BATCH_SIZE`` and the step loop of
dagster_steps.py, as `legal-rag ingest` runs them. What it stores is what any run over N files stores: a planned and a
materialisation event per file and asset. It prints the run's seconds (no process start, no import).

    python benchmarks/dagster_floor.py 17656
"""

import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory(prefix="dagster-floor-") as home:
        os.environ["DAGSTER_HOME"] = home
        from legal_rag_pipeline.dagster_steps import install
        from legal_rag_pipeline.instance import get_instance, use_event_batches

        use_event_batches()
        install()  # the step loop and the partitions' events of `legal-rag ingest` (definitions.py does this)
        import dagster as dg

        partitions = dg.DynamicPartitionsDefinition(name="source_files")
        chain = []
        for name in ("raw_documents", "normalized_records", "embedding_batches", "qdrant_collection"):

            @dg.asset(name=name, partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(),
                      deps=chain[-1:])
            def step(context: dg.AssetExecutionContext):
                return dg.MaterializeResult()

            chain.append(step)
        job = dg.define_asset_job("floor", selection=chain, partitions_def=partitions)
        defs = dg.Definitions(assets=chain, jobs=[job])
        keys = [f"law-{i // 1000:03d}/dieu-{i:05d}.txt" for i in range(files)]
        with get_instance() as instance:
            instance.add_dynamic_partitions("source_files", keys)
            began = time.perf_counter()
            result = defs.resolve_job_def("floor").execute_in_process(
                instance=instance,
                tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
            elapsed = time.perf_counter() - began
        assert result.success
        print(f"{files} partitions x 4 no-op assets: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
