"""`legal-rag doctor` on a healthy setup and on each broken one (loopback server, embedded Qdrant)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from legal_rag_pipeline import cli
from legal_rag_pipeline.definitions import build_store
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.conftest import TEST_ENDPOINT_KEY, TEST_HF_TOKEN
from legal_rag_pipeline_tests.loopback import DEFAULT_MODEL, ModelSpec, credits_exhausted
from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER, make_env

TOKENS_URL = "https://huggingface.co/settings/tokens"




def doctor(capsys) -> tuple[int, str]:
    code = cli.main(["doctor"])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert TEST_HF_TOKEN not in out and TEST_ENDPOINT_KEY not in out
    assert "Traceback" not in out
    return code, out


def line(out: str, name: str) -> str:
    return next(l for l in out.splitlines() if f" {name} " in l or l.rstrip().endswith(f" {name}"))


@pytest.fixture
def provider_env(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TEST_HF_TOKEN)
    return env


def test_healthy_provider_setup(provider_env, embeddings_server, capsys):
    code, out = doctor(capsys)
    assert code == 0, out
    assert "✓ Hugging Face token" in out and "valid token of tester (role fineGrained)" in out
    assert "✓ Inference Providers permission" in out
    assert "✓ model answers" in out and "768-dimensional" in out
    assert "✓ Qdrant reachable" in out
    assert "collection legal_rag does not exist yet" in out
    assert "All checks passed." in out and "✗" not in out
    assert embeddings_server.count() == 1 and embeddings_server.batch_sizes() == [1]  # one tiny call


def test_bm25_only_configuration_is_information_not_failure(tmp_path, monkeypatch, capsys):
    make_env(tmp_path, monkeypatch)
    code, out = doctor(capsys)
    assert code == 0, out
    assert "i dense embeddings" in out and "BM25-only" in out
    assert "✗" not in out


@pytest.mark.parametrize(
    "breakage, name, phrases",
    [
        ("no token", "Hugging Face token", ["No Hugging Face token is set", "HF_TOKEN", TOKENS_URL]),
        ("invalid token", "Hugging Face token", ["invalid or revoked token", TOKENS_URL]),
        (
            "no permission",
            "Inference Providers permission",
            ["Make calls to Inference Providers", TOKENS_URL],
        ),
        ("not served", "model answers", ["is not deployed on provider hf-inference", "HF_PROVIDER"]),
        ("no credits", "model answers", ["Inference Providers credits (402", "EMBEDDINGS_ENDPOINT_URL"]),
        ("offline", "network", ["HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE"]),
    ],
)
def test_broken_provider_setups(
    provider_env, embeddings_server, monkeypatch, capsys, breakage, name, phrases
):
    if breakage == "no token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setenv("EMBEDDINGS_BACKEND", "api")
    elif breakage == "invalid token":
        embeddings_server.add_token("hf_someone_elses_token")
    elif breakage == "no permission":
        embeddings_server.add_token(TEST_HF_TOKEN, permissions=("repo.content.read",))
    elif breakage == "not served":
        embeddings_server.models[DEFAULT_MODEL] = ModelSpec(served=False)
    elif breakage == "no credits":
        embeddings_server.fail_always(credits_exhausted())
    elif breakage == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out = doctor(capsys)
    assert code == 1, out
    failing = line(out, name)
    assert failing.lstrip().startswith("✗"), out
    for phrase in phrases:
        assert phrase in out, (phrase, out)
    assert "fix:" in out and "check failed" in out
    assert "✓ Qdrant reachable" in out  # later checks still run
    assert embeddings_server.count() <= 1  # never more than the one tiny call


def test_healthy_endpoint_then_unreachable(tmp_path, monkeypatch, embeddings_server, capsys):
    make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    embeddings_server.max_batch_size = 16
    code, out = doctor(capsys)
    assert code == 0, out
    assert "✓ endpoint reachable" in out and "GET /health answered 200" in out
    assert "max_client_batch_size 16" in out and "768-dimensional" in out
    assert set(embeddings_server.authorizations()) == {f"Bearer {TEST_ENDPOINT_KEY}"}

    monkeypatch.setenv("EMBEDDINGS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    code, out = doctor(capsys)
    assert code == 1
    assert "✗ endpoint reachable" in out and "Cannot reach endpoint http://127.0.0.1:9" in out


def test_collection_vector_size(tmp_path, monkeypatch, embeddings_server, capsys):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    (env.data / "luat.txt").write_text(
        "LUẬT\nTHỬ\nĐiều 1. Phạm vi\nLuật này quy định thử.\n", encoding="utf-8"
    )
    assert env.ingest()[0] == 0
    code, out = doctor(capsys)
    assert code == 0, out
    assert "✓ collection vector size" in out and "holds 768-dimensional vectors" in out

    embeddings_server.dim = 384  # the model behind the endpoint changed
    code, out = doctor(capsys)
    assert code == 1
    assert "✗ collection vector size" in out
    assert "holds 768-dimensional dense vectors" in out and "produces 384-dimensional vectors" in out
    assert "legal-rag rebuild" in out

    embeddings_server.dim = 768  # no embedder at all, on a collection with dense vectors
    monkeypatch.delenv("EMBEDDINGS_ENDPOINT_URL")
    code, out = doctor(capsys)
    assert code == 1 and "no embedding service is configured" in out


def test_bm25_only_collection_while_a_dense_model_is_configured(
    tmp_path, monkeypatch, embeddings_server, capsys
):
    make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    with build_store(load_settings(), resolve=True).connect() as collection:
        collection.ensure(None, None)  # what a bm25-only ingest creates
    code, out = doctor(capsys)
    assert code == 1, out
    assert "✗ collection vector size" in out and "is BM25-only (no dense vectors)" in out
    assert "legal-rag rebuild" in out


def test_qdrant_folder_locked_by_another_process(tmp_path, monkeypatch, capsys):
    env = make_env(tmp_path, monkeypatch)
    env.qdrant.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(env.qdrant)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, out = doctor(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert "✗ Qdrant reachable" in out and "is in use by another process" in out
    assert "fix: wait for it to finish" in out


def test_an_edge_collection_of_an_earlier_layout_is_advised_a_rebuild(tmp_path, monkeypatch, capsys):
    """Information, not a failure (the folder's 4-dimension test vectors fail the size row, this one does not)."""
    from legal_rag_pipeline_tests.test_stores import make_earlier_edge_folder

    env = make_env(tmp_path, monkeypatch)
    make_earlier_edge_folder(env.qdrant)
    _, out = doctor(capsys)
    advice = line(out, "collection layout")
    assert advice.lstrip().startswith("i ") and "nine payload indexes" in advice, out
    assert "`legal-rag rebuild` makes a copy with four" in out
