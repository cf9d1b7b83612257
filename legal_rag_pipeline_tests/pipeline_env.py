"""A throw-away project environment for end-to-end tests: data, state, Qdrant and DAGSTER_HOME in tmp."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from legal_rag_pipeline import cli
from legal_rag_pipeline.resources.qdrant import QdrantStore

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data() -> Path:
    """The real data beside the project; skip the test where it is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: the real-data tests need ../shared/data beside the project")
    return SHARED_DATA


@dataclass
class PipelineEnv:
    root: Path
    data: Path
    state: Path
    qdrant: Path
    dagster_home: Path
    collection: str = "legal_rag"

    def ingest(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        from legal_rag_pipeline.settings import load_settings

        code = cli.run_ingest(
            load_settings(), confirm_delete="--confirm-delete" in args, everything="--all" in args, out=out,
            retry_failed="--retry-failed" in args,
        )
        return code, out.getvalue()

    def main(self, *argv: str, capsys: pytest.CaptureFixture | None = None) -> int:
        return cli.main(list(argv))

    def search_json(self, query: str, top_k: int = 5) -> list[dict]:
        out = io.StringIO()
        from legal_rag_pipeline.settings import load_settings

        assert cli.run_search(load_settings(), [query], top_k, True, out=out) == 0
        return json.loads(out.getvalue().splitlines()[0])["hits"]

    def points(self) -> dict[str, dict]:
        """All points {id: payload} read through a fresh connection (the pipeline's is closed after a run)."""
        with self.store().connect() as collection:
            return {p.id: p.payload for p in collection.iter_points(fields=True)}

    def store(self, **kwargs) -> QdrantStore:
        """The embedded store the pipeline uses (Qdrant Edge unless ``engine`` says otherwise)."""
        return QdrantStore(path=str(self.qdrant), collection_name=self.collection, **kwargs)

    def runs(self) -> int:
        """How many runs the instance of ``DAGSTER_HOME`` holds (a plan that launched none adds none)."""
        from legal_rag_pipeline.instance import get_instance

        with get_instance() as instance:
            return instance.get_runs_count()

    def copy_sample(self) -> None:
        for path in SAMPLE_DATA.iterdir():
            shutil.copy2(path, self.data / path.name)


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, endpoint_url: str | None = None) -> PipelineEnv:
    env = PipelineEnv(
        root=tmp_path,
        data=tmp_path / "data",
        state=tmp_path / "state",
        qdrant=tmp_path / "state" / "qdrant",
        dagster_home=tmp_path / "dagster_home",
    )
    env.data.mkdir()
    env.dagster_home.mkdir()
    for name in (
        "HF_TOKEN",
        "HUGGINGFACE_API_KEY",
        "EMBEDDINGS_ENDPOINT_URL",
        "EMBEDDINGS_ENDPOINT_API_KEY",
        "QDRANT_URL",
        "QDRANT_HOST",
        "QDRANT_API_KEY",
        "EMBEDDINGS_BACKEND",
        "COLLECTION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is read, state stays in tmp
    monkeypatch.setenv("DATA_DIR", str(env.data))
    monkeypatch.setenv("LEGAL_RAG_STATE_DIR", str(env.state))
    monkeypatch.setenv("QDRANT_PATH", str(env.qdrant))
    monkeypatch.setenv("DAGSTER_HOME", str(env.dagster_home))
    if endpoint_url:
        monkeypatch.setenv("EMBEDDINGS_ENDPOINT_URL", endpoint_url)
        monkeypatch.setenv("EMBEDDINGS_ENDPOINT_API_KEY", "endpoint-key-0123456789")
    return env


# A second process that opens the embedded folder and keeps it (to test "in use by another process").
HOLD_FOLDER = (
    "import sys, time; from legal_rag_pipeline.resources.qdrant import QdrantStore; "
    "c = QdrantStore(path=sys.argv[1]).open(); c.lock(); print('ready', flush=True); time.sleep(120)"
)


def sensor_tick(defs, instance, cursor: str | None):
    """One tick of the real data-folder sensor, played as the daemon plays it: evaluated, its partition
    requests applied to ``instance``. Returns the tick's result (its ``cursor`` is the next tick's)."""
    import dagster as dg

    from legal_rag_pipeline.automation.sensors import SENSOR_NAME

    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result
