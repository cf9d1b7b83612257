"""The law in force through the real pipeline, on real texts of ../shared/data.

Luật Doanh nghiệp 2014 and its successor 59/2020/QH14 go through a real ingest, then a real sensor run
drops the successor in and takes it out again: the 2014 law's points flip with payload updates only
(zero embedding requests against the loopback server). Search today, ``--as-of`` and ``--all-versions``
answer from the right law. Further pairs (Luật khiếu nại 2011 / Tiếp công dân 2013, Giáo dục nghề
nghiệp 2014 / Giáo dục 2019 / Quy hoạch 2017, Thi đua, khen thưởng 2003 / 2022) go through a bm25 ingest.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil

import dagster as dg
import pytest

from legal_rag_pipeline import cli
from legal_rag_pipeline_tests.pipeline_env import PipelineEnv, make_env, sensor_tick, shared_data

DN_2014 = "Luat-Doanh-nghiep-2014-259730.txt"
DN_2020 = "Luat-Doanh-nghiep-so-59-2020-QH14-427301.txt"


def _copy(env: PipelineEnv, *names: str) -> None:
    laws = shared_data()
    for name in names:
        folder = "laws_blankline" if (laws / "laws_blankline" / name).exists() else "laws"
        shutil.copy2(laws / folder / name, env.data / name)


def _by_source(env: PipelineEnv) -> dict[str, list[dict]]:
    result: dict[str, list[dict]] = {}
    for payload in env.points().values():
        result.setdefault(payload["source"], []).append(payload)
    return result


def _search(query: str, *extra: str) -> list[dict]:
    out = io.StringIO()
    from legal_rag_pipeline.settings import load_settings

    as_of = None if "--all-versions" in extra else (extra[1] if extra and extra[0] == "--as-of" else "today")
    assert cli.run_search(load_settings(), [query], 10, True, out=out, as_of=as_of) == 0
    return json.loads(out.getvalue().splitlines()[0])["hits"]


def _sensor_run(cursor: str | None) -> tuple[dg.ExecuteInProcessResult, str | None]:
    """Ticks of the real data-folder sensor from ``cursor`` until it asks for a run, then that run (as
    the daemon would); the run's result and the sensor's cursor."""
    from legal_rag_pipeline.automation.sensors import SENSOR_NAME
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.settings import load_settings

    defs = build_definitions(load_settings())
    instance = dg.DagsterInstance.get()
    try:
        for _ in range(4):
            result = sensor_tick(defs, instance, cursor)
            cursor = result.cursor
            if result.run_requests:
                (request,) = result.run_requests
                job = defs.resolve_job_def(request.job_name)
                run = job.execute_in_process(instance=instance, tags={**request.tags, "dagster/sensor_name": SENSOR_NAME})
                assert run.success
                return run, cursor
        raise AssertionError(f"the sensor asked for no run: {getattr(result, 'skip_reason', None)}")
    finally:
        instance.dispose()


@pytest.fixture
def dense_env(tmp_path, monkeypatch, embeddings_server) -> PipelineEnv:
    return make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)


def test_a_successor_dropped_in_and_taken_out_flips_the_old_law_with_no_embedding(dense_env, embeddings_server):
    env = dense_env
    _copy(env, DN_2014)
    code, out = env.ingest()
    assert code == 0, out
    old = _by_source(env)[DN_2014]
    assert all(p["number"] == "68/2014/QH13" and p["valid_from"] == "2015-07-01" and p.get("valid_to") is None for p in old)
    assert {h["source"] for h in _search("thành lập doanh nghiệp")} == {DN_2014}

    # The sensor sees the successor: one run over it; the old law's points change by payload only.
    embeddings_server.reset_records()
    _copy(env, DN_2020)
    first, cursor = _sensor_run(None)  # a first tick sees the old file too: unchanged, nothing embedded for it
    points = _by_source(env)
    new_texts = len(points[DN_2020])
    assert sum(embeddings_server.batch_sizes()) == new_texts  # the successor's texts, nothing of the old law's
    assert all(p.get("valid_to") == "2021-01-01" and p.get("repealed_by") == "59/2020/QH14" for p in points[DN_2014])
    assert all(p["valid_from"] == "2021-01-01" and p.get("valid_to") is None for p in points[DN_2020])
    validity = [m for m in first.asset_materializations_for_node("qdrant_collection") if m.asset_key.path == ["law_validity"]]
    assert len(validity) == 1 and validity[0].metadata["documents_not_in_force"].value == 1
    # each file's partition shows its validity in the UI
    partitions = {m.partition: m.metadata for m in first.asset_materializations_for_node("qdrant_collection")
                  if m.asset_key.path == ["qdrant_collection"]}
    assert partitions[DN_2020]["validity"].value == "in force" and partitions[DN_2020]["number"].value == "59/2020/QH14"
    if DN_2014 in partitions:  # in the run's range (unchanged): its new status is on its partition too
        assert partitions[DN_2014]["repealed_by"].value == "59/2020/QH14"

    today = _search("thành lập doanh nghiệp")
    assert today and {h["source"] for h in today} == {DN_2020}
    before = _search("thành lập doanh nghiệp", "--as-of", "2020-06-30")
    assert before and {h["source"] for h in before} == {DN_2014}
    assert {h["source"] for h in _search("thành lập doanh nghiệp", "--all-versions")} == {DN_2014, DN_2020}
    assert before[0]["valid_to"] == "2021-01-01" and before[0]["repealed_by"] == "59/2020/QH14"

    # `legal-rag validity` lists the relation with its sentence; `legal-rag status` shows the status.
    out = io.StringIO()
    from legal_rag_pipeline.commands.validity import run_validity
    from legal_rag_pipeline.settings import load_settings

    run_validity(argparse.Namespace(file=None, as_of=None, json=True), load_settings(), out=out)
    listed = json.loads(out.getvalue())
    (relation,) = [r for r in listed["relations"] if r["target"] == "68/2014/QH13"]
    assert relation["outcome"] == "applied" and relation["targets"] == [DN_2014] and "hết hiệu lực" in relation["sentence"]
    out = io.StringIO()
    from legal_rag_pipeline.commands.status import run_status

    run_status(argparse.Namespace(failed=False, json=True), load_settings(), out=out)
    files = {f["source"]: f for f in json.loads(out.getvalue())["files"]}
    assert files[DN_2014]["validity"]["status"].startswith("not in force since 2021-01-01 (repealed by 59/2020/QH14)")

    # Taken out again: the prune run puts the old law back in force, still without embedding.
    embeddings_server.reset_records()
    (env.data / DN_2020).unlink()
    second, _ = _sensor_run(cursor)
    assert embeddings_server.count() == 0
    assert second.dagster_run.job_name == "prune_vanished_job"
    points = _by_source(env)
    assert DN_2020 not in points
    assert all(p.get("valid_to") is None and p.get("repealed_by") is None for p in points[DN_2014])
    assert {h["source"] for h in _search("thành lập doanh nghiệp")} == {DN_2014}


KHIEU_NAI = "Luat-khieu-nai-2011-132446.txt"
TIEP_CONG_DAN = "Luat-tiep-cong-dan-2013-215839.txt"
GDNN = "Luat-Giao-duc-nghe-nghiep-2014-259733.txt"
GIAO_DUC = "Luat-giao-duc-2019-367665.txt"
QUY_HOACH = "Luat-quy-hoach-322935.txt"
THI_DUA_2003 = "Luat-Thi-dua-Khen-thuong-2003-15-2003-QH11-51686.txt"
THI_DUA_2022 = "Luat-Thi-dua-Khen-thuong-2022-418232.txt"


def test_parts_amendments_and_a_law_named_but_not_repealed(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    _copy(env, KHIEU_NAI, TIEP_CONG_DAN, GDNN, GIAO_DUC, QUY_HOACH, THI_DUA_2003, THI_DUA_2022)
    code, out = env.ingest()
    assert code == 0, out
    points = _by_source(env)
    # the first ingest wrote each point with its validity: no payload was set a second time
    import dagster as dg

    from legal_rag_pipeline.instance import get_instance

    instance = get_instance()
    try:
        recorded = instance.get_latest_materialization_event(dg.AssetKey("law_validity")).asset_materialization.metadata
        assert recorded["files_updated"].value == 0 and recorded["relations_applied"].value > 0, recorded
    finally:
        instance.dispose()

    # Luật khiếu nại 2011: only Chương V ends, when Luật Tiếp công dân takes effect (2014-07-01).
    ended = {p["article"] for p in points[KHIEU_NAI] if p.get("valid_to")}
    chapter_v = {p["article"] for p in points[KHIEU_NAI] if (p.get("chapter") or "").split(" —")[0] in ("Chương V", "Chương 5")}
    assert chapter_v and ended == chapter_v
    assert all(p.get("valid_to") == "2014-07-01" and p.get("repealed_by") == "42/2013/QH13"
               for p in points[KHIEU_NAI] if p["article"] in ended)

    # Luật Giáo dục nghề nghiệp 2014 stays in force although Luật Giáo dục 2019's repeal clause names it.
    gdnn = points[GDNN]
    assert all(p.get("valid_to") is None for p in gdnn)
    by_article: dict[str, list[dict]] = {}
    for p in gdnn:
        by_article.setdefault(p["article"], []).append(p)
    for article in ("32", "33"):
        changes = by_article[article][0]["amended_by"]
        assert {"number": "43/2019/QH14", "article": "113", "from": "2020-07-01"} in changes, changes
    assert any(c["number"] == "21/2017/QH14" for c in by_article["8"][0]["amended_by"]), by_article["8"][0]["amended_by"]
    assert not by_article["1"][0]["amended_by"]
    # the amending provision links to what it changes
    links = {(link["number"], link["article"]) for p in points[GIAO_DUC] if p["article"] == "113" for link in p["amends_articles"]}
    assert ("74/2014/QH13", "32") in links and ("74/2014/QH13", "33") in links

    # Luật Thi đua, khen thưởng 2003 ends when the 2022 law takes effect (2024-01-01).
    assert all(p.get("valid_to") == "2024-01-01" for p in points[THI_DUA_2003])
    assert all(p.get("valid_to") is None for p in points[THI_DUA_2022])

    # An amended article's hit says so.
    out = io.StringIO()
    from legal_rag_pipeline.settings import load_settings

    cli.run_search(load_settings(), ["Điều 32 Luật Giáo dục nghề nghiệp"], 3, False, out=out)
    assert "sửa đổi bởi 43/2019/QH14, Điều 113, từ 01/07/2020" in out.getvalue(), out.getvalue()

    # A rebuild (a new collection behind the alias) writes the validity with the points: nothing to redo after.
    from legal_rag_pipeline import rebuild
    from legal_rag_pipeline.definitions import build_embedder, build_store

    settings = load_settings()
    store = build_store(settings, resolve=True)
    report = rebuild.rebuild(store, build_embedder(settings, resolve=True), settings.state_dir, settings.data_dir)
    assert report.new != report.old
    rebuilt = _by_source(env)
    assert all(p.get("valid_to") == "2024-01-01" for p in rebuilt[THI_DUA_2003])
    assert {p["article"] for p in rebuilt[KHIEU_NAI] if p.get("valid_to")} == ended
    from legal_rag_pipeline.validity.sync import apply_validity

    with store.connect() as collection:
        assert apply_validity(settings.state_dir, collection).files_updated == 0
