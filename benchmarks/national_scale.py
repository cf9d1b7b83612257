"""The size of the national database: the 208 laws four times over, as 832 law files and as ~70,000
one-article files (issue 24).

Builds, from ``../shared/data/laws``, ``copies`` subfolders (``copy-1`` … ``copy-4``: every copy is its
own documents and points) once as the laws and once split into one file per article (the law's title
line, then ``Điều N. …``; the first file of a law keeps its preamble). Each step is a real
`legal-rag` command in a fresh process, bm25 only, embedded defaults (Qdrant Edge, a new SQLite
``DAGSTER_HOME``):

1. first ingest of each shape: wall time, CPU seconds, peak resident memory (GNU time; with the child
   processes, as the sum of their resident and of their proportional set sizes), ``DAGSTER_HOME`` on
   disk. The law files are ingested before the split and again after it, into a new project each
   time, and the split is compared with their mean: on a shared machine whose speed drifts over the
   minutes a shape takes, one ingest of each gave 1.32× and 1.79× with the same code an hour apart;
2. on the split: a cold `legal-rag search` (three times), what the UI's asset page asks for
   (``ui_partitions.py``), `legal-rag ingest` with nothing changed (and
   whether a run was launched), the nightly schedule's tick (``nightly_tick.py``); the same on the day
   the collection is due for its comparison with the folder (the tick, then `legal-rag ingest`: the
   plan compares, ``ingest/verify.py``); one file changed → `legal-rag search` finds its new word;
3. ``--nights`` nights: three files changed, the collection due for its daily comparison (nights come
   24 hours apart), `legal-rag ingest` (the run the nightly tick launches),
   then `legal-rag prune-history --days 0` (the daily retention, with every run already "old"):
   ``DAGSTER_HOME`` after each night; then `legal-rag ingest --all` (the run over every file the daily
   comparison used to be: its time and what it adds to ``DAGSTER_HOME``);
4. Dagster alone (``dagster_floor.py``) for as many partitions as each shape has files: what the
   split's per-file partitions cost before any file is read, and so the lowest ratio they allow.

Prints a table and, with ``--results``, writes it into ``benchmarks/RESULTS.md`` (between the
``national-scale`` markers) with the machine's load. Run it alone (about 40 minutes on 2 cores).

    python benchmarks/national_scale.py --results benchmarks/RESULTS.md
    python benchmarks/national_scale.py --copies 2 --laws 10 --nights 3      # a quick look
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
from run import TIME, checkout_path, measure, write_results  # noqa: E402
from sensor_scale import ARTICLE, LAWS, REPO  # noqa: E402

MARKER = "national-scale"
QUERY = "thành lập doanh nghiệp tư nhân"


def build(data: Path, copies: int, split: bool, laws: int | None = None) -> int:
    count = 0
    for law in sorted(LAWS.glob("*.txt"))[:laws]:
        text = law.read_text(encoding="utf-8")
        parts = [p for p in ARTICLE.split(text) if p.strip()] if split else [text]
        title = law.stem.rsplit("-", 1)[0].replace("-", " ")
        for copy in range(1, copies + 1):
            if not split:
                folder = data / f"copy-{copy}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / law.name).write_text(text, encoding="utf-8")
                count += 1
                continue
            folder = data / f"copy-{copy}" / law.stem
            folder.mkdir(parents=True, exist_ok=True)
            for i, part in enumerate(parts, 1):
                (folder / f"dieu-{i:04d}.txt").write_text(part if i == 1 else f"{title}\n{part}", encoding="utf-8")
                count += 1
    return count


def project(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE", "EMBEDDINGS_", "QDRANT_", "DAGSTER_PG"))}
    env.update(
        DATA_DIR=str(root / "data"),
        LEGAL_RAG_STATE_DIR=str(root / "state"),
        QDRANT_PATH=str(root / "qdrant"),
        DAGSTER_HOME=str(root / "dagster_home"),
        PYTHONPATH=checkout_path(),
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    return env


def run(env: dict[str, str], *argv: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one command in a fresh process."""
    rss = Path(env["DAGSTER_HOME"]).parent / "rss.txt"
    wrapped = [TIME, "-f", "%M", "-o", str(rss), *argv] if TIME else list(argv)
    began = time.perf_counter()
    done = subprocess.run(wrapped, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - began
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak = int(rss.read_text().split()[-1]) / 1024 if TIME else 0.0
    return wall, peak, done.stdout


def legal_rag(env, *args: str) -> tuple[float, float, str]:
    return run(env, sys.executable, "-m", "legal_rag_pipeline.cli", *args)


def disk_mb(folder: str | Path) -> float:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total / 2**20


def runs(env) -> int:
    db = Path(env["DAGSTER_HOME"]) / "history" / "runs.db"
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from runs").fetchone()[0]


def first_ingest(shape: str, work: Path, copies: int, laws: int | None) -> tuple[dict, dict]:
    env = project(work / shape)
    files = build(Path(env["DATA_DIR"]), copies, split=shape == "split", laws=laws)
    log = work / f"{shape}-ingest.log"
    m = measure([sys.executable, "-m", "legal_rag_pipeline.cli", "ingest", "--quiet"], env, REPO, log)
    if m.exit_code != 0:
        raise SystemExit(f"legal-rag ingest failed ({m.exit_code}):\n{log.read_text(errors='replace')[-3000:]}")
    wall, peak, out = m.wall_s, m.peak_rss_mb, log.read_text(encoding="utf-8", errors="replace")
    row = {"shape": shape, "files": files, "ingest_s": wall, "cpu_s": m.cpu_s, "peak_mb": peak,
           "tree_peak_mb": m.peak_tree_mb, "tree_pss_mb": m.peak_tree_pss_mb,
           "dagster_home_mb": disk_mb(env["DAGSTER_HOME"]), "qdrant_mb": disk_mb(env["QDRANT_PATH"]),
           "says": out.strip().splitlines()[-1]}
    print(f"[{shape}] {files:,} files: {wall:.1f} s ({m.cpu_s:.1f} CPU s), peak {peak:.0f} MB ({m.peak_tree_mb:.0f} MB "
          f"with its child processes, PSS {m.peak_tree_pss_mb:.0f} MB), DAGSTER_HOME {row['dagster_home_mb']:.0f} MB", flush=True)
    return row, env


def dagster_alone(files: int, work: Path) -> float:
    """Seconds Dagster's own events take for ``files`` partitions through four assets that do nothing
    (``dagster_floor.py``, a fresh process and DAGSTER_HOME)."""
    _, _, out = run(project(work / f"floor-{files}"), sys.executable, "-W", "ignore", str(REPO / "benchmarks" / "dagster_floor.py"), str(files))
    found = re.search(r"no-op assets: ([0-9.]+) s", out)
    if found is None:
        raise SystemExit(f"dagster_floor.py said: {out[-2000:]}")
    return float(found.group(1))


def steady_state(env: dict, row: dict, nights: int) -> None:
    searches = []
    for _ in range(3):
        wall, peak, out = legal_rag(env, "search", QUERY, "--top-k", "3", "--json")
        searches.append((wall, peak))
    row["cold_search_s"] = [round(w, 2) for w, _ in searches]
    row["cold_search_peak_mb"] = max(p for _, p in searches)
    print(f"[split] cold search: {row['cold_search_s']} s", flush=True)

    _, _, out = run(env, sys.executable, "-W", "ignore", str(REPO / "benchmarks" / "ui_partitions.py"))
    row["ui"] = [line for line in out.splitlines() if "partitions," in line]
    print(f"[split] UI: {row['ui']}", flush=True)

    before = runs(env)
    wall, peak, out = legal_rag(env, "ingest", "--quiet")
    row["nothing_s"], row["nothing_peak_mb"] = wall, peak
    row["nothing_says"] = next((line for line in out.splitlines() if line.startswith("Nothing changed")), out[-300:])
    row["nothing_runs"] = runs(env) - before
    _, _, out = run(env, sys.executable, str(REPO / "benchmarks" / "nightly_tick.py"))
    row["tick"] = out.splitlines()[0]
    print(f"[split] nothing changed: {wall:.1f} s, {row['nothing_runs']} runs; {row['tick']}", flush=True)
    daily_comparison(env, row)

    files = sorted(Path(env["DATA_DIR"]).rglob("*.txt"))
    changed = files[len(files) // 2]
    with changed.open("a", encoding="utf-8") as handle:
        handle.write("\nKhoản bổ sung: hồ sơ được nộp qua cổng dịch vụ công quốc gia zyxkhoanmoi.\n")
    began = time.perf_counter()
    legal_rag(env, "ingest", "--quiet")
    _, _, hits = legal_rag(env, "search", "zyxkhoanmoi", "--json", "--top-k", "1")
    row["one_changed_s"] = time.perf_counter() - began
    top = json.loads(hits.splitlines()[0])["hits"]
    row["one_changed_found"] = bool(top) and top[0]["source"] == str(changed.relative_to(env["DATA_DIR"]))
    print(f"[split] one changed: {row['one_changed_s']:.1f} s to searchable ({row['one_changed_found']})", flush=True)

    row["nights"] = []
    for night in range(1, nights + 1):
        for path in files[night * 997 % len(files):][:3]:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(f"\nKhoản bổ sung đêm {night}.\n")
        _age_the_comparison(env)  # nights come 24 hours apart: each is due for the daily comparison
        wall, _, _ = legal_rag(env, "ingest", "--quiet")
        grown = disk_mb(env["DAGSTER_HOME"])
        prune_s, _, said = legal_rag(env, "prune-history", "--days", "0")
        row["nights"].append({"night": night, "ingest_s": round(wall, 1), "before_prune_mb": round(grown, 1),
                              "prune_s": round(prune_s, 1), "after_prune_mb": round(disk_mb(env["DAGSTER_HOME"]), 1),
                              "runs": runs(env), "said": said.strip()})
        print(f"[split] night {night}: {row['nights'][-1]}", flush=True)
    every_file(env, row)


def _age_the_comparison(env: dict) -> None:
    """The collection's last full comparison with the folder a day old: the next plan is due for it."""
    path = Path(env["LEGAL_RAG_STATE_DIR"]) / "sync_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["verified_at"] = time.time() - 25 * 3600
    path.write_text(json.dumps(state), encoding="utf-8")


def daily_comparison(env: dict, row: dict) -> None:
    """Nothing changed on the day the collection is due for its comparison with the folder: the plan makes
    it (ingest/verify.py), in the nightly tick and in `legal-rag ingest`."""
    _age_the_comparison(env)
    _, _, out = run(env, sys.executable, str(REPO / "benchmarks" / "nightly_tick.py"))
    row["due_tick"] = out.splitlines()[0]
    _age_the_comparison(env)
    before = runs(env)
    wall, peak, out = legal_rag(env, "ingest", "--quiet")
    row["due_s"], row["due_peak_mb"], row["due_runs"] = wall, peak, runs(env) - before
    row["due_says"] = next((line for line in out.splitlines() if line.startswith("The daily comparison")), out[-300:])
    print(f"[split] due for the daily comparison: tick {row['due_tick']}; ingest {wall:.1f} s, {row['due_runs']} runs",
          flush=True)


def every_file(env: dict, row: dict) -> None:
    """`legal-rag ingest --all`: the run over every file the daily comparison used to be (last: the
    space it takes in `DAGSTER_HOME` is reused, not given back, after the retention prunes it)."""
    home = disk_mb(env["DAGSTER_HOME"])
    wall, peak, _ = legal_rag(env, "ingest", "--quiet", "--all")
    row["all_s"], row["all_peak_mb"], row["all_grew_mb"] = wall, peak, disk_mb(env["DAGSTER_HOME"]) - home
    print(f"[split] every file (--all, the comparison's run before): {wall:.1f} s, DAGSTER_HOME "
          f"+{row['all_grew_mb']:.0f} MB", flush=True)


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def markdown(rows: list[dict], command: str, load: tuple[float, float], began: str) -> str:
    *law_runs, split = rows
    laws = law_runs[0]
    law_s, law_cpu = _mean(law_runs, "ingest_s"), _mean(law_runs, "cpu_s")
    law_times = " and ".join(f"{r['ingest_s']:.1f}" for r in law_runs)
    each_ratio = " and ".join(f"{split['ingest_s'] / r['ingest_s']:.2f}×" for r in law_runs)
    lines = [
        f"## The national database: the 208 laws ×4 as law files and as one file per article — {began} UTC\n",
        "```bash", command, "```\n",
        f"bm25 only, embedded defaults (Qdrant Edge, a new SQLite `DAGSTER_HOME`), each step a `legal-rag` command in a "
        f"fresh process. Load average before / after: {load[0]:.2f} / {load[1]:.2f} (1 min), {os.cpu_count()} cores.\n",
        "| corpus | first ingest | CPU | peak memory | with child processes: RSS / PSS | `DAGSTER_HOME` after it | Qdrant folder |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        what = "one-article files" if r["shape"] == "split" else "law files" + (", after the split" if r is not laws else "")
        lines.append(f"| {r['files']:,} {what} | {r['ingest_s']:.1f} s | {r['cpu_s']:.1f} s | "
                     f"{r['peak_mb']:.0f} MB | {r.get('tree_peak_mb', 0):.0f} / {r.get('tree_pss_mb', 0):.0f} MB | "
                     f"{r['dagster_home_mb']:.0f} MB | {r['qdrant_mb']:.0f} MB |")
    tick = re.search(r": ([0-9.]+) s;", split.get("tick", ""))
    floor = split.get("dagster_alone_s"), laws.get("dagster_alone_s")
    bound = (law_s + floor[0] - floor[1]) / law_s if None not in floor else None
    nights = split.get("nights", [])
    lines += [
        "",
        f"- split / laws first ingest: **{split['ingest_s'] / law_s:.2f}×** (target ≤ 1.5×) against the law files' mean "
        f"({law_times} s, before and after the split; {each_ratio} against each); in CPU seconds (the ingest and its "
        f"child processes, user + system) {split['cpu_s'] / law_cpu:.2f}×",
        *([f"- Dagster alone (`benchmarks/dagster_floor.py`: four assets that do nothing, one partition per file, in a fresh "
           f"process and `DAGSTER_HOME`): {floor[0]:.1f} s for {split['files']:,} files, {floor[1]:.1f} s for {laws['files']:,}; "
           f"were reading, chunking and writing {split['files']:,} files as cheap as {laws['files']:,} law files of the same text, "
           f"the split would still take {bound:.2f}× the laws"] if bound else []),
        "- peak memory: the ingest process's (GNU time); with child processes: the largest sum, sampled every 0.2 s, "
        "of its resident memory and its children's (the reader worker, the write's bm25 helper: legal_rag_pipeline/helper.py), "
        "as resident sizes (RSS) and as proportional set sizes (PSS: a page several of them map, as the shared libraries, "
        "counted once in all)",
        f"- cold `legal-rag search` on the split: {', '.join(f'{s:.2f}' for s in split['cold_search_s'])} s, peak "
        f"{split['cold_search_peak_mb']:.0f} MB (target ≤ 1 s)",
        f"- nothing changed: `legal-rag ingest` {split['nothing_s']:.1f} s, {split['nothing_runs']} runs launched, "
        f"peak {split['nothing_peak_mb']:.0f} MB (`{split['nothing_says'][:120]}`); nightly tick "
        f"{tick.group(1) if tick else '?'} s (`{split['tick'][:140]}`)",
        *(f"- the UI's asset page (`benchmarks/ui_partitions.py`, Dagster's GraphQL): {line}" for line in split.get("ui", [])),
        f"- one file changed → searchable: {split['one_changed_s']:.1f} s"
        f"{'' if split['one_changed_found'] else ' (NOT FOUND)'} (target ≤ 30 s)",
    ]
    if "due_s" in split:
        due_tick = re.search(r": ([0-9.]+) s;", split["due_tick"])
        lines.append(
            f"- nothing changed on the day the collection is due for its comparison with the folder (made by the plan, "
            f"`ingest/verify.py`): nightly tick {due_tick.group(1) if due_tick else '?'} s, `legal-rag ingest` "
            f"{split['due_s']:.1f} s, {split['due_runs']} runs launched, peak {split['due_peak_mb']:.0f} MB "
            f"(`{split['due_says'][:110]}`); that comparison was a run over every file before, as `legal-rag ingest --all` "
            f"still is: {split['all_s']:.1f} s, peak {split['all_peak_mb']:.0f} MB, `DAGSTER_HOME` +{split['all_grew_mb']:.0f} MB"
        )
    if nights:
        lines += [
            f"- {len(nights)} nights, three files changed each, `legal-rag ingest` then `legal-rag prune-history --days 0`: "
            f"`DAGSTER_HOME` {nights[0]['after_prune_mb']:.0f} MB after the first, {nights[-1]['after_prune_mb']:.0f} MB after "
            f"the last (before each prune: {min(n['before_prune_mb'] for n in nights):.0f}–{max(n['before_prune_mb'] for n in nights):.0f} MB); "
            f"a night's ingest {min(n['ingest_s'] for n in nights):.1f}–{max(n['ingest_s'] for n in nights):.1f} s, "
            f"its prune {min(n['prune_s'] for n in nights):.1f}–{max(n['prune_s'] for n in nights):.1f} s; runs kept: {nights[-1]['runs']}",
            f"- last prune: `{nights[-1]['said']}`",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of the 208 laws (default 4)")
    parser.add_argument("--nights", type=int, default=30, help="nights of three changed files each (default 30)")
    parser.add_argument("--laws", type=int, help="only the first N laws (a quick look; default all 208)")
    parser.add_argument("--results", type=Path, help="write the table into this RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not LAWS.is_dir():
        print(f"{LAWS} is absent: this benchmark needs the real laws beside the project", file=sys.stderr)
        return 2
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="national-"))
    try:
        laws, _ = first_ingest("laws", work, args.copies, args.laws)
        shutil.rmtree(work / "laws", ignore_errors=True)
        split, env = first_ingest("split", work, args.copies, args.laws)
        laws_after, _ = first_ingest("laws", work, args.copies, args.laws)  # the machine's drift: see the docstring
        shutil.rmtree(work / "laws", ignore_errors=True)
        split["dagster_alone_s"], laws["dagster_alone_s"] = dagster_alone(split["files"], work), dagster_alone(laws["files"], work)
        print(f"[split] Dagster alone: {split['dagster_alone_s']:.1f} s for {split['files']:,} partitions, "
              f"{laws['dagster_alone_s']:.1f} s for {laws['files']:,}", flush=True)
        steady_state(env, split, args.nights)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section = markdown([laws, laws_after, split], "python benchmarks/national_scale.py " + " ".join(sys.argv[1:]),
                       (load_before, os.getloadavg()[0]), began)
    print(section)
    if args.results:
        write_results(args.results, MARKER, section)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
