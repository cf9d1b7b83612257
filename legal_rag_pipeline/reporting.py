"""What people read: per-file metadata in the UI and the run summary table (Markdown)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from .artifacts import StageOutcome


def outcome_metadata(outcome: StageOutcome, summary: Any | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"status": outcome.status}
    for name, value in outcome.counts.items():
        metadata[name] = value
    if summary is not None:
        metadata.update(
            {
                "chunks": summary.chunks,
                "texts_embedded": summary.embedded,
                "points_written": summary.points_written,
                "points_deleted": summary.points_deleted,
            }
        )
    if outcome.error:
        metadata["error"] = outcome.error
    if outcome.fix:
        metadata["fix"] = outcome.fix
    if outcome.notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in outcome.notes))
    return metadata


def validity_metadata(status: dict[str, Any] | None) -> dict[str, Any]:
    """A document's validity on its partition: status, dates, what repealed or amended it (validity/)."""
    if not status:
        return {}
    metadata: dict[str, Any] = {"validity": status["status"]}
    for key in ("number", "valid_from", "valid_to", "repealed_by"):
        if status.get(key):
            metadata[key] = status[key]
    changes = [*status.get("parts_ended", []), *(f"amended by {a}" for a in status.get("amended_by", []))]
    if changes:
        metadata["validity_changes"] = dg.MetadataValue.md("\n".join(f"- {c}" for c in changes[:50]))
    return metadata


def summary_rows(summaries: Iterable[Any]) -> list[list[str]]:
    rows = []
    for s in summaries:
        detail = f"{s.error}: {s.fix}" if s.error else ""
        rows.append(
            [s.source, s.status, str(s.chunks), str(s.points_written), str(s.points_deleted), str(s.embedded), detail]
        )
    return rows


HEADER = ["file", "status", "chunks", "written", "deleted", "embedded", "error / fix"]
# Files a summary table lists: a larger run lists every file that did not go through, then the first
# others up to this many (17,000 rows were over a megabyte of run metadata and of terminal).
SUMMARY_FILES_LIMIT = 1000
_TROUBLE = {"failed", "skipped", "not run"}


def listed(summaries: Iterable[Any]) -> tuple[list[Any], int]:
    """The files a summary table shows, in order, and how many it leaves out."""
    summaries = list(summaries)
    if len(summaries) <= SUMMARY_FILES_LIMIT:
        return summaries, 0
    room = max(0, SUMMARY_FILES_LIMIT - sum(s.status in _TROUBLE for s in summaries))
    shown = []
    for s in summaries:
        if s.status in _TROUBLE or room > 0:
            shown.append(s)
            room -= s.status not in _TROUBLE
    return shown, len(summaries) - len(shown)


def _left_out(count: int) -> str:
    return f"{count:,} more files went through and are not listed; `legal-rag status` shows every file."


RUN_COUNTS = ("unchanged", "changed", "new", "removed", "failed")


def run_counts(
    per_file: Mapping[str, Any], vanished: Iterable[StageOutcome], previously_synced: Iterable[str]
) -> dict[str, int]:
    """How many files of a run were unchanged, changed, new, removed from the folder, failed.

    *new*: ingested for the first time (no earlier sync into the collection, ``previously_synced``
    being the files that had one when the run started); *changed*: ingested again with points
    written or deleted; *unchanged*: nothing to do; *failed*: failed or skipped at some stage.
    """
    before = set(previously_synced)
    counts = dict.fromkeys(RUN_COUNTS, 0)
    for source, summary in per_file.items():
        if summary.status in {"failed", "skipped", "not run"}:
            counts["failed"] += 1
        elif summary.status == "unchanged" and source in before:
            counts["unchanged"] += 1
        else:
            counts["changed" if source in before else "new"] += 1
    counts["removed"] = len(list(vanished))
    return counts


def counts_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in RUN_COUNTS)


def summary_markdown(
    per_file: Mapping[str, Any], vanished: Iterable[StageOutcome], dense: str | None, counts: Mapping[str, int] | None = None
) -> str:
    lines = [
        f"**{len(per_file)} files in this run**: {counts_line(counts)}" if counts is not None else "",
        "",
        f"Dense vectors: {dense}" if dense else "Dense vectors: none — **bm25 only** (no HF token or endpoint configured)",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    shown, left_out = listed(per_file.values())
    for row in summary_rows(shown):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    for outcome in vanished:
        lines.append(f"| {outcome.source} | removed | 0 | 0 | {outcome.counts.get('points_deleted', 0)} | 0 | |")
    if left_out:
        lines += ["", f"*{_left_out(left_out)}*"]
    return "\n".join(lines[2:] if counts is None else lines)


def summary_text(per_file: Mapping[str, Any], vanished: Iterable[StageOutcome]) -> str:
    """A plain-text table for the console."""
    summaries, left_out = listed(per_file.values())
    rows = summary_rows(summaries)
    notes = [list(getattr(s, "notes", [])) for s in summaries]
    rows += [[o.source, "removed", "0", "0", str(o.counts.get("points_deleted", 0)), "0", ""] for o in vanished]
    notes += [[] for _ in vanished]
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) if rows else len(HEADER[i]) for i in range(6)]
    out = ["  ".join(HEADER[i].ljust(widths[i]) for i in range(6)) + "  " + HEADER[6]]
    for row, row_notes in zip(rows, notes, strict=True):
        out.append("  ".join(row[i].ljust(widths[i]) for i in range(6)) + ("  " + row[6] if row[6] else ""))
        out.extend(f"    {note}" for note in row_notes)
    if left_out:
        out.append(_left_out(left_out))
    return "\n".join(out)
