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
    """One source file cannot be read or chunked; it fails alone, the other files still ingest.

    ``in_the_file``: the reason lies in the file's own bytes (damaged, empty, encrypted, not a document,
    over a limit, a reader stopped at its time or memory limit): the same bytes fail the same way under
    the same reader, chunker and limits, so the plan does not run the file again until one of them
    changes (planning.py). Not for what the machine may change: a missing tool, a crash, a disk error.
    """

    def __init__(self, source: str, reason: str, fix: str, *, in_the_file: bool = False) -> None:
        self.source = source
        self.reason = reason
        self.in_the_file = in_the_file
        super().__init__(f"{source}: {reason}", fix)


class FileContentError(SourceFileError):
    """A ``SourceFileError`` whose reason is in the file's own bytes (``in_the_file``)."""

    def __init__(self, source: str, reason: str, fix: str) -> None:
        super().__init__(source, reason, fix, in_the_file=True)


class EmbeddingError(PipelineError):
    """The embedding service refused or failed a call (see resources/embeddings.py)."""

    retryable: bool = False


class StoreError(PipelineError):
    """Qdrant is unreachable, locked by another process, or the collection does not fit."""


class MassDeletionRefused(PipelineError):
    """A run would delete too much of the collection; it is refused until confirmed."""
