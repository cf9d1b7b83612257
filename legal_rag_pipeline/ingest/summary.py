"""Each file's summary across the four stages (the CLI table, the UI metadata, `legal-rag status`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts, each_status
from .outcomes import STAGES

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- summaries
@dataclass
class FileSummary:
    """One line of the per-file summary (CLI table, UI metadata)."""

    source: str
    status: str
    chunks: int = 0
    embedded: int = 0
    points_written: int = 0
    points_deleted: int = 0
    failed_stage: str | None = None
    error: str | None = None
    fix: str | None = None
    notes: list[str] = field(default_factory=list)


def file_summary(source: str, state_dir: Path, run_id: str | None = None) -> FileSummary:
    return summary_of(source, FileArtifacts(state_dir, source).status(), run_id)


def summary_of(source: str, status: Mapping[str, Any], run_id: str | None = None) -> FileSummary:
    """``source``'s summary from its ``status`` record (the stages of ``run_id`` only, when given)."""
    summary = FileSummary(source, "unchanged")
    for stage in STAGES:
        entry = status.get(stage)
        if entry is None or (run_id is not None and entry.get("run_id") != run_id):
            summary.status = "not run"
            break
        counts = entry.get("counts") or {}
        summary.chunks = counts.get("chunks", summary.chunks)
        summary.embedded = counts.get("embedded", summary.embedded)
        summary.points_written = counts.get("points_written", summary.points_written)
        summary.points_deleted = counts.get("points_deleted", summary.points_deleted)
        summary.notes.extend(entry.get("notes") or [])
        if entry["status"] == "failed":
            summary.status, summary.failed_stage = "failed", stage
            summary.error, summary.fix = entry.get("error"), entry.get("fix")
            break
        if entry["status"] == "skipped":
            summary.status = "skipped"
            break
        if entry["status"] == "ok":
            summary.status = "ok"
    if summary.status == "ok" and not (summary.embedded or summary.points_written or summary.points_deleted):
        summary.status = "unchanged"
    return summary


def file_summaries(
    sources: Iterable[str], state_dir: Path, run_id: str | Mapping[str, str] | None = None
) -> dict[str, FileSummary]:
    """``file_summary`` of each of ``sources`` (in their order), their status records read a page at a
    time instead of one query each; ``run_id``: one run for all, or each source's run."""
    wanted = list(sources)
    run_of = run_id if isinstance(run_id, Mapping) else None

    def run(source: str) -> str | None:
        return run_of.get(source) if run_of is not None else run_id

    found: dict[str, FileSummary] = {}
    if wanted:
        want = set(wanted)
        for source, status in each_status(state_dir):  # each record decoded and let go: only summaries kept
            if source in want:
                found[source] = summary_of(source, status, run(source))
    return {source: found.get(source) or summary_of(source, {}, run(source)) for source in wanted}
