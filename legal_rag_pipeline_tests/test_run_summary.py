"""The run summary the UI shows on qdrant_collection: how many files were unchanged, changed, new,
removed and failed, from real `legal-rag ingest` runs recorded in a real Dagster instance."""

from __future__ import annotations

import dagster as dg

from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline_tests.pipeline_env import make_env

LAW = "Điều 1. Phạm vi điều chỉnh\nLuật số {n} này quy định về cư trú.\n\nĐiều 2. Hiệu lực\nLuật có hiệu lực.\n"


def _last_summary() -> dict:
    with get_instance() as instance:
        (record,) = instance.fetch_observations(dg.AssetKey("qdrant_collection"), limit=1).records
        return {k: v.value for k, v in record.asset_observation.metadata.items()}


def test_the_run_summary_counts_unchanged_changed_new_removed_failed(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    for n in range(4):
        (env.data / f"luat-{n}.txt").write_text(LAW.format(n=n), encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    first = _last_summary()
    assert {k: first[f"files_{k}"] for k in ("unchanged", "changed", "new", "removed", "failed")} == {
        "unchanged": 0, "changed": 0, "new": 4, "removed": 0, "failed": 0
    }
    assert "**4 files in this run**: 0 unchanged, 0 changed, 4 new, 0 removed, 0 failed" in first["run_summary"]

    (env.data / "luat-1.txt").write_text(LAW.format(n=101), encoding="utf-8")  # changed
    (env.data / "luat-3.txt").unlink()  # removed
    (env.data / "luat-9.txt").write_text(LAW.format(n=9), encoding="utf-8")  # new
    (env.data / "hong.txt").write_bytes(b"\x00\x01\x02 not a law")  # fails at the read
    code, out = env.ingest("--all")
    assert "hong.txt" in out
    second = _last_summary()
    assert {k: second[f"files_{k}"] for k in ("unchanged", "changed", "new", "removed", "failed")} == {
        "unchanged": 2, "changed": 1, "new": 1, "removed": 1, "failed": 1
    }, second["run_summary"]
    assert second["files"] == 5 and second["removed_files"] == 1
    assert "**5 files in this run**: 2 unchanged, 1 changed, 1 new, 1 removed, 1 failed" in second["run_summary"]


def test_a_large_run_lists_its_failed_files_and_the_first_others(tmp_path, monkeypatch):
    from legal_rag_pipeline import reporting

    monkeypatch.setattr(reporting, "SUMMARY_FILES_LIMIT", 3)  # as 1,000 for a run of thousands
    env = make_env(tmp_path, monkeypatch)
    for n in range(6):
        (env.data / f"luat-{n}.txt").write_text(LAW.format(n=n), encoding="utf-8")
    (env.data / "zz-hong.txt").write_bytes(b"\x00\x01\x02 not a law")  # last in order, still listed
    code, out = env.ingest()
    assert code != 0
    table = _last_summary()["run_summary"]
    for text in (table, out):
        assert "luat-0.txt" in text and "luat-1.txt" in text and "zz-hong.txt" in text, text
        assert "luat-2.txt" not in text and "luat-5.txt" not in text, text
        assert "4 more files went through and are not listed; `legal-rag status` shows every file." in text
    assert "**7 files in this run**: 0 unchanged, 0 changed, 6 new, 0 removed, 1 failed" in table


def test_the_files_summaries_read_together_are_each_file_s_own(tmp_path):
    """``file_summaries`` (every status read in one paged query) gives what ``file_summary`` gives of each
    file, in the order asked, for one run or each file's own run, also for a file with no record."""
    from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome
    from legal_rag_pipeline.ingest import STAGES, file_summaries, file_summary

    state = tmp_path / "state"
    runs = {"a.txt": "r1", "b.txt": "r2", "c.txt": "r1"}
    for source, run in runs.items():
        for n, stage in enumerate(STAGES):
            status = "failed" if source == "b.txt" and n == 2 else "ok"
            counts = {"chunks": 3, "points_written": 3} if source == "a.txt" else {}
            FileArtifacts(state, source).record_outcome(stage, StageOutcome(source, status, error="boom" if status == "failed" else None,
                                                                            counts=counts), run)
    asked = ["c.txt", "none.txt", "b.txt", "a.txt"]
    for run_id in ("r1", None, {**runs, "none.txt": "r9"}):
        together = file_summaries(asked, state, run_id)
        one_by_one = {s: file_summary(s, state, run_id.get(s) if isinstance(run_id, dict) else run_id) for s in asked}
        assert list(together) == asked and together == one_by_one
    assert [together[s].status for s in asked] == ["unchanged", "not run", "failed", "ok"]
