"""Runs cover what changed: partition ranges (planning.partition_spans) and the runs made of them."""

from __future__ import annotations

import dagster as dg
import pytest

from legal_rag_pipeline import planning
from legal_rag_pipeline.automation.schedules import build_nightly_schedule
from legal_rag_pipeline.automation.sensors import RANGE_END_TAG, RANGE_START_TAG
from legal_rag_pipeline.definitions import build_resources, ingest_job
from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env

ORDER = [f"luat-{i:05d}.txt" for i in range(20_000)]
LAW = "Điều 1. Phạm vi điều chỉnh\nLuật số {n} này quy định về cư trú.\n\nĐiều 2. Hiệu lực\nLuật có hiệu lực.\n"


def test_files_close_together_make_one_range():
    assert planning.partition_spans(ORDER, [ORDER[10], ORDER[3], ORDER[400]]) == [(ORDER[3], ORDER[400])]
    assert planning.partition_span(ORDER, [ORDER[10], ORDER[19_999]]) == (ORDER[10], ORDER[19_999])


def test_files_far_apart_make_separate_ranges_and_no_file_is_left_out():
    keys = [ORDER[5], ORDER[6], ORDER[5_000], ORDER[19_999]]
    spans = planning.partition_spans(ORDER, keys)
    assert spans == [(ORDER[5], ORDER[6]), (ORDER[5_000], ORDER[5_000]), (ORDER[19_999], ORDER[19_999])]
    covered = {k for a, b in spans for k in ORDER[ORDER.index(a) : ORDER.index(b) + 1]}
    assert set(keys) <= covered and len(covered) == 4


def test_at_most_max_runs_ranges_merging_the_closest():
    keys = [ORDER[i] for i in (0, 1_000, 1_600, 5_000, 9_000)]
    spans = planning.partition_spans(ORDER, keys, max_gap=100, max_runs=3)
    # gaps 999, 599, 3,399, 3,999: the two smallest are merged
    assert spans == [(ORDER[0], ORDER[1_600]), (ORDER[5_000], ORDER[5_000]), (ORDER[9_000], ORDER[9_000])]
    assert planning.partition_spans(ORDER, keys, max_gap=100, max_runs=1) == [(ORDER[0], ORDER[9_000])]
    assert sum(planning.span_size(ORDER, s) for s in spans) == 1_601 + 1 + 1


def test_nothing_to_run_no_range():
    assert planning.partition_spans(ORDER, []) == []
    assert planning.partition_spans(ORDER, ["not-a-partition.txt"]) == []
    assert planning.partition_span(ORDER, []) is None


@pytest.mark.slow
def test_changed_files_far_apart_run_in_separate_runs_cli_and_nightly(tmp_path, monkeypatch):
    """Two changed files with untouched ones between them: the nightly tick asks for two runs (distinct
    run keys), `legal-rag ingest` runs two and ingests both files; the untouched files get no run."""
    monkeypatch.setattr(planning, "SPAN_GAP", 2)
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    names = [f"luat-{i:02d}.txt" for i in range(8)]
    for i, name in enumerate(names):
        (env.data / name).write_text(LAW.format(n=i), encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    for name in (names[0], names[7]):
        (env.data / name).write_text(LAW.format(n=100 + names.index(name)), encoding="utf-8")

    nightly = build_nightly_schedule(ingest_job)
    with get_instance() as instance:
        # closed, like every evaluation context: what it entered is left in order, not at garbage collection
        with dg.build_schedule_context(instance=instance, resources=build_resources(load_settings())) as context:
            requests = nightly.evaluate_tick(context).run_requests
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        (names[0], names[0]),
        (names[7], names[7]),
    ]
    assert len({r.run_key for r in requests}) == 2
    assert [r.tags["legal_rag/planned_files"] for r in requests] == ["1", "1"]

    code, out = env.ingest()
    assert code == 0, out
    assert "Ingesting 2 files into" in out and "in 2 runs" in out
    assert "2 of 2 files ingested" in out and "6 other files unchanged" in out
    with get_instance() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"legal_rag/trigger": "cli"}), limit=3)
        assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in runs[:2]] == [
            (names[7], names[7]),
            (names[0], names[0]),
        ]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs[:2])
    texts = [(p["source"], p["page_content"]) for p in env.points().values()]
    assert any("Luật số 100" in t for s, t in texts if s == names[0])
    assert any("Luật số 107" in t for s, t in texts if s == names[7])
    assert not any("Luật số 0 " in t or "Luật số 7 " in t for _, t in texts)  # the old versions are gone
