"""normalized_records, embedding_batches and qdrant_collection share one step (chunk_embed_and_write):
each can be materialised without those after it, as when they were steps of their own, and
qdrant_collection refuses to run without the vectors of its run.

Real parts: Dagster's ``materialize`` on the project's assets and resources, the loopback embeddings
server through huggingface_hub, Qdrant Edge, the state folder."""

from __future__ import annotations

import dagster as dg
import pytest

from legal_rag_pipeline.artifacts import FileArtifacts
from legal_rag_pipeline.assets.ingestion import ASSETS
from legal_rag_pipeline.definitions import build_resources
from legal_rag_pipeline.partitions import source_files
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env

KEY = "luat-mau.txt"
TEXT = "LUẬT MẪU\n" + "\n".join(f"Điều {a}. Quy định {a}\nNội dung riêng của điều {a}." for a in range(1, 6)) + "\n"


@pytest.fixture
def project(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    (env.data / KEY).write_text(TEXT, encoding="utf-8")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(source_files.name, [KEY])
    embeddings_server.reset_records()
    return env, instance


def _materialize(instance, *names: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS, selection=list(names), partition_key=KEY, instance=instance,
        resources=build_resources(load_settings()), raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}


def test_normalized_records_alone_chunks_and_embeds_nothing(project, embeddings_server):
    env, instance = project
    result = _materialize(instance, "raw_documents", "normalized_records")
    assert result.success
    assert _materialized(result) == {"raw_documents", "normalized_records"}
    art = FileArtifacts(env.state, KEY)
    assert len(art.chunk_ids()) == 5 and art.stage_ok("normalized_records", result.run_id)
    assert embeddings_server.count() == 0
    assert not env.qdrant.exists() or env.points() == {}


def test_embedding_batches_without_the_collection_saves_vectors_and_writes_nothing(project, embeddings_server):
    env, instance = project
    result = _materialize(instance, "raw_documents", "normalized_records", "embedding_batches")
    assert result.success
    assert _materialized(result) == {"raw_documents", "normalized_records", "embedding_batches"}
    art = FileArtifacts(env.state, KEY)
    assert len(art.read_embeddings(_model())) == 5
    assert sum(embeddings_server.batch_sizes()) == 5
    assert not env.qdrant.exists() or env.points() == {}


def test_the_collection_without_its_embedding_refuses_in_one_sentence(project, embeddings_server):
    env, instance = project
    result = _materialize(instance, "qdrant_collection")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "select embedding_batches with it" in message
    assert embeddings_server.count() == 0
    assert not env.qdrant.exists() or env.points() == {}


def test_the_four_together_write_every_chunk(project, embeddings_server):
    env, instance = project
    result = _materialize(instance, "raw_documents", "normalized_records", "embedding_batches", "qdrant_collection")
    assert result.success
    assert _materialized(result) == {"raw_documents", "normalized_records", "embedding_batches", "qdrant_collection",
                                     "law_validity"}
    points = env.points()
    assert len(points) == 5 and {p["source"] for p in points.values()} == {KEY}


def _model() -> str:
    from legal_rag_pipeline.definitions import build_embedder

    return build_embedder(load_settings(), resolve=True).model_id()


def _switch_intervals_during(work) -> set[float]:
    """The switch intervals Python had while ``work()`` ran, sampled every millisecond from a thread."""
    import sys
    import threading

    seen: set[float] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.001):
            seen.add(sys.getswitchinterval())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return seen


def test_requests_in_flight_get_the_lock_sooner_during_a_dense_step_only(project, embeddings_server, monkeypatch):
    """instance.prompt_requests: Python's switch interval is 1 ms while the step has embedding requests
    to send, and back to what it was once the step ends; a bm25-only run keeps the default."""
    import sys

    from legal_rag_pipeline.instance import REQUESTS_SWITCH_INTERVAL

    env, instance = project
    default = sys.getswitchinterval()
    embeddings_server.latency = 0.05  # the step lasts long enough to be sampled
    assert REQUESTS_SWITCH_INTERVAL < default
    seen = _switch_intervals_during(
        lambda: _materialize(instance, "raw_documents", "normalized_records", "embedding_batches", "qdrant_collection"))
    assert REQUESTS_SWITCH_INTERVAL in seen and sys.getswitchinterval() == default
    assert embeddings_server.count() > 0

    monkeypatch.delenv("EMBEDDINGS_ENDPOINT_URL")  # bm25 only
    (env.data / KEY).write_text(TEXT + "Điều 6. Quy định mới\nNội dung mới.\n", encoding="utf-8")
    seen = _switch_intervals_during(
        lambda: _materialize(instance, "raw_documents", "normalized_records", "embedding_batches", "qdrant_collection"))
    assert seen == {default}
