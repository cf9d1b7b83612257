"""Qdrant server settings → QdrantClient arguments and collection parameters; the plain-HTTP key warning.

No Qdrant server here: client arguments are checked on what the store computes (and on a real
``QdrantClient`` built from them, which connects lazily); collection parameters on a real embedded
client, with a ``QdrantClient`` subclass recording what ``create_collection`` was given for the
parameters local mode ignores (shards, replicas, write consistency, on-disk payload).
"""

from __future__ import annotations

import logging
import warnings

import pytest
from qdrant_client import QdrantClient, models

from legal_rag_pipeline.errors import ConfigurationError
from legal_rag_pipeline.resources.qdrant import SPARSE_NAME, QdrantStore
from legal_rag_pipeline.stores.client import ClientCollection
from legal_rag_pipeline.settings import load_settings

SERVER_VARS = (
    "QDRANT_URL",
    "QDRANT_HOST",
    "QDRANT_PORT",
    "QDRANT_API_KEY",
    "QDRANT_HTTPS",
    "QDRANT_PREFER_GRPC",
    "QDRANT_GRPC_PORT",
    "QDRANT_TIMEOUT",
    "QDRANT_SHARD_NUMBER",
    "QDRANT_REPLICATION_FACTOR",
    "QDRANT_WRITE_CONSISTENCY_FACTOR",
    "QDRANT_ON_DISK",
)


def build_store(settings):
    from legal_rag_pipeline.definitions import build_store as build

    return build(settings)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in SERVER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEGAL_RAG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("QDRANT_PATH", raising=False)
    return monkeypatch


# ---------------------------------------------------------------------------- settings → store
def test_embedded_default_gives_a_path_only(clean_env, tmp_path):
    store = build_store(load_settings())
    assert not store.server_mode
    assert store.client_kwargs() == {"path": str(tmp_path / "state" / "qdrant")}
    assert store.plain_http_key_warning() is None


def test_server_settings_from_env_reach_the_store_and_client_kwargs(clean_env):
    clean_env.setenv("QDRANT_URL", "https://qdrant.example.vn:6333")
    clean_env.setenv("QDRANT_API_KEY", "s3cret-key")
    clean_env.setenv("QDRANT_HTTPS", "true")
    clean_env.setenv("QDRANT_PREFER_GRPC", "yes")
    clean_env.setenv("QDRANT_GRPC_PORT", "7334")
    clean_env.setenv("QDRANT_TIMEOUT", "15")
    clean_env.setenv("QDRANT_SHARD_NUMBER", "6")
    clean_env.setenv("QDRANT_REPLICATION_FACTOR", "2")
    clean_env.setenv("QDRANT_WRITE_CONSISTENCY_FACTOR", "2")
    clean_env.setenv("QDRANT_ON_DISK", "1")

    store = build_store(load_settings())
    assert store.server_mode and store.path is None
    assert (store.shard_number, store.replication_factor, store.write_consistency_factor) == (6, 2, 2)
    assert store.on_disk is True
    # The key is configured as an EnvVar (the UI shows its name); a run or the CLI resolves it.
    from legal_rag_pipeline.definitions import configured

    resolved = configured(store)
    assert resolved.client_kwargs() == {
        "url": "https://qdrant.example.vn:6333",
        "port": 6333,
        "grpc_port": 7334,
        "prefer_grpc": True,
        "https": True,
        "timeout": 15,
        "api_key": "s3cret-key",
    }
    assert resolved.plain_http_key_warning() is None


def test_server_settings_defaults_leave_cluster_parameters_to_qdrant(clean_env):
    clean_env.setenv("QDRANT_HOST", "qdrant")
    store = build_store(load_settings())
    assert store.client_kwargs() == {"host": "qdrant", "port": 6333, "grpc_port": 6334, "prefer_grpc": False, "timeout": 60}
    assert (store.shard_number, store.replication_factor, store.write_consistency_factor, store.on_disk) == (
        None,
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("QDRANT_HTTPS", "maybe"), ("QDRANT_SHARD_NUMBER", "two"), ("QDRANT_TIMEOUT", "1.5"), ("QDRANT_ON_DISK", "2")],
)
def test_bad_server_settings_are_configuration_errors(clean_env, name, value):
    clean_env.setenv("QDRANT_URL", "https://qdrant.example.vn")
    clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_client_kwargs_are_accepted_by_qdrant_client():
    store = QdrantStore(
        url="https://qdrant.example.invalid:6333", api_key="k", prefer_grpc=False, timeout_seconds=7
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QdrantClient(**store.client_kwargs(), check_compatibility=False)
    try:
        assert client._client.rest_uri == "https://qdrant.example.invalid:6333"
    finally:
        client.close()


# ---------------------------------------------------------------------------- collection parameters
class RecordingClient(QdrantClient):
    """A real (embedded) client that also keeps the arguments of each create_collection call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.created: list[dict] = []

    def create_collection(self, collection_name, **kwargs):
        self.created.append({"collection_name": collection_name, **kwargs})
        return super().create_collection(collection_name, **kwargs)


def _create(tmp_path, store: QdrantStore, dense: int | None) -> tuple[RecordingClient, models.CollectionParams]:
    client = RecordingClient(path=str(tmp_path / "q"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode: "payload indexes have no effect"
        ClientCollection(client, store.model_copy(update={"engine": "client"}), owned=False).create_physical(
            "legal_rag__t", dense
        )
    return client, client.get_collection("legal_rag__t").config.params


def test_cluster_parameters_reach_create_collection(tmp_path):
    store = QdrantStore(
        path=str(tmp_path / "q"), shard_number=3, replication_factor=2, write_consistency_factor=2, on_disk=True
    )
    client, params = _create(tmp_path, store, 16)
    try:
        (call,) = client.created
        assert call["shard_number"] == 3
        assert call["replication_factor"] == 2
        assert call["write_consistency_factor"] == 2
        assert call["on_disk_payload"] is True
        # What local mode records itself:
        assert params.vectors.size == 16 and params.vectors.distance == models.Distance.COSINE
        assert params.vectors.on_disk is True
        sparse = params.sparse_vectors[SPARSE_NAME]
        assert sparse.modifier == models.Modifier.IDF
        assert sparse.index.on_disk is True
    finally:
        client.close()


def test_default_collection_leaves_cluster_parameters_unset(tmp_path):
    client, params = _create(tmp_path, QdrantStore(path=str(tmp_path / "q")), None)
    try:
        (call,) = client.created
        for key in ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload"):
            assert call[key] is None, key  # the server's defaults apply
        assert params.vectors == {}  # bm25 only: no dense vector
        assert params.sparse_vectors[SPARSE_NAME].modifier == models.Modifier.IDF
        assert params.sparse_vectors[SPARSE_NAME].index.on_disk is None
    finally:
        client.close()


# ---------------------------------------------------------------------------- API key over plain HTTP
@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "http://qdrant.example.vn:6333"},
        {"url": "qdrant.example.vn:6333"},  # no scheme: qdrant-client uses http
        {"url": "http://10.0.0.5:6333"},
        {"host": "qdrant.example.vn"},
        {"host": "qdrant"},  # a compose service name is still a network hop
    ],
)
def test_key_over_plain_http_to_a_remote_host_warns(kwargs):
    warning = QdrantStore(path=None, api_key="k", **kwargs).plain_http_key_warning()
    assert warning and "plain HTTP" in warning
    assert "k" not in warning.replace("key", "").replace("QDRANT", "").split()  # the key itself is never shown


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "https://qdrant.example.vn:6333"},
        {"url": "http://qdrant.example.vn:6333", "https": True},
        {"host": "qdrant.example.vn", "https": True},
        {"url": "http://localhost:6333"},
        {"url": "http://127.0.0.1:6333"},
        {"url": "http://[::1]:6333"},
        {"host": "localhost"},
    ],
)
def test_https_or_local_host_does_not_warn(kwargs):
    assert QdrantStore(path=None, api_key="k", **kwargs).plain_http_key_warning() is None


def test_no_key_no_warning():
    assert QdrantStore(path=None, url="http://qdrant.example.vn:6333").plain_http_key_warning() is None


def test_connect_logs_the_warning_once(caplog, monkeypatch):
    """connect() logs the warning before any request (the client connects lazily; closed at once)."""
    store = QdrantStore(path=None, url="http://qdrant.example.invalid:6333", api_key="the-key-value")
    monkeypatch.setattr(
        QdrantStore, "client_kwargs", lambda self: {"url": self.url, "api_key": self.api_key, "check_compatibility": False}
    )
    with caplog.at_level(logging.WARNING, logger="legal_rag_pipeline.resources.qdrant"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with store.connect():
                pass
    messages = [r.getMessage() for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert len(messages) == 1
    assert "the-key-value" not in messages[0]
