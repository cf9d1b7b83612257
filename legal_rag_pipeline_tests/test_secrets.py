"""No secret anywhere: instance storage, state, output, logs, run config, events, error messages;
and the Hugging Face token is never sent to an endpoint that is not Hugging Face's."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg

from legal_rag_pipeline import cli
from legal_rag_pipeline_tests.loopback import Reply
from legal_rag_pipeline_tests.pipeline_env import make_env

HF_SECRET = "hf_SecretTokenNeverLogged7Qx2Zk9"
ENDPOINT_SECRET = "endpoint-SecretKeyNeverLogged4Vw8"
QDRANT_SECRET = "qdrant-SecretKeyNeverLogged3Pm5"
SECRETS = (HF_SECRET, ENDPOINT_SECRET, QDRANT_SECRET)


def assert_no_secret(where: str, text: str | bytes) -> None:
    for secret in SECRETS:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"{secret} found in {where}"


def assert_no_secret_in_tree(root: Path) -> int:
    files = 0
    for path in root.rglob("*"):
        if path.is_file():
            assert_no_secret(str(path), path.read_bytes())
            files += 1
    return files


def test_secrets_appear_nowhere(tmp_path, monkeypatch, embeddings_server, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    env = make_env(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    monkeypatch.setenv("QDRANT_API_KEY", QDRANT_SECRET)
    law = env.data / "luat.txt"
    law.write_text("LUẬT\nTHỬ\nĐiều 1. Phạm vi\nLuật này quy định thử.\n", encoding="utf-8")
    outputs: list[str] = []

    # 1. provider path, success
    code, out = env.ingest()
    outputs.append(out)
    assert code == 0, out
    assert embeddings_server.authorizations("provider") == [f"Bearer {HF_SECRET}"]

    # 2. provider path, 401: the token is refused by the run's preflight, then by doctor
    embeddings_server.add_token("hf_another_token")
    law.write_text(
        law.read_text(encoding="utf-8") + "Điều 2. Hiệu lực\nLuật này có hiệu lực.\n", encoding="utf-8"
    )
    code, out = env.ingest()
    outputs.append(out)
    assert code == 1 and "invalid or revoked token" in out, out
    assert cli.main(["doctor"]) == 1

    # 3. endpoint path with its own key, while HF_TOKEN is still set: the endpoint never sees HF_TOKEN
    embeddings_server.tokens.clear()
    embeddings_server.reset_records()
    monkeypatch.setenv("EMBEDDINGS_ENDPOINT_URL", embeddings_server.url)
    monkeypatch.setenv("EMBEDDINGS_ENDPOINT_API_KEY", ENDPOINT_SECRET)
    code, out = env.ingest()
    outputs.append(out)
    assert code == 0, out
    assert embeddings_server.count("embed") >= 1
    assert set(embeddings_server.authorizations()) == {f"Bearer {ENDPOINT_SECRET}"}
    assert HF_SECRET not in embeddings_server.all_headers_text()
    assert cli.main(["doctor"]) == 0

    # 4. endpoint path, its key refused (401 on the embedding call)
    embeddings_server.fail_always(Reply(401, {"error": "Unauthorized"}))
    law.write_text(
        law.read_text(encoding="utf-8") + "Điều 3. Thi hành\nLuật này được thi hành.\n", encoding="utf-8"
    )
    code, out = env.ingest()
    outputs.append(out)
    assert code == 1 and "rejected the API key (401)" in out, out
    assert HF_SECRET not in embeddings_server.all_headers_text()

    # Nowhere: printed output, logs, instance storage (SQLite, compute logs), state folder, Qdrant.
    captured = capfd.readouterr()
    for i, out in enumerate(outputs):
        assert_no_secret(f"ingest output {i}", out)
    assert_no_secret("stdout", captured.out)
    assert_no_secret("stderr", captured.err)
    assert_no_secret("caplog", caplog.text)
    assert_no_secret(
        "log records", "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    )
    assert assert_no_secret_in_tree(env.dagster_home) > 0
    assert assert_no_secret_in_tree(env.state) > 0

    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 4
    for run in runs:
        assert_no_secret(f"run {run.run_id} config", repr(run.run_config) + repr(run.tags))
        for entry in instance.all_logs(run.run_id):
            assert_no_secret(f"event of run {run.run_id}", repr(entry))
            if entry.dagster_event and entry.dagster_event.event_specific_data is not None:
                assert_no_secret("event data", repr(entry.dagster_event.event_specific_data))
