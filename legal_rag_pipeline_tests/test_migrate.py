"""`legal-rag migrate`: embedded → embedded (the same code path as embedded → server).

Every point keeps its id, dense and sparse vectors and payload; the alias moves only after the counts
match; an interrupted copy resumes (from the checkpoint, or by skipping the ids already copied) and
ends with no duplicates.
"""

from __future__ import annotations

import io
import json
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from legal_rag_pipeline import migration
from legal_rag_pipeline.errors import StoreError
from legal_rag_pipeline.resources.qdrant import SPARSE_NAME, PointRecord, QdrantStore

ALIAS = "legal_rag"
DIM = 8

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect")


def _points(n: int, dense: bool = True) -> list[PointRecord]:
    rng = np.random.default_rng(7)
    points = []
    for i in range(n):
        indices = sorted({int(x) for x in rng.integers(0, 5000, size=1 + i % 6)})
        points.append(
            PointRecord(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc-{i}")),
                vector=(rng.random(DIM) + 0.01).tolist() if dense else None,
                sparse=(indices, [float(v) for v in rng.random(len(indices)) + 0.1]),
                payload={
                    "page_content": f"Điều {i}. Nội dung thử nghiệm số {i}",
                    "metadata": {"source": f"luat-{i % 3}.txt", "article": str(i)},
                    "source": f"luat-{i % 3}.txt",
                    "article": str(i),
                    "chunk_index": i,
                },
            )
        )
    return points


def _source(tmp_path: Path, n: int = 57, dense: bool = True) -> tuple[QdrantStore, str]:
    store = QdrantStore(path=str(tmp_path / "source"), collection_name=ALIAS)
    with store.connect() as collection:
        physical = collection.ensure(DIM if dense else None, "test-model" if dense else None)
        collection.upsert(_points(n, dense))
    return store, physical


def _store(path: Path) -> QdrantStore:
    """The store in a folder: Qdrant Edge (the source) or qdrant-client's local mode (the target)."""
    engine = "edge" if (path / "edge.json").exists() else "client"
    return QdrantStore(path=str(path), collection_name=ALIAS, engine=engine)


def _dump(path: Path, collection: str) -> dict[str, tuple]:
    with _store(path).connect() as store:
        return {
            str(p.id): (p.dense, p.sparse, p.payload)
            for p in store.iter_points(physical=collection, fields=True, vectors=True, batch=100)
        }


def _alias_target(path: Path, alias: str = ALIAS) -> str | None:
    with _store(path).connect() as store:
        return store.alias_target()


def _assert_same_points(source: dict, target: dict) -> None:
    assert set(source) == set(target)
    for pid, (dense, sparse, payload) in source.items():
        tdense, tsparse, tpayload = target[pid]
        assert tpayload == payload
        assert (tdense is None) == (dense is None)
        if dense is not None:
            assert np.allclose(tdense, dense, atol=1e-6)
        assert tsparse[0] == sparse[0]
        assert np.allclose(tsparse[1], sparse[1])


def _migrate(source: QdrantStore, to: Path, state: Path, **kwargs) -> migration.MigrationReport:
    target = migration.target_store(f"path:{to}", collection_name=ALIAS, template=source)
    with source.connect() as src, target.connect() as dst:
        return migration.migrate(src, dst, checkpoint=migration.Checkpoint(state / "ckpt.json"), **kwargs)


def test_copy_keeps_every_point_vectors_payload_layout_and_alias(tmp_path):
    source, physical = _source(tmp_path)
    report = _migrate(source, tmp_path / "target", tmp_path, batch_size=10)

    assert report.complete and report.source_points == report.target_points == 57
    assert report.copied == 57 and report.batches == 6
    _assert_same_points(_dump(tmp_path / "source", physical), _dump(tmp_path / "target", physical))
    assert _alias_target(tmp_path / "target") == physical

    client = QdrantClient(path=str(tmp_path / "target"))
    try:
        params = client.get_collection(ALIAS).config.params  # reachable through the alias
        assert params.vectors.size == DIM and params.vectors.distance == models.Distance.COSINE
        assert params.sparse_vectors[SPARSE_NAME].modifier == models.Modifier.IDF
    finally:
        client.close()
    assert not (tmp_path / "ckpt.json").exists()  # a finished copy leaves no checkpoint


def test_bm25_only_collection(tmp_path):
    source, physical = _source(tmp_path, n=23, dense=False)
    report = _migrate(source, tmp_path / "target", tmp_path, batch_size=5)
    assert report.complete and report.target_points == 23
    target = _dump(tmp_path / "target", physical)
    _assert_same_points(_dump(tmp_path / "source", physical), target)
    assert all(dense is None for dense, _, _ in target.values())


def test_interrupted_copy_resumes_from_the_checkpoint(tmp_path):
    source, physical = _source(tmp_path)
    with pytest.raises(migration.MigrationInterrupted) as stopped:
        _migrate(source, tmp_path / "target", tmp_path, batch_size=10, max_batches=2)
    assert stopped.value.report.copied == 20 and stopped.value.report.target_points == 20
    assert _alias_target(tmp_path / "target") is None  # no alias on a partial copy
    saved = json.loads((tmp_path / "ckpt.json").read_text())
    assert len(saved) == 1

    report = _migrate(source, tmp_path / "target", tmp_path, batch_size=10)
    assert report.complete
    assert report.resumed_from is not None
    assert report.copied == 37 and report.skipped == 0  # started after the 20 copied points
    assert report.target_points == 57
    _assert_same_points(_dump(tmp_path / "source", physical), _dump(tmp_path / "target", physical))
    assert _alias_target(tmp_path / "target") == physical


def test_crash_mid_copy_without_checkpoint_skips_what_is_there(tmp_path):
    """A crash (an exception from the progress callback) and a lost checkpoint: the rerun still ends with 57."""
    source, physical = _source(tmp_path)

    def crash(report: migration.MigrationReport) -> None:
        if report.batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _migrate(source, tmp_path / "target", tmp_path, batch_size=10, on_batch=crash)
    (tmp_path / "ckpt.json").unlink()

    report = _migrate(source, tmp_path / "target", tmp_path, batch_size=10)
    assert report.resumed_from is None
    assert (report.skipped, report.copied, report.target_points) == (30, 27, 57)
    _assert_same_points(_dump(tmp_path / "source", physical), _dump(tmp_path / "target", physical))


def test_second_run_is_a_no_op_and_alias_moves_from_an_old_collection(tmp_path):
    source, physical = _source(tmp_path)
    # The destination already serves an older collection under the alias.
    old = QdrantStore(path=str(tmp_path / "target"), collection_name=ALIAS, engine="client")
    with old.connect() as collection:
        old_physical = collection.ensure(DIM, "old-model")
        collection.upsert(_points(3))
    assert _alias_target(tmp_path / "target") == old_physical

    _migrate(source, tmp_path / "target", tmp_path, batch_size=50)
    assert _alias_target(tmp_path / "target") == physical
    again = _migrate(source, tmp_path / "target", tmp_path, batch_size=50)
    assert (again.copied, again.skipped, again.target_points) == (0, 57, 57)


def test_count_mismatch_fails_and_keeps_the_alias_where_it_was(tmp_path):
    source, physical = _source(tmp_path, n=12)
    target = QdrantStore(path=str(tmp_path / "target"), collection_name=ALIAS, engine="client")
    with target.connect() as collection:
        collection.create_physical(physical, DIM)
        collection.upsert(_points(1) and [PointRecord(str(uuid.uuid4()), [0.5] * DIM, ([1], [1.0]), {"x": 1})], physical)
    with pytest.raises(StoreError, match="Verification failed"):
        _migrate(source, tmp_path / "target", tmp_path, batch_size=5)
    assert _alias_target(tmp_path / "target") is None


def test_destination_with_another_vector_size_is_refused(tmp_path):
    source, physical = _source(tmp_path, n=5)
    target = QdrantStore(path=str(tmp_path / "target"), collection_name=ALIAS, engine="client")
    with target.connect() as collection:
        collection.create_physical(physical, DIM * 2)
    with pytest.raises(StoreError, match="different dense vector size"):
        _migrate(source, tmp_path / "target", tmp_path)


def test_target_store_parsing_carries_cluster_settings():
    template = QdrantStore(shard_number=4, replication_factor=2, write_consistency_factor=2, on_disk=True, timeout_seconds=9)
    server = migration.target_store("https://q.example.vn:6333", collection_name="c", api_key="k", template=template)
    assert server.client_kwargs()["url"] == "https://q.example.vn:6333"
    assert server.client_kwargs()["api_key"] == "k" and server.client_kwargs()["timeout"] == 9
    assert (server.shard_number, server.replication_factor, server.write_consistency_factor, server.on_disk) == (
        4,
        2,
        2,
        True,
    )
    folder = migration.target_store("path:/srv/q", collection_name="c", template=template)
    assert folder.client_kwargs() == {"path": "/srv/q"} and folder.shard_number == 4
    from legal_rag_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        migration.target_store("qdrant.example.vn", collection_name="c")


# ---------------------------------------------------------------------------- the command
@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    for name in ("QDRANT_URL", "QDRANT_HOST", "QDRANT_API_KEY", "COLLECTION_NAME", "HF_TOKEN", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEGAL_RAG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "source"))
    return tmp_path


def test_cli_migrate_interrupted_then_resumed(cli_env, monkeypatch, capsys):
    from legal_rag_pipeline import cli

    tmp_path = cli_env
    _, physical = _source(tmp_path)
    real = migration.migrate
    monkeypatch.setattr(migration, "migrate", lambda *a, **k: real(*a, **{**k, "max_batches": 2}))
    with pytest.raises(migration.MigrationInterrupted):
        cli.main(["migrate", "--to", f"path:{tmp_path / 'target'}", "--batch-size", "10"])
    assert (tmp_path / "state" / "migrate-checkpoint.json").exists()
    monkeypatch.setattr(migration, "migrate", real)

    assert cli.main(["migrate", "--to", f"path:{tmp_path / 'target'}", "--batch-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "Done: 57 of 57 points" in out and "37 copied" in out and f"alias {ALIAS} -> {physical}" in out
    _assert_same_points(_dump(tmp_path / "source", physical), _dump(tmp_path / "target", physical))
    assert not (tmp_path / "state" / "migrate-checkpoint.json").exists()


def test_cli_refuses_same_source_and_target(cli_env, capsys):
    from legal_rag_pipeline import cli

    assert cli.main(["migrate", "--to", f"path:{cli_env / 'source'}"]) == 2
    assert "same" in capsys.readouterr().err


def test_cli_missing_collection_is_a_clear_error(cli_env, capsys):
    from legal_rag_pipeline import cli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["migrate", "--to", f"path:{cli_env / 'target'}"]) == 1
    assert "no collection legal_rag to migrate" in capsys.readouterr().err


def test_help_lists_migrate():
    from legal_rag_pipeline import cli

    out = io.StringIO()
    cli.build_parser().print_help(out)
    assert "migrate" in out.getvalue()
