"""The `vectors_valid` check reads back a spread of the dense vectors written, not all of them, and a
file whose vector the write mangled is named and re-run alone.

Real parts: two real laws from ../shared/data/laws, an in-process `legal-rag ingest` against the loopback embedding
server through huggingface_hub, Qdrant Edge.
"""

from __future__ import annotations

import shutil

from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome
from legal_rag_pipeline.assets.checks import VECTOR_POINTS_PER_FILE, _spread, _vectors_valid
from legal_rag_pipeline.stores.base import PointRecord
from legal_rag_pipeline_tests.pipeline_env import make_env, shared_data

LAWS = ["Luat-tiep-cong-dan-2013-215839.txt", "Luat-thue-bao-ve-moi-truong-2010-115247.txt"]


def test_spread_keeps_the_ends_and_never_repeats():
    assert _spread(list(range(5)), 8) == [0, 1, 2, 3, 4]
    assert _spread(list(range(100)), 5) == [0, 25, 50, 74, 99]
    assert _spread(list(range(9)), 1) == [0]
    picked = _spread(list(range(1000)), 256)
    assert len(set(picked)) == 256 and picked[0] == 0 and picked[-1] == 999


def test_vectors_valid_reads_a_spread_and_names_the_mangled_file(tmp_path, monkeypatch, embeddings_server):
    env = make_env(tmp_path, monkeypatch, endpoint_url=embeddings_server.url)
    for name in LAWS:
        shutil.copy2(shared_data() / "laws" / name, env.data / name)
    code, out = env.ingest()
    assert code == 0, out
    written = [StageOutcome(s, "ok", counts={"points_written": 1}) for s in LAWS]
    ids = {s: FileArtifacts(env.state, s).chunk_ids() for s in LAWS}
    assert all(len(v) > VECTOR_POINTS_PER_FILE for v in ids.values())  # so the check reads a part of each

    with env.store().connect() as collection:
        result = _vectors_valid(collection, written, env.state)
        assert result.passed, result.metadata
        assert result.metadata["checked"].value == 2 * VECTOR_POINTS_PER_FILE
        assert result.metadata["files_checked"].value == 2

        broken, fine = LAWS
        (point,) = collection.retrieve(ids[broken][:1], fields=True, vectors=True)
        size = len(point.dense)
        collection.upsert([PointRecord(point.id, [0.0] * size, point.sparse, point.payload)])  # a zero vector
        result = _vectors_valid(collection, written, env.state)

    assert not result.passed and result.metadata["invalid"].value == 1
    assert broken in result.metadata["invalid_files"].value and fine not in result.metadata["invalid_files"].value
    assert FileArtifacts(env.state, broken).synced() is None  # re-run next time
    assert FileArtifacts(env.state, fine).synced() is not None  # still in sync
