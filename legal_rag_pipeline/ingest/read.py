"""raw_documents: each file fingerprinted and decoded to UTF-8 records by the child reader (readers/worker.py)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..artifacts import FileArtifacts, StageOutcome, records_batch
from ..errors import SourceFileError
from ..paths import open_source
from ..readers.limits import Limits, check_file_size
from ..readers.worker import ReadJob, shared_worker
from ..settings import load_limits
from ..validity.sync import APPLIED_KEY
from .failures import conditions, failed_as, file_identity
from .outcomes import _failed

log = logging.getLogger(__name__)

# Bump when a reader changes output for the same bytes: files are re-read.
READER_VERSION = "3"  # 3: a saved vbpl.vn page's own status in the document record ("page_validity")


# ---------------------------------------------------------------------------- raw_documents
def read_stage(
    data_dir: Path, source: str, state_dir: Path, run_id: str | None, limits: Limits | None = None
) -> StageOutcome:
    """Fingerprint the file; decode it to UTF-8 records unless its bytes are unchanged.

    ``source`` is untrusted (a partition key anyone with the UI can add): ``paths.open_source`` is the
    only way from it to a file. The reader runs in a child process (readers/worker.py) under
    ``limits`` (from the environment when not given).
    """
    return next(read_stages(data_dir, [source], state_dir, run_id, limits))


@dataclass
class _Reading:
    """A file handed to the child reader, with what is needed to finish it once the child answers."""

    source: str
    art: FileArtifacts
    handle: Any  # paths.SourceFile, open until the answer is in
    sha: str
    outcome: StageOutcome | None = None  # set when no read is needed (unchanged) or it failed before
    document: dict[str, Any] | None = None  # its new document record, written with the outcome
    # the validity its points carry (validity/sync.py APPLIED_KEY): a fact of the collection, kept in the
    # new record, so the points an amended article leaves as they are still match it
    carried: Any = None


def read_stages(
    data_dir: Path, sources: Iterable[str], state_dir: Path, run_id: str | None, limits: Limits | None = None,
    *, stop_reader: bool = False,
) -> Iterator[StageOutcome]:
    """``read_stage`` for each of ``sources``, in order: the child reads one file while the next is
    opened and fingerprinted and the last one recorded (two files in flight). ``stop_reader``: the
    child is stopped once the last file is read (a run's read stage: it would otherwise hold its
    memory, 35 MB for text files and more once a PDF or Office reader is loaded, to the end of the
    run; the next read starts another)."""
    limits = limits or load_limits()
    worker = shared_worker()
    queued: deque[_Reading] = deque()  # in order; the ones with a handle are in the worker's queue

    def finish(item: _Reading) -> StageOutcome:
        if item.outcome is None:
            try:
                try:
                    result = worker.collect()
                finally:
                    changed = item.handle.changed()
                    item.handle.close()
                if changed:
                    raise SourceFileError(
                        item.source,
                        "the file changed while it was being read (it is probably still being copied)",
                        "nothing was changed in the collection for it; it is ingested again once its size stops changing",
                    )
                item.outcome = _read_done(item, result)
            except Exception as exc:  # noqa: BLE001 - this file fails alone
                item.outcome = _read_failed(item.source, exc, item.handle, limits)
        item.art.record_outcome("raw_documents", item.outcome, run_id, document=item.document if item.outcome.ok else None)
        return item.outcome

    with records_batch(state_dir):  # the files' records committed together
        try:
            for source in sources:
                item = _start_read(data_dir, source, limits, state_dir)
                if item.outcome is None:
                    worker.submit(ReadJob(item.handle.fd, source, PurePosixPath(source).suffix.lower(), Path(state_dir), limits))
                queued.append(item)
                # the oldest is done, or two files are with the child (or many wait behind one): finish the oldest
                while queued and (
                    queued[0].outcome is not None or sum(i.outcome is None for i in queued) >= 2 or len(queued) > 16
                ):
                    yield finish(queued.popleft())
            while queued:
                yield finish(queued.popleft())
        finally:  # a caller that stopped early: nothing left open or queued
            for item in queued:
                if item.outcome is None:
                    try:
                        worker.collect()
                    except Exception:  # noqa: BLE001
                        pass
                    item.handle.close()
            if stop_reader:
                worker.stop()


def _start_read(data_dir: Path, source: str, limits: Limits, state_dir: Path) -> _Reading:
    art = FileArtifacts(state_dir, source)
    handle = None
    try:
        handle = open_source(data_dir, source)
        check_file_size(source, handle.stat.st_size, limits)
        sha = handle.sha256(limits.max_file_bytes or None)
        previous = art.document()
        if (
            previous
            and previous.get("sha256") == sha
            and previous.get("reader_version") == READER_VERSION
            and art.has_raw()
        ):
            handle.close()
            counts = {"bytes": handle.stat.st_size, "records": previous.get("records", 0)}
            return _Reading(source, art, handle, sha, StageOutcome(source, "unchanged", counts=counts))
        return _Reading(source, art, handle, sha, carried=(previous or {}).get(APPLIED_KEY))
    except Exception as exc:  # noqa: BLE001 - this file fails alone
        if handle is not None:
            handle.close()
        return _Reading(source, art, handle, "", _read_failed(source, exc, handle, limits))


def _read_failed(source: str, exc: Exception, handle: Any, limits: Limits) -> StageOutcome:
    """The failed outcome; one in the file's own bytes records the file as it was opened and the reader's
    conditions (failures.py), so the plan does not read it again until either changes."""
    outcome = _failed(source, "raw_documents", exc)
    if outcome.failed_as is not None:
        outcome.failed_as = failed_as("raw_documents", file_identity(handle.stat if handle is not None else None),
                                      conditions("raw_documents", limits=limits))
    return outcome


def _read_done(item: _Reading, result: dict[str, Any]) -> StageOutcome:
    before = item.handle.stat
    records, encoding = int(result["records"]), result.get("encoding")
    item.art.keep_raw_text(result.get("text"))  # a short text came back in the answer
    item.document = (  # written with the outcome (finish)
        {
            "source": item.source,
            "sha256": item.sha,
            "size": before.st_size,
            "mtime_ns": before.st_mtime_ns,
            "encoding": encoding,
            "kind": result["kind"],
            "records": records,
            "reader_version": READER_VERSION,
            "page_validity": result.get("page_validity"),  # a saved vbpl.vn page's own status, else None
            **({APPLIED_KEY: item.carried} if item.carried else {}),
        }
    )
    counts = {"bytes": before.st_size, "records": records}
    notes = ([f"encoding {encoding}"] if encoding else []) + list(result.get("notes") or [])
    return StageOutcome(item.source, "ok", counts=counts, notes=notes)
