"""SIGKILL at several moments: an ingest (reading, embedding, writing, late in the run) with a file
edited between kills, then run to the end, leaves exactly the points of a clean ingest of the same
files; a rebuild killed while it writes its new shard leaves the live collection answering.

Real parts only: `legal-rag ingest` / `legal-rag rebuild` in subprocesses, Qdrant Edge, the loopback
embedding server through huggingface_hub, real laws from ../shared/data/laws.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from legal_rag_pipeline.artifacts import RECORDS_FILE
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline_tests.conftest import TEST_ENDPOINT_KEY
from legal_rag_pipeline_tests.loopback import EmbeddingServer
from legal_rag_pipeline_tests.pipeline_env import shared_data

pytestmark = pytest.mark.slow

LAWS = [
    "Luat-thue-bao-ve-moi-truong-2010-115247.txt",
    "Luat-thue-tieu-thu-dac-biet-2008-26-2008-QH12-82198.txt",
    "Luat-thue-tai-nguyen-nam-2009-98731.txt",
    "Luat-thue-su-dung-dat-phi-nong-nghiep-2010-108065.txt",
    "Luat-Bien-gioi-Quoc-gia-2003-06-2003-QH11-51044.txt",
]


class Project:
    """One project folder (data, state, Qdrant, DAGSTER_HOME) driven through the real CLI."""

    def __init__(self, root: Path, server: EmbeddingServer) -> None:
        self.root, self.data, self.state = root, root / "data", root / "state"
        self.data.mkdir(parents=True)
        (root / "dagster_home").mkdir()
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "EMBEDDINGS_", "QDRANT_"))}
        self.env = {
            **keep,
            "DATA_DIR": str(self.data),
            "LEGAL_RAG_STATE_DIR": str(self.state),
            "QDRANT_PATH": str(self.state / "qdrant"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "EMBEDDINGS_ENDPOINT_URL": server.url,
            "EMBEDDINGS_ENDPOINT_API_KEY": TEST_ENDPOINT_KEY,
            "EMBEDDINGS_BATCH_SIZE": "8",
            "EMBEDDINGS_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "legal_rag_pipeline.cli", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args), env=self.env, cwd=self.root, capture_output=True, text=True, timeout=600, check=False
        )

    def kill_when(self, condition: Callable[[], bool], *args: str, limit: float = 300) -> str:
        """Start the command, SIGKILL it as soon as ``condition()`` holds; returns what happened."""
        proc = subprocess.Popen(self.command(*args), env=self.env, cwd=self.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + limit
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if condition():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return "killed"
                time.sleep(0.01)
            return f"finished with {proc.returncode}" if proc.poll() is not None else "timed out"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def points(self) -> dict:
        with QdrantStore(path=str(self.state / "qdrant")).connect() as collection:
            return {
                p.id: ({k: v for k, v in p.payload.items() if k != "ingested_at"}, p.dense, p.sparse)
                for p in collection.iter_points(fields=True, vectors=True)
            }


def _files(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.glob(pattern)) if folder.exists() else 0


def _decoded(state: Path) -> int:
    """Files whose decoded text is kept: a row of files.db (a short text) or a raw.jsonl."""
    rows = 0
    if (state / RECORDS_FILE).exists():
        try:
            with sqlite3.connect(f"file:{state / RECORDS_FILE}?mode=ro", uri=True, timeout=1) as db:
                rows = db.execute("SELECT count(*) FROM raw").fetchone()[0]
        except sqlite3.Error:  # not created yet, or busy this instant
            rows = 0
    return rows + _files(state, "files/*/raw.jsonl")


def _edit(path: Path, n: int) -> None:
    """Change the body of one article (a different one each time)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    heads = [i for i, line in enumerate(lines) if line.strip().startswith("Điều ")]
    i = heads[(n * 3) % len(heads)]
    lines[i + 1] = lines[i + 1].rstrip() + f" (sửa đổi lần {n})"
    path.write_text("\n".join(lines), encoding="utf-8")


def _wal_bytes(project: Project) -> int:
    return sum(p.stat().st_size for p in (project.state / "qdrant").glob("shards/*/wal/*") if p.is_file())


def test_ingest_killed_at_several_moments_then_finished_equals_a_clean_ingest(tmp_path):
    laws = shared_data() / "laws"
    with EmbeddingServer(latency=0.05) as server:
        killed = Project(tmp_path / "killed", server)
        for name in LAWS:
            shutil.copy2(laws / name, killed.data / name)
        target = killed.data / LAWS[0]
        moments = []

        # 1. while reading (the first file's decoded text appears)
        moments.append(("reading", killed.kill_when(lambda: _decoded(killed.state) >= 1, "ingest")))
        _edit(target, 1)
        # 2. while embedding (requests reach the server, embeddings of some files saved)
        server.reset_records()
        moments.append(("embedding", killed.kill_when(lambda: server.count() >= 3, "ingest")))
        _edit(target, 2)
        # 3. while writing the first points (the shard appears)
        moments.append(("writing", killed.kill_when(lambda: _files(killed.state, "qdrant/shards/*") >= 1, "ingest")))
        _edit(target, 3)
        # 4. while writing again, into the existing collection (its write-ahead log grows)
        before = _wal_bytes(killed)
        moments.append(("writing (existing collection)", killed.kill_when(lambda: _wal_bytes(killed) > before, "ingest")))
        # 5. late: the collection checks run after the writes (the run records its check evaluations)
        _edit(target, 4)
        before = _wal_bytes(killed)
        started = time.monotonic()
        moments.append(("after the writes, during the checks",
                        killed.kill_when(lambda: _wal_bytes(killed) > before and time.monotonic() - started > 0.05, "ingest")))

        assert [m for _, m in moments].count("killed") >= 4, moments
        done = killed.run("ingest")
        assert done.returncode == 0, done.stdout + done.stderr

        clean = Project(tmp_path / "clean", server)
        for path in killed.data.iterdir():
            shutil.copy2(path, clean.data / path.name)
        reference = clean.run("ingest")
        assert reference.returncode == 0, reference.stdout + reference.stderr

        got, want = killed.points(), clean.points()
        assert set(got) == set(want), "points missing or stale"  # ids are uuid5(file, chunk, text sha)
        for pid, (payload, dense, sparse) in want.items():
            assert got[pid][0] == payload
            assert got[pid][2] == sparse
            assert got[pid][1] == pytest.approx(dense, abs=1e-6)

        server.reset_records()
        again = killed.run("ingest")
        assert again.returncode == 0, again.stdout + again.stderr
        assert server.count() == 0  # the next run embeds nothing


def test_rebuild_killed_while_writing_leaves_the_live_collection_and_the_next_one_succeeds(tmp_path):
    laws = shared_data() / "laws"
    with EmbeddingServer() as server:
        project = Project(tmp_path / "p", server)
        for name in LAWS[:3]:
            shutil.copy2(laws / name, project.data / name)
        assert project.run("ingest").returncode == 0
        live = project.points()
        shards = project.state / "qdrant" / "shards"
        assert _files(shards, "*") == 1

        happened = project.kill_when(lambda: _files(shards, "*") >= 2, "rebuild")
        assert happened == "killed"
        assert _files(shards, "*") == 2  # the half-built shard is left behind ...
        assert project.points() == live  # ... and the live collection is untouched
        found = project.run("search", "thuế bảo vệ môi trường")
        assert found.returncode == 0 and "Điều" in found.stdout

        rebuilt = project.run("rebuild")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "dropped leftovers" in rebuilt.stdout
        assert _files(shards, "*") == 1 and set(project.points()) == set(live)
