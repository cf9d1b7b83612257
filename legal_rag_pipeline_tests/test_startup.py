"""`legal-rag search`, `status` and `doctor` start without Dagster (issue 22 item 3, issue 24 item 4).

Importing dagster costs about half a second of a cold start on two cores, and none of these
commands needs it: they open the plain ``stores.store.Store`` and ``embedder_base.NoEmbeddings``, or
``resources.hugging_face.HuggingFaceClient`` when dense (``services.py``). These tests fail when someone brings a heavy import back on their path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.stores.store import Store
from legal_rag_pipeline_tests.pipeline_env import SAMPLE_DATA, make_env

# None of them is needed to answer a question from an embedded, BM25-only collection.
HEAVY = ("dagster", "sqlalchemy", "pandas", "pyarrow", "huggingface_hub", "qdrant_client")

# Runs each command in one fresh interpreter and reports, per command, its exit code, the heavy
# modules loaded so far and its output.
RUN_COMMANDS = """
import contextlib, io, json, sys
from legal_rag_pipeline.cli import main

heavy = json.loads(sys.argv[1])
report = []
for argv in json.loads(sys.argv[2]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    report.append({"argv": argv, "code": code, "loaded": [m for m in heavy if m in sys.modules], "out": out.getvalue()})
print(json.dumps(report))
"""


def test_search_status_and_doctor_import_no_dagster(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    (env.data / "luat-mau-cu-tru.txt").write_bytes((SAMPLE_DATA / "luat-mau-cu-tru.txt").read_bytes())
    code, out = env.ingest()
    assert code == 0, out

    commands = [["search", "đăng ký thường trú", "--top-k", "2"], ["status"], ["doctor"]]
    result = subprocess.run(
        [sys.executable, "-c", RUN_COMMANDS, json.dumps(HEAVY), json.dumps(commands)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    for entry in report:
        assert entry["code"] == 0, entry
        assert entry["loaded"] == [], f"`legal-rag {entry['argv'][0]}` imported {entry['loaded']}"
    search, status, doctor = (entry["out"] for entry in report)
    assert "Query: đăng ký thường trú  [bm25]" in search and " 1. " in search  # a real answer
    assert "luat-mau-cu-tru.txt" in status and "1 files: 1 ingested" in status
    assert "All checks passed." in doctor


def test_plain_store_has_the_resource_fields_and_defaults():
    """``Store`` (no Dagster) and the ``QdrantStore`` resource share their methods; their fields are
    declared twice, and must stay the same."""
    plain = {f.name: f.default for f in dataclasses.fields(Store)}
    resource = {name: info.default for name, info in QdrantStore.model_fields.items()}
    assert plain == resource
    kwargs = {
        "path": "/tmp/q",
        "collection_name": "x",
        "api_key": "secret-key-123",
        "url": "http://example.vn:6333",
    }
    assert Store(**kwargs).client_kwargs() == QdrantStore(**kwargs).client_kwargs()
    assert Store(**kwargs).location() == QdrantStore(**kwargs).location()
    assert Store(**kwargs).describe() == QdrantStore(**kwargs).describe()
    assert "secret-key-123" not in repr(Store(**kwargs))  # the key is never shown
    assert Store().model_copy(update={"url": None}) == Store()


def test_a_dense_search_imports_no_dagster(tmp_path, monkeypatch, embeddings_server):
    """A hybrid search embeds its question with ``HuggingFaceClient`` (no Dagster; importing it was 1.5 s
    of a 3 s cold search), through the real huggingface_hub against the loopback server."""
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    (env.data / "luat-mau-cu-tru.txt").write_bytes((SAMPLE_DATA / "luat-mau-cu-tru.txt").read_bytes())
    code, out = env.ingest()
    assert code == 0, out
    served = embeddings_server.count()

    commands = [["search", "đăng ký thường trú", "--top-k", "2"], ["doctor"]]
    result = subprocess.run(
        [sys.executable, "-c", RUN_COMMANDS, json.dumps(["dagster", "sqlalchemy", "pandas"]), json.dumps(commands)],
        capture_output=True, text=True, env=dict(os.environ), cwd=tmp_path, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    search, doctor = json.loads(result.stdout.splitlines()[-1])
    assert search["code"] == 0 and search["loaded"] == [], search
    assert "[hybrid (dense + bm25)]" in search["out"] and " 1. " in search["out"]
    assert doctor["code"] == 0 and doctor["loaded"] == [], doctor
    assert embeddings_server.count() > served  # the question was embedded by the server


def test_plain_hugging_face_client_has_the_resource_fields_and_behaviour(embeddings_server):
    """``HuggingFaceClient`` (no Dagster) and the ``HuggingFaceEmbedder`` resource share their methods;
    their fields are declared twice and must stay the same, and both embed alike."""
    from legal_rag_pipeline.resources.embeddings import HuggingFaceEmbedder
    from legal_rag_pipeline.resources.hugging_face import HuggingFaceClient

    plain = {f.name: f.default for f in dataclasses.fields(HuggingFaceClient) if f.init}
    resource = {name: info.default for name, info in HuggingFaceEmbedder.model_fields.items()}
    assert plain == resource
    kwargs = {"endpoint_url": embeddings_server.url, "endpoint_api_key": "endpoint-secret-0123456789"}
    client, embedder = HuggingFaceClient(**kwargs), HuggingFaceEmbedder(**kwargs)
    texts = ["Điều 1. Phạm vi điều chỉnh", "Điều 2. Đối tượng áp dụng"]
    a, b = client.embed(texts), embedder.embed(texts)
    assert a.shape == (2, embeddings_server.dim) and (a == b).all()
    assert client.describe() == embedder.describe()
    assert "endpoint-secret-0123456789" not in repr(client) + client.describe()


def test_an_ingest_with_nothing_changed_imports_no_dagster(tmp_path, monkeypatch):
    """Nothing changed and Dagster already lists the files (``registered.py``): no Dagster, no instance.
    A new Dagster home (or another file) goes the full way and registers the partitions there."""
    import dagster as dg

    from legal_rag_pipeline.instance import get_instance
    from legal_rag_pipeline.partitions import source_files

    env = make_env(tmp_path, monkeypatch)
    for name in ("luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"):
        (env.data / name).write_bytes((SAMPLE_DATA / name).read_bytes())
    code, out = env.ingest()
    assert code == 0, out

    def ingest_in_a_fresh_process() -> dict:
        result = subprocess.run(
            [sys.executable, "-c", RUN_COMMANDS, json.dumps(["dagster", "sqlalchemy"]), json.dumps([["ingest"]])],
            capture_output=True, text=True, env=dict(os.environ), cwd=tmp_path, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        (entry,) = json.loads(result.stdout.splitlines()[-1])
        assert entry["code"] == 0 and "Nothing changed since the last run: 2 files in sync" in entry["out"], entry
        return entry

    assert ingest_in_a_fresh_process()["loaded"] == []

    other_home = tmp_path / "other_dagster_home"  # a new instance: it must learn the files
    other_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(other_home))
    assert "dagster" in ingest_in_a_fresh_process()["loaded"]
    instance = get_instance()
    try:
        assert sorted(instance.get_dynamic_partitions(source_files.name)) == ["luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"]
        assert instance.get_runs_count(dg.RunsFilter()) == 0  # and no run launched there
    finally:
        instance.dispose()
    assert ingest_in_a_fresh_process()["loaded"] == []  # from then on, no Dagster again

    (env.data / "luat-mau-cu-tru.txt").unlink()  # a file gone: the full way (its points are deleted)
    code, out = env.ingest()
    assert code == 0 and "Nothing changed" not in out, out
