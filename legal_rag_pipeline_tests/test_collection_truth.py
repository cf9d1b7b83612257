"""The collection is the source of truth: a lost, empty or other state folder pays for nothing twice.

Real parts only: `legal-rag ingest` in subprocesses, real laws from ../shared/data/laws, the loopback
embedding server through huggingface_hub (it counts the texts it embeds), Qdrant Edge and
qdrant-client's local mode (the stand-in for a server), a real PostgreSQL Dagster instance.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline_tests.loopback import EmbeddingServer
from legal_rag_pipeline_tests.pipeline_env import shared_data
from legal_rag_pipeline_tests.test_production import _postgres_home, pg_db, pg_server  # noqa: F401 - fixtures
from legal_rag_pipeline_tests.test_reliability import Project, _edit

pytestmark = pytest.mark.slow

LAWS = [
    "Luat-tiep-cong-dan-2013-215839.txt",
    "Luat-khieu-nai-2011-132446.txt",
    "Luat-thue-bao-ve-moi-truong-2010-115247.txt",
]


class Shared(Project):
    """A project whose Qdrant folder is outside its state folder (QDRANT_PATH set, as on a server)."""

    def __init__(self, root: Path, server: EmbeddingServer, *, engine: str = "edge", data: Path | None = None,
                 qdrant: Path | None = None, dagster_home: Path | None = None) -> None:
        super().__init__(root, server)
        self.engine = engine
        self.qdrant = qdrant or root / "qdrant"
        if data is not None:
            self.data = data
        self.env.update(QDRANT_PATH=str(self.qdrant), QDRANT_ENGINE=engine, DATA_DIR=str(self.data))
        if dagster_home is not None:
            self.env["DAGSTER_HOME"] = str(dagster_home)

    def points(self) -> dict:
        with QdrantStore(path=str(self.qdrant), engine=self.engine).connect() as collection:
            return {
                p.id: ({k: v for k, v in p.payload.items() if k != "ingested_at"}, p.dense)
                for p in collection.iter_points(fields=True, vectors=True)
            }

    def ingest(self) -> str:
        done = self.run("ingest")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _texts(server: EmbeddingServer) -> int:
    return sum(server.batch_sizes())


def _copy_laws(project: Project) -> None:
    laws = shared_data() / "laws"
    for name in LAWS:
        shutil.copy2(laws / name, project.data / name)


def _same(got: dict, want: dict) -> None:
    assert set(got) == set(want), "points missing or stale"
    for pid, (payload, dense) in want.items():
        assert got[pid][0] == payload
        assert got[pid][1] == pytest.approx(dense, abs=1e-6)


def test_a_lost_state_another_directory_and_a_change_from_nothing_pay_only_for_new_text(tmp_path):
    with EmbeddingServer() as server:
        project = Shared(tmp_path / "p", server)
        _copy_laws(project)
        project.ingest()
        assert _texts(server) > 300
        before = project.points()

        # The state folder deleted (a new laptop, a wiped disk, a restarted container).
        shutil.rmtree(project.state)
        server.reset_records()
        out = project.ingest()
        assert "No local state" in out
        assert _texts(server) == 0
        _same(project.points(), before)

        # Run from another working directory, with the state folder's default (./.legal_rag there).
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        project.env.pop("LEGAL_RAG_STATE_DIR")
        server.reset_records()
        project.root = elsewhere
        project.ingest()
        assert (elsewhere / ".legal_rag").is_dir() and _texts(server) == 0
        _same(project.points(), before)

        # One article changed, from an empty state folder: that text only.
        shutil.rmtree(elsewhere / ".legal_rag")
        _edit(project.data / LAWS[0], 1)
        server.reset_records()
        project.ingest()
        assert _texts(server) == 1
        after = project.points()
        assert len(set(after) - set(before)) == 1 and len(set(before) - set(after)) == 1


def test_killed_then_state_lost_ends_as_a_clean_ingest_with_nothing_paid_twice(tmp_path):
    """A law added and an article changed; the run is killed while it embeds them; the state folder is
    lost; the next run ends as a clean ingest, and the unchanged files cost no text."""
    laws = shared_data() / "laws"
    with EmbeddingServer(latency=0.02) as server:
        killed = Shared(tmp_path / "killed", server)
        for name in LAWS[:2]:
            shutil.copy2(laws / name, killed.data / name)
        killed.ingest()
        shutil.copy2(laws / LAWS[2], killed.data / LAWS[2])
        _edit(killed.data / LAWS[1], 2)
        server.reset_records()
        assert killed.kill_when(lambda: server.count() >= 3, "ingest") == "killed"
        shutil.rmtree(killed.state)
        server.reset_records()
        killed.ingest()
        paid = _texts(server)

        clean = Shared(tmp_path / "clean", server)
        for path in killed.data.iterdir():
            shutil.copy2(path, clean.data / path.name)
        clean.ingest()
        want = clean.points()
        _same(killed.points(), want)
        new_law = sum(1 for payload, _ in want.values() if payload["source"] == LAWS[2])
        assert 0 < paid <= new_law + 1  # the new law and the changed article at most; the unchanged files nothing


@pytest.mark.parametrize("engine", ["client", "edge"])
def test_a_second_process_sharing_only_data_collection_and_dagster_pays_nothing(engine, pg_db, tmp_path):
    """A run pod without the first one's disk: its own empty state folder, the same data folder, the same
    Qdrant (qdrant-client's local mode as the stand-in for a server; Edge too) and the same PostgreSQL
    Dagster instance."""
    home = _postgres_home(tmp_path / "dagster_home")
    with EmbeddingServer() as server:
        first = Shared(tmp_path / "first", server, engine=engine, dagster_home=home)
        _copy_laws(first)
        first.ingest()
        assert _texts(server) > 300
        before = first.points()

        pod = Shared(tmp_path / "pod", server, engine=engine, data=first.data, qdrant=first.qdrant, dagster_home=home)
        server.reset_records()
        started = time.monotonic()
        pod.ingest()
        assert _texts(server) == 0, f"{_texts(server)} texts embedded again in {time.monotonic() - started:.1f} s"
        assert not (first.state / "files.db").samefile(pod.state / "files.db")
        _same(pod.points(), before)


def test_an_unreadable_files_db_is_set_aside_and_rebuilt(tmp_path):
    with EmbeddingServer() as server:
        project = Shared(tmp_path / "p", server)
        _copy_laws(project)
        project.ingest()
        before = project.points()
        for suffix in ("-wal", "-shm"):
            Path(f"{project.state / 'files.db'}{suffix}").unlink(missing_ok=True)
        (project.state / "files.db").write_bytes(b"this is not a database, a disk fault left it so" * 100)
        server.reset_records()
        done = project.run("ingest")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "could not be read" in done.stdout + done.stderr
        assert list(project.state.glob("files.db.unreadable-*")) and _texts(server) == 0
        _same(project.points(), before)
