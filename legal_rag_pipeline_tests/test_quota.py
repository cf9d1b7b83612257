"""Quota safety through `legal-rag ingest` (a real Dagster run) against the loopback server.

A 402 stops every later call of the run; a run that fails after embedding resumes without paying
again; 503/429 sequences are retried inside a real ingest; EMBEDDINGS_CONCURRENCY requests are
really in flight; the run's preflight (the ``embedding_service_ready`` check) stops a bad token
before any embedding call.
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline_tests.conftest import TEST_HF_TOKEN
from legal_rag_pipeline_tests.loopback import credits_exhausted, loading, overloaded, rate_limited
from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER, PipelineEnv, make_env



def write_laws(env: PipelineEnv, files: int = 6, articles: int = 4) -> int:
    """``files`` small laws of ``articles`` articles each; returns the number of chunks they make."""
    for i in range(files):
        body = "".join(
            f"Điều {k}. Quy định số {k} của luật thử nghiệm {i}\n"
            f"Nội dung điều {k} của luật số {i} về cư trú, giao thông và thuế.\n"
            for k in range(1, articles + 1)
        )
        (env.data / f"luat-thu-{i}.txt").write_text(f"LUẬT\nTHỬ NGHIỆM SỐ {i}\n{body}", encoding="utf-8")
    return files * articles


def point_count(env: PipelineEnv) -> int:
    with env.store().connect() as collection:
        return collection.count()


def check_evaluations(name: str = "embedding_service_ready") -> list:
    """The evaluations of an asset check recorded in the instance, oldest first."""
    instance = dg.DagsterInstance.get()
    evaluations = []
    for run in reversed(instance.get_runs()):
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            data = entry.dagster_event.event_specific_data
            if data.check_name == name:
                evaluations.append(data)
    return evaluations


@pytest.fixture
def provider_env(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TEST_HF_TOKEN)
    monkeypatch.setenv("EMBEDDINGS_BACKOFF_SECONDS", "0.01")
    return env


@pytest.fixture
def endpoint_env(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    monkeypatch.setenv("EMBEDDINGS_BACKOFF_SECONDS", "0.01")
    return env


def test_402_stops_every_later_call_of_the_run(provider_env, embeddings_server, monkeypatch):
    write_laws(provider_env)
    monkeypatch.setattr(ingest.embed, "EMBED_GROUP_TEXTS", 5)  # several groups: one per file or so
    monkeypatch.setenv("EMBEDDINGS_BATCH_SIZE", "2")
    monkeypatch.setenv("EMBEDDINGS_CONCURRENCY", "1")
    embeddings_server.fail_next(credits_exhausted())  # once: the server would answer the next call

    code, out = provider_env.ingest()

    assert code == 1, out
    assert embeddings_server.count() == 1  # nothing after the first 402, not even in the qdrant step
    for i in range(6):
        line = next(l for l in out.splitlines() if l.startswith(f"luat-thu-{i}.txt"))
        assert "failed" in line and "Inference Providers credits (402" in line, line
        assert "no more embedding calls are made in this run" in line and "PRO" in line, line
    assert "Traceback" not in out
    assert point_count(provider_env) == 0
    [evaluation] = check_evaluations()
    assert not evaluation.passed and "402" in evaluation.description


def test_run_preflight_stops_a_bad_token_before_any_embedding_call(provider_env, embeddings_server):
    write_laws(provider_env, files=2)
    embeddings_server.add_token("hf_someone_elses_valid_token")  # ours is now unknown: 401

    code, out = provider_env.ingest()

    assert code == 1, out
    assert embeddings_server.count("whoami") == 1
    assert embeddings_server.requests[1:] == []  # no embedding call, no Hub call after the preflight
    assert out.count("invalid or revoked token") == 2, out
    [evaluation] = check_evaluations()
    assert not evaluation.passed and "invalid or revoked token" in evaluation.description


def test_failure_after_embedding_resumes_without_new_calls(endpoint_env, embeddings_server, monkeypatch):
    chunks = write_laws(endpoint_env, files=3)
    endpoint_env.qdrant.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(endpoint_env.qdrant)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("QDRANT_LOCK_WAIT_SECONDS", "1")  # a run waits 120 s by default
        code, out = endpoint_env.ingest()
    finally:
        holder.kill()
        holder.wait()
    assert code == 1, out
    assert "in use by another process" in out
    paid = sum(embeddings_server.batch_sizes())
    assert paid >= chunks  # every chunk (and the preambles) embedded and saved before the Qdrant step
    [ready] = check_evaluations()
    assert ready.passed and f"{paid} texts embedded" in ready.description

    embeddings_server.reset_records()
    code, out = endpoint_env.ingest()
    assert code == 0, out
    assert embeddings_server.requests == []  # no embedding call, not even /health: nothing to embed
    assert point_count(endpoint_env) == paid
    assert check_evaluations()[-1].passed  # "not checked: nothing to embed"


def test_503_and_429_sequences_are_retried_inside_an_ingest(endpoint_env, embeddings_server):
    write_laws(endpoint_env, files=2)
    # five refusals in a row: the sixth (last of EMBEDDINGS_MAX_ATTEMPTS=6) attempt succeeds
    embeddings_server.fail_next(
        loading(), overloaded(429), rate_limited(), rate_limited(retry_after="0"), overloaded(503)
    )
    code, out = endpoint_env.ingest()
    assert code == 0, out
    sizes = embeddings_server.batch_sizes()
    assert len(sizes) >= 6  # five refusals, then the batches
    assert point_count(endpoint_env) == sum(sizes[5:])


def test_concurrency_reaches_the_configured_requests_in_flight(endpoint_env, embeddings_server, monkeypatch):
    write_laws(endpoint_env, files=2)  # 10 texts: 5 batches of 2
    monkeypatch.setenv("EMBEDDINGS_BATCH_SIZE", "2")
    monkeypatch.setenv("EMBEDDINGS_CONCURRENCY", "4")
    embeddings_server.latency = 0.2
    code, out = endpoint_env.ingest()
    assert code == 0, out
    assert embeddings_server.max_in_flight == 4
    assert max(embeddings_server.batch_sizes()) == 2
