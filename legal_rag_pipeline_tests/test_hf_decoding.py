"""hf_decoding: the library's feature extraction with its answer decoded by orjson, beside the library's own.

Both sides run through the real ``huggingface_hub.InferenceClient`` against the loopback server, on
the endpoint path and on the Inference Providers path: the same requests, the same arrays, the same
errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from huggingface_hub.errors import HfHubHTTPError

from legal_rag_pipeline.resources import HuggingFaceEmbedder, hf_decoding
from legal_rag_pipeline_tests.conftest import FAST_RETRIES, TEST_ENDPOINT_KEY, TEST_HF_TOKEN
from legal_rag_pipeline_tests.loopback import DEFAULT_MODEL, overloaded, texts_sharing_words


def _client_and_model(server, path: str):
    if path == "endpoint":
        embedder = HuggingFaceEmbedder(endpoint_url=server.url, endpoint_api_key=TEST_ENDPOINT_KEY, **FAST_RETRIES)
        return embedder._get_client(), None
    embedder = HuggingFaceEmbedder(token=TEST_HF_TOKEN, provider="hf-inference", **FAST_RETRIES)
    return embedder._get_client(), DEFAULT_MODEL


def _requests(server) -> list[tuple[str, list[str] | None, str | None]]:
    return [(r.route, r.texts, r.authorization) for r in server.requests if r.texts is not None]


def test_this_huggingface_hub_takes_the_orjson_path():
    assert hf_decoding._fast_available()


@pytest.mark.parametrize("path", ["endpoint", "provider"])
def test_the_same_requests_and_the_same_vectors_as_the_library(embeddings_server, path):
    client, model = _client_and_model(embeddings_server, path)
    texts = texts_sharing_words(32)

    embeddings_server.reset_records()
    fast = hf_decoding.fast(client, texts, model)
    sent_fast = _requests(embeddings_server)
    embeddings_server.reset_records()
    plain = hf_decoding.plain(client, texts, model)
    sent_plain = _requests(embeddings_server)

    assert fast.dtype == plain.dtype == np.float32
    assert fast.shape == plain.shape == (32, embeddings_server.dim)
    np.testing.assert_array_equal(fast, plain)
    assert sent_fast == sent_plain and len(sent_fast) == 1 and sent_fast[0][1] == texts


@pytest.mark.parametrize("path", ["endpoint", "provider"])
def test_a_refusal_raises_what_the_library_raises(embeddings_server, path):
    client, model = _client_and_model(embeddings_server, path)
    raised = []
    for call in (hf_decoding.fast, hf_decoding.plain):
        embeddings_server.fail_next(overloaded(503))
        with pytest.raises(HfHubHTTPError) as caught:
            call(client, ["Điều 1. Phạm vi điều chỉnh"], model)
        raised.append((type(caught.value), caught.value.response.status_code))
    assert raised[0] == raised[1] == (raised[0][0], 503)


def test_an_answer_that_is_not_json_is_a_json_error_for_translate(embeddings_server):
    import json

    from legal_rag_pipeline.resources.embeddings_errors import Target, translate

    client, model = _client_and_model(embeddings_server, "endpoint")
    embeddings_server.fail_next(_not_json())
    with pytest.raises(json.JSONDecodeError) as caught:
        hf_decoding.fast(client, ["Điều 1."], model)
    error = translate(caught.value, Target(model=DEFAULT_MODEL, provider="hf-inference", endpoint_url=embeddings_server.url), batch_size=1, timeout=5, has_token=False)
    assert "not JSON" in str(error)


def _not_json():
    from legal_rag_pipeline_tests.loopback import Reply

    return Reply(status=200, body="<html>proxy login</html>")
