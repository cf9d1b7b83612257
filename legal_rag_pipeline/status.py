"""What the pipeline holds, file by file, read from the state folder (``<state>/files/*``) and the data
folder's stat, plus the collection's point counts when the store can be opened.

Plain functions: `legal-rag status` prints them. Nothing here reads a source file or writes anything,
so it works while the daemon is up and, for everything but the counts, while a run writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .artifacts import each_file_record
from .ingest import STAGES
from .readers import scan_data_dir
from .validity.sync import applied_status


@dataclass
class FileStatus:
    source: str
    # ingested: its last run wrote its points; unchanged: in sync, nothing to do since ``since``;
    # failed: at ``stage``, with ``error`` and ``fix``; interrupted: its last run stopped before the
    # collection; changed: its bytes moved since its last run; new: never ingested; removed: gone from
    # the data folder, its points not removed yet
    status: str
    stage: str | None = None
    error: str | None = None
    fix: str | None = None
    chunks: int | None = None
    points: int | None = None
    points_from: str | None = None  # "collection" or "last sync" (the count recorded when it was synced)
    model: str | None = None
    run_id: str | None = None
    at: str | None = None  # when its last run handled it (UTC)
    since: str | None = None  # when its points last changed (UTC)
    # the law in force, as its points carry it (validity/): status ("in force", "not in force since …
    # (repealed by …)", "partly not in force", ", amended"), number, valid_from, valid_to, repealed_by, …
    validity: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _stat_moved(document: dict[str, Any], path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (document.get("size"), document.get("mtime_ns"))


def file_status(source: str, path: Path | None, status: dict, document: dict | None, synced: dict | None) -> FileStatus:
    """One file: ``path`` is where it is in the data folder (None: not there any more); its status,
    document and sync marker as ``artifacts.each_file_record`` reads them."""
    document, synced = document or {}, synced or {}
    entries = [(stage, status.get(stage)) for stage in STAGES]
    latest = max((e for _, e in entries if e), key=lambda e: e.get("at") or "", default={})
    result = FileStatus(
        source,
        "unchanged",
        chunks=document.get("chunks"),
        points=synced.get("points"),
        points_from="last sync" if synced else None,
        model=synced.get("model"),
        run_id=latest.get("run_id"),
        at=latest.get("at"),
        since=(status.get("qdrant_collection") or {}).get("changed_at"),
    )
    result.validity = applied_status(document, date.today().isoformat())
    failed = next(((stage, e) for stage, e in entries if e and e.get("status") == "failed"), None)
    if path is None:
        result.status = "removed"
    elif failed:
        result.status, result.stage = "failed", failed[0]
        result.error, result.fix = failed[1].get("error"), failed[1].get("fix")
    elif any(e is None or e.get("status") == "skipped" or e.get("run_id") != latest.get("run_id") for _, e in entries):
        result.status = "interrupted"
        result.stage = next(
            (stage for stage, e in entries if e is None or e.get("run_id") != latest.get("run_id")
             or e.get("status") == "skipped"),
            None,
        )
        result.fix = "its last run stopped before this stage; `legal-rag ingest` runs it again"
    elif not document or _stat_moved(document, path):
        result.status = "changed"
        result.fix = "changed since its last run; `legal-rag ingest` (or the sensor) ingests it"
    elif (status.get("qdrant_collection") or {}).get("status") == "ok":
        result.status = "ingested"
    return result


def folder_status(data_dir: Path, state_dir: Path) -> list[FileStatus]:
    """Every known file: in the state folder (ingested at least once) or in the data folder."""
    files = scan_data_dir(data_dir).files if data_dir.is_dir() else {}
    result = [file_status(source, files.get(source), *record) for source, *record in each_file_record(state_dir)]
    known = {item.source for item in result}
    result += [FileStatus(s, "new", fix="never ingested; `legal-rag ingest` (or the sensor) ingests it")
               for s in sorted(set(files) - known)]
    return sorted(result, key=lambda f: f.source)


def with_counts(statuses: list[FileStatus], counts: dict[str, int]) -> None:
    """Replace the recorded point counts by the collection's own."""
    for item in statuses:
        if item.source in counts:
            item.points, item.points_from = counts[item.source], "collection"
