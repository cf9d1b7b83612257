"""The Dagster UI in a real browser: `dagster dev` on the project's workspace, Debian's Chromium driven
by Playwright (never `playwright install`), "Materialize all" clicked like a person would.

The screenshots are saved in test-artifacts/ (git-ignored; CI keeps them).
"""

from __future__ import annotations

import re
import shutil
import sys
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from legal_rag_pipeline_tests.test_daemon import ARTIFACTS, REPO, Project, free_port, make_project, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE = ["hoi-dap-mau.xlsx", "luat-mau-cu-tru.txt", "luat-mau-giao-thong.txt"]


def server_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def backfill_run(project: Project) -> dg.RunRecord | None:
    """The run the UI's backfill made, once it has finished."""
    runs = [r for r in project.instance().get_run_records() if r.dagster_run.tags.get("dagster/backfill")]
    return runs[0] if runs and runs[0].dagster_run.is_finished else None


@pytest.mark.slow
def test_materialize_all_from_the_browser(tmp_path: Path):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `apt-get install -y chromium` (scripts/test.sh does it)")
    from playwright.sync_api import expect, sync_playwright

    # The sensor is off here so that the click, not the sensor, materialises the files.
    project = make_project(tmp_path / "project", DATA_FOLDER_SENSOR="stopped")
    for name in SAMPLE:
        shutil.copy2(REPO / "data" / name, project.data / name)
    instance = project.instance()
    instance.add_dynamic_partitions("source_files", SAMPLE)  # what the sensor or `legal-rag ingest` does
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    dev = project.start(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        "dagster-dev",
    )
    try:
        wait_until(lambda: server_up(url) or not dev.alive(), 180, "the webserver")
        assert dev.alive(), dev.tail()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(60_000)
                # Lineage shows two groups; the ingestion group holds the four per-file assets.
                page.goto(f"{url}/locations/legal_rag_pipeline/asset-groups/ingestion")
                materialize = page.get_by_role("button", name="Materialize all")
                expect(materialize).to_be_enabled(timeout=120_000)
                for asset in (
                    "raw_documents",
                    "normalized_records",
                    "embedding_batches",
                    "qdrant_collection",
                ):
                    expect(page.get_by_text(asset).first).to_be_visible()
                materialize.click()

                # Partitioned assets open the partition dialog: every file, one run (single-run backfill).
                dialog = page.get_by_role("dialog")
                expect(dialog).to_contain_text("Launch runs to materialize 4 assets")
                dialog.get_by_role("button", name="All", exact=True).click()
                expect(dialog).to_contain_text("3 partitions")
                page.screenshot(path=str(ARTIFACTS / "ui-1-materialize-all-dialog.png"))
                dialog.get_by_role("button", name=re.compile(r"^Launch")).click()
                expect(dialog).to_be_hidden()

                record = wait_until(lambda: backfill_run(project), 300, "the run launched from the UI", 1.0)
                assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, dev.tail()
                tags = record.dagster_run.tags
                assert (
                    tags["dagster/asset_partition_range_start"],
                    tags["dagster/asset_partition_range_end"],
                ) == (
                    SAMPLE[0],
                    SAMPLE[-1],
                )

                # What a person sees: the run succeeded, every partition is materialised, checks passed.
                page.goto(f"{url}/runs/{record.dagster_run.run_id}")
                expect(page.get_by_text("Success").first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / "ui-2-run-succeeded.png"))
                page.goto(f"{url}/assets/qdrant_collection?view=partitions")
                expect(page.get_by_text("Materialized (3)")).to_be_visible(timeout=60_000)
                expect(page.get_by_text("Missing (0)")).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "ui-3-partitions-materialized.png"))
                # Per file metadata of the latest materialisation: status, chunks, points, texts embedded.
                page.goto(f"{url}/assets/qdrant_collection")
                expect(page.get_by_text("Latest materialization")).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "ui-4-asset-metadata.png"))
                metadata = page.locator("tr")
                for field in ("status", "chunks", "points_written", "points_deleted", "texts_embedded"):
                    expect(metadata.filter(has_text=field).first).to_be_visible()
                # The law in force across the folder, recorded by the run's writer step.
                page.goto(f"{url}/assets/law_validity")
                expect(page.get_by_text("Latest materialization")).to_be_visible()
                for field in ("documents", "relations_found", "documents_not_in_force", "not_in_force"):
                    expect(page.locator("tr").filter(has_text=field).first).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "ui-6-law-validity.png"))
                page.goto(f"{url}/locations/legal_rag_pipeline/asset-groups/ingestion")
                expect(page.get_by_text(re.compile(r"\d+ / \d+ Passed")).first).to_be_visible(timeout=60_000)
                expect(page.get_by_text("100% filled").first).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "ui-5-asset-graph-materialized.png"))
            finally:
                browser.close()

        # The checks the UI counts above: every one the run evaluated passed.
        evaluations = [
            event.dagster_event.event_specific_data
            for event in project.instance().all_logs(record.dagster_run.run_id)
            if event.dagster_event and event.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert evaluations and all(e.passed for e in evaluations), evaluations

        # While the UI, daemon and code server are up, nothing holds the embedded Qdrant folder.
        hits = project.search("tạm trú", source="luat-mau-cu-tru.txt")
        assert hits, "search failed while dagster dev was up"
    finally:
        dev.stop()
    assert not dev.alive()
