"""normalized_records: each file's records normalised and chunked (one per Q&A row, one per article, split at clauses), with its validity facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..artifacts import FileArtifacts, StageOutcome, records_batch, sources_ok_in
from ..errors import FileContentError
from ..readers.header import document_info
from ..records import Chunk, Row, SkippedRow
from ..text.chunking import chunk_rows, chunk_text
from ..text.normalize import normalize_text
from ..text.tokens import count_tokens
from .failures import conditions, failed_as
from .outcomes import _guard
from .overlap import Chunked

log = logging.getLogger(__name__)

# Bump when the chunker changes output for the same text: files are re-chunked.
# 3: "Điều 5 - …"/"Điều 1 . …" headings; a loose "Điều N" out of sequence is text
CHUNKER_VERSION = "4"  # 4: no preamble chunk that only repeats the title of a file with articles
# Bump when validity/extract.py reads the same text differently: facts are read again, nothing re-chunked.
VALIDITY_VERSION = "1"


# ---------------------------------------------------------------------------- normalized_records
def normalize_stages(
    sources: Iterable[str], state_dir: Path, run_id: str | None, token_budget: int, chunked: Chunked | None = None
) -> Iterator[StageOutcome]:
    """``normalize_stage`` for each of ``sources``, in order, their records committed together; each file
    settled on ``chunked`` (overlap.py) as soon as its chunks are written, for an embedding running meanwhile."""
    try:
        with records_batch(state_dir):
            read = sources_ok_in(state_dir, "raw_documents", run_id)
            for source in sources:
                outcome = normalize_stage(source, state_dir, run_id, token_budget, read=source in read)
                if chunked is not None:
                    chunked.settle(source, outcome.ok)
                yield outcome
    finally:
        if chunked is not None:
            chunked.close()


def normalize_stage(
    source: str, state_dir: Path, run_id: str | None, token_budget: int, *, read: bool | None = None
) -> StageOutcome:
    """``source``'s records chunked; ``read``: whether raw_documents read it in ``run_id`` (looked up when None)."""
    art = FileArtifacts(state_dir, source)
    written: dict[str, Any] = {}  # the document record to write with the outcome (None: unchanged)

    def work() -> StageOutcome:
        outcome, written["document"] = _normalize(source, art, token_budget)
        return outcome

    if not (art.stage_ok("raw_documents", run_id) if read is None else read):
        outcome = StageOutcome(source, "skipped", error="not read in this run (see raw_documents)")
    else:
        outcome = _guard(source, "normalized_records", work)
        if outcome.failed_as is not None:  # in the text itself: recorded with the bytes it was read from
            document = art.fingerprint()
            read = None if document["size"] is None else [document["size"], document["mtime_ns"]]
            outcome.failed_as = failed_as("normalized_records", read,
                                          conditions("normalized_records", token_budget=token_budget))
    art.record_outcome("normalized_records", outcome, run_id, document=written.get("document") if outcome.ok else None)
    return outcome


def _normalize(source: str, art: FileArtifacts, token_budget: int) -> tuple[StageOutcome, dict[str, Any] | None]:
    """The file chunked (its chunks written), and its document record to write with the outcome (None: as it is)."""
    document = art.document() or {}
    version = f"{CHUNKER_VERSION}:{token_budget}:{document.get('sha256')}"
    if document.get("chunked") == version and art.has_chunks():
        if document.get("kind") == "text" and document.get("validity_version") != VALIDITY_VERSION:
            # a newer reading of validity: the facts again, from the text, without re-chunking
            text = normalize_text(next(art.read_raw(), {}).get("text", ""))
            document.update(_validity_facts(source, text, document.get("document_info") or {}))
            return StageOutcome(source, "unchanged", counts={"chunks": document.get("chunks", 0)}), document
        return StageOutcome(source, "unchanged", counts={"chunks": document.get("chunks", 0)}), None

    skipped: list[str] = []
    chunk_count = 0
    over_budget = 0
    info: dict[str, str | None] = {}  # the document's number, type, issuer, dates (texts only)
    law: str | None = None  # the first chunk's law title (kept in the document record)

    def chunks() -> Iterator[Chunk]:
        nonlocal chunk_count, over_budget, law
        raw = art.read_raw()
        if document.get("kind") == "text":
            text = normalize_text(next(raw, {}).get("text", ""))
            info.update(document_info(text))
            document.update(_validity_facts(source, text, info))
            produced: Iterable[Chunk | SkippedRow] = (
                Chunk(c.source, c.chunk_key, c.text, {**c.metadata, **info})
                for c in chunk_text(source, text, token_budget, count_tokens)
            )
        else:
            produced = chunk_rows(source, _rows_from_raw(raw), token_budget, count_tokens)
        for item in produced:
            if isinstance(item, SkippedRow):
                skipped.append(f"{item.location}: {item.reason}")
                continue
            chunk_count += 1
            if chunk_count == 1:
                law = item.metadata.get("law")
            over_budget += bool(item.metadata.get("over_budget"))
            yield item

    art.write_chunks(chunks())
    if chunk_count == 0:
        raise FileContentError(
            source,
            "no text to ingest was found in it" + (f" ({len(skipped)} rows skipped)" if skipped else ""),
            "check that it holds law text or question/answer rows, then drop it in again",
        )
    document.update({"chunked": version, "chunks": chunk_count, "law": law})
    if info:
        document["document_info"] = info
    notes = [f"skipped row {s}" for s in skipped[:20]]
    if any(info.values()):
        notes.append("document: " + ", ".join(f"{k} {v}" for k, v in info.items() if v))
    if len(skipped) > 20:
        notes.append(f"... and {len(skipped) - 20} more skipped rows")
    if over_budget:
        notes.append(f"{over_budget} Q&A rows exceed the {token_budget}-token budget: dense search sees their start only")
    return StageOutcome(
        source, "ok", counts={"chunks": chunk_count, "skipped_rows": len(skipped)}, notes=notes
    ), document


def _validity_facts(source: str, text: str, info: dict[str, Any]) -> dict[str, Any]:
    """The document record's validity facts (validity/extract.py). Reading them never fails a file: a
    text that cannot be read for validity is kept in force, and the reason is listed."""
    from ..validity.extract import read_validity
    from ..validity.model import DocumentFacts
    from ..validity.sync import FACTS_KEY

    try:
        facts = read_validity(text, info)
    except Exception as exc:  # noqa: BLE001 - a bug in a reading must not stop the file
        log.warning("%s: validity not read (%s); the document is taken as in force", source, exc)
        facts = DocumentFacts(number=info.get("number"), unreadable=[f"validity not read: {type(exc).__name__}: {exc}"])
    return {FACTS_KEY: facts.to_json(), "validity_version": VALIDITY_VERSION}


def _rows_from_raw(items: Iterable[dict[str, Any]]) -> Iterator[Row | SkippedRow]:
    for item in items:
        if "skipped" in item:
            yield SkippedRow(item["location"], item["skipped"])
        else:
            yield Row(
                location=item["location"],
                question=item.get("question") and normalize_text(item["question"]),
                answer=normalize_text(item.get("answer") or ""),
                metadata=item.get("metadata") or {},
            )
