"""The embed and write stages overlapped (ingest/overlap.py): the writer writes each file as soon as its
vectors are saved, while later files are still being embedded.

Real parts: the loopback embeddings server through huggingface_hub, Qdrant Edge, the state folder."""

from __future__ import annotations

import threading

import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline.artifacts import FileArtifacts
from legal_rag_pipeline.ingest.outcomes import NOT_EMBEDDED
from legal_rag_pipeline.resources import HuggingFaceEmbedder
from legal_rag_pipeline.resources.qdrant import QdrantStore
from legal_rag_pipeline.settings import load_limits
from legal_rag_pipeline_tests.conftest import FAST_RETRIES


class Watched(ingest.Embedded):
    """An ``Embedded`` that notes, each time the writer is let through, whether that file's vectors
    were all on disk at that moment, and how many files were still unsettled."""

    def __init__(self, state, model: str) -> None:
        super().__init__()
        self.state, self.model = state, model
        self.let_through: dict[str, bool] = {}
        self.unsettled_then: list[int] = []
        self.total = 0

    def wait(self, source: str) -> bool:
        ok = super().wait(source)
        if ok and source not in self.let_through:
            art = FileArtifacts(self.state, source)
            vectors = art.read_embeddings(self.model)
            self.let_through[source] = all(pid in vectors for pid in art.chunk_ids())
            self.unsettled_then.append(self.total - len(self._settled))
        return ok


def _files(data, n: int) -> list[str]:
    data.mkdir(parents=True)
    keys = []
    for i in range(n):
        key = f"luat-{i:02d}.txt"
        text = "\n".join(f"Điều {a}. Quy định {a} của luật số {i}\nNội dung riêng của điều {a} thuộc luật {i}." for a in range(1, 7))
        (data / key).write_text(text + "\n", encoding="utf-8")
        keys.append(key)
    return keys


def _chunk(data, state, keys, run_id="r1"):
    for key in keys:
        assert ingest.read_stage(data, key, state, run_id, load_limits()).ok
        assert ingest.normalize_stage(key, state, run_id, 512).ok


def _overlapped(keys, data, state, collection, embedder, embedded):
    box = {}
    thread = threading.Thread(
        target=lambda: box.update(embedded=ingest.embed_stage(keys, state, "r1", embedder, collection=collection,
                                                              embedded=embedded)))
    thread.start()
    embedded.collection_free.wait()
    written, _ = ingest.sync_stage(keys, data, state, "r1", collection, embedder, embedded=embedded)
    thread.join()
    return {o.source: o for o in box["embedded"]}, {o.source: o for o in written}


def _points(collection):
    return {p.id: ({k: v for k, v in p.payload.items() if k != "ingested_at"}, p.dense)
            for p in collection.iter_points(fields=True, vectors=True)}


@pytest.fixture
def small_groups(monkeypatch):
    monkeypatch.setattr(ingest.embed, "EMBED_GROUP_TEXTS", 12)  # many groups from a few files


def test_overlapped_writes_what_one_stage_after_the_other_writes(tmp_path, embeddings_server, small_groups):
    embeddings_server.latency = 0.02
    embedder = HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=4, **FAST_RETRIES)
    results = {}
    for mode in ("one after the other", "overlapped"):
        root = tmp_path / mode.replace(" ", "_")
        data, state = root / "data", root / "state"
        keys = _files(data, 12)
        _chunk(data, state, keys)
        with QdrantStore(path=str(root / "qdrant")).connect(lazy=True) as collection:
            if mode == "overlapped":
                watched = Watched(state, embedder.model_id())
                watched.total = len(keys)
                embedded, written = _overlapped(keys, data, state, collection, embedder, watched)
                # never a file before its vectors were saved; some while others were still being embedded
                assert watched.let_through == {k: True for k in keys}
                assert max(watched.unsettled_then) > 0
            else:
                embedded = {o.source: o for o in ingest.embed_stage(keys, state, "r1", embedder, collection=collection)}
                written = {o.source: o for o in ingest.sync_stage(keys, data, state, "r1", collection, embedder)[0]}
            assert all(o.status == "ok" for o in [*embedded.values(), *written.values()])
            assert all(FileArtifacts(state, k).synced() for k in keys)
            results[mode] = _points(collection)
    assert len(results["overlapped"]) == 12 * 6
    assert results["overlapped"].keys() == results["one after the other"].keys()
    for pid, (payload, dense) in results["overlapped"].items():
        other_payload, other_dense = results["one after the other"][pid]
        assert payload == other_payload and dense == pytest.approx(other_dense, rel=1e-6)


def test_a_file_not_embedded_is_skipped_and_the_others_are_written(tmp_path, embeddings_server, small_groups):
    embeddings_server.max_input_tokens = 40
    embedder = HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=4, **FAST_RETRIES)
    data, state = tmp_path / "data", tmp_path / "state"
    keys = _files(data, 8)
    long_one = keys[3]  # one of its articles is longer than the server takes: its group fails
    (data / long_one).write_text((data / long_one).read_text(encoding="utf-8") + "Điều 7. " + "chữ " * 60 + "\n",
                                 encoding="utf-8")
    _chunk(data, state, keys)
    with QdrantStore(path=str(tmp_path / "qdrant")).connect(lazy=True) as collection:
        embedded, written = _overlapped(keys, data, state, collection, embedder, ingest.Embedded())
        failed = {k for k, o in embedded.items() if o.status == "failed"}
        assert long_one in failed and len(failed) < len(keys)
        for key in keys:
            if key in failed:
                assert written[key].status == "skipped" and written[key].error == NOT_EMBEDDED
                assert FileArtifacts(state, key).synced() is None
            else:
                assert written[key].status == "ok" and FileArtifacts(state, key).synced()
        counts = collection.counts_by_source(keys)
    assert {k for k in keys if counts.get(k)} == set(keys) - failed


def test_a_failure_of_the_embedding_itself_lets_the_writer_finish(tmp_path, embeddings_server):
    data, state = tmp_path / "data", tmp_path / "state"
    keys = _files(data, 3)
    _chunk(data, state, keys)

    class Broken:  # an embedder object the stage cannot use: the embedding ends with an error
        def enabled(self):
            return True

        def model_id(self):
            raise RuntimeError("model id unavailable")

    with QdrantStore(path=str(tmp_path / "qdrant")).connect(lazy=True) as collection:
        embedded = ingest.Embedded()
        box = {}

        def embed():
            try:
                ingest.embed_stage(keys, state, "r1", Broken(), collection=collection, embedded=embedded)
            except RuntimeError as exc:
                box["error"] = exc

        thread = threading.Thread(target=embed)
        thread.start()
        embedded.collection_free.wait()
        written, _ = ingest.sync_stage(keys, data, state, "r1", collection, None, embedded=embedded)
        thread.join()
    assert "model id unavailable" in str(box["error"])
    assert {o.status for o in written} == {"skipped"}


def test_texts_are_read_when_their_group_is_sent_and_a_file_changed_since_the_plan_fails_alone(
    tmp_path, embeddings_server, small_groups
):
    """The plan holds point ids only; each group reads its files' texts when it is sent. A file whose
    chunks were rewritten after the plan (ids gone) fails alone with the reason; the others embed and
    are written, and every text sent is the text of its chunk."""
    from legal_rag_pipeline.ingest.embed import CHUNKS_CHANGED
    from legal_rag_pipeline.progress import Progress

    embedder = HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=4, **FAST_RETRIES)
    data, state = tmp_path / "data", tmp_path / "state"
    keys = _files(data, 6)
    _chunk(data, state, keys)
    changed = keys[4]

    class RewriteAfterThePlan(Progress):
        announced = 0

        def more(self, stage, amount):
            self.announced += stage == "embed"
            if self.announced == 5 and stage == "embed":  # keys[4] is planned (its ids); its group not sent yet
                (data / changed).write_text("Điều 1. Một nội dung hoàn toàn mới.\n", encoding="utf-8")
                assert ingest.read_stage(data, changed, state, "r1", load_limits()).ok
                assert ingest.normalize_stage(changed, state, "r1", 512).ok

    embeddings_server.reset_records()
    with QdrantStore(path=str(tmp_path / "qdrant")).connect(lazy=True) as collection:
        outcomes = {o.source: o for o in ingest.embed_stage(keys, state, "r1", embedder, progress=RewriteAfterThePlan(),
                                                             collection=collection)}
    assert outcomes[changed].status == "failed" and outcomes[changed].error == CHUNKS_CHANGED
    assert "ingest it again" in outcomes[changed].fix
    assert all(outcomes[k].status == "ok" for k in keys if k != changed)
    sent = [text for r in embeddings_server.requests if r.texts for text in r.texts]
    expected = [c.text for k in keys if k != changed for c in FileArtifacts(state, k).read_chunks()]
    assert sorted(sent) == sorted(expected)
    for key in keys:
        vectors = FileArtifacts(state, key).read_embeddings(embedder.model_id())
        assert (len(vectors) == 6) == (key != changed)


def _read(data, state, keys, run_id="r1"):
    for key in keys:
        assert ingest.read_stage(data, key, state, run_id, load_limits()).ok


def _texts_sent(server) -> list[str]:
    return [text for r in list(server.requests) if r.texts for text in r.texts]


def _wait_for(condition, seconds: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_first_ingest_sends_each_file_as_soon_as_it_is_chunked(tmp_path, embeddings_server, small_groups):
    """The chunking runs meanwhile (``Chunked``): with nothing in the collection to look up, the first
    files' texts are on the wire while later files are not chunked yet; a file that failed its chunking
    is skipped; every chunked file ends with all its vectors saved, each text sent once."""
    from legal_rag_pipeline.ingest.outcomes import NOT_CHUNKED

    embedder = HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=4, **FAST_RETRIES)
    data, state = tmp_path / "data", tmp_path / "state"
    keys = _files(data, 6)
    _read(data, state, keys)
    chunked, embedded = ingest.Chunked(), ingest.Embedded()
    embeddings_server.reset_records()
    box = {}
    with QdrantStore(path=str(tmp_path / "qdrant")).connect(lazy=True) as collection:
        thread = threading.Thread(target=lambda: box.update(outcomes=ingest.embed_stage(
            keys, state, "r1", embedder, collection=collection, embedded=embedded, chunked=chunked)))
        thread.start()
        for key in keys[:2]:  # 12 texts: one group
            chunked.settle(key, ingest.normalize_stage(key, state, "r1", 512).ok)
        first = {c.text for k in keys[:2] for c in FileArtifacts(state, k).read_chunks()}
        assert _wait_for(lambda: first <= set(_texts_sent(embeddings_server))), "the first files were not sent"
        assert _wait_for(lambda: embedded.collection_free.is_set())  # nothing to look up: the writer may begin
        assert not any(FileArtifacts(state, k).has_chunks() for k in keys[2:])  # sent before these were chunked
        for key in keys[2:5]:
            chunked.settle(key, ingest.normalize_stage(key, state, "r1", 512).ok)
        chunked.settle(keys[5], False)  # its chunking failed
        chunked.close()
        thread.join(30)
    outcomes = {o.source: o for o in box["outcomes"]}
    assert outcomes[keys[5]].status == "skipped" and outcomes[keys[5]].error == NOT_CHUNKED
    assert not embedded.wait(keys[5])
    sent = _texts_sent(embeddings_server)
    expected = [c.text for k in keys[:5] for c in FileArtifacts(state, k).read_chunks()]
    assert sorted(sent) == sorted(expected)
    for key in keys[:5]:
        assert outcomes[key].status == "ok" and embedded.wait(key)
        assert set(FileArtifacts(state, key).read_embeddings(embedder.model_id())) == set(FileArtifacts(state, key).chunk_ids())


def test_a_collection_that_holds_the_vectors_is_looked_up_once_every_file_is_chunked(
    tmp_path, embeddings_server, small_groups
):
    """A lost state folder (issue 18) with the chunking running meanwhile: the collection holds every
    point, so the files are planned as they are chunked and looked up together at the end; nothing is
    sent, and the writer gets the collection only after the lookup."""
    embedder = HuggingFaceEmbedder(endpoint_url=embeddings_server.url, batch_size=4, **FAST_RETRIES)
    data = tmp_path / "data"
    keys = _files(data, 4)
    qdrant = QdrantStore(path=str(tmp_path / "qdrant"))
    _chunk(data, tmp_path / "state", keys)
    with qdrant.connect(lazy=True) as collection:
        _overlapped(keys, data, tmp_path / "state", collection, embedder, ingest.Embedded())
    state = tmp_path / "state-again"  # the state folder lost
    _read(data, state, keys)
    chunked, embedded = ingest.Chunked(), ingest.Embedded()
    embeddings_server.reset_records()
    box = {}
    with qdrant.connect(lazy=True) as collection:
        thread = threading.Thread(target=lambda: box.update(outcomes=ingest.embed_stage(
            keys, state, "r1", embedder, collection=collection, embedded=embedded, chunked=chunked)))
        thread.start()
        for key in keys[:3]:
            chunked.settle(key, ingest.normalize_stage(key, state, "r1", 512).ok)
        assert not _wait_for(lambda: embedded.collection_free.is_set(), 0.5)  # the last file is not chunked yet
        chunked.settle(keys[3], ingest.normalize_stage(keys[3], state, "r1", 512).ok)
        chunked.close()
        thread.join(30)
    assert embedded.collection_free.is_set()
    assert _texts_sent(embeddings_server) == []
    outcomes = {o.source: o for o in box["outcomes"]}
    assert all(outcomes[k].status == "ok" and outcomes[k].counts["from_collection"] == 6 for k in keys)
