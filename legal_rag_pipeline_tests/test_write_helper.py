"""bm25 vectors made by a helper process while the writer writes (legal_rag_pipeline/helper.py): the same points
as the writer makes alone, and a helper that dies or fails loses nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal

import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline import helper as helpers
from legal_rag_pipeline.ingest import write
from legal_rag_pipeline.resources import HuggingFaceEmbedder
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.settings import load_limits
from legal_rag_pipeline.text.lexical import VARIANTS, document_sparse_vector, packed

from .conftest import FAST_RETRIES
from .pipeline_env import shared_data


def _law_texts(limit: int = 400) -> list[str]:
    texts = []
    for law in sorted((shared_data() / "laws").glob("*.txt"))[:3]:
        texts += [p for p in law.read_text(encoding="utf-8").split("\nĐiều ") if p.strip()]
    return texts[:limit]


@pytest.mark.parametrize("variant", ["syllables", "syllables+bigrams"])
def test_the_helper_makes_the_vectors_the_writer_makes(variant):
    assert variant in VARIANTS
    texts = _law_texts()
    helper = helpers.Helper("bm25")
    try:
        helper.submit(texts[:200], variant)
        helper.submit(texts[200:], variant)  # two groups in flight: answered in order
        made = helper.result() + helper.result()
    finally:
        helper.close()
    assert made == [packed(document_sparse_vector(t, variant)) for t in texts]
    assert helper.peak_kb > 0 and helper._proc.returncode == 0


def test_a_helper_that_fails_says_so():
    helper = helpers.Helper("bm25")
    try:
        helper.submit(["Điều 1. Phạm vi điều chỉnh"], "no such variant")
        with pytest.raises(helpers.HelperGone, match="unknown lexical variant"):
            helper.result()
    finally:
        helper.close()


def test_a_small_write_starts_no_helper():
    assert helpers.start_helper("bm25", helpers.HELPER_MIN_POINTS - 1) is None
    helper = helpers.start_helper("bm25", helpers.HELPER_MIN_POINTS)
    assert helper is not None
    helper.close()


def _folder(tmp_path, files: int = 40, articles: int = 12, embedder=None):
    """40 small laws read, chunked and embedded (``embedder``; None: bm25 only)."""
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    keys = []
    for f in range(files):
        key = f"luat-{f:02d}.txt"
        body = "".join(
            f"Điều {a}. Quy định {a} của luật {f}\n1. Cơ quan nhà nước có thẩm quyền xử lý hồ sơ số {f * 100 + a}.\n"
            f"2. Người đứng đầu chịu trách nhiệm về khoản {a}, thời hạn {a + f} ngày.\n"
            for a in range(1, articles + 1)
        )
        (data / key).write_text(f"LUẬT THỬ NGHIỆM SỐ {f}\n{body}", encoding="utf-8")
        keys.append(key)
    for key in keys:
        assert ingest.read_stage(data, key, state, "r1", load_limits()).ok
        assert ingest.normalize_stage(key, state, "r1", 512).ok
    assert all(o.ok for o in ingest.embed_stage(keys, state, "r1", embedder))
    return data, state, keys


def _points(collection) -> dict[str, tuple]:
    out = {}
    for p in collection.iter_points(fields=True, vectors=True):
        payload = {k: v for k, v in p.payload.items() if k != "ingested_at"}
        dense = None if p.dense is None else [round(x, 5) for x in p.dense]
        out[str(p.id)] = (payload, p.sparse, dense)
    return out


def _sync(tmp_path, name, data, state, keys, *, helper: bool, monkeypatch, kill_after: int | None = None,
          task: str = "bm25", embedder=None):
    """A sync of the folder with or without helpers (the bm25 one and the Edge write process); with
    ``kill_after``, the ``task`` helper is killed when asked for its ``kill_after``-th answer."""
    monkeypatch.setattr(write, "WRITE_GROUP_POINTS", 50)  # many groups: several in flight
    monkeypatch.setattr(helpers, "HELPER_MIN_POINTS", 1 if helper else 10**9)
    started = []
    real_result = helpers.Helper.result

    def result(self):
        if self.task == task:
            started.append(self)
            if len(started) == kill_after:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        return real_result(self)

    monkeypatch.setattr(helpers.Helper, "result", result)
    state_copy = tmp_path / f"state-{name}"
    shutil.copytree(state, state_copy)
    store = QdrantStore(path=str(tmp_path / f"qdrant-{name}"))
    with store.connect() as collection:
        outcomes, _ = ingest.sync_stage(keys, data, state_copy, "r1", collection, embedder)
        points = _points(collection)
    return outcomes, points, started


def _tasks_started(monkeypatch) -> list[str]:
    """The helper processes started from now on, by task."""
    tasks: list[str] = []
    real_init = helpers.Helper.__init__

    def init(self, task):
        tasks.append(task)
        real_init(self, task)

    monkeypatch.setattr(helpers.Helper, "__init__", init)
    return tasks


def test_a_write_with_the_helper_writes_the_same_points(tmp_path, monkeypatch):
    data, state, keys = _folder(tmp_path)
    alone, points_alone, _ = _sync(tmp_path, "alone", data, state, keys, helper=False, monkeypatch=monkeypatch)
    tasks = _tasks_started(monkeypatch)
    helped, points_helped, _ = _sync(tmp_path, "helped", data, state, keys, helper=True, monkeypatch=monkeypatch,
                                     kill_after=10**9)
    assert tasks == ["bm25"]  # the groups written in the run's process: their bm25 vectors by a helper
    assert all(o.status == "ok" for o in alone + helped)
    assert len(points_alone) == sum(o.counts["chunks"] for o in alone) >= 40 * 12
    assert points_helped == points_alone


def test_a_helper_killed_mid_write_loses_nothing(tmp_path, monkeypatch):
    data, state, keys = _folder(tmp_path)
    _, points_alone, _ = _sync(tmp_path, "alone", data, state, keys, helper=False, monkeypatch=monkeypatch)
    outcomes, points, asked = _sync(tmp_path, "killed", data, state, keys, helper=True, monkeypatch=monkeypatch,
                                    kill_after=3)
    assert len(asked) == 3  # the helper answered twice, died at the third group and was not asked again
    assert {o.status for o in outcomes} == {"ok"} and len(outcomes) == len(keys)
    assert points == points_alone


def _dense(embeddings_server):
    return HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=64, **FAST_RETRIES)


def test_a_write_process_writes_the_same_points(tmp_path, monkeypatch, embeddings_server):
    embedder = _dense(embeddings_server)
    data, state, keys = _folder(tmp_path, embedder=embedder)
    alone, points_alone, _ = _sync(tmp_path, "alone", data, state, keys, helper=False, monkeypatch=monkeypatch,
                                   embedder=embedder)
    tasks = _tasks_started(monkeypatch)
    written, points_written, asked = _sync(tmp_path, "process", data, state, keys, helper=True,
                                           monkeypatch=monkeypatch, task="edge_write", embedder=embedder)
    # the groups written by a write process: the run's process makes their bm25 vectors, no bm25 helper
    # (one process less: 480-486 MB against 516-532 MB for the dense ingest of the 208 laws)
    assert tasks == ["edge_write"]
    assert len({id(h) for h in asked}) == 1 and len(asked) >= 10  # one write process answered every group
    assert asked[0]._proc.returncode == 0  # and closed the shard it wrote
    assert [o.status for o in written] == [o.status for o in alone] == ["ok"] * len(keys)
    assert [o.counts for o in written] == [o.counts for o in alone]
    assert points_written == points_alone


def test_a_bm25_only_write_stays_in_the_run(tmp_path, monkeypatch):
    """No write process without dense vectors: it did not make the write faster (performance.md)."""
    data, state, keys = _folder(tmp_path, files=4)
    _, points, asked = _sync(tmp_path, "bm25", data, state, keys, helper=True, monkeypatch=monkeypatch,
                             task="edge_write")
    assert asked == [] and len(points) >= 4 * 12


def test_a_write_process_killed_mid_write_loses_nothing(tmp_path, monkeypatch, caplog, embeddings_server):
    embedder = _dense(embeddings_server)
    data, state, keys = _folder(tmp_path, embedder=embedder)
    _, points_alone, _ = _sync(tmp_path, "alone", data, state, keys, helper=False, monkeypatch=monkeypatch,
                               embedder=embedder)
    outcomes, points, asked = _sync(tmp_path, "killed", data, state, keys, helper=True, monkeypatch=monkeypatch,
                                    kill_after=3, task="edge_write", embedder=embedder)
    # killed when asked for its third group (answers it had already sent are still read): the run wrote
    # the groups it had not answered, and the rest, itself
    assert 3 <= len(asked) < 480 // 50
    assert asked[0]._proc.returncode == -signal.SIGKILL
    # seen when reading its next answer, or when sending it the next group, whichever comes first
    assert re.search(r"the edge_write helper stopped \((EOFError|BrokenPipeError)\): the run writes the remaining "
                     r"points itself", caplog.text), caplog.text
    assert {o.status for o in outcomes} == {"ok"} and len(outcomes) == len(keys)
    assert points == points_alone
