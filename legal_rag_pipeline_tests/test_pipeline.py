"""The four assets end to end, through `legal-rag ingest` (a real Dagster run in a real instance),
the embedded Qdrant and the loopback embeddings server spoken to by the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from openpyxl import Workbook

from legal_rag_pipeline import cli
from legal_rag_pipeline_tests.pipeline_env import HOLD_FOLDER, make_env


@pytest.fixture
def env(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    env.copy_sample()
    return env


def by_source(points: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for payload in points.values():
        counts[payload["source"]] = counts.get(payload["source"], 0) + 1
    return counts


def test_full_ingest_then_unchanged_rerun_embeds_nothing(env, embeddings_server):
    code, out = env.ingest()
    assert code == 0, out
    points = env.points()
    counts = by_source(points)
    assert set(counts) == {"hoi-dap-mau.xlsx", "luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"}
    # 7 Q&A rows, one without a question: dropped alone and reported, the other pairs stay aligned.
    assert counts["hoi-dap-mau.xlsx"] == 6
    assert "blank question" in out
    qa = [p for p in points.values() if p["source"] == "hoi-dap-mau.xlsx"]
    tam_tru = next(p for p in qa if p["question"] == "Thời hạn tạm trú tối đa là bao lâu?")
    assert "02 năm" in tam_tru["page_content"]
    law_points = [p for p in points.values() if p["source"] == "luat-mau-cu-tru.txt"]
    articles = {p["article"] for p in law_points}
    assert {str(n) for n in range(1, 9)} <= articles
    dieu6 = next(p for p in law_points if p["article"] == "6")
    assert dieu6["law"] and "cư trú" in dieu6["law"].lower()
    assert dieu6["chapter"] and dieu6["chapter"].startswith("Chương II")
    assert dieu6["metadata"]["source"] == "luat-mau-cu-tru.txt"
    for field in ("page_content", "metadata", "doc_sha256", "chunk_index", "embedding_model", "ingested_at"):
        assert field in dieu6
    assert dieu6["embedding_model"] and "bm25" not in dieu6["embedding_model"]
    # ids are UUIDs derived from (file, chunk, text)
    for pid in points:
        uuid.UUID(pid)
    embedded_first = sum(embeddings_server.batch_sizes())
    assert embedded_first == len(points)

    # Unchanged re-run: nothing embedded, nothing written.
    embeddings_server.reset_records()
    code, out = env.ingest()
    assert code == 0, out
    assert embeddings_server.count() == 0
    assert env.points() == points
    assert "Nothing changed since the last run: 3 files in sync" in out and "no run launched" in out

    # --all runs every file on purpose: each is read (hashed) again and found unchanged
    code, out = env.ingest("--all")
    assert code == 0, out
    assert out.count("unchanged") == 3 and embeddings_server.count() == 0
    assert env.points() == points


def test_plan_runs_only_the_changed_file_and_the_ones_that_failed(env):
    (env.data / "luat-hong.txt").write_bytes(b"\x00\x01\x02 not text")
    code, out = env.ingest()
    assert code == 1 and "luat-hong.txt" in out
    # a failure the file's own bytes explain is not run again while they stay (ingest/failures.py) ...
    law = env.data / "luat-mau-cu-tru.txt"
    law.write_text(law.read_text(encoding="utf-8").replace("02 năm", "03 năm"), encoding="utf-8")
    code, out = env.ingest()
    assert code == 1 and ("Plan: 2 unchanged, 1 changed, 0 new, 0 failed last time, 0 removed, "
                          "1 failing as before (unchanged since they failed).") in out, out
    assert "luat-mau-giao-thong.txt" not in out and "hoi-dap-mau.xlsx" not in out.split("Plan:")[1].split("\n", 1)[1]
    table = out.split("Plan:")[1].split("1 file not run")[0]
    assert "luat-mau-cu-tru.txt" in table and "luat-hong.txt" not in table
    assert "1 file not run: failing as before" in out and "luat-hong.txt: binary data, not text" in out
    # ... one that failed for another reason (here: a stage that did not finish) runs again
    from legal_rag_pipeline.artifacts import FileArtifacts
    from legal_rag_pipeline.ingest.outcomes import _failed

    FileArtifacts(env.state, "luat-mau-giao-thong.txt").record_outcome(
        "raw_documents", _failed("luat-mau-giao-thong.txt", "raw_documents", OSError("disk read error")), "r")
    (env.data / "luat-hong.txt").write_bytes(b"\x00\x01\x02 still not text")  # edited: runs again too
    code, out = env.ingest()
    assert "Plan: 2 unchanged, 0 changed, 0 new, 2 failed last time, 0 removed." in out, out
    assert "luat-mau-giao-thong.txt" in out and "luat-hong.txt" in out and code == 1
    os_touch = law.stat()
    import os

    os.utime(law, ns=(os_touch.st_atime_ns, os_touch.st_mtime_ns + 10**9))  # touched, not changed
    (env.data / "luat-hong.txt").unlink()
    code, out = env.ingest()
    assert code == 0 and "Removed the points of" in out, out
    code, out = env.ingest()
    assert code == 0 and "Nothing changed since the last run: 3 files in sync" in out, out


def test_changed_file_reembeds_only_changed_chunks(env, embeddings_server):
    assert env.ingest()[0] == 0
    before = env.points()
    law = env.data / "luat-mau-giao-thong.txt"
    text = law.read_text(encoding="utf-8")
    law.write_text(
        text.replace("phải mang theo giấy phép lái xe", "phải mang theo giấy phép lái xe còn hiệu lực"), encoding="utf-8"
    )
    embeddings_server.reset_records()
    code, out = env.ingest()
    assert code == 0, out
    assert sum(embeddings_server.batch_sizes()) == 1  # only Điều 7 changed
    after = env.points()
    assert len(after) == len(before)  # the stale Điều 7 point is gone, its new version is in
    dieu7 = [p for p in after.values() if p["source"] == "luat-mau-giao-thong.txt" and p["article"] == "7"]
    assert len(dieu7) == 1 and "còn hiệu lực" in dieu7[0]["page_content"]
    # unchanged chunks kept their ids
    unchanged = {i for i, p in before.items() if not (p["source"] == "luat-mau-giao-thong.txt" and p["article"] == "7")}
    assert unchanged <= set(after)


def _tail(env) -> int:
    """Points written into the Edge shard since it was last optimised (stores/edge.py TAIL_PARTS)."""
    catalog = json.loads((env.qdrant / "edge.json").read_text(encoding="utf-8"))
    return sum(int(entry.get("unoptimised") or 0) for entry in catalog["collections"].values())


def _everything(env, engine: str = "edge") -> dict[str, tuple]:
    """Every point as (payload but its write time, dense vector, bm25 vector)."""
    with env.store(engine=engine).connect() as collection:
        return {
            p.id: ({k: v for k, v in p.payload.items() if k != "ingested_at"}, p.dense, p.sparse)
            for p in collection.iter_points(fields=True, vectors=True)
        }


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_an_article_amended_in_place_writes_its_own_point_and_the_collection_is_a_clean_ingest(
    env, embeddings_server, tmp_path, monkeypatch, engine
):
    """The law's other points are kept (only their text digest set: ``points_kept``), not written again;
    amended twice, then an article inserted before the others (their places change: written again), the
    collection holds exactly what a clean ingest of the final folder makes. Qdrant Edge and qdrant-client
    alike (the second stands in for a server)."""
    from legal_rag_pipeline.artifacts import FileArtifacts
    from legal_rag_pipeline.ingest import sync

    monkeypatch.setenv("QDRANT_ENGINE", engine)
    monkeypatch.setattr(sync, "KEPT_PAGE", 3)  # the law's chunks compared with their points a page at a time
    assert env.ingest()[0] == 0
    law = env.data / "luat-mau-giao-thong.txt"
    for before, after in (("phải mang theo giấy phép lái xe", "phải mang theo giấy phép lái xe còn hiệu lực"),
                          ("còn hiệu lực", "còn hạn sử dụng")):
        law.write_text(law.read_text(encoding="utf-8").replace(before, after, 1), encoding="utf-8")
        embeddings_server.reset_records()
        tail = _tail(env) if engine == "edge" else 0
        code, out = env.ingest()
        assert code == 0, out
        counts = FileArtifacts(env.state, law.name).status()["qdrant_collection"]["counts"]
        assert sum(embeddings_server.batch_sizes()) == 1
        assert counts["points_written"] == 1 and counts["points_deleted"] == 1, counts
        assert counts["points_kept"] == counts["chunks"] - 1 > 0, counts
        if engine == "edge":  # nothing else of the law was written (its validity: the view its points carry was kept)
            assert _tail(env) - tail == counts["chunks"], (tail, _tail(env))
    code, out = env.ingest()
    assert code == 0 and "Nothing changed since the last run" in out, out
    text = law.read_text(encoding="utf-8")
    first = text.index("Điều 2.")
    law.write_text(text[:first] + "Điều 1a. Điều mới\nMột khoản mới của luật.\n\n" + text[first:], encoding="utf-8")
    code, out = env.ingest()
    assert code == 0, out
    counts = FileArtifacts(env.state, law.name).status()["qdrant_collection"]["counts"]
    assert 1 < counts["points_written"] < counts["chunks"], counts  # the inserted article and the ones after it

    (tmp_path / "clean").mkdir()
    clean = make_env(tmp_path / "clean", monkeypatch, endpoint_url=embeddings_server.url)
    for path in env.data.iterdir():
        (clean.data / path.name).write_bytes(path.read_bytes())
    assert clean.ingest()[0] == 0
    got, want = _everything(env, engine), _everything(clean, engine)
    assert got and set(got) == set(want)
    for pid, (payload, dense, sparse) in want.items():
        assert got[pid][0] == payload and got[pid][2] == sparse
        assert got[pid][1] == pytest.approx(dense, abs=1e-6)


def test_removed_file_loses_its_points_and_mass_deletion_is_guarded(env, embeddings_server):
    assert env.ingest()[0] == 0
    total = len(env.points())
    (env.data / "hoi-dap-mau.xlsx").unlink()
    code, out = env.ingest()
    assert code == 0, out
    points = env.points()
    assert "hoi-dap-mau.xlsx" not in by_source(points)
    assert len(points) == total - 6

    # Removing one of the two laws deletes about half of the points: one file, an ordinary removal.
    (env.data / "luat-mau-cu-tru.txt").unlink()
    code, out = env.ingest()
    assert code == 0, out
    assert set(by_source(env.points())) == {"luat-mau-giao-thong.txt"}

    # An empty data folder would empty the collection: refused until confirmed (test_deletion_guard.py).
    (env.data / "luat-mau-giao-thong.txt").unlink()
    code, out = env.ingest()
    assert code == 1 and "missing or has no files" in out and "luat-mau-giao-thong.txt" in out
    assert len(env.points()) > 0
    code, out = env.ingest("--confirm-delete")
    assert code == 0 and not env.points(), out


def test_bm25_only_mode(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)  # no token, no endpoint
    env.copy_sample()
    code, out = env.ingest()
    assert code == 0, out
    assert "bm25" in out
    with env.store().connect() as collection:
        layout = collection.layout(collection.physical_name())
        assert layout.dense is None and layout.sparse  # no dense vector, the bm25 sparse one
    hits = env.search_json("thời hạn tạm trú tối đa")
    assert hits and hits[0]["source"] in {"luat-mau-cu-tru.txt", "hoi-dap-mau.xlsx"}
    assert any(h["law"] and h["article"] == "6" for h in hits)


def test_search_cli_prints_law_and_article(env, capsys):
    assert env.ingest()[0] == 0
    assert cli.main(["search", "Người đủ bao nhiêu tuổi được lái xe gắn máy?"]) == 0
    out = capsys.readouterr().out
    assert "Điều 6" in out and "giao thông" in out.lower()
    assert cli.main(["search", "nồng độ cồn", "--json", "--top-k", "3"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["query"] == "nồng độ cồn" and 1 <= len(line["hits"]) <= 3
    assert set(line["hits"][0]) == {"id", "score", "source", "law", "article", "question", "page_content",
                                    "number", "valid_from", "valid_to", "repealed_by", "amended_by"}
    # top-k are different articles
    keys = [(h["source"], h["article"] or h["id"]) for h in line["hits"]]
    assert len(keys) == len(set(keys))


def _write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    wb = Workbook()
    wb.active.append(header)
    for row in rows:
        wb.active.append(row)
    wb.save(path)


def test_bad_inputs_fail_alone_and_lose_nothing(env, embeddings_server):
    assert env.ingest()[0] == 0
    good = env.points()
    # An already-ingested file turns corrupt: it fails, its points stay.
    (env.data / "hoi-dap-mau.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    (env.data / "empty.txt").write_bytes(b"")
    (env.data / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (env.data / "latin1.txt").write_bytes("Điều 1. Phạm vi".encode("utf-8") + b"\xff\xfe\xfa bad \x81")
    _write_xlsx(env.data / "no-columns.xlsx", ["Cột A", "Cột B"], [["x", "y"]])
    name = "Luật mẫu số 3 (bản sửa).txt"
    (env.data / name).write_text(
        "LUẬT\nTHỬ NGHIỆM\nĐiều 1. Phạm vi\nLuật này quy định việc thử nghiệm tên tệp có dấu cách.\n", encoding="utf-8"
    )
    code, out = env.ingest()
    assert code == 1, out
    for bad in ("hoi-dap-mau.xlsx", "empty.txt", "binary.txt", "latin1.txt", "no-columns.xlsx"):
        line = next(l for l in out.splitlines() if l.startswith(bad))
        assert "failed" in line, line
    points = env.points()
    counts = by_source(points)
    # the file name with spaces and Vietnamese letters succeeds: its Điều 1, under the law's title (its
    # preamble only repeats that title: no point of its own, chunking version 4)
    assert counts[name] == 1
    assert any(p["source"] == name and p["article"] == "1" and p["law"] == "Luật Thử nghiệm" for p in points.values())
    for pid, payload in good.items():  # nothing lost, nothing duplicated
        assert points[pid] == payload
    assert len(points) == len(good) + 1


def test_lock_held_by_another_process_is_one_sentence(env):
    assert env.ingest()[0] == 0
    questions = env.root / "questions.json"
    questions.write_text(
        json.dumps([{"text": "Thời hạn tạm trú tối đa?", "relevant_articles": [{"law_id": "Luật Cư trú mẫu", "article_id": "6"}]}]),
        encoding="utf-8",
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(env.qdrant)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        law = env.data / "luat-mau-cu-tru.txt"  # an ingest that has something to write
        law.write_text(law.read_text(encoding="utf-8").replace("02 năm", "03 năm"), encoding="utf-8")
        for command in (["search", "tạm trú"], ["eval", "--questions", str(questions)], ["rebuild"],
                        ["doctor"], ["ingest"]):
            proc = subprocess.run(
                [sys.executable, "-m", "legal_rag_pipeline.cli", *command],
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "QDRANT_LOCK_WAIT_SECONDS": "1"},  # a run waits 120 s by default
            )
            output = proc.stdout + proc.stderr
            assert proc.returncode == 1, (command, output)
            assert "is in use by another process" in output, (command, output)
            assert "Traceback" not in output and "WouldBlock" not in output, (command, output)
    finally:
        holder.kill()
        holder.wait()


def test_configuration_error_exits_2(env, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDDINGS_BATCH_SIZE", "many")
    assert cli.main(["ingest"]) == 2
    assert "EMBEDDINGS_BATCH_SIZE" in capsys.readouterr().err


def test_file_deleted_before_read_fails_alone(tmp_path):
    from legal_rag_pipeline import ingest

    (tmp_path / "data").mkdir()
    outcome = ingest.read_stage(tmp_path / "data", "gone.txt", tmp_path / "state", "run-1")
    assert outcome.status == "failed"
    assert "deleted before it could be read" in outcome.error
    assert "nothing was changed in the collection" in outcome.fix


def test_file_still_being_written_fails_alone_and_is_retried_later(tmp_path):
    import threading
    import time

    from legal_rag_pipeline import ingest

    data = tmp_path / "data"
    data.mkdir()
    path = data / "dang-chep.txt"
    paragraph = "Điều 1. Phạm vi điều chỉnh\nLuật này quy định việc thử nghiệm một tệp đang được chép.\n"
    path.write_text(paragraph * 20000, encoding="utf-8")  # a few MB: reading takes a while
    stop = threading.Event()

    def keep_writing() -> None:
        with open(path, "a", encoding="utf-8") as handle:
            while not stop.is_set():
                handle.write(paragraph)
                handle.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        outcome = ingest.read_stage(data, "dang-chep.txt", tmp_path / "state", "run-1")
    finally:
        stop.set()
        writer.join()
    assert outcome.status == "failed"
    assert "changed while it was being read" in outcome.error
    # Once the copy is finished, the same file reads fine.
    assert ingest.read_stage(data, "dang-chep.txt", tmp_path / "state", "run-2").status == "ok"


def test_a_run_leaves_no_dagster_instance_entered_behind(tmp_path, monkeypatch):
    """A run's resources leave every Dagster instance they enter, in order: the next definitions load
    in the process (the sensor's, the schedule's) never meets a dead instance's state storage
    ("Attempted to resolve undefined DagsterInstance weakref", a CI failure once)."""
    import gc

    from dagster._core.storage.defs_state.base import DefsStateStorage

    from legal_rag_pipeline.automation import SENSOR_NAME
    from legal_rag_pipeline.definitions import build_definitions
    from legal_rag_pipeline.settings import load_settings

    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    before, threshold = DefsStateStorage.get(), gc.get_threshold()
    gc.disable()  # what the garbage collector would tidy later must already be tidied
    try:
        code, out = env.ingest()
        assert code == 0, out
        assert DefsStateStorage.get() is before
    finally:
        gc.enable()
    gc.collect()
    assert DefsStateStorage.get() is before
    assert gc.get_threshold() == threshold  # raised for the run only (instance.fewer_collections)
    assert build_definitions(load_settings()).resolve_sensor_def(SENSOR_NAME).name == SENSOR_NAME


def test_a_run_makes_no_throw_away_dagster_instance(tmp_path, monkeypatch):
    """A run's resources are initialised with the run's own instance (definitions.configured): Dagster
    would otherwise make an in-memory instance, with its SQLite schema and migrations, per resource."""
    from dagster._core.instance import DagsterInstance

    made = []
    ephemeral = DagsterInstance.ephemeral  # Dagster's own, called through

    def counted(*args, **kwargs):
        made.append(args)
        return ephemeral(*args, **kwargs)

    monkeypatch.setattr(DagsterInstance, "ephemeral", staticmethod(counted))
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    code, out = env.ingest()
    assert code == 0, out
    assert "ingested into" in out
    assert made == []


def test_fewer_collections_raises_the_threshold_for_the_run_only():
    import gc
    import weakref

    from legal_rag_pipeline.instance import RUN_GC_THRESHOLD, fewer_collections

    class Node:
        pass

    def cycle() -> weakref.ref:
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    kept = cycle()  # garbage from before the run: frozen with the rest, collected after it
    with fewer_collections():
        assert gc.get_threshold() == RUN_GC_THRESHOLD
        assert gc.get_freeze_count() > frozen  # what lived before the run is not scanned by its collections
        with fewer_collections():  # the CLI's run around an asset's own
            assert gc.get_threshold() == RUN_GC_THRESHOLD
        assert gc.get_threshold() == RUN_GC_THRESHOLD and gc.get_freeze_count() > frozen
        made = cycle()
        gc.collect()
        assert made() is None and kept() is not None  # the run's own garbage is still collected
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    gc.collect()
    assert kept() is None
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a failed run")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
