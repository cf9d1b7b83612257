"""Time what the UI's asset page asks the webserver for a per-file asset: its partitions and their
statuses (materialised, failed, in progress, missing), through Dagster's own GraphQL schema.

Run it with the project's environment (DATA_DIR, LEGAL_RAG_STATE_DIR, QDRANT_PATH, DAGSTER_HOME) after
an ingest; it loads the code location from workspace.yaml in a subprocess, as the webserver does, and
prints the seconds of the first query (the partition status cache brought up to date) and of a second.

    DAGSTER_HOME=... python benchmarks/ui_partitions.py
"""

from __future__ import annotations

import time
from pathlib import Path

QUERY = """
query Partitions($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions unmaterializedPartitions }
      }
    }
  }
}
"""


def main() -> int:
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from legal_rag_pipeline.instance import get_instance

    workspace = str(Path(__file__).resolve().parents[1] / "workspace.yaml")
    with get_instance() as instance, define_out_of_process_context(workspace, None, instance) as context:
        for asset in ("raw_documents", "qdrant_collection"):
            times = []
            for _ in range(2):
                began = time.perf_counter()
                result = execute_dagster_graphql(context, QUERY, variables={"path": [asset]})
                times.append(time.perf_counter() - began)
            node = result.data["assetNodeOrError"]
            statuses = node["assetPartitionStatuses"]
            keys = len(node["partitionKeysByDimension"][0]["partitionKeys"])
            print(f"{asset}: {keys} partitions, {len(statuses['materializedPartitions'])} materialised, "
                  f"{len(statuses['failedPartitions'])} failed; first query {times[0]:.2f} s, second {times[1]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
