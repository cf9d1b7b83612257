"""The search probe on one-article files: a chunk many files share never voids the plan; a file the
probe truly cannot find is re-run alone.

Real parts: one-article files cut from real laws (Luật Doanh nghiệp 2014, 2020 and the 2020 law's copy
in laws_blankline: hundreds of near-identical articles), real `legal-rag ingest` runs (bm25), Qdrant Edge.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from legal_rag_pipeline.artifacts import FileArtifacts, StageOutcome
from legal_rag_pipeline.ingest.marks import SYNC_STATE_FILE
from legal_rag_pipeline_tests.pipeline_env import PipelineEnv, make_env, shared_data

ARTICLE = re.compile(r"^(?=Điều \d+[a-z]?\.)", re.MULTILINE)
LAWS = ["laws/Luat-Doanh-nghiep-2014-259730.txt", "laws/Luat-Doanh-nghiep-so-59-2020-QH14-427301.txt",
        "laws_blankline/luat-doanh-nghiep.txt"]


def split_into_articles(env: PipelineEnv) -> int:
    """One file per article: the law's title line, then the article (the first file keeps the preamble)."""
    count = 0
    for name in LAWS:
        parts = [p for p in ARTICLE.split((shared_data() / name).read_text(encoding="utf-8")) if p.strip()]
        folder = env.data / Path(name).parent.name / Path(name).stem
        folder.mkdir(parents=True)
        for i, part in enumerate(parts, 1):
            (folder / f"dieu-{i:04d}.txt").write_text(part if i == 1 else f"Luật Doanh nghiệp\n{part}", encoding="utf-8")
            count += 1
    return count


@pytest.fixture
def env(tmp_path, monkeypatch) -> PipelineEnv:
    env = make_env(tmp_path, monkeypatch)  # bm25 only
    assert split_into_articles(env) > 600
    return env


def _probe_result(env: PipelineEnv):
    import dagster as dg

    from legal_rag_pipeline.instance import get_instance

    instance = get_instance()
    try:
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("qdrant_collection"), "search_probe")]
        )
        (execution,) = check.values()
        return execution.event.dagster_event.event_specific_data
    finally:
        instance.dispose()


def test_a_generic_chunk_never_voids_the_plan(env):
    code, out = env.ingest()
    assert code == 0, out
    probe = _probe_result(env)
    assert probe.passed, probe.metadata
    assert (env.state / SYNC_STATE_FILE).exists()  # the plan still holds
    code, out = env.ingest()
    assert code == 0 and "Nothing changed since the last run" in out, out


def test_a_file_truly_not_found_is_rerun_alone(env):
    from legal_rag_pipeline.assets.checks import _search_probe
    from legal_rag_pipeline.planning import plan_ingest
    from legal_rag_pipeline.readers import scan_data_dir

    assert env.ingest()[0] == 0
    files = sorted(scan_data_dir(env.data).files)
    broken, fine = files[10], files[11]
    with env.store().connect() as collection:
        collection.delete(FileArtifacts(env.state, broken).chunk_ids())  # its points gone behind our back
        result = _search_probe(collection, [StageOutcome(s, "ok", counts={"points_written": 1}) for s in (broken, fine)],
                               env.state)
        physical = collection.physical_name()
        location = collection.location()
    assert not result.passed and broken in result.metadata["not_found"].value
    assert fine not in result.metadata["not_found"].value
    assert FileArtifacts(env.state, broken).synced() is None and FileArtifacts(env.state, fine).synced() is not None
    assert (env.state / SYNC_STATE_FILE).exists()
    plan = plan_ingest(env.data, scan_data_dir(env.data).files, env.state, model="none (bm25 only)",
                       location=location, physical=physical, token_budget=128)
    assert plan.to_run == [broken]

    code, out = env.ingest()  # the next run: that file alone, its points back
    assert code == 0 and "Ingesting 1 files" in out, out
    with env.store().connect() as collection:
        assert collection.count(broken) == len(FileArtifacts(env.state, broken).chunk_ids())


def test_a_probe_searches_with_the_chunks_word_pairs():
    """The probe's query holds word pairs of the chunk only (each term maps pages of every segment's
    index; a common syllable's posting list runs through the whole collection), at most PROBE_PAIRS of
    them spread over the chunk, and all its tokens when it has too few pairs or the collection's
    tokeniser makes none."""
    from legal_rag_pipeline.assets.checks import PROBE_MIN_PAIRS, PROBE_PAIRS, probe_vector
    from legal_rag_pipeline.text.lexical import lexical_tokens, query_sparse_vector

    text = ("Điều 17. Quyền thành lập, góp vốn, mua cổ phần, mua phần vốn góp và quản lý doanh nghiệp: tổ chức, "
            "cá nhân có quyền thành lập và quản lý doanh nghiệp tại Việt Nam theo quy định của Luật này.")
    tokens = lexical_tokens(text, "syllables+bigrams")
    pairs = [t for t in tokens if "_" in t]
    assert len(pairs) >= PROBE_MIN_PAIRS and "của" in tokens and "của" not in pairs
    assert probe_vector(text, "syllables+bigrams") == query_sparse_vector(pairs)
    assert probe_vector("Điều 5. Giải thích", "syllables+bigrams") == query_sparse_vector(
        lexical_tokens("Điều 5. Giải thích", "syllables+bigrams"))
    assert probe_vector(text, "syllables") == query_sparse_vector(lexical_tokens(text, "syllables"))
    long = " ".join(f"{text} {n} lần" for n in range(6))
    indices, _ = probe_vector(long, "syllables+bigrams")
    pairs = set(t for t in lexical_tokens(long, "syllables+bigrams") if "_" in t)
    assert len(pairs) > PROBE_PAIRS and len(indices) <= PROBE_PAIRS
    assert set(indices) <= set(query_sparse_vector(list(pairs))[0])
    distinct = list(dict.fromkeys(t for t in lexical_tokens(long, "syllables+bigrams") if "_" in t))
    assert query_sparse_vector(distinct[:1])[0][0] in indices  # the spread starts at the first pair
