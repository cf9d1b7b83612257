"""Cost of reading each file in the child process (readers/worker.py) against reading it in process.

    python scripts/bench_read_isolation.py ../shared/data/laws [rounds]

Each round reads every file of the folder through the path gate twice, into two fresh state folders:
once in this process, once through the child (started anew for the round, so its start is counted).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from legal_rag_pipeline.paths import open_source
from legal_rag_pipeline.readers.limits import Limits
from legal_rag_pipeline.readers.worker import _worker, read_into_state, read_isolated


def _run(read, data: Path, keys: list[str], state: Path, limits: Limits) -> float:
    started = time.perf_counter()
    for key in keys:
        with open_source(data, key) as handle:
            read(handle.fd, key, Path(key).suffix.lower(), state, limits)
    return time.perf_counter() - started


def main() -> None:
    data = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    keys = sorted(p.name for p in data.iterdir() if p.is_file())
    limits = Limits()
    for n in range(rounds):
        _worker.stop()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            direct = _run(read_into_state, data, keys, Path(a), limits)
            isolated = _run(read_isolated, data, keys, Path(b), limits)
        print(
            f"round {n + 1}: {len(keys)} files, in process {direct:.3f} s, in the child {isolated:.3f} s "
            f"(its start included): {(isolated - direct) / len(keys) * 1000:+.2f} ms per file"
        )
    _worker.stop()


if __name__ == "__main__":
    main()
