"""Sync markers: what must be unchanged for a file's points to be known in sync without reading the collection."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts

log = logging.getLogger(__name__)

# An ingest whose files are all unchanged since their last successful sync does not open Qdrant
# (embedded mode loads the whole collection to open it). The collection is still read in full and
# compared with every file when the last full comparison is older than this, when
# LEGAL_RAG_VERIFY_SYNC is set, and by runs with no files (the prune job).
VERIFY_AFTER_SECONDS = 20 * 3600
SYNC_STATE_FILE = "sync_state.json"


def _sync_mark(art: FileArtifacts, model: str, location: str, physical: str | None) -> dict[str, Any] | None:
    """What must be unchanged for this file's points to be known in sync without reading them."""
    fingerprint = art.fingerprint()
    return sync_mark(fingerprint["chunked"], int(fingerprint["chunks"] or 0), art.chunks_version(), model, location, physical)


def sync_mark(
    chunked: str | None, points: int, chunks_version: list[Any] | None, model: str, location: str, physical: str | None
) -> dict[str, Any] | None:
    """The sync marker of a file whose document record says ``chunked`` and ``points`` (None: no chunks)."""
    if chunks_version is None or not chunked:
        return None
    return {
        "chunked": chunked,
        "chunks_file": chunks_version,
        "points": points,
        "model": model,
        "location": location,
        "collection": physical,
    }


def read_sync_state(state_dir: Path) -> dict[str, Any]:
    try:
        value = json.loads((Path(state_dir) / SYNC_STATE_FILE).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_sync_state(state_dir: Path, value: dict[str, Any]) -> None:
    path = Path(state_dir) / SYNC_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def forget_sync_state(state_dir: Path, sources: Iterable[str] = (), *, everything: bool = False) -> None:
    """After a failed check: ``sources`` lose their sync marker, so the next run (and the nightly plan)
    runs and checks them again; the other files keep theirs. ``everything``: the next run compares the
    whole collection with the folder (when the collection itself is in doubt, e.g. its vector size)."""
    if everything:
        (Path(state_dir) / SYNC_STATE_FILE).unlink(missing_ok=True)
    for source in sources:
        FileArtifacts(state_dir, source).clear_synced()
