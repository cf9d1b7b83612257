"""The collection as the source of truth: what a lost state folder costs, and what the lookup costs.

A dense ingest of the 208 laws of ../shared/data/laws against the loopback embedding server of
``benchmarks/run.py`` (50 ms a request + 1 ms a text, 768 dims), QDRANT_PATH outside the state folder;
then the state folder deleted and `legal-rag ingest` again (target: 0 requests); then one article
changed (the lookup of its one text, then its embedding). Each step is a real `legal-rag ingest` in a
fresh process; the lookup itself is also timed in process for 1 and 1,024 ids.

    python benchmarks/collection_truth.py --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    DIM,
    LATENCY,
    LATENCY_PER_TEXT,
    REPO,
    base_env,
    change_one_article,
    ingest_scenario,
    write_results,
)

sys.path.insert(0, str(REPO))
MARKER = "collection-truth"
LAWS = REPO.parent / "shared" / "data" / "laws"


def lookup_cost(env: dict[str, str]) -> dict[str, float]:
    os.environ.update({k: env[k] for k in ("DATA_DIR", "LEGAL_RAG_STATE_DIR", "QDRANT_PATH", "DAGSTER_HOME")})
    from legal_rag_pipeline.resources.qdrant import QdrantStore

    with QdrantStore(path=env["QDRANT_PATH"]).connect() as collection:
        ids = [str(p.id) for p, _ in zip(collection.iter_points(fields=False), range(1024), strict=False)]
        model = next(collection.iter_points(fields=["embedding_model"])).payload["embedding_model"]
        times = {}
        for n in (1, 1024):
            began = time.perf_counter()
            found = collection.vectors_of(ids[:n], model)
            times[f"lookup_{n}_ms"] = 1000 * (time.perf_counter() - began)
            assert len(found) == n
    return times


def main() -> int:
    from legal_rag_pipeline_tests.loopback import EmbeddingServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddingServer(
        dim=DIM, latency=LATENCY, latency_per_text=LATENCY_PER_TEXT
    ) as server:
        work = Path(tmp)
        data, state = work / "data", work / "state"
        data.mkdir()
        for law in sorted(LAWS.glob("*.txt")):
            shutil.copy2(law, data / law.name)
        env = base_env(work, data, state, server.url)
        env["QDRANT_PATH"] = str(work / "qdrant")
        rows.append(ingest_scenario("a: full dense ingest", server, env, work, state))
        rows.append(ingest_scenario("b: nothing changed", server, env, work, state))
        shutil.rmtree(state)
        rows.append(ingest_scenario("c: state folder deleted", server, env, work, state))
        what = change_one_article(data / "Luat-68-2020-QH14-cu-tru-435315.txt")
        rows.append(ingest_scenario("d: one article changed", server, env, work, state, what))
        shutil.rmtree(state)
        what = change_one_article(data / "Luat-68-2020-QH14-cu-tru-435315.txt")
        rows.append(ingest_scenario("e: one article changed, state deleted", server, env, work, state, what))
        lookups = lookup_cost(env)
    load = (load_before, os.getloadavg()[0])
    lines = [
        f"## The collection as the source of truth (208 laws, dense) — {began} UTC\n",
        f"`python benchmarks/collection_truth.py --results benchmarks/RESULTS.md`; load {load[0]:.1f} → {load[1]:.1f}; "
        f"loopback server {LATENCY * 1000:.0f} ms a request + {LATENCY_PER_TEXT * 1000:.0f} ms a text, {DIM} dims.\n",
        "| step | wall | texts embedded | requests | peak memory |",
        "|---|---|---|---|---|",
        *(f"| {r.name} | {r.wall_s:.1f} s | {r.embedded:,} | {r.requests:,} | {r.peak_rss_mb:.0f} MB |" for r in rows),
        "",
        f"The lookup itself (Qdrant Edge, in process): {lookups['lookup_1_ms']:.1f} ms for 1 id, "
        f"{lookups['lookup_1024_ms']:.0f} ms for 1,024 ids with their vectors.\n",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.results:
        write_results(args.results, MARKER, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
