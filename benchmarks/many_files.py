"""Many small files: the same text as one file per article against one file per law (issue 11).

For each size, the laws of ``../shared/data/laws`` (in name order, as many as it takes to reach
that many articles; ``all`` = the 208 laws) are ingested twice into fresh projects, bm25 only,
embedded defaults (Qdrant Edge, a SQLite DAGSTER_HOME), each step a real `legal-rag` command:

1. the laws as they are (one file per law);
2. the same laws split into one file per article (``split_laws`` of ``sensor_scale.py``), then on
   that split project: `legal-rag ingest` with nothing changed, the nightly schedule's tick
   (``nightly_tick.py``: its plan, nothing launched), and one article changed: `legal-rag ingest`
   then `legal-rag search` for a word only the new version has (the time to searchable);
3. Dagster alone (``dagster_floor.py``): as many partitions through four assets that do nothing.

The laws are ingested once more after the split, into another fresh project, and the split is compared
with the mean of the two: the machine's speed drifts over the minutes the three ingests take, and one
law run beside the split gave anything from 1.32× to 1.86× with little change in the code.

It prints a table and, with ``--results``, writes it into ``benchmarks/RESULTS.md`` (between the
``many-files`` markers) with the machine's load. Run it alone: the figures are wall-clock times on a
shared machine.

    python benchmarks/many_files.py --sizes 5000,all --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import checkout_path, write_results  # noqa: E402  (the other benchmarks' RESULTS.md sections)
from sensor_scale import ARTICLE, LAWS, REPO, split_laws  # noqa: E402

MARKER = "many-files"


def laws_for(size: str) -> list[Path]:
    laws = sorted(LAWS.glob("*.txt"))
    if size == "all":
        return laws
    chosen, articles = [], 0
    for law in laws:
        chosen.append(law)
        articles += len([p for p in ARTICLE.split(law.read_text(encoding="utf-8")) if p.strip()])
        if articles >= int(size):
            break
    return chosen


def project(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HF_TOKEN", "HUGGINGFACE_API_KEY", "EMBEDDINGS_ENDPOINT_URL"}}
    env.update(
        DATA_DIR=str(root / "data"),
        LEGAL_RAG_STATE_DIR=str(root / "state"),
        QDRANT_PATH=str(root / "qdrant"),
        DAGSTER_HOME=str(root / "dagster_home"),
        PYTHONPATH=checkout_path(),
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    return env


def timed(env: dict[str, str], *argv: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def legal_rag(env, *args: str) -> tuple[float, str]:
    return timed(env, sys.executable, "-m", "legal_rag_pipeline.cli", *args)


def events(env) -> int:
    """Rows of Dagster's event log in every SQLite file of the instance (``dagster_storage.py``'s layout)."""
    count = 0
    for path in (Path(env["DAGSTER_HOME"]) / "history").rglob("*.db"):
        with sqlite3.connect(path) as db:
            if db.execute("select 1 from sqlite_master where type = 'table' and name = 'event_logs'").fetchone():
                count += db.execute("select count(*) from event_logs").fetchone()[0]
    return count


def _ingest_laws(laws: list[Path], root: Path) -> float:
    """Seconds of a first `legal-rag ingest` of ``laws``, one file each, in a new project at ``root``."""
    env = project(root)
    for law in laws:
        shutil.copy2(law, Path(env["DATA_DIR"]) / law.name)
    return legal_rag(env, "ingest", "--quiet")[0]


def measure(size: str, work: Path) -> dict:
    laws = laws_for(size)
    row: dict = {"size": size, "laws": len(laws)}

    row["laws_ingest_s"] = _ingest_laws(laws, work / f"laws-{size}")
    print(f"[{size}] {len(laws)} laws: {row['laws_ingest_s']:.1f} s", flush=True)

    parts = project(work / f"split-{size}")
    row["files"] = split_laws(Path(parts["DATA_DIR"]), None, laws)
    row["split_ingest_s"], out = legal_rag(parts, "ingest", "--quiet")
    row["split_events"] = events(parts)
    print(f"[{size}] {row['files']} files: {row['split_ingest_s']:.1f} s, {row['split_events']} events", flush=True)

    row["laws_after_s"] = _ingest_laws(laws, work / f"laws-after-{size}")  # the machine's drift: see the docstring
    shutil.rmtree(work / f"laws-after-{size}", ignore_errors=True)
    print(f"[{size}] {len(laws)} laws again: {row['laws_after_s']:.1f} s", flush=True)

    _, out = timed(project(work / f"floor-{size}"), sys.executable, str(REPO / "benchmarks" / "dagster_floor.py"), str(row["files"]))
    row["floor_s"] = float(re.search(r": ([0-9.]+) s", out).group(1))
    print(f"[{size}] Dagster alone, {row['files']} partitions x 4 no-op assets: {row['floor_s']:.1f} s", flush=True)

    row["nothing_cli_s"], out = legal_rag(parts, "ingest", "--quiet")
    row["nothing_cli_says"] = next((line for line in out.splitlines() if line.startswith("Nothing changed")), out[-200:])
    elapsed, out = timed(parts, sys.executable, str(REPO / "benchmarks" / "nightly_tick.py"))
    row["nothing_tick"] = out.splitlines()[0]
    print(f"[{size}] nothing changed: CLI {row['nothing_cli_s']:.1f} s; {row['nothing_tick']}", flush=True)

    files = sorted(Path(parts["DATA_DIR"]).rglob("*.txt"))
    changed = files[len(files) // 2]
    with changed.open("a", encoding="utf-8") as handle:
        handle.write("\nKhoản bổ sung: hồ sơ được nộp qua cổng dịch vụ công quốc gia zyxkhoanmoi.\n")
    began = time.perf_counter()
    _, ingest_out = legal_rag(parts, "ingest", "--quiet")
    _, hits = legal_rag(parts, "search", "zyxkhoanmoi", "--json", "--top-k", "1")
    row["one_changed_s"] = time.perf_counter() - began
    top = json.loads(hits.splitlines()[0])["hits"]
    row["one_changed_found"] = bool(top) and top[0]["source"] == str(changed.relative_to(parts["DATA_DIR"]))
    row["one_changed_says"] = next((line for line in ingest_out.splitlines() if line.startswith("Plan:")), "")
    print(f"[{size}] one changed: {row['one_changed_s']:.1f} s to searchable ({row['one_changed_found']})", flush=True)
    return row


def markdown(rows: list[dict], command: str, load: tuple[float, ...], began: str) -> str:
    lines = [
        f"## Many files: one file per article against one file per law — {began} UTC\n",
        "```bash",
        command,
        "```\n",
        f"bm25 only, embedded defaults (Qdrant Edge, SQLite `DAGSTER_HOME` with the batched storage), each step a "
        f"`legal-rag` command in a fresh process. Load average before / after: {load[0]:.2f} / {load[1]:.2f} "
        f"(1 min), {os.cpu_count()} cores.\n",
        "| corpus | as laws (before / after the split) | as one file per article | ratio to their mean (target ≤ 1.5×) | Dagster events | Dagster alone (4 no-op assets) | nothing changed: CLI | nothing changed: nightly tick | one article changed → searchable (target ≤ 30 s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tick = re.search(r": ([0-9.]+) s;", r["nothing_tick"])
        laws_s = (r["laws_ingest_s"] + r["laws_after_s"]) / 2
        lines.append(
            f"| {r['laws']} laws / {r['files']:,} files | {r['laws_ingest_s']:.1f} / {r['laws_after_s']:.1f} s | "
            f"{r['split_ingest_s']:.1f} s | {r['split_ingest_s'] / laws_s:.2f}× | {r['split_events']:,} | {r['floor_s']:.1f} s | {r['nothing_cli_s']:.1f} s, no run | "
            f"{tick.group(1) if tick else '?'} s, no run | {r['one_changed_s']:.1f} s"
            f"{'' if r['one_changed_found'] else ' (NOT FOUND)'} |"
        )
    lines.append("")
    lines.append(
        "*Dagster alone*: `benchmarks/dagster_floor.py`, the same number of per-file partitions through four "
        "assets that do nothing, in the same storage: what Dagster's planned and materialisation events cost "
        "before any file is read.\n"
    )
    for r in rows:
        lines.append(f"- {r['files']:,} files, nothing changed: `{r['nothing_cli_says']}`; tick: `{r['nothing_tick']}`")
        lines.append(f"- {r['files']:,} files, one changed: `{r['one_changed_says']}`")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,all", help="article counts to reach, or 'all' (default 5000,all)")
    parser.add_argument("--results", type=Path, help="write the table into this RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not LAWS.is_dir():
        print(f"{LAWS} is absent: this benchmark needs the real laws beside the project", file=sys.stderr)
        return 2
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="many-files-"))
    try:
        rows = [measure(size.strip(), work) for size in args.sizes.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section = markdown(rows, "python benchmarks/many_files.py " + " ".join(sys.argv[1:]), (load_before, os.getloadavg()[0]), began)
    print(section)
    if args.results:
        write_results(args.results, MARKER, section)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
