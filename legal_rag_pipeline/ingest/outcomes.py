"""A stage's outcome for one file: a problem with that file fails it alone, with its reason and fix."""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections.abc import Callable
from pathlib import Path

from ..artifacts import StageOutcome
from ..errors import PipelineError, SourceFileError

log = logging.getLogger(__name__)

NOT_CHUNKED = "not chunked in this run (see normalized_records)"
NOT_EMBEDDED = "not embedded in this run (see embedding_batches)"
STAGES = ("raw_documents", "normalized_records", "embedding_batches", "qdrant_collection")
BM25_ONLY_MODEL = "none (bm25 only)"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _guard(source: str, stage: str, work: Callable[[], StageOutcome]) -> StageOutcome:
    """Run one file's stage; a user-facing error or a bug fails that file alone."""
    try:
        return work()
    except Exception as exc:
        return _failed(source, stage, exc)


def _failed(source: str, stage: str, exc: Exception) -> StageOutcome:
    """The failed outcome of ``source`` for ``exc`` (called in its ``except`` block)."""
    if isinstance(exc, SourceFileError):  # in_the_file: the stage records what it failed with (failures.py)
        return StageOutcome(source, "failed", error=exc.reason, fix=exc.fix, failed_as={} if exc.in_the_file else None)
    if isinstance(exc, PipelineError):
        return StageOutcome(source, "failed", error=exc.what, fix=exc.fix)
    # a bug: keep the trace in the log, fail this file only
    log.error("Unexpected error in %s for %s:\n%s", stage, source, traceback.format_exc())
    return StageOutcome(
        source,
        "failed",
        error=f"unexpected {type(exc).__name__}: {exc}",
        fix="this is a bug in legal_rag_pipeline; the run log has the stack trace, please report it",
    )
