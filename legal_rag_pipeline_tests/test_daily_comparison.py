"""The daily comparison of the collection with the folder is made by the plan (ingest/verify.py), not
by a run over every file: nothing out of line launches no run; a file whose points were deleted or
replaced behind the pipeline's back runs again, alone; points of files nobody knows still make every
file run. The ids are looked up in turns (``IDS_A_DAY`` a day) while the collection's count is what the
chunks say. On both sides of the store seam, then through `legal-rag ingest` and the nightly schedule."""

from __future__ import annotations

import json
import uuid

import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline.automation.schedules import build_nightly_schedule
from legal_rag_pipeline.definitions import build_resources, ingest_job
from legal_rag_pipeline.ingest import count_as_expected, files_missing_points, files_out_of_line, next_files
from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline.resources.qdrant import PointRecord, QdrantStore
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests.pipeline_env import make_env
from legal_rag_pipeline_tests.test_schedule import LAW, _tick


def _point(source: str, i: int) -> PointRecord:
    return PointRecord(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{i}")), vector=None, sparse=([7], [1.0]),
                       payload={"source": source, "page_content": f"Điều {i}."})


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_files_out_of_line_on_both_stores(tmp_path, engine):
    files = {f"luat-{k}.txt": [_point(f"luat-{k}.txt", i) for i in range(3 + k)] for k in range(4)}
    expected = {source: [p.id for p in points] for source, points in files.items()}
    with QdrantStore(path=str(tmp_path / "q"), engine=engine).connect() as c:
        c.ensure(None, None)
        c.upsert([p for points in files.values() for p in points])
        assert files_out_of_line(c, expected) == [] and files_missing_points(c, expected) == set()
        counts = {source: len(ids) for source, ids in expected.items()}
        assert count_as_expected(c, counts) and not count_as_expected(c, {**counts, "luat-0.txt": 2})
        c.delete([files["luat-1.txt"][0].id])  # a point deleted behind the pipeline's back
        replaced = _point("luat-2.txt", 99)  # the same count, another point (an older copy restored)
        c.delete([files["luat-2.txt"][0].id])
        c.upsert([replaced])
        assert files_out_of_line(c, expected) == ["luat-1.txt", "luat-2.txt"]
        assert files_missing_points(c, expected) == {"luat-1.txt", "luat-2.txt"}
        # the replaced point leaves the count as it was, the deleted one does not
        assert not count_as_expected(c, counts) and count_as_expected(c, {**counts, "luat-1.txt": counts["luat-1.txt"] - 1})
        # a file the state knows but does not expect in sync (changed, failed, removed): its points are
        # accounted for; a file nobody knows: only a comparison of every point can sort it out
        c.upsert([_point("cu.txt", 0)])
        assert files_out_of_line(c, expected) is None
        assert files_out_of_line(c, expected, others=["cu.txt"]) == ["luat-1.txt", "luat-2.txt"]
        assert count_as_expected(c, {**counts, "luat-1.txt": counts["luat-1.txt"] - 1}, others=["cu.txt"])


def test_next_files_takes_the_files_after_the_last_in_name_order_up_to_the_ids_of_a_day():
    points = {"b.txt": 3, "a.txt": 2, "d.txt": 4, "c.txt": 1}
    assert next_files(points, "", ids=6) == ["a.txt", "b.txt", "c.txt"]
    assert next_files(points, "c.txt", ids=6) == ["d.txt"]  # the end of the folder: the next day starts again
    assert next_files(points, "", ids=100) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert next_files(points, "a.txt", ids=1) == ["b.txt"]  # at least one file, however many points it has
    assert next_files(points, "d.txt") == [] and next_files({}, "") == []


def _age_the_comparison(env) -> None:
    path = env.state / "sync_state.json"
    state = json.loads(path.read_text())
    state["verified_at"] = 0  # the last comparison long ago: the plan is due for the daily one
    path.write_text(json.dumps(state))


def test_the_daily_comparison_launches_no_run_unless_points_differ(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    for i in range(5):
        (env.data / f"luat-{i}.txt").write_text(LAW.format(n=i), encoding="utf-8")
    assert env.ingest()[0] == 0
    runs = env.runs()

    _age_the_comparison(env)
    code, out = env.ingest()
    assert code == 0 and "The daily comparison of the collection with the folder found the points of 5 files in place" in out
    assert "Nothing changed since the last run: 5 files in sync" in out and env.runs() == runs, out
    assert json.loads((env.state / "sync_state.json").read_text())["verified_at"] > 0  # compared: not due again
    code, out = env.ingest()
    assert code == 0 and "daily comparison" not in out, out

    # points deleted behind the pipeline's back: that file alone runs, and its points are back
    points = env.points()
    lost = [pid for pid, payload in points.items() if payload["source"] == "luat-3.txt"][:1]
    with env.store().connect() as c:
        c.delete(lost)
    _age_the_comparison(env)
    code, out = env.ingest()
    assert "found the points of 4 files in place and 1 whose points differ (they run again)" in out, out
    assert "Plan: 4 unchanged, 1 changed, 0 new, 0 failed last time, 0 removed." in out
    assert code == 0 and env.points().keys() == points.keys() and env.runs() == runs + 1

    # the nightly schedule's tick compares the same way
    _age_the_comparison(env)
    with get_instance() as instance:
        tick = _tick(build_nightly_schedule(ingest_job), instance, build_resources(load_settings()))
    assert not tick.run_requests
    assert "Nothing changed since the last run" in tick.skip_message
    assert "The daily comparison of the collection with the folder found the points of 5 files in place" in tick.skip_message

    # points of a file nobody knows: every file runs (the run compares every point and removes them)
    with env.store().connect() as c:
        c.upsert([_point("la.txt", 0)])
    _age_the_comparison(env)
    code, out = env.ingest()
    assert "Ingesting 5 files" in out and "daily comparison" not in out, out
    assert code == 0 and "la.txt" not in {p["source"] for p in env.points().values()}


def test_a_tick_does_not_wait_for_a_folder_a_run_holds(tmp_path, monkeypatch):
    """The embedded folder held by another process (a run): the tick gives up the comparison after
    TICK_LOCK_WAIT_SECONDS, not the run's two minutes, and launches the run over every file, as before."""
    import subprocess
    import sys
    import time

    from legal_rag_pipeline.automation.schedules import TICK_LOCK_WAIT_SECONDS
    from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER

    env = make_env(tmp_path, monkeypatch)
    for i in range(3):
        (env.data / f"luat-{i}.txt").write_text(LAW.format(n=i), encoding="utf-8")
    assert env.ingest()[0] == 0
    _age_the_comparison(env)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(env.qdrant)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with get_instance() as instance:
            began = time.monotonic()
            tick = _tick(build_nightly_schedule(ingest_job), instance, build_resources(load_settings()))
            took = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    (run,) = tick.run_requests
    assert run.tags["legal_rag/files"] == "3" and "every file runs" in run.tags["legal_rag/plan"], run.tags
    assert took < TICK_LOCK_WAIT_SECONDS + 20, took  # not the 120 s a run waits


def test_a_collection_too_large_for_a_tick_is_left_to_the_run(tmp_path, monkeypatch):
    """The tick has a time limit: past ``compare_up_to_points`` (TICK_COMPARE_UP_TO_POINTS) the plan
    leaves the comparison to the run over every file, as before; `legal-rag ingest` has no such limit."""
    from legal_rag_pipeline.ingest import BM25_ONLY_MODEL
    from legal_rag_pipeline.planning import plan_ingest
    from legal_rag_pipeline.readers import scan_data_dir
    from legal_rag_pipeline.services import open_store

    env = make_env(tmp_path, monkeypatch)
    for i in range(3):
        (env.data / f"luat-{i}.txt").write_text(LAW.format(n=i), encoding="utf-8")
    assert env.ingest()[0] == 0
    store = open_store(load_settings())

    def plan(up_to: int):
        _age_the_comparison(env)
        with store.connect() as c:
            return plan_ingest(env.data, scan_data_dir(env.data).files, env.state, model=BM25_ONLY_MODEL,
                               location=store.location(), physical=c.physical_name(), token_budget=128,
                               collection=c, compare_up_to_points=up_to)

    points = len(env.points())
    fits = plan(points)
    assert not fits.full and fits.compared == "found the points of 3 files in place" and not fits.to_run
    # with its count right, any size is compared (by turns: IDS_A_DAY ids a day); with a point deleted
    # every file's count and ids would be, which is what the limit is for
    assert plan(points - 1).compared == "found the points of 3 files in place"
    with store.connect() as c:
        c.delete(list(env.points())[:1])
    too_large = plan(points - 2)
    assert too_large.full and f"over {points - 2:,} points" in too_large.reason and not too_large.compared
    assert plan(points - 1).compared == "found the points of 2 files in place and 1 whose points differ (they run again)"


def test_the_ids_are_looked_up_in_turns_while_the_count_is_right(tmp_path, monkeypatch):
    """With fewer ids a day than the collection holds, each comparison looks up the next files' ids and
    starts again from the first after the last; a point replaced by another of the same file (the count
    unchanged) is found on its file's day, and that file alone runs; a deleted point changes the count
    and is found the same day, whichever file it belongs to."""
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    for i in range(6):
        (env.data / f"luat-{i}.txt").write_text(LAW.format(n=i), encoding="utf-8")
    assert env.ingest()[0] == 0
    runs, points = env.runs(), env.points()
    per_file = {p["source"]: 0 for p in points.values()}
    for p in points.values():
        per_file[p["source"]] += 1
    assert set(per_file) == {f"luat-{i}.txt" for i in range(6)}
    monkeypatch.setattr(ingest, "IDS_A_DAY", per_file["luat-0.txt"] + per_file["luat-1.txt"])

    def compare() -> tuple[str, str]:
        _age_the_comparison(env)
        code, out = env.ingest()
        assert code == 0, out
        return out, json.loads((env.state / "sync_state.json").read_text())["looked_up_to"]

    out, last = compare()
    assert last == "luat-1.txt" and "and the points of 2 of them in place by id" in out, out
    assert f"found {len(points):,} points, as many as the chunks of its 6 files" in out and env.runs() == runs

    # luat-4's point replaced by another of luat-4 (an older copy restored): the count is right
    victim = next(pid for pid, p in points.items() if p["source"] == "luat-4.txt")
    with env.store().connect() as c:
        c.delete([victim])
        c.upsert([_point("luat-4.txt", 99)])
    out, last = compare()  # luat-2, luat-3: not its turn yet
    assert last == "luat-3.txt" and "whose points differ" not in out and env.runs() == runs, out
    out, last = compare()  # luat-4, luat-5: found, and it runs alone
    assert last == "" and "and 1 whose points differ (they run again)" in out, out
    assert "Plan: 5 unchanged, 1 changed" in out and env.runs() == runs + 1
    assert victim in env.points()  # its point is back (and the other one gone: the count below)
    out, last = compare()  # from the first file again
    assert last == "luat-1.txt" and env.points().keys() == points.keys() and env.runs() == runs + 1, out

    # a point of luat-5 deleted: the count says so the same day (luat-2's and luat-3's turn), every
    # file's count and ids are compared, and luat-5 runs alone
    with env.store().connect() as c:
        c.delete([next(pid for pid, p in points.items() if p["source"] == "luat-5.txt")])
    out, last = compare()
    assert "found the points of 5 files in place and 1 whose points differ (they run again)" in out, out
    assert last == "" and env.points().keys() == points.keys() and env.runs() == runs + 2
