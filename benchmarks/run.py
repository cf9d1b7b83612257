"""Ingestion benchmark (issue 6): the real laws against a loopback embeddings server with latency.

    python benchmarks/run.py                 # dense: scenarios a-d, Qdrant write path, 100k-row Excel
    python benchmarks/run.py --bm25-only     # no embeddings server: scenarios a-c with bm25 vectors only

Every scenario runs `legal-rag ingest` in its own subprocess (so wall time includes Python start-up,
Dagster and the embedded Qdrant, as a user sees it) and its peak resident memory is that process's
``ru_maxrss``. The loopback server (legal_rag_pipeline_tests/loopback.py) runs in this process and
answers after 50 ms per request plus 1 ms per text, with 768-dimensional vectors.

Scenarios:
  a  full first ingest of the corpus (a temporary copy of ../shared/data/laws)
  b  immediate re-ingest, nothing changed
  c  re-ingest after one article of one law changed
  d  the old approach: one ``InferenceClient.feature_extraction`` call per text, sequential, against
     the same server; timed on a fixed random sample of the corpus texts (--old-sample, seed 0) and
     extrapolated to all texts (--old-sample 0 runs every text: about an hour)
Also: raw ``EdgeShard.update`` throughput vs the pipeline's write path for the same points, search
latency over the ingested collection (in process, and a cold ``legal-rag search``), and a
generated 100,000-row Excel sheet (streamed reading: peak memory of read+chunk at 10k vs 100k rows,
and of a full bm25-only ingest of the 100k rows).

Nothing is written inside the repository: data, state, Qdrant and DAGSTER_HOME live in a temporary
folder (removed at the end unless --keep).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "laws"
CHANGED_LAW = "Luat-vien-chuc-2010-115271.txt"  # scenario c edits one article of this law
CHANGED_ARTICLE = "Điều 5."
LATENCY, LATENCY_PER_TEXT, DIM = 0.050, 0.001, 768
ENDPOINT_KEY = "bench-endpoint-key"

sys.path.append(str(REPO))  # PYTHONPATH (e.g. a snapshot of the package) wins


# ---------------------------------------------------------------------------- helpers
@dataclass
class Result:
    name: str
    wall_s: float
    texts: int = 0  # corpus texts (chunks) the run covered
    embedded: int = 0  # texts sent to the embeddings server
    requests: int = 0
    peak_rss_mb: float = 0.0
    exit_code: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.wall_s if self.wall_s else 0.0

    @property
    def texts_per_request(self) -> float:
        return self.embedded / self.requests if self.requests else 0.0

    def as_json(self) -> dict:
        d = asdict(self)
        d["texts_per_s"] = round(self.texts_per_s, 1)
        d["texts_per_request"] = round(self.texts_per_request, 2)
        d["wall_s"] = round(self.wall_s, 2)
        d["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        return d


TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)


@dataclass
class Measured:
    """One command's figures. ``peak_rss_mb`` is what the targets use; the rest says what it was made of."""

    wall_s: float
    peak_rss_mb: float
    exit_code: int
    cpu_s: float = 0.0  # the command's user + system CPU
    host_cpu_s: float = 0.0  # this process's CPU meanwhile: the loopback server's threads
    peak_anon_mb: float = 0.0  # the largest private (anonymous) resident memory sampled
    peak_file_mb: float = 0.0  # the largest file-backed resident memory sampled (mapped segments, page cache)
    # the largest sum sampled of the process's resident memory and its child processes' (the reader
    # worker, the write's bm25 helper: legal_rag_pipeline/helper.py), which GNU time's figure leaves out
    peak_tree_mb: float = 0.0
    # the same sum of proportional set sizes (/proc/PID/smaps_rollup's Pss): a page mapped by several of
    # the processes (Qdrant Edge's and Python's shared libraries, a segment file both read) counted once
    # in all, where the sum of resident sizes counts it in each
    peak_tree_pss_mb: float = 0.0


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started."""
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def _python_pid(pid: int) -> int:
    """The measured Python process: GNU time's child when the command is wrapped, else ``pid``."""
    if not TIME:
        return pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def _resident(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of ``pid`` in kB; (0, 0) once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return int(fields["RssAnon"].split()[0]), int(fields["RssFile"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def _proportional(pid: int) -> int:
    """Pss of ``pid`` in kB (its share of every page it maps); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def measure(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """Run ``cmd``; its wall time, peak RSS (GNU time's when present: ``ru_maxrss`` of a child forked from
    this process also counts this process's pages before the exec, the loopback server's vector cache),
    CPU, this process's CPU meanwhile, and its resident memory sampled every 0.2 s split into private and
    file-backed pages."""
    import resource
    import threading

    rss_file = log.with_suffix(".rss")
    wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *cmd] if TIME else cmd
    peaks = [0, 0, 0, 0]
    done = threading.Event()
    with open(log, "wb") as out:
        host_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

        def sample() -> None:
            pid = None
            while not done.wait(0.2):
                pid = pid if pid not in (None, proc.pid) else _python_pid(proc.pid)
                anon, mapped = _resident(pid)
                peaks[0], peaks[1] = max(peaks[0], anon), max(peaks[1], mapped)
                children = _children(pid)
                tree = anon + mapped + sum(sum(_resident(child)) for child in children)
                peaks[2] = max(peaks[2], tree)
                peaks[3] = max(peaks[3], _proportional(pid) + sum(_proportional(child) for child in children))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        host_after = resource.getrusage(resource.RUSAGE_SELF)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = usage.ru_maxrss
    if TIME:
        try:
            peak_kb = int(rss_file.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    host = (host_after.ru_utime + host_after.ru_stime) - (host_before.ru_utime + host_before.ru_stime)
    return Measured(wall, peak_kb / 1024.0, proc.returncode, usage.ru_utime + usage.ru_stime, host,
                    peaks[0] / 1024.0, peaks[1] / 1024.0, peaks[2] / 1024.0, peaks[3] / 1024.0)


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB of the process, exit code) (see ``measure``)."""
    m = measure(cmd, env, cwd, log)
    return m.wall_s, m.peak_rss_mb, m.exit_code


def checkout_path() -> str:
    """``PYTHONPATH`` for a scenario: this checkout's package first, byte-compiled as an install leaves it
    (the virtualenv installs the package in editable mode, pointing at the checkout it was made in, so a
    clone benchmarked with another checkout's .venv measured that checkout's code; and where
    PYTHONDONTWRITEBYTECODE is set, a clone's package was compiled again by every scenario: 0.2 s of
    one article changed)."""
    compileall.compile_dir(REPO / "legal_rag_pipeline", quiet=1)
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))


def base_env(work: Path, data: Path, state: Path, endpoint: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "EMBEDDINGS_", "QDRANT_"))}
    env.update(
        DATA_DIR=str(data),
        LEGAL_RAG_STATE_DIR=str(state),
        QDRANT_PATH=str(state / "qdrant"),
        DAGSTER_HOME=str(work / "dagster_home"),
        HF_HOME=str(work / "hf_home"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=checkout_path(),
    )
    if endpoint:
        env["EMBEDDINGS_ENDPOINT_URL"] = endpoint
        env["EMBEDDINGS_ENDPOINT_API_KEY"] = ENDPOINT_KEY
    return env


def ingest_cmd(profile: Path | None = None) -> list[str]:
    if profile:
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "legal_rag_pipeline.cli", "ingest"]
    return [sys.executable, "-m", "legal_rag_pipeline.cli", "ingest"]


def corpus_texts(state: Path) -> list[str]:
    from legal_rag_pipeline.artifacts import FileArtifacts, known_sources

    return [chunk.text for source in known_sources(state) for chunk in FileArtifacts(state, source).read_chunks()]


def count_chunks(state: Path) -> int:
    from legal_rag_pipeline.artifacts import FileArtifacts, known_sources

    return sum(len(FileArtifacts(state, source).chunk_ids()) for source in known_sources(state))


def change_one_article(path: Path, article: str = CHANGED_ARTICLE) -> str:
    """Edit one line of one article (the first content line after its heading); returns a description."""
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if line.strip().startswith(article):
            lines[i + 1] = lines[i + 1].rstrip() + " (đã sửa đổi, bổ sung)"
            path.write_text("\n".join(lines), encoding="utf-8")
            return f"{path.name}: {article} first paragraph edited"
    raise SystemExit(f"{article} not found in {path}")


def summary_line(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------- scenarios
def ingest_scenario(name, server, env, work, state, note="", profile_dir=None) -> Result:
    if server is not None:
        server.reset_records()
    log = work / f"{name}.log"
    profile = profile_dir / f"{name}.prof" if profile_dir else None
    m = measure(ingest_cmd(profile), env, work, log)
    wall, rss, code = m.wall_s, m.peak_rss_mb, m.exit_code
    embedded = sum(server.batch_sizes()) if server is not None else 0
    requests = server.count() if server is not None else 0
    result = Result(name, wall, count_chunks(state), embedded, requests, rss, code, note)
    result.extra.update(cpu_s=round(m.cpu_s, 1), server_cpu_s=round(m.host_cpu_s, 1),
                        peak_anon_mb=round(m.peak_anon_mb), peak_file_mb=round(m.peak_file_mb),
                        peak_tree_mb=round(m.peak_tree_mb), peak_tree_pss_mb=round(m.peak_tree_pss_mb))
    result.extra["summary"] = summary_line(log)
    print(f"  {name}: {wall:.1f}s, exit {code}, {embedded} texts in {requests} requests, peak {rss:.0f} MB", flush=True)
    if code != 0:
        print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
    return result


OLD_APPROACH = r"""
import json, random, sys, time
from huggingface_hub import InferenceClient
texts = json.load(open(sys.argv[1], encoding="utf-8"))
client = InferenceClient(base_url=sys.argv[2], token=sys.argv[3])
started = time.perf_counter()
for text in texts:
    client.feature_extraction(text)          # one request per text, sequential: the old script
print(json.dumps({"seconds": time.perf_counter() - started, "texts": len(texts)}))
"""


def old_approach(server, env, work, state, sample: int, seed: int = 0) -> Result:
    texts = corpus_texts(state)
    chosen = texts if sample <= 0 or sample >= len(texts) else random.Random(seed).sample(texts, sample)
    src = work / "old_texts.json"
    src.write_text(json.dumps(chosen, ensure_ascii=False), encoding="utf-8")
    server.reset_records()
    log = work / "d.log"
    wall, rss, code = run_measured(
        [sys.executable, "-c", OLD_APPROACH, str(src), server.url, ENDPOINT_KEY], env, work, log
    )
    measured = json.loads(summary_line(log))
    per_text = measured["seconds"] / measured["texts"]
    extrapolated = per_text * len(texts)
    sampled = len(chosen) < len(texts)
    note = (
        f"timed on a random sample of {len(chosen)} of {len(texts)} texts (seed {seed}): "
        f"{per_text * 1000:.1f} ms/text, extrapolated to all texts"
        if sampled
        else "every text timed"
    )
    result = Result(
        "d: old approach (1 request/text, sequential)",
        extrapolated,
        len(texts),
        len(texts),
        len(texts),
        rss,
        code,
        note,
        {"measured_seconds": round(measured["seconds"], 2), "measured_texts": measured["texts"],
         "server_requests_seen": server.count(), "ms_per_text": round(per_text * 1000, 2), "sampled": sampled},
    )
    print(f"  d: {measured['texts']} texts in {measured['seconds']:.1f}s ({per_text * 1000:.1f} ms/text) "
          f"-> {extrapolated:.0f}s for {len(texts)} texts", flush=True)
    return result


QDRANT_WRITE = r"""
import json, sys, tempfile, time
from pathlib import Path
sys.path.append(sys.argv[4])
import qdrant_edge as qe
from legal_rag_pipeline import ingest
from legal_rag_pipeline.artifacts import FileArtifacts, known_sources
from legal_rag_pipeline.resources.qdrant import QdrantStore, SPARSE_NAME

state, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"
records = []
for source in known_sources(state):
    art = FileArtifacts(state, source)
    vectors = art.read_embeddings(model)
    for i, chunk in enumerate(art.read_chunks()):
        records.append(ingest.chunk_point(chunk, i, "sha", model, "now", vectors[chunk.point_id]))
        if len(records) >= n:
            break
    if len(records) >= n:
        break
where = tempfile.mkdtemp(dir=sys.argv[5])
if mode == "raw_edge":
    # the same points as Edge's own Point objects, written with EdgeShard.update in batches of 1024,
    # into a shard of the same layout (config and payload indexes) as the pipeline's
    from legal_rag_pipeline.stores.edge import _config, _create_indexes, with_document_keys
    shard = qe.EdgeShard.create(where + "/shard", _config(768))
    _create_indexes(shard)
    # Timed: building Edge's Point objects from the same records (where Python values become the
    # engine's) and the updates; update_only_seconds leaves the building out.
    started = time.perf_counter()
    points = [qe.Point(id=r.id, vector={"": r.vector.tolist(), SPARSE_NAME: qe.SparseVector(indices=r.sparse[0],
              values=r.sparse[1])}, payload=with_document_keys(r.payload)) for r in records]
    built = time.perf_counter()
    for s in range(0, len(points), 1024):
        shard.update(qe.UpdateOperation.upsert_points(points[s:s + 1024]))
    shard.flush()
    seconds = time.perf_counter() - started
    update_only = time.perf_counter() - built
    shard.close()
else:
    # the pipeline's write path: PointRecords through the store (conversion included)
    store = QdrantStore(path=where, engine="client" if mode == "pipeline_client" else "edge")
    with store.connect() as collection:
        collection.ensure(768, model)
        started = time.perf_counter()
        collection.upsert(records)
        if mode == "pipeline":
            collection.shard().flush()
        seconds = time.perf_counter() - started
print(json.dumps({"mode": mode, "points": len(records), "seconds": seconds,
                  "update_only_seconds": update_only if mode == "raw_edge" else None}))
"""


def qdrant_write(env, work, state, points: int) -> dict:
    out = {}
    for mode in ("raw_edge", "pipeline"):
        log = work / f"qdrant_{mode}.log"
        wall, rss, code = run_measured(
            [sys.executable, "-c", QDRANT_WRITE, str(state), str(points), mode, str(REPO), str(work)], env, work, log
        )
        if code != 0:
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            continue
        measured = json.loads(summary_line(log))
        rate = measured["points"] / measured["seconds"]
        out[mode] = {"points": measured["points"], "seconds": round(measured["seconds"], 2), "points_per_s": round(rate, 1),
                     "peak_rss_mb": round(rss, 1)}
        if measured.get("update_only_seconds"):
            out[mode]["update_only_seconds"] = round(measured["update_only_seconds"], 2)
        print(f"  qdrant {mode}: {measured['points']} points in {measured['seconds']:.1f}s = {rate:.0f} points/s", flush=True)
    if "raw_edge" in out and "pipeline" in out:
        out["pipeline_over_raw"] = round(out["pipeline"]["seconds"] / out["raw_edge"]["seconds"], 2)
        if out["raw_edge"].get("update_only_seconds"):
            out["pipeline_over_update_only"] = round(out["pipeline"]["seconds"] / out["raw_edge"]["update_only_seconds"], 2)
    return out


SEARCH = r"""
import itertools, json, random, sys, time
from pathlib import Path
sys.path.append(sys.argv[3])
from legal_rag_pipeline.artifacts import FileArtifacts
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.search import search

qdrant, questions, n = sys.argv[1], json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")), int(sys.argv[4])
texts = [q["text"] for q in questions]
texts = (texts * (n // len(texts) + 1))[:n]
out = {}
with QdrantStore(path=qdrant).connect() as collection:
    started = time.perf_counter()
    collection.count()
    out["open_s"] = time.perf_counter() - started
    dense = collection.dense_size()
    # dense query vectors: the collection's own vectors (what the embedder returns is not what is timed)
    vectors = [p.dense for p in itertools.islice(collection.iter_points(fields=False, vectors=True, batch=256), n)] if dense else []
    for mode in (["bm25", "hybrid"] if dense else ["bm25"]):
        started = time.perf_counter()
        for i, text in enumerate(texts):
            search(collection, text, 5, dense_vector=vectors[i % len(vectors)] if mode == "hybrid" else None)
        seconds = time.perf_counter() - started
        out[mode] = {"queries": len(texts), "seconds": round(seconds, 2), "ms_per_query": round(1000 * seconds / len(texts), 2)}
print(json.dumps(out))
"""


def search_scenarios(env, work, state, questions: Path, n: int) -> dict:
    """In-process latency of ``search`` over the collection, and a cold ``legal-rag search`` as a user runs it."""
    out: dict = {}
    log = work / "search.log"
    wall, rss, code = run_measured(
        [sys.executable, "-c", SEARCH, str(state / "qdrant"), str(questions), str(REPO), str(n)], env, work, log
    )
    if code != 0:
        print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
        return out
    out.update(json.loads(summary_line(log)))
    out["peak_rss_mb"] = round(rss, 1)
    first = json.loads(questions.read_text(encoding="utf-8"))[0]["text"]
    wall, rss, code = run_measured([sys.executable, "-m", "legal_rag_pipeline.cli", "search", first], env, work,
                                   work / "search_cold.log")
    out["cold_cli_s"] = round(wall, 2)
    out["cold_cli_peak_rss_mb"] = round(rss, 1)
    out["cold_cli_exit"] = code
    qfile = work / "queries.txt"
    texts = [q["text"].replace("\n", " ") for q in json.loads(questions.read_text(encoding="utf-8"))]
    qfile.write_text("\n".join((texts * (n // len(texts) + 1))[:n]), encoding="utf-8")
    wall, rss, code = run_measured([sys.executable, "-m", "legal_rag_pipeline.cli", "search", "--queries-file", str(qfile),
                                    "--json"], env, work, work / "search_file.log")
    out["cli_queries_file"] = {"queries": n, "wall_s": round(wall, 2), "exit": code,
                               "ms_per_query_incl_startup": round(1000 * wall / n, 2)}
    print(f"  search: {json.dumps(out)}", flush=True)
    return out


READ_ONLY = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.append(sys.argv[3])
from legal_rag_pipeline import ingest
data, state = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
read = ingest.read_stage(data, "qa.xlsx", state, "r")
norm = ingest.normalize_stage("qa.xlsx", state, "r", 128)
print(json.dumps({"seconds": time.perf_counter() - started, "read": read.status, "chunks": norm.counts.get("chunks"),
                  "error": read.error or norm.error}))
"""


def make_excel(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Hỏi đáp")
    sheet.append(["STT", "Câu hỏi", "Đáp án"])
    for i in range(rows):
        sheet.append(
            [i + 1, f"Câu hỏi số {i + 1}: thời hạn tạm trú tối đa theo Điều {i % 400 + 1} là bao lâu?",
             f"Theo Điều {i % 400 + 1}, thời hạn tạm trú tối đa là {i % 24 + 1} tháng; hết thời hạn phải gia hạn "
             f"tại cơ quan đăng ký cư trú (trả lời mẫu số {i + 1})."]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


def excel_scenarios(work: Path, rows: int) -> dict:
    out: dict = {}
    for n in sorted({rows // 10, rows}):
        data = work / f"excel_{n}" / "data"
        state = work / f"excel_{n}" / "state"
        make_excel(data / "qa.xlsx", n)
        wall, rss, code = run_measured(
            [sys.executable, "-c", READ_ONLY, str(data), str(state), str(REPO)], os.environ.copy(), work,
            work / f"excel_read_{n}.log",
        )
        measured = json.loads(summary_line(work / f"excel_read_{n}.log"))
        out[f"read_and_chunk_{n}_rows"] = {"seconds": round(measured["seconds"], 1), "chunks": measured["chunks"],
                                           "peak_rss_mb": round(rss, 1), "file_mb": round((data / "qa.xlsx").stat().st_size / 2**20, 1)}
        print(f"  excel read+chunk {n} rows: {measured['seconds']:.1f}s, {measured['chunks']} chunks, peak {rss:.0f} MB", flush=True)
    # the whole pipeline on the 100k rows, bm25 only (no embedding cost: memory of reading and Qdrant)
    data, state = work / f"excel_{rows}" / "data", work / f"excel_{rows}" / "ingest_state"
    env = base_env(work / f"excel_{rows}", data, state, None)
    (work / f"excel_{rows}" / "dagster_home").mkdir(exist_ok=True)
    wall, rss, code = run_measured(ingest_cmd(), env, work, work / "excel_ingest.log")
    out[f"ingest_bm25_{rows}_rows"] = {"seconds": round(wall, 1), "peak_rss_mb": round(rss, 1), "exit_code": code,
                                      "points": count_chunks(state)}
    print(f"  excel full ingest (bm25) {rows} rows: {wall:.1f}s, exit {code}, peak {rss:.0f} MB", flush=True)
    return out


# ---------------------------------------------------------------------------- machine and report
def machine() -> dict:
    from importlib.metadata import version

    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = ""
    try:
        kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    packages = {p: version(p) for p in ("dagster", "qdrant-edge-py", "qdrant-client", "huggingface_hub", "numpy",
                                        "openpyxl")}
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": mem, "python": platform.python_version(),
            "os": platform.platform(), "packages": packages, "load_before": os.getloadavg()}


def table(results: list[Result]) -> str:
    head = f"{'scenario':<46} {'wall s':>9} {'texts':>7} {'texts/s':>9} {'embedded':>9} {'requests':>9} {'texts/req':>9} {'peak MB':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<46} {r.wall_s:>9.1f} {r.texts:>7} {r.texts_per_s:>9.1f} {r.embedded:>9} {r.requests:>9} "
            f"{r.texts_per_request:>9.1f} {r.peak_rss_mb:>8.0f}"
        )
    return "\n".join(lines)


def section_head(title: str, command: str, machine_: dict, load_after, packages: dict | None = None) -> list[str]:
    """A RESULTS.md section's first lines: title and time, command, machine and packages, load before and after."""
    m = machine_
    return [
        f"### {title} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in {**m["packages"], **(packages or {})}.items()) + "  ",
        f"Load average before {tuple(round(x, 2) for x in m['load_before'])}, after "
        f"{tuple(round(x, 2) for x in load_after)} (shared machine: compare figures of one run only).  ",
    ]


def markdown(report: dict, command: str) -> str:
    """The run as a Markdown section of RESULTS.md: command, machine and load, every figure."""
    lines = [
        *section_head(report['mode'], command, report["machine"], report["load_after"]),
        "",
        ("| scenario | wall s | texts | embedded | requests | texts/req | peak RSS MB | private / mapped MB "
         "| with child processes MB: RSS / PSS | CPU s: ingest + server | exit |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["scenarios"]:
        x = r.get("extra", {})
        split = f"{x['peak_anon_mb']:,} / {x['peak_file_mb']:,}" if "peak_anon_mb" in x else ""
        cpu = f"{x['cpu_s']:,} + {x['server_cpu_s']:,}" if "cpu_s" in x else ""
        tree = f"{x.get('peak_tree_mb', '')}" + (f" / {x['peak_tree_pss_mb']:,}" if "peak_tree_pss_mb" in x else "")
        lines.append(
            f"| {r['name']} | {r['wall_s']:,} | {r['texts']:,} | {r['embedded']:,} | {r['requests']:,} | "
            f"{r['texts_per_request']} | {r['peak_rss_mb']:,} | {split} | {tree} | {cpu} | "
            f"{r['exit_code']} |"
        )
    lines.append("")
    lines.append(
        "- private / mapped: the largest anonymous and file-backed resident memory sampled every 0.2 s (mapped: "
        "Qdrant Edge's segment files read and written through the page cache, which the kernel can take back); "
        "with child processes: the largest sum sampled of the ingest's resident memory and its children's (the "
        "reader worker, the write's bm25 helper and, for a dense write, its Qdrant Edge write process: legal_rag_pipeline/helper.py), which the peak RSS column leaves out: the sum of their resident sizes (RSS), and of their proportional set sizes (PSS, /proc/PID/smaps_rollup: a page two of them map, as Qdrant Edge's library and Python's, counted once in all rather than in each); "
        "CPU: the ingest process's user + system seconds, and the loopback server's (this benchmark's own "
        "threads) meanwhile: on 2 cores, a run cannot take less than half their sum"
    )
    ratios = [f"(b)/(a) = {report['b_over_a']:.1%}", f"(c)/(a) = {report['c_over_a']:.1%}"]
    if "ratio_d_over_a" in report:
        ratios.insert(0, f"**(d)/(a) = {report['ratio_d_over_a']}×** ((d): {report['scenarios'][3]['note']})")
    lines += ["- " + "; ".join(ratios)]
    if report.get("qdrant_write"):
        w = report["qdrant_write"]
        lines.append(
            "- write path, the same corpus points: "
            + ", ".join(f"{k} {v['points']:,} points in {v['seconds']} s ({v['points_per_s']:,.0f}/s, peak "
                        f"{v['peak_rss_mb']:,} MB)" for k, v in w.items() if isinstance(v, dict))
            + (f"; pipeline / raw (building Edge's points + `EdgeShard.update`) = **{w['pipeline_over_raw']}×**"
               if "pipeline_over_raw" in w else "")
            + (f"; pipeline / `EdgeShard.update` alone (points built beforehand, untimed) = "
               f"{w['pipeline_over_update_only']}×" if "pipeline_over_update_only" in w else "")
        )
    if report.get("search"):
        q = report["search"]
        parts = [f"{k}: {v['ms_per_query']} ms/query over {v['queries']} queries" for k, v in q.items()
                 if isinstance(v, dict) and "ms_per_query" in v]
        lines.append(
            f"- search (in process, top 5, one hit per article): {'; '.join(parts)}; opening the collection "
            f"{q.get('open_s', 0):.2f} s; cold `legal-rag search` {q.get('cold_cli_s')} s (peak "
            f"{q.get('cold_cli_peak_rss_mb')} MB); `legal-rag search --queries-file` with "
            f"{q.get('cli_queries_file', {}).get('queries')} queries {q.get('cli_queries_file', {}).get('wall_s')} s "
            "including start-up"
        )
    if report.get("excel"):
        lines.append("- Excel: " + "; ".join(f"{k}: {v}" for k, v in report["excel"].items()))
    return "\n".join(lines) + "\n"


def write_results(path: Path, key: str, section: str) -> None:
    """Replace this mode's section of RESULTS.md (between markers), keeping the rest of the page."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    block = f"{start}\n{section}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def finish(args, ok: bool, key: str, section: str, work: Path, refused: str) -> int:
    """Write the run's section of ``args.results`` when ``ok`` (else say ``refused``), keep or remove the
    work folder (``args.keep``); the benchmark's exit code."""
    if ok:
        write_results(args.results, key, section)
        print(f"wrote {args.results}")
    else:
        print(f"{refused}: {args.results} left as it was", file=sys.stderr)
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def reuse(args) -> int:
    """Scenarios b and c again on a kept work folder (the corpus already ingested by scenario a)."""
    from legal_rag_pipeline_tests.loopback import EmbeddingServer

    work = args.reuse
    data, state = work / "data", work / "state"
    print(f"reusing {work}; load {os.getloadavg()}", flush=True)
    with EmbeddingServer(dim=DIM, latency=LATENCY, latency_per_text=LATENCY_PER_TEXT) as server:
        env = base_env(work, data, state, None if args.bm25_only else server.url)
        srv = None if args.bm25_only else server
        results = [ingest_scenario("b: re-ingest, nothing changed", srv, env, work, state)]
        what = change_one_article(data / CHANGED_LAW, args.article)
        results.append(ingest_scenario("c: re-ingest, one article changed", srv, env, work, state, what))
    print()
    print(table(results))
    print(json.dumps({"load_after": os.getloadavg(), "scenarios": [r.as_json() for r in results]}, ensure_ascii=False, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of laws (default ../shared/data/laws)")
    parser.add_argument("--bm25-only", action="store_true", help="no embeddings server: scenarios a-c, bm25 only")
    parser.add_argument("--old-sample", type=int, default=1000, help="texts timed for scenario d (0: all)")
    parser.add_argument("--qdrant-points", type=int, default=5000, help="points for the write-path comparison (0: skip)")
    parser.add_argument("--excel-rows", type=int, default=100_000, help="rows of the generated sheet (0: skip)")
    parser.add_argument("--questions", type=Path, default=REPO.parent / "shared" / "data" / "eval" / "alqac2023_train.json",
                        help="questions for the search timing (repeated to --queries)")
    parser.add_argument("--queries", type=int, default=520, help="queries timed (0: skip the search timing)")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md",
                        help="the Markdown page whose section for this mode is rewritten (default benchmarks/RESULTS.md)")
    parser.add_argument("--profile", action="store_true", help="cProfile each ingest (.prof files in the work folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--reuse", type=Path, help="a work folder kept by an earlier run: time b and c again only")
    parser.add_argument("--article", default=CHANGED_ARTICLE, help="the article scenario c edits (default Điều 5.)")
    args = parser.parse_args(argv)
    if args.reuse:
        return reuse(args)

    if not args.data.is_dir():
        print(f"{args.data} is absent: pass --data DIR (a folder of law .txt files)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="legal_rag_bench_"))
    data, state = work / "data", work / "state"
    shutil.copytree(args.data, data)
    (work / "dagster_home").mkdir()
    info = machine()
    print(f"work folder {work}; {sum(1 for _ in data.iterdir())} files; load {info['load_before']}", flush=True)
    results: list[Result] = []
    report: dict = {"machine": info, "mode": "bm25-only" if args.bm25_only else "dense (loopback, 50 ms + 1 ms/text, 768 dims)"}
    profile_dir = work if args.profile else None

    server = None
    try:
        if not args.bm25_only:
            from legal_rag_pipeline_tests.loopback import EmbeddingServer

            server = EmbeddingServer(dim=DIM, latency=LATENCY, latency_per_text=LATENCY_PER_TEXT).start()
        env = base_env(work, data, state, server.url if server else None)
        print("scenarios:", flush=True)
        results.append(ingest_scenario("a: full first ingest", server, env, work, state, profile_dir=profile_dir))
        results.append(ingest_scenario("b: re-ingest, nothing changed", server, env, work, state, profile_dir=profile_dir))
        what = change_one_article(data / CHANGED_LAW)
        results.append(ingest_scenario("c: re-ingest, one article changed", server, env, work, state, what, profile_dir))
        if args.queries and args.questions.is_file():
            report["search"] = search_scenarios(env, work, state, args.questions, args.queries)
        if server is not None:
            d = old_approach(server, env, work, state, args.old_sample)
            results.append(d)
            report["ratio_d_over_a"] = round(d.wall_s / results[0].wall_s, 1)
            if args.qdrant_points:
                report["qdrant_write"] = qdrant_write(env, work, state, args.qdrant_points)
        if args.excel_rows:
            report["excel"] = excel_scenarios(work, args.excel_rows)
    finally:
        if server is not None:
            server.stop()
    full = results[0].wall_s
    report["scenarios"] = [r.as_json() for r in results]
    report["b_over_a"] = round(results[1].wall_s / full, 3)
    report["c_over_a"] = round(results[2].wall_s / full, 3)
    report["load_after"] = os.getloadavg()
    print()
    print(table(results))
    if "ratio_d_over_a" in report:
        print(f"\n(d)/(a) = {report['ratio_d_over_a']}x   (d): {results[3].note}")
    print(f"(b)/(a) = {report['b_over_a']:.1%}   (c)/(a) = {report['c_over_a']:.1%}")
    print("\n" + json.dumps(report, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    key = "bm25-only" if args.bm25_only else "dense"
    ok = all(r.exit_code == 0 for r in results)
    return finish(args, ok, key, markdown(report, command.strip()), work, "a scenario failed")


if __name__ == "__main__":
    sys.exit(main())
