"""Failures that last until their file changes: a file that failed because of its own bytes is not run again.

A file that failed in ``raw_documents`` or ``normalized_records`` because of its own bytes (a
``SourceFileError`` with ``in_the_file``: damaged, empty, encrypted, not a document, over a limit, a
reader stopped at its time or memory limit) fails the same way as long as its bytes, the reader and
chunker versions and the limits stay as they were. Its failure is recorded with them (``failed_as``);
while they hold (``fails_as_before``), the plan (planning.py) lists the file as failing as before and
runs it no more: a folder with a broken file stays "nothing changed" (no run launched by
`legal-rag ingest` nor by the nightly schedule, each to fail on it again). The file runs again once it
is replaced, touched or its permissions change (its size, modification or change time), once the
reader, the chunker or a limit changes, with `legal-rag ingest --retry-failed` or `--all`, or when
its partition is materialised from the UI. A failure the machine may fix (a missing LibreOffice or
Tesseract, a crash, a disk error) keeps being retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

FAILED_AS = "failed_as"  # the key of a stage's status entry holding what its failure was recorded with
STAGES_WITH_LASTING_FAILURES = ("raw_documents", "normalized_records")


def conditions(stage: str, *, limits: Any = None, token_budget: int | None = None) -> str:
    """A digest of what, besides the file's bytes, decides ``stage``'s outcome: the reader's version and
    the per-file limits (``raw_documents``), the reader's and chunker's versions and the token budget
    (``normalized_records``)."""
    from .normalize import CHUNKER_VERSION
    from .read import READER_VERSION

    if stage == "raw_documents":
        if limits is None:
            from ..settings import load_limits

            limits = load_limits()
        what: dict[str, Any] = {"reader": READER_VERSION, "limits": dataclasses.asdict(limits)}
    elif stage == "normalized_records":
        what = {"reader": READER_VERSION, "chunker": CHUNKER_VERSION, "token_budget": token_budget}
    else:
        raise ValueError(f"{stage} keeps no failure until its file changes")
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def file_identity(stat: os.stat_result | None, *, with_change_time: bool = True) -> list[int] | None:
    """Size, modification time and (``with_change_time``) change time: what replacing, editing,
    touching or a chmod of the file changes."""
    if stat is None:
        return None
    identity = [stat.st_size, stat.st_mtime_ns]
    return [*identity, stat.st_ctime_ns] if with_change_time else identity


def failed_as(stage: str, file: list[int] | None, condition: str) -> dict[str, Any] | None:
    """What ``stage``'s failure of a file in ``file`` (its ``file_identity``) is recorded with; None
    when the file's identity is unknown (it never opened): such a failure is retried."""
    if file is None:
        return None
    return {"stage": stage, "file": file, "conditions": condition}


def fails_as_before(entry: Any, stat: os.stat_result | None, condition_of: Any) -> bool:
    """Whether a stage's status ``entry`` is a failure recorded with ``failed_as`` that still holds:
    the file's identity now (``stat``) and the conditions (``condition_of(stage)``) as then."""
    if not isinstance(entry, dict) or entry.get("status") != "failed" or stat is None:
        return False
    recorded = entry.get(FAILED_AS)
    if not isinstance(recorded, dict) or recorded.get("stage") not in STAGES_WITH_LASTING_FAILURES:
        return False
    file = recorded.get("file")
    if not isinstance(file, list) or len(file) not in (2, 3):
        return False
    if file != file_identity(stat, with_change_time=len(file) == 3):
        return False
    return recorded.get("conditions") == condition_of(recorded["stage"])
