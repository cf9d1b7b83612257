"""Zero-downtime rebuild: searches answered throughout, alias moved, failures leave the old collection live,
pre-alias collections migrated without losing points, a model change re-embeds and switches."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from qdrant_client import QdrantClient, models

from legal_rag_pipeline import rebuild
from legal_rag_pipeline.assets import checks
from legal_rag_pipeline.definitions import build_definitions, build_embedder, build_store
from legal_rag_pipeline.search import search
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.loopback import credits_exhausted
from legal_rag_pipeline_tests.pipeline_env import make_env

QUERY = "thời hạn tạm trú tối đa"


@pytest.fixture(scope="module")
def ingested_template(tmp_path_factory):
    """The sample ingested once (bm25 only); each test works on its own copy."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        env = make_env(root, mp)
        env.copy_sample()
        code, out = env.ingest()
        assert code == 0, out
    return root


@pytest.fixture
def env(ingested_template, tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    for name in ("data", "state"):
        shutil.copytree(ingested_template / name, tmp_path / name, dirs_exist_ok=True)
    return env


def _unit(vector):
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector]


def _parts():
    settings = load_settings()
    return settings, build_store(settings, resolve=True), build_embedder(settings, resolve=True)


def _state(env):
    with env.store().connect() as collection:
        return {"legal_rag": collection.alias_target()}, set(collection.physical_names()), collection.count()


def test_searches_answered_throughout_then_alias_moves_and_old_is_dropped(env):
    aliases, names, count = _state(env)
    old = aliases["legal_rag"]
    settings, store, embedder = _parts()
    seen = []

    def during(progress: rebuild.Progress) -> None:
        # between two batches written to the new collection, a search answers from the old one
        hits = search(progress.collection, QUERY, 3)
        assert "6" in [h.article for h in hits]
        assert progress.collection.alias_target() == old and progress.new != old
        assert progress.collection.count() == count
        seen.append(progress.written)

    report = rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir, batch_size=5, on_batch=during)
    assert len(seen) >= 4 and seen[-1] == count == report.points
    assert report.old == old and all(report.checks.values()) and set(report.checks) >= {"points_match_chunks", "search_probe"}
    aliases, names, after = _state(env)
    assert aliases["legal_rag"] == report.new and names == {report.new} and after == count
    assert "6" in [h["article"] for h in env.search_json(QUERY, 3)]
    assert env.ingest()[0] == 0  # ingest keeps working on the rebuilt collection (nothing to write)


def test_failed_rebuild_leaves_the_old_collection_live(env, monkeypatch):
    aliases, names, count = _state(env)
    settings, store, embedder = _parts()

    def boom(view):
        raise RuntimeError("injected failure just before the alias swap")

    with pytest.raises(RuntimeError, match="injected"):
        rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir, before_swap=boom)
    assert _state(env) == (aliases, names, count)

    failing = dg.AssetCheckResult(check_name="points_match_chunks", passed=False, metadata={"mismatched": "x: 1 of 2"})
    monkeypatch.setattr(checks, "_points_match", lambda *args, **kwargs: failing)
    with pytest.raises(rebuild.RebuildFailed, match="failed its checks: points_match_chunks") as info:
        rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir)
    assert "still points at " + aliases["legal_rag"] in str(info.value)
    assert _state(env) == (aliases, names, count)
    assert "6" in [h["article"] for h in env.search_json(QUERY, 3)]


def test_pre_alias_collection_is_migrated_without_losing_points(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.qdrant.parent.mkdir(parents=True)
    client = QdrantClient(path=str(env.qdrant))
    # as the old script made it: a real collection named legal_rag, unnamed dense vector, LangChain payload
    client.create_collection("legal_rag", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    texts = ["Thời hạn tạm trú tối đa là 02 năm.", "Nồng độ cồn bị nghiêm cấm.", "Giấy phép lái xe."]
    client.upsert("legal_rag", points=[
        models.PointStruct(id=i + 1, vector=[1.0, float(i), 0.5, 0.25],
                           payload={"page_content": t, "metadata": {"source": "old.xlsx", "question": f"q{i}"}})
        for i, t in enumerate(texts)
    ])
    before = {p.id: p.vector for p in client.retrieve("legal_rag", [1, 2, 3], with_vectors=True)}
    client.close()
    settings, store, embedder = _parts()
    assert rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir, migrate_only=True) is None

    # the folder was moved to Qdrant Edge on first use, then the collection behind an alias
    assert not (env.qdrant / "meta.json").exists() and (env.qdrant / "edge.json").exists()
    with env.store().connect() as collection:
        alias = collection.alias_target()
        assert alias.startswith("legal_rag__") and collection.physical_names() == [alias]
        points = sorted(collection.retrieve([1, 2, 3], fields=True, vectors=True), key=lambda p: p.id)
        assert [p.payload["page_content"] for p in points] == texts
        for point in points:  # dense vectors kept (same direction: cosine)
            assert _unit(point.dense) == pytest.approx(_unit(before[point.id]), abs=1e-6)
        assert points[0].sparse and points[0].sparse[0]  # bm25 computed from page_content
    with store.connect() as collection:
        assert [h.page_content for h in search(collection, "nồng độ cồn", 1)] == [texts[1]]
    # nothing ingested yet: a rebuild from artifacts refuses instead of emptying the collection
    with pytest.raises(rebuild.StoreError, match="no ingested files"):
        rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir)


def test_model_change_reembeds_and_switches_vector_size(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    env.copy_sample()
    assert env.ingest()[0] == 0
    settings, store, embedder = _parts()
    assert rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir, only_if_needed=True) is None
    before = embeddings_server.count()
    report = rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir)
    assert report.embedded == 0 and embeddings_server.count() == before  # same model: cached vectors reused

    embeddings_server.dim = 16
    monkeypatch.setenv("EMBEDDINGS_MODEL_NAME", "sentence-transformers/another-model")
    code, out = env.ingest()
    assert code == 1 and "legal-rag rebuild" in out  # ingest refuses the new size and says what to do
    assert env.main("rebuild", "--if-needed") == 0
    with build_store(load_settings(), resolve=True).connect() as collection:
        assert collection.dense_size() == 16
        assert {p.payload["embedding_model"] for p in collection.iter_points(fields=True)} == {
            "sentence-transformers/another-model"}
    assert env.ingest()[0] == 0
    assert "6" in [h["article"] for h in env.search_json(QUERY, 3)]


def test_a_new_model_that_cannot_be_called_fails_the_rebuild_with_its_error_and_the_old_collection_stays(
    tmp_path, monkeypatch, embeddings_server
):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    env.copy_sample()
    assert env.ingest()[0] == 0
    aliases, names, count = _state(env)
    monkeypatch.setenv("EMBEDDINGS_MODEL_NAME", "sentence-transformers/another-model")
    monkeypatch.setenv("EMBEDDINGS_BATCH_SIZE", "2")  # several requests in flight when the first meets the 402
    settings, store, embedder = _parts()
    embeddings_server.fail_always(credits_exhausted())
    with pytest.raises(rebuild.RebuildFailed, match="Embedding for the rebuild failed") as info:
        rebuild.rebuild(store, embedder, settings.state_dir, settings.data_dir)
    assert "402 Payment Required; no more embedding calls" in str(info.value) and "the alias did not move" in str(info.value)
    assert _state(env) == (aliases, names, count)
    embeddings_server.fail_always(None)
    monkeypatch.delenv("EMBEDDINGS_MODEL_NAME")
    assert "6" in [h["article"] for h in env.search_json(QUERY, 3)]  # the old collection answers


def test_rebuild_job_in_dagster(env):
    defs = build_definitions(load_settings())
    result = defs.resolve_job_def("rebuild_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observations and observations[0].asset_key == dg.AssetKey("qdrant_collection")
    aliases, names, _ = _state(env)
    assert names == {aliases["legal_rag"]}
