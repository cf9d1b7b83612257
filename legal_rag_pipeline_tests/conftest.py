"""Shared fixtures. Keep each fixture small and documented; helpers live in their own modules."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from legal_rag_pipeline_tests.loopback import EmbeddingServer, huggingface_hub_pointed_at

# A fake token: the loopback server accepts any non-empty token unless told otherwise.
TEST_HF_TOKEN = "hf_loopbackTestToken0123456789abcdef"
TEST_ENDPOINT_KEY = "endpoint-key-0123456789"
# Retry settings that keep tests fast (production defaults wait seconds to minutes).
FAST_RETRIES = {
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.05,
    "max_retry_seconds": 5.0,
    "timeout_seconds": 5.0,
}


@pytest.fixture(autouse=True)
def no_dagster_instance_left_entered() -> Iterator[None]:
    """Fails, at teardown, the test that leaves a Dagster instance entered.

    An evaluation context (``build_sensor_context``, ``build_schedule_context``) or an instance that is
    not closed is left by the garbage collector, whenever it runs, and that restores Dagster's
    "current state storage" to an instance that is gone: a later test's definitions load then fails
    with "Attempted to resolve undefined DagsterInstance weakref" far from the cause. Collecting here
    makes it show at the test that caused it. Use them with ``with``."""
    from dagster._core.storage.defs_state.base import DefsStateStorage

    before = DefsStateStorage.get()
    yield
    gc.collect()
    if DefsStateStorage.get() is not before:
        pytest.fail("this test left a Dagster instance or evaluation context entered: close it (`with ...`)")


@pytest.fixture
def embeddings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingServer]:
    """A running loopback embedding server (768 dims, no latency) with huggingface_hub pointed at it.

    Both paths of ``HuggingFaceEmbedder`` reach it: ``endpoint_url=server.url`` (text-embeddings-inference)
    and the provider path (``token=...``), whose Hub and router calls are redirected to the server.
    Change its attributes (``dim``, ``latency``, ``fail_next(...)``, ...) inside the test.
    """
    hf_home = tmp_path_factory.mktemp("hf_home")
    with EmbeddingServer() as server, huggingface_hub_pointed_at(server.url, hf_home):
        yield server


@pytest.fixture
def endpoint_embedder(embeddings_server: EmbeddingServer):
    """``HuggingFaceEmbedder`` on the endpoint path (the loopback server as TEI), fast retries."""
    from legal_rag_pipeline.resources.embeddings import HuggingFaceEmbedder

    return HuggingFaceEmbedder(
        endpoint_url=embeddings_server.url, endpoint_api_key=TEST_ENDPOINT_KEY, **FAST_RETRIES
    )


@pytest.fixture
def provider_embedder(embeddings_server: EmbeddingServer):
    """``HuggingFaceEmbedder`` on the Inference Providers path (hf-inference via loopback), fast retries."""
    from legal_rag_pipeline.resources.embeddings import HuggingFaceEmbedder

    return HuggingFaceEmbedder(token=TEST_HF_TOKEN, provider="hf-inference", **FAST_RETRIES)
