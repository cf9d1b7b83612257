"""How busy a dense ingest keeps the embedding server: requests in flight over time.

    python benchmarks/in_flight.py              # one fresh dense ingest of the 208 laws
    python benchmarks/in_flight.py --runs 2     # two, one after the other (compare within one run)

Each run is one `legal-rag ingest` of ../shared/data/laws into a new temporary folder, in its own
subprocess, against the loopback server of benchmarks/run.py (50 ms per request + 1 ms per text, 768
dimensions, `EMBEDDINGS_CONCURRENCY` requests in flight: 4 by default). A thread of this process reads
the server's count of requests in flight every millisecond; printed per run: the wall time, the span
from the first request to the last answer, the seconds spent with 0, 1, 2, ... requests in flight
within it, and the pauses with none. The budget of the requests themselves (requests × 50 ms + texts ×
1 ms, ÷ in flight) is what the span would be with every slot always busy (issue 22: the whole ingest
within 1.3× of it). Nothing is written to RESULTS.md; docs/performance.md quotes what it printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEFAULT_DATA, DIM, LATENCY, LATENCY_PER_TEXT, REPO, base_env  # noqa: E402

sys.path.append(str(REPO))
from legal_rag_pipeline_tests.loopback import EmbeddingServer  # noqa: E402

PAUSE = 0.005  # a stretch with nothing in flight longer than this is a pause


def one_run(data: Path, concurrency: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="legal_rag_in_flight_"))
    server = EmbeddingServer(dim=DIM, latency=LATENCY, latency_per_text=LATENCY_PER_TEXT).start()
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.001):
            samples.append((time.perf_counter(), server._in_flight))  # noqa: SLF001 - the fixture's own count

    try:
        env = base_env(work, data, work / "state", server.url)
        env["EMBEDDINGS_CONCURRENCY"] = str(concurrency)
        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        sampler.start()
        proc = subprocess.run([sys.executable, "-m", "legal_rag_pipeline.cli", "ingest"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        texts = sum(len(r.texts) for r in server.requests if r.texts)
        requests = sum(1 for r in server.requests if r.texts)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    busy = [i for i, (_, n) in enumerate(samples) if n > 0]
    spans: collections.Counter[int] = collections.Counter()
    pauses: list[float] = []
    idle = 0.0
    if busy:
        window = samples[busy[0] : busy[-1] + 1]
        for (t0, n), (t1, _) in zip(window, window[1:]):
            spans[n] += t1 - t0
            if n == 0:
                idle += t1 - t0
            elif idle:
                if idle > PAUSE:
                    pauses.append(idle)
                idle = 0.0
    span = sum(spans.values())
    return {
        "exit": proc.returncode, "wall_s": round(wall, 1), "requests": requests, "texts": texts,
        "budget_s": round((requests * LATENCY + texts * LATENCY_PER_TEXT) / concurrency, 1),
        "embedding_span_s": round(span, 1),
        "seconds_by_requests_in_flight": {n: round(s, 1) for n, s in sorted(spans.items())},
        "pauses_with_none": len(pauses), "pauses_s": round(sum(pauses), 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of laws (default ../shared/data/laws)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (EMBEDDINGS_CONCURRENCY)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data} is missing: this benchmark reads the laws of ../shared/data/laws", file=sys.stderr)
        return 2
    print(f"{len(list(args.data.glob('*.txt')))} laws from {args.data}; load {os.getloadavg()}")
    for i in range(args.runs):
        result = one_run(args.data, args.concurrency)
        print(f"run {i + 1}: {result}")
        if result["exit"] != 0:
            return 1
    print(f"load after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
