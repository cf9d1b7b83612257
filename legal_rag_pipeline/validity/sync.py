"""Keeping the collection's validity fields in line with the corpus view: a pure plan, then a writer.

Every file's facts (``DocumentFacts``, read by the normalize stage) are kept in its document record;
``corpus_view`` resolves them across the folder. ``plan_validity_updates`` compares each file's
``FileValidity`` with the one its points carry (``validity_applied`` in the same record: the view's
digest and the physical collection) and lists the files whose points need a **payload update**: no
text is embedded, no id changes. ``apply_validity`` carries the plan out: per file, one
``set_payload`` per distinct payload (usually one or two), then the record of what was applied.

Crash safety: the record is written after the payload update; a run killed in between leaves the
record behind, so the next run updates that file again (setting the same fields twice is harmless).
Points written by the sync itself carry the applied view of their file (``applied_view``), so a
re-written point never loses its validity.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts, each_known_document, records_batch, synced_sources
from .model import DocumentFacts
from .resolve import CorpusValidity, FileValidity, file_status, point_validity, resolve, view_digest

log = logging.getLogger(__name__)

FACTS_KEY = "validity_facts"  # the document record's facts (normalize stage)
PAGE_KEY = "page_validity"  # the document record's official page metadata (read stage, vbpl.vn pages)
APPLIED_KEY = "validity_applied"  # what the file's points carry: {"collection", "digest", "view"}


def facts_of(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, DocumentFacts]:
    """Each document's facts (with its page metadata) from the document records; files without any
    (Q&A sheets, records from before validity) are left out: their points carry no validity fields."""
    facts: dict[str, DocumentFacts] = {}
    for source, document in documents.items():
        value = _facts(document)
        if value is not None:
            facts[source] = value
    return facts


def _facts(document: Mapping[str, Any]) -> DocumentFacts | None:
    if FACTS_KEY not in document and not document.get(PAGE_KEY):
        return None
    value = DocumentFacts.from_json(document.get(FACTS_KEY))
    if document.get(PAGE_KEY):
        value.page = document[PAGE_KEY]
    return value


def corpus_view(state_dir: Path) -> tuple[CorpusValidity, dict[str, dict[str, Any]]]:
    """The corpus view of the files the state folder knows, and what their points carry
    ({source: {APPLIED_KEY: {"collection", "digest"}}}: what ``plan_validity_updates`` reads of the
    document records).

    The records are read one at a time and only their facts kept: at 70,624 files all the decoded
    records held at once added some 270 MB to the writer (docs/performance.md)."""
    facts: dict[str, DocumentFacts] = {}
    applied: dict[str, dict[str, Any]] = {}
    for source, document in each_known_document(state_dir):
        value = _facts(document)
        if value is not None:
            facts[source] = value
        carried = document.get(APPLIED_KEY)
        if carried:
            applied[source] = {APPLIED_KEY: {"collection": carried.get("collection"), "digest": carried.get("digest")}}
    return resolve(facts), applied


class PackedViews:
    """The views of some files (``sources``) out of a corpus view, each kept as its JSON and equal ones
    once, for a writer that holds them through a whole write. An object per file kept alive what
    resolving the folder had allocated around it: at 70,624 one-article files the corpus view held 110 MB
    of the writer's resident memory, these 27 MB (262 distinct views; docs/performance.md)."""

    def __init__(self, view: Mapping[str, FileValidity], sources: Iterable[str]) -> None:
        distinct: dict[bytes, bytes] = {}
        self._packed: dict[str, bytes] = {}
        for source in sources:
            validity = view.get(source)
            if validity is not None:
                packed = json.dumps(validity.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
                self._packed[source] = distinct.setdefault(packed, packed)

    def __len__(self) -> int:
        return len(self._packed)

    def get(self, source: str) -> FileValidity | None:
        packed = self._packed.get(source)
        return FileValidity.from_json(json.loads(packed)) if packed is not None else None


def applied_view(document: Mapping[str, Any] | None, collection_key: str) -> dict[str, Any] | None:
    """The validity view a file's points carry in this collection (None: none recorded)."""
    applied = (document or {}).get(APPLIED_KEY) or {}
    return applied.get("view") if applied.get("collection") == collection_key else None


def applied_status(document: Mapping[str, Any] | None, today: str) -> dict[str, Any] | None:
    """A file's validity as its points carry it, as a person reads it (``resolve.file_status``)."""
    view = ((document or {}).get(APPLIED_KEY) or {}).get("view")
    validity = FileValidity.from_json(view) if view else None
    return file_status(validity, today) if validity else None


@dataclass
class ValidityPlan:
    """Files whose points need their validity fields set, with the view to set."""

    updates: dict[str, FileValidity] = field(default_factory=dict)
    unchanged: int = 0


def plan_validity_updates(
    view: CorpusValidity, documents: Mapping[str, Mapping[str, Any]], collection_key: str, in_collection: Iterable[str]
) -> ValidityPlan:
    """Pure: the files (of ``in_collection``: files whose points are in the collection) whose
    recorded view differs from the corpus view, or was recorded for another collection."""
    plan = ValidityPlan()
    for source in in_collection:
        wanted = view.files.get(source)
        if wanted is None:
            continue
        applied = (documents.get(source) or {}).get(APPLIED_KEY) or {}
        if applied.get("collection") == collection_key and applied.get("digest") == wanted.digest():
            plan.unchanged += 1
        else:
            plan.updates[source] = wanted
    return plan


def payload_groups(validity: FileValidity, chunks: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[dict[str, Any], list[str]]]:
    """Pure: the file's points (id, chunk metadata) grouped by the validity payload they get."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for point_id, metadata in chunks:
        payload = point_validity(validity, metadata)
        key = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        groups.setdefault(key, (payload, []))[1].append(point_id)
    return list(groups.values())


@dataclass
class ValidityReport:
    view: CorpusValidity
    files_updated: int = 0
    points_updated: int = 0
    files_unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def apply_validity(
    state_dir: Path,
    collection: Any,
    *,
    on_file: Callable[[str], None] | None = None,
) -> ValidityReport:
    """Bring every ingested file's validity fields in line with the corpus view (payload updates only).

    A file whose update fails keeps its old fields and is tried again by the next run; it never fails
    the run or its file. Nothing is done without a collection."""
    started = time.monotonic()
    view, documents = corpus_view(state_dir)
    report = ValidityReport(view)
    physical = collection.physical_name() if collection.exists() else None
    if not physical:
        report.seconds = time.monotonic() - started
        return report
    key = f"{collection.location()}|{physical}"
    synced = synced_sources(state_dir)
    in_collection = [s for s in view.files if s in synced]
    del synced
    plan = plan_validity_updates(view, documents, key, in_collection)
    report.files_unchanged = plan.unchanged
    with records_batch(state_dir):
        for source, wanted in plan.updates.items():
            art = FileArtifacts(state_dir, source)
            try:
                chunks = ((c.point_id, c.metadata) for c in art.read_chunks())
                for payload, ids in payload_groups(wanted, chunks):
                    report.points_updated += collection.set_payload(ids, payload)
            except Exception as exc:  # noqa: BLE001 - that file keeps its fields; the next run retries
                report.failed[source] = f"{type(exc).__name__}: {exc}"
                log.warning("Validity of %s not updated: %s", source, exc)
                continue
            _record(art, key, wanted)
            report.files_updated += 1
            if on_file:
                on_file(source)
    report.seconds = time.monotonic() - started
    return report


def _record(art: FileArtifacts, collection_key: str, validity: FileValidity) -> None:
    view = validity.to_json()
    art.set_document_field(APPLIED_KEY, {"collection": collection_key, "digest": view_digest(view), "view": view})


def record_applied(state_dir: Path, views: Mapping[str, FileValidity], collection_key: str) -> None:
    """Record that these files' points carry these views (a rebuild wrote them with its points)."""
    with records_batch(state_dir):
        for source, validity in views.items():
            _record(FileArtifacts(state_dir, source), collection_key, validity)
