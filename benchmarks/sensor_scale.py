"""The data-folder sensor over a folder of many files: tick time and cursor size.

Splits the laws of ``../shared/data/laws`` into one file per article (``Điều N.``) in a temporary
folder (or writes small generated files when they are absent), then evaluates the real sensor
against a temporary Dagster instance (SQLite) the way the
daemon does: the cursor is carried over and the partition requests are applied, and prints:

* tick 1: every file is new (seen, still "changing": waits one tick);
* tick 2: every file is stable: its partition is added (in chunks) and one run is requested;
* tick 3: nothing changed (the steady state of a large folder).

    python benchmarks/sensor_scale.py                 # 17,448 files from the laws
    python benchmarks/sensor_scale.py --files 17000   # at most this many files
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
LAWS = REPO.parent / "shared" / "data" / "laws"
ARTICLE = re.compile(r"^(?=Điều \d+[a-z]?\.)", re.MULTILINE)


def split_laws(target: Path, limit: int | None, laws: list[Path] | None = None) -> int:
    """One file per article of every law (or of ``laws``; a law's preamble goes with its first article)."""
    count = 0
    if laws is None:
        laws = sorted(LAWS.glob("*.txt")) if LAWS.is_dir() else []
    for law in laws:
        parts = [p for p in ARTICLE.split(law.read_text(encoding="utf-8")) if p.strip()]
        folder = target / law.stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(parts, 1):
            (folder / f"dieu-{i:04d}.txt").write_text(part, encoding="utf-8")
            count += 1
            if limit and count >= limit:
                return count
    while limit and count < limit:  # no laws beside the project: small generated files
        folder = target / f"gen-{count // 1000:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"dieu-{count:05d}.txt").write_text(
            f"Điều {count}. Phạm vi\nLuật số {count}.\n", encoding="utf-8"
        )
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", type=int, default=None, help="at most this many files (default: every article)"
    )
    args = parser.parse_args()

    from legal_rag_pipeline.automation import sensors
    from legal_rag_pipeline.definitions import ingest_job
    from legal_rag_pipeline.partitions import source_files
    from legal_rag_pipeline.resources.data_folder import DataFolder

    with tempfile.TemporaryDirectory(prefix="sensor-scale-") as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        count = split_laws(data, args.files)
        print(f"{count} files written in {time.perf_counter() - started:.1f} s under {data}")
        sensor = sensors.build_data_folder_sensor(ingest_job)
        resources = {"data_folder": DataFolder(data_dir=str(data), state_dir=str(Path(tmp) / "state"))}
        cursor = None
        clock = 1_000_000.0
        sensors.clock = lambda: clock
        with dg.instance_for_test() as instance:
            storage = type(instance.event_log_storage).__name__
            for tick, what in enumerate(
                ("every file new", "every file stable: partitions added, one run", "nothing changed"), 1
            ):
                clock += 5
                began = time.perf_counter()
                with dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources=resources
                ) as context:
                    result = sensor(context)
                evaluated = time.perf_counter() - began
                for request in result.dynamic_partitions_requests or []:  # what the daemon does next
                    if isinstance(request, dg.AddDynamicPartitionsRequest):
                        instance.add_dynamic_partitions(
                            request.partitions_def_name, list(request.partition_keys)
                        )
                    else:
                        for key in request.partition_keys:
                            instance.delete_dynamic_partition(request.partitions_def_name, key)
                applied = time.perf_counter() - began
                cursor = result.cursor
                runs = len(result.run_requests or [])
                state = ""
                if cursor.startswith(sensors.CURSOR_FILE_PREFIX):
                    name = cursor[len(sensors.CURSOR_FILE_PREFIX) :] + ".cursor"
                    state = f" (state file {(Path(tmp) / 'state' / 'sensor' / name).stat().st_size:,} bytes)"
                print(
                    f"tick {tick} ({what}): sensor {evaluated:.2f} s, with partition requests {applied:.2f} s; "
                    f"{runs} run requested; cursor {len(cursor.encode()):,} bytes{state}; "
                    f"{len(instance.get_dynamic_partitions(source_files.name)):,} partitions ({storage})"
                )
        print(
            f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
            f"{os.cpu_count()} cores, python {sys.version.split()[0]}, dagster {dg.__version__}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
