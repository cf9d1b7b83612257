"""Errors a user can cause or meet. Each says, in one sentence, what happened and what to do.

Stack traces are for bugs; these are printed as they are by the CLI and shown as the failure
message of a run or a file in the Dagster UI.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: ``what`` happened and the ``fix``; ``str()`` is one actionable sentence."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what.rstrip(". ")
        self.fix = fix.rstrip(". ")
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.what}: {self.fix}." if self.fix else f"{self.what}."


class ConfigurationError(PipelineError):
    """The settings are wrong or incomplete (CLI exit code 2)."""


class SourceFileError(PipelineError):
    """One source file cannot be read or chunked; it fails alone, the other files still ingest."""

    def __init__(self, source: str, reason: str, fix: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}", fix)


class EmbeddingError(PipelineError):
    """The embedding service refused or failed a call (see resources/embeddings.py)."""

    retryable: bool = False


class StoreError(PipelineError):
    """Qdrant is unreachable, locked by another process, or the collection does not fit."""


class MassDeletionRefused(PipelineError):
    """A run would delete too much of the collection; it is refused until confirmed."""
