"""The history retention (history.py, the daily ``history_retention_job``): old runs lose what no view
needs, and every file keeps its latest status, error and figures.

Real parts: one-article files cut from a real law plus a broken file, real `legal-rag ingest` runs
(bm25, Qdrant Edge) recorded in a real Dagster instance (the one-file SQLite storage of new homes, the
sharded one of older homes, and PostgreSQL), the retention job executed by Dagster.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from legal_rag_pipeline import instance as project_instance
from legal_rag_pipeline_tests.pipeline_env import PipelineEnv, make_env, shared_data
from legal_rag_pipeline_tests.test_production import _postgres_home, pg_db, pg_server  # noqa: F401 - fixtures

ARTICLE = re.compile(r"^(?=Điều \d+[a-z]?\.)", re.MULTILINE)
LAW = "laws/Luat-Doanh-nghiep-so-59-2020-QH14-427301.txt"
ASSETS = ["raw_documents", "normalized_records", "embedding_batches", "qdrant_collection"]
BROKEN = "hong/bien-ban.docx"


def _one_article_files(env: PipelineEnv, count: int = 60) -> list[Path]:
    parts = [p for p in ARTICLE.split((shared_data() / LAW).read_text(encoding="utf-8")) if p.strip()][:count]
    folder = env.data / "luat-doanh-nghiep"
    folder.mkdir()
    files = []
    for i, part in enumerate(parts, 1):
        path = folder / f"dieu-{i:04d}.txt"
        path.write_text(f"Luật Doanh nghiệp\n{part}", encoding="utf-8")
        files.append(path)
    (env.data / BROKEN).parent.mkdir()
    (env.data / BROKEN).write_bytes(b"PK\x03\x04 this is not a Word file")
    return files


@pytest.fixture(params=["one-file", "sharded", "postgres"])
def env(request, tmp_path, monkeypatch) -> PipelineEnv:
    env = make_env(tmp_path, monkeypatch)
    if request.param == "sharded":  # an older home: its history in a database per run plus index.db
        (env.dagster_home / "history" / "runs").mkdir(parents=True)
        (env.dagster_home / "history" / "runs" / "index.db").write_bytes(b"")
        project_instance.ensure_dagster_home()
        assert "BatchedSqliteStorage" in (env.dagster_home / "dagster.yaml").read_text()
    elif request.param == "postgres":
        request.getfixturevalue("pg_db")
        home = _postgres_home(tmp_path / "pg_home")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        env.dagster_home = home
    return env


def _view(instance: dg.DagsterInstance) -> dict:
    """What the UI shows of each file: materialised and failed partitions, each partition's latest
    metadata, and the partition statuses Dagster caches for the asset pages."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    from legal_rag_pipeline.definitions import defs

    out = {}
    graph = defs.resolve_asset_graph()
    for name in ASSETS:
        key = dg.AssetKey(name)
        latest = {}
        for record in instance.fetch_materializations(key, limit=10_000).records:
            mat = record.asset_materialization
            latest.setdefault(mat.partition, {k: str(v.value) for k, v in mat.metadata.items()})
        storage = instance.event_log_storage
        cache = get_and_update_asset_status_cache_value(instance, key, graph.get(key).partitions_def)
        out[name] = {
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "failed": sorted(storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)),
            "latest": latest,
            "cache": (cache.deserialize_materialized_partition_subsets(graph.get(key).partitions_def).get_partition_keys(),
                      cache.deserialize_failed_partition_subsets(graph.get(key).partitions_def).get_partition_keys()),
        }
    return out


def _events(instance: dg.DagsterInstance) -> int:
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
    import sqlalchemy as db

    with instance.event_log_storage.index_connection() as conn:
        return conn.execute(db.select(db.func.count()).select_from(SqlEventLogStorageTable)).scalar()


def _prune(instance: dg.DagsterInstance, days: float):
    from legal_rag_pipeline.automation.retention import history_retention_job

    result = history_retention_job.execute_in_process(
        instance=instance, run_config={"ops": {"prune_dagster_history": {"config": {"older_than_days": days}}}}
    )
    assert result.success
    (materialization,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in materialization.event_specific_data.metadata.items()}


def test_old_runs_are_pruned_and_every_file_keeps_its_latest_status(env):
    from legal_rag_pipeline.instance import get_instance

    files = _one_article_files(env)
    code, out = env.ingest()
    assert code == 1 and BROKEN in out, out  # the broken file fails alone
    first = {r.dagster_run.run_id for r in get_instance().get_run_records()}

    a, b = files[3], files[4]
    for night in (1, 2):  # two nights, each changing the same two files: the first night's run is void after the second
        for path in (a, b):
            path.write_text(path.read_text(encoding="utf-8") + f"\nKhoản bổ sung {night}: zyxhistory{night}.\n",
                            encoding="utf-8")
        assert env.ingest()[0] == 1

    instance = get_instance()
    try:
        runs = [r.dagster_run.run_id for r in sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)]
        assert len(runs) == 3 and runs[0] in first
        before, events_before = _view(instance), _events(instance)
        assert len(before["qdrant_collection"]["materialized"]) == len(files)
        assert before["qdrant_collection"]["failed"] == [BROKEN]
        assert before["raw_documents"]["latest"][BROKEN]["status"] == "failed"

        assert _prune(instance, 30)["events_deleted"] == 0  # nothing is 30 days old
        pruned = _prune(instance, 0)
        after = _view(instance)
        assert after == before  # every file's status, error and figures, and the UI's cached statuses
        assert pruned["runs_deleted"] >= 1 and pruned["events_deleted"] > 0, pruned
        remaining = {r.dagster_run.run_id for r in instance.get_run_records()}
        assert runs[0] in remaining and runs[2] in remaining  # they hold files' latest events
        assert runs[1] not in remaining  # the first night: everything it recorded is superseded
        # the two changed files: one materialisation each per asset, the latest
        for name in ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[str(a.relative_to(env.data))]),
                limit=100,
            ).records
            assert len(records) == 1 and records[0].run_id == runs[2], name
        events_after = _events(instance)
        assert events_after < events_before
    finally:
        instance.dispose()

    # more nights, each pruned: the history stays the same size
    sizes = []
    for night in (3, 4, 5):
        a.write_text(a.read_text(encoding="utf-8") + f"\nKhoản bổ sung {night}.\n", encoding="utf-8")
        assert env.ingest()[0] == 1
        instance = get_instance()
        try:
            _prune(instance, 0)
            sizes.append(_events(instance))
            assert _view(instance)["qdrant_collection"]["failed"] == [BROKEN]
        finally:
            instance.dispose()
    assert sizes[0] == sizes[1] == sizes[2], sizes
