"""Per-file artifacts between the assets, on local disk under the state folder.

The built-in IO managers cannot store an output that spans many partitions, and the embeddings
must survive a failed run (they cost quota), so each stage writes its result per source file:

    <state>/files/<slug>-<hash>/raw.jsonl        decoded rows, or a text longer than the reader sends back (raw_documents)
                               chunks.jsonl     normalised chunks, when larger than CHUNKS_IN_DB_BYTES
                               embeddings.npz   vectors by point id, with the model id (embedding_batches)
    <state>/files.db           one row per source file (SQLite, WAL):
                               document         fingerprint and reader facts (raw_documents)
                               status           the last outcome of each stage, its run and time (CLI, `status`)
                               synced           what the collection held for it after its last sync
                         and in table chunks:   normalised chunks with point ids, JSON lines (normalized_records)
                         and in table raw:      a short decoded text (raw_documents)

The small records, and the chunks of all but very large files, are rows of one database rather than
files per source: a run over thousands of short files rewrote about eight small JSON files per file
(a stage's outcome four times), and each create-and-rename cost more than the file's own processing. Each write is one statement; a
stage writes its files' records inside ``records_batch``, which commits them together (at least
every ``BATCH_COMMIT_SECONDS``), so a killed run leaves every row as it was or as it became at the
last commit: a record lost that way only makes the next run redo that file's stage (a sync marker
is written after its points, so a lost one is a file looked up again). Files are written to a
temporary file first and renamed into place, so a crash never leaves half a file. A state folder
from an earlier version (``document.json``, ``status.json``, ``synced.json`` per file) is read into
the database the first time it is opened.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

log = logging.getLogger(__name__)

from .records import Chunk


@dataclass(slots=True)  # a run holds one per file and stage: without a __dict__ each, 70,624 take 3 MB less
class StageOutcome:
    """What one stage did to one file; shown in the UI metadata and the CLI summary."""

    source: str
    status: str  # "ok" | "unchanged" | "failed" | "skipped"
    error: str | None = None
    fix: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # a failure in the file's own bytes: what it failed with, so the plan does not run it again until
    # that changes (ingest/failures.py); {} until the stage fills it in
    failed_as: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"ok", "unchanged"}

    def as_record(self) -> dict[str, Any]:
        """The fields as a plain dict (``dataclasses.asdict`` without its deep copy)."""
        record = {"source": self.source, "status": self.status, "error": self.error, "fix": self.fix,
                  "counts": dict(self.counts), "notes": list(self.notes)}
        if self.failed_as:
            record["failed_as"] = self.failed_as
        return record


_ID_START = '{"id": "'  # how a line of the chunks begins (_chunk_line)


def _chunk_line(c: Chunk) -> str:
    return json.dumps({"id": c.point_id, "chunk_key": c.chunk_key, "text": c.text, "metadata": c.metadata}, ensure_ascii=False)


@lru_cache(maxsize=65_536)  # each stage asks for every file's folder
def _slug(source: str) -> str:
    """One folder name per source: no separator survives and the hash ends it, so no key (``..``,
    ``/etc/x``, ``a/../../b``) can name a folder outside ``<state>/files``."""
    digest = hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source)[-60:].strip("_")
    return f"{stem}-{digest}"


def _atomic_write(path: Path, write) -> None:
    # The temporary name is this process's and thread's own (a file has one writer at a time in a
    # process): cheaper than mkstemp's random names, and a killed writer's leftover is overwritten.
    tmp = os.path.join(path.parent, f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileArtifacts:
    """The artifacts of one source file."""

    def __init__(self, state_dir: str | Path, source: str) -> None:
        self.source = source
        self.state_dir = state_dir if isinstance(state_dir, Path) else Path(state_dir)

    @cached_property
    def dir(self) -> Path:
        return self.state_dir / "files" / _slug(self.source)

    @cached_property
    def _records(self) -> _Records:
        return _records(self.state_dir)

    # --- records (files.db) ------------------------------------------------------
    def document(self) -> dict[str, Any] | None:
        return self._records.get(self.source, "document")

    def write_document(self, value: dict[str, Any]) -> None:
        self._records.put(self.source, "document", value)

    def set_document_field(self, name: str, value: Any) -> None:
        """``document[name] = value`` in files.db, without reading the record (not one of the plan's fields)."""
        self._records.set_document_field(self.source, name, value)

    def synced(self) -> dict[str, Any] | None:
        """The sync marker written after this file's points were last brought in line (see ingest.sync_stage)."""
        return self._records.get(self.source, "synced")

    def write_synced(self, value: dict[str, Any]) -> None:
        self._records.put(self.source, "synced", value)

    def clear_synced(self) -> None:
        self._records.put(self.source, "synced", None)

    def status(self) -> dict[str, Any]:
        return self._records.get(self.source, "status") or {}

    def record_outcome(self, stage: str, outcome: StageOutcome, run_id: str | None = None, *,
                       document: dict[str, Any] | None = None) -> None:
        """Keep ``stage``'s outcome with its run and time (``at``); ``changed_at`` is when the stage
        last changed something for this file (status "ok"), shown by `legal-rag status`. ``document``:
        the file's new document record, written with the outcome (the same row, in the same statements)."""
        entry = _stage_entry(outcome, run_id, datetime.now(UTC).isoformat(timespec="seconds"))
        self._records.set_stage(self.source, stage, entry, changed=outcome.status == "ok", document=document)

    def stage_ok(self, stage: str, run_id: str | None) -> bool:
        """Did ``stage`` succeed for this file in this run (or at all, when run_id is None)?"""
        status, stage_run = self._records.stage_result(self.source, stage)
        if status not in {"ok", "unchanged"}:
            return False
        return run_id is None or stage_run == run_id

    def fingerprint(self) -> dict[str, Any]:
        """The document record's fields the ingest plan reads (``PLAN_DOCUMENT_FIELDS``: sha256,
        chunked, chunks, ...), None where it has none, without reading the whole record."""
        return self._records.plan_document(self.source)

    # --- jsonl streams --------------------------------------------------------
    def _write_lines(self, name: str, lines: Iterable[str]) -> int:
        """``lines`` (JSON, one per line) streamed into the file ``name``; how many there were."""
        count = 0

        def write(handle) -> None:
            nonlocal count
            for line in lines:
                handle.write(line.encode("utf-8"))
                handle.write(b"\n")
                count += 1

        _atomic_write(self.dir / name, write)
        return count

    def _read_jsonl(self, name: str) -> Iterator[dict[str, Any]]:
        with open(self.dir / name, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def write_raw(self, items: Iterable[dict[str, Any]]) -> int:
        """The decoded records as ``raw.jsonl`` (streamed: the child reader writes rows as it reads)."""
        return self._write_lines("raw.jsonl", (json.dumps(item, ensure_ascii=False) for item in items))

    def keep_raw_text(self, text: str | None) -> None:
        """After a read: the decoded ``text`` as a row of files.db (a short text the child reader sent
        back), or None when the child wrote ``raw.jsonl``; whichever is not the new one is removed."""
        if text is None:
            self._records.delete_raw(self.source)
            return
        self._records.put_raw(self.source, text)
        (self.dir / "raw.jsonl").unlink(missing_ok=True)  # an earlier, larger version of this file

    def has_raw(self) -> bool:
        return self._records.has_raw(self.source) or (self.dir / "raw.jsonl").exists()

    def read_raw(self) -> Iterator[dict[str, Any]]:
        text = self._records.raw_text(self.source)
        return self._read_jsonl("raw.jsonl") if text is None else iter([{"text": text}])

    def write_chunks(self, chunks: Iterable[Chunk]) -> int:
        """Save the chunks (one JSON line each, the point id first). Up to ``CHUNKS_IN_DB_BYTES`` they
        are a row of files.db, written with the stage's other records (no file to create: at
        17,000 files the create and rename cost more than the chunking); a larger set streams to
        ``chunks.jsonl``."""
        lines: list[str] = []
        size = 0
        items = iter(chunks)
        for c in items:
            lines.append(line := _chunk_line(c))
            size += len(line)
            if size > CHUNKS_IN_DB_BYTES:
                return self._stream_chunks(itertools.chain(lines, map(_chunk_line, items)))
        text = "".join(line + "\n" for line in lines)
        self._records.put_chunks(self.source, text, hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())
        (self.dir / "chunks.jsonl").unlink(missing_ok=True)  # an earlier, larger set (or an earlier version's file)
        return len(lines)

    def _stream_chunks(self, lines: Iterable[str]) -> int:
        count = self._write_lines("chunks.jsonl", lines)
        self._records.delete_chunks(self.source)
        return count

    def _chunk_lines(self) -> Iterator[str]:
        text = self._records.chunks_text(self.source)
        if text is not None:
            yield from text.split("\n")  # JSON escapes newlines; U+2028 and the like stay inside a line
            return
        with open(self.dir / "chunks.jsonl", encoding="utf-8") as handle:
            yield from handle

    def read_chunks(self) -> Iterator[Chunk]:
        for line in self._chunk_lines():
            if line.strip():
                item = json.loads(line)
                yield Chunk(source=self.source, chunk_key=item["chunk_key"], text=item["text"], metadata=item["metadata"])

    def chunk_ids(self) -> list[str]:
        """The point ids of the chunks, in order. ``write_chunks`` puts the id first, so each line's
        id is read off its start instead of decoding the whole chunk (a line that starts otherwise
        is decoded)."""
        return _ids_of(self._chunk_lines())

    def has_chunks(self) -> bool:
        return self.chunks_version() is not None

    def chunks_version(self) -> list[Any] | None:
        """What changes whenever the chunks are written again (part of the sync marker): the row's
        digest, or the file's size and time; None when there are none."""
        stamp = self._records.chunks_stamp(self.source)
        if stamp is not None:
            return ["files.db", stamp]
        try:
            stat = (self.dir / "chunks.jsonl").stat()
        except FileNotFoundError:
            return None
        return [stat.st_size, stat.st_mtime_ns]

    # --- embeddings -----------------------------------------------------------
    def read_embeddings(self, model_id: str) -> dict[str, np.ndarray]:
        """Cached vectors of this file for ``model_id`` by point id (empty when none or another model)."""
        try:
            with np.load(self.dir / "embeddings.npz", allow_pickle=False) as data:
                if str(data["model"]) != model_id:
                    return {}
                return dict(zip((str(i) for i in data["ids"]), data["vectors"], strict=True))
        except (FileNotFoundError, KeyError, ValueError, OSError):
            return {}

    def write_embeddings(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        ids = np.array(list(vectors.keys()), dtype=str)
        matrix = (
            np.stack(list(vectors.values())).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
        )
        _atomic_write(
            self.dir / "embeddings.npz",
            lambda h: np.savez(h, model=np.array(model_id), ids=ids, vectors=matrix),
        )

    def remove(self) -> None:
        self._records.delete(self.source)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def records_batch(state_dir: str | Path) -> Iterator[None]:
    """The files' records written meanwhile (in ``state_dir``'s files.db) committed together: what a
    stage does for each of many files (see ``_Records.batch``)."""
    with _records(Path(state_dir)).batch():
        yield


def record_outcomes(state_dir: str | Path, stage: str, outcomes: Iterable[StageOutcome], run_id: str | None) -> None:
    """``FileArtifacts(state_dir, o.source).record_outcome(stage, o, run_id)`` for each of ``outcomes``, in
    two statements for them all (a stage that records every file of its run at its end)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    _records(Path(state_dir)).set_stages(stage, [(o.source, _stage_entry(o, run_id, now), o.status == "ok") for o in outcomes])


def _stage_entry(outcome: StageOutcome, run_id: str | None, now: str) -> dict[str, Any]:
    """What a file's status keeps of a stage's ``outcome``: the outcome, its run and when (``at``)."""
    return {**outcome.as_record(), "run_id": run_id, "at": now}


def plan_rows(state_dir: str | Path, stages: Sequence[str]) -> dict[str, tuple]:
    """Every file's record as the ingest plan reads it (see ``_Records.plan_rows``)."""
    return _records(Path(state_dir)).plan_rows(stages)


def each_file_record(state_dir: str | Path) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
    """(source, ``status()``, ``document()``, ``synced()``) of every file ``known_sources`` lists, read a page
    of rows at a time (three queries a file took 4.5 s of a 14 s `legal-rag status` at 70,624 files)."""
    return _records(Path(state_dir)).each_record()


def each_status(state_dir: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, ``status()``) of every file with a status, read a page of rows at a time (a run's summary
    reads every file's: one query each took 1 s of the 17,656-file split's ingest)."""
    return _records(Path(state_dir)).each_status()


def known_sources(state_dir: str | Path) -> list[str]:
    """Sources that have artifacts (files ingested at least once)."""
    return _records(Path(state_dir)).sources_with_status()


def synced_sources(state_dir: str | Path) -> set[str]:
    """The sources with a sync marker (``FileArtifacts.synced`` not None), in one query: a run asks it of
    every file, and decoding each marker took 0.9 s of the 17,656-file split's ingest."""
    return _records(Path(state_dir)).synced_sources()


def sources_ok_in(state_dir: str | Path, stage: str, run_id: str | None) -> set[str]:
    """The sources for which ``stage`` succeeded in ``run_id`` (or at all: None), as ``FileArtifacts.stage_ok``
    says of each, in one query: each stage asks it of every file of its run before it starts on it, and
    70,624 queries took 7 s of the x4 split's ingest."""
    return _records(Path(state_dir)).sources_ok(stage, run_id)


def each_chunk_ids(state_dir: str | Path, sources: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """(source, ``FileArtifacts.chunk_ids``) of each of ``sources`` that has chunks, the rows of files.db
    read in one query (a query per file took a second of the daily comparison at 70,624 files), from the
    first of ``sources`` to the last in name order."""
    state_dir = Path(state_dir)
    wanted = set(sources)
    if not wanted:
        return
    for source, lines in _records(state_dir).each_chunks_text(min(wanted), max(wanted)):
        if source in wanted:
            wanted.discard(source)
            yield source, _ids_of(lines.split("\n"))
    for source in sorted(wanted):  # larger sets are a file of their own (CHUNKS_IN_DB_BYTES)
        art = FileArtifacts(state_dir, source)
        if (art.dir / "chunks.jsonl").exists():
            yield source, art.chunk_ids()


def _ids_of(lines: Iterable[str]) -> list[str]:
    """The point ids of chunk lines (``FileArtifacts.chunk_ids``)."""
    ids = []
    for line in lines:
        end = line.find('"', len(_ID_START)) if line.startswith(_ID_START) else -1
        if end > 0 and "\\" not in line[:end]:
            ids.append(line[len(_ID_START):end])
        elif line.strip():
            ids.append(json.loads(line)["id"])
    return ids


def each_known_document(state_dir: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, document record: ``FileArtifacts.document``) of each of ``known_sources``, one at a time
    (a query per 1,000 records; each decoded when its turn comes)."""
    return _records(Path(state_dir)).each_document()


# ---------------------------------------------------------------------------- files.db
RECORDS_FILE = "files.db"
_FIELDS = ("document", "status", "synced")
# The document's fields the ingest plan reads, copied into the narrow ``ingest_plan`` table (``_Records.plan_rows``).
PLAN_DOCUMENT_FIELDS = ("sha256", "reader_version", "chunked", "size", "mtime_ns", "chunks")


def _plan_document(document: str) -> list[str]:
    """The plan's fields of the JSON ``document`` (NULL when it is not valid JSON), as SQL expressions."""
    return [f"CASE WHEN json_valid({document}) THEN json_extract({document}, '$.{name}') END" for name in PLAN_DOCUMENT_FIELDS]


def _plan_status(status: str) -> list[str]:
    """``stages`` (each stage's status, ``{"stage": "ok", …}``), ``known`` and ``recorded`` of the JSON ``status``."""
    return [
        (f"CASE WHEN json_valid({status}) THEN (SELECT json_group_object(key, json_extract(value, '$.status')) "
        f"FROM json_each({status}) WHERE type = 'object') END"),
        f"{status} IS NOT NULL",
        f"{status} IS NOT NULL AND {status} != '{{}}'",
    ]


def _plan_statement(source: str, field_name: str, value: dict[str, Any] | None, data: str | None) -> tuple[str, tuple]:
    """The upsert of ``source``'s ``ingest_plan`` row for writing ``value`` (as the JSON text ``data``) into
    its ``field_name``: the fields ``_plan_values`` reads from that JSON, taken from the value itself."""
    if field_name == "document":
        names: tuple[str, ...] = PLAN_DOCUMENT_FIELDS
        values: tuple = _plan_document_values(value)
    elif field_name == "status":
        names = ("stages", "known", "recorded")
        stages = None if value is None else {k: v.get("status") for k, v in value.items() if isinstance(v, dict)}
        values = (None if stages is None else json.dumps(stages, ensure_ascii=False, separators=(",", ":")),
                  value is not None, bool(value))
    else:
        names, values = ("synced",), (data,)
    status_unknown = field_name != "status"  # a new row without a status: not known, not recorded
    return (
        f"INSERT INTO ingest_plan (source, stamp, {', '.join(names)}{', known, recorded' if status_unknown else ''}) "
        f"VALUES (?1, {_NEW_PLAN_ROW}, {', '.join(f'?{i + 2}' for i in range(len(names)))}{', 0, 0' if status_unknown else ''}) "
        f"ON CONFLICT (source) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in names)}",
        (source, *values),
    )


def _plan_document_values(document: dict[str, Any] | None) -> tuple:
    """The ``PLAN_DOCUMENT_FIELDS`` of ``document`` as ``ingest_plan`` holds them."""
    return tuple(_plan_scalar((document or {}).get(name)) for name in PLAN_DOCUMENT_FIELDS)


def _plan_scalar(value: Any) -> Any:
    """``value`` as ``json_extract`` gives it: a number or a text as it is, true and false as 1 and 0,
    an object or an array as its compact JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _plan_values(row: str) -> str:
    """An ``ingest_plan`` row's values from a ``files`` row ``row`` (in SQL: when the table is filled in)."""
    values = [f"{row}.source", *_plan_document(f"{row}.document"), f"{row}.synced",
              f"(SELECT stamp FROM chunks WHERE source = {row}.source)", *_plan_status(f"{row}.status")]
    return ", ".join(values)


_PLAN_TABLE = (
    "CREATE TABLE ingest_plan (source TEXT PRIMARY KEY, sha256 TEXT, reader_version TEXT, chunked TEXT, size INTEGER, "
    "mtime_ns INTEGER, chunks INTEGER, synced TEXT, stamp TEXT, stages TEXT, known INTEGER, recorded INTEGER)"
)
# What a ``files`` row's deletion and the ``chunks`` table change in ``ingest_plan`` (no JSON is read);
# the writes of ``files`` set their own ``ingest_plan`` fields (``_plan_statement``, ``set_stage``).
_PLAN_TRIGGERS = {
    "ingest_plan_delete": "AFTER DELETE ON files BEGIN DELETE FROM ingest_plan WHERE source = OLD.source; END",
    "ingest_plan_chunks": "AFTER INSERT ON chunks BEGIN UPDATE ingest_plan SET stamp = NEW.stamp WHERE source = NEW.source; END",
    "ingest_plan_chunks_stamp": "AFTER UPDATE OF stamp ON chunks BEGIN UPDATE ingest_plan SET stamp = NEW.stamp "
    "WHERE source = NEW.source; END",
    "ingest_plan_chunks_delete": "AFTER DELETE ON chunks BEGIN UPDATE ingest_plan SET stamp = NULL WHERE source = OLD.source; END",
}
# The table and triggers an earlier version kept the same fields in, reading each written JSON in SQL
# (SQLite 3.40 parsed a 1 kB document twelve times per write: about half of what a file's records cost).
_EARLIER_PLAN_TABLE = "file_plan"
_EARLIER_PLAN_TRIGGERS = (
    "file_plan_insert", "file_plan_document", "file_plan_status", "file_plan_synced", "file_plan_delete",
    "file_plan_chunks", "file_plan_chunks_stamp", "file_plan_chunks_delete",
)
_NEW_PLAN_ROW = "(SELECT stamp FROM chunks WHERE source = ?1)"  # a new row's chunks stamp (chunks may come first)
_LEGACY = {"document": "document.json", "status": "status.json", "synced": "synced.json"}
BUSY_TIMEOUT_SECONDS = 60  # another process (a sensor's run, `legal-rag status`) holding the write lock
CHUNKS_IN_DB_BYTES = 8 << 20  # a file's chunks up to this size are a row of files.db; larger ones a file
BATCH_COMMIT_SECONDS = 0.5  # a batch's transaction is committed this long after it began: another process never waits long


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _decoded(text: str | None) -> dict[str, Any] | None:
    """A field of files.db as the JSON object it holds (None when empty or not an object)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _Records:
    """The rows of ``<state>/files.db``: one per source, each field a JSON document (or NULL).

    One connection per process and state folder, WAL with synchronous=NORMAL: readers never wait for
    a writer. Outside a ``batch`` each write is its own transaction; inside one the writes go into one
    transaction, committed ``BATCH_COMMIT_SECONDS`` after it began or when the batch ends, whichever
    comes first (a commit per write was most of the database's cost in a run over thousands of files).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / RECORDS_FILE
        self._lock = threading.Lock()
        self._batches = 0  # open ``batch`` contexts (any thread of this process)
        self._transaction = 0  # how many transactions ``_write`` began (the open one's number)
        self._closed = False
        state_dir.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if _locked(exc):
                raise
            # Unreadable (a disk fault, a copy cut short): it is only a cache of what the files and the
            # collection hold, so it is set aside and built again by the next stages.
            aside = self.path.with_name(f"{RECORDS_FILE}.unreadable-{int(time.time())}")
            self._db.close()
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            log.warning(
                "The state folder's %s could not be read (%s): set aside as %s; every file is read again, and "
                "texts the collection already holds are not embedded again.", RECORDS_FILE, exc, aside.name,
            )
            fresh = True
            self._connect()
        if fresh:
            self._import_legacy()

    def _connect(self) -> None:
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        for attempt in Retrying(
            retry=retry_if_exception(_locked),
            stop=stop_after_delay(BUSY_TIMEOUT_SECONDS),
            wait=wait_random(0.01, 0.1),
            reraise=True,
        ):
            with attempt:
                self._set_up()
                self._db.execute("SELECT count(*) FROM files").fetchone()  # a damaged file fails here at the latest

    def _set_up(self) -> None:
        """WAL and the tables. Two processes opening a new files.db at once both try to turn it to
        WAL: the one that loses gets "database is locked" at once, without SQLite's busy wait (its
        read would have to become a write), so ``__init__`` tries again."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (source TEXT PRIMARY KEY, document TEXT, status TEXT, synced TEXT)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS chunks (source TEXT PRIMARY KEY, stamp TEXT NOT NULL, lines TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS raw (source TEXT PRIMARY KEY, text TEXT NOT NULL)")
        self._set_up_plan_table()

    def _set_up_plan_table(self) -> None:
        """``ingest_plan``: what the ingest plan reads of each file (a ``files`` row holds about 3 kB of
        JSON, one row a page: reading the plan's fields from 70,624 of them with ``json_extract`` took
        1.9 s of a 5 s plan). Each write of ``files`` sets its row's fields from the values it writes,
        in the same transaction; triggers follow deletions and the ``chunks`` table.

        Made, and filled in from ``files``, in a files.db without it, and again in one where an earlier
        version's ``file_plan`` is found: that version kept its own table (by triggers), not this one,
        so what it wrote since is only in ``files``."""
        if self._plan_table_current():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._plan_table_current():  # another process may have just done it
                for name in (*_EARLIER_PLAN_TRIGGERS, *_PLAN_TRIGGERS):
                    self._db.execute(f"DROP TRIGGER IF EXISTS {name}")
                self._db.execute(f"DROP TABLE IF EXISTS {_EARLIER_PLAN_TABLE}")
                self._db.execute("DROP TABLE IF EXISTS ingest_plan")
                self._db.execute(_PLAN_TABLE)
                self._fill_plan_table()
                for name, body in _PLAN_TRIGGERS.items():
                    self._db.execute(f"CREATE TRIGGER {name} {body}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _fill_plan_table(self) -> None:
        """Every ``ingest_plan`` row computed from ``files`` and ``chunks`` (the JSON read in SQL, once)."""
        self._db.execute(f"INSERT OR REPLACE INTO ingest_plan SELECT {_plan_values('f')} FROM files f")

    def _plan_table_current(self) -> bool:
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('ingest_plan', ?)", (_EARLIER_PLAN_TABLE,))}
        return tables == {"ingest_plan"}

    def _import_legacy(self) -> None:
        """Read an earlier version's per-file JSON records into the table, then remove them."""
        root = self.state_dir / "files"
        if not root.is_dir():
            return
        rows, imported = [], []
        for folder in root.iterdir():
            values: dict[str, dict[str, Any]] = {}
            for field_name, name in _LEGACY.items():
                path = folder / name
                try:
                    value = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(value, dict):
                    values[field_name] = value
                imported.append(path)
            source = (values.get("status") or {}).get("source") or (values.get("document") or {}).get("source")
            if source:
                rows.append((source, *(json.dumps(values[f], ensure_ascii=False) if f in values else None for f in _FIELDS)))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO files (source, document, status, synced) VALUES (?, ?, ?, ?)", rows)
                self._fill_plan_table()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for path in imported:
            path.unlink(missing_ok=True)

    def get(self, source: str, field_name: str) -> dict[str, Any] | None:
        assert field_name in _FIELDS
        with self._lock:
            row = self._db.execute(f"SELECT {field_name} FROM files WHERE source = ?", (source,)).fetchone()
        return _decoded(row[0]) if row else None

    def put(self, source: str, field_name: str, value: dict[str, Any] | None) -> None:
        assert field_name in _FIELDS
        data = None if value is None else json.dumps(value, ensure_ascii=False)
        self._write(
            (f"INSERT INTO files (source, {field_name}) VALUES (?, ?) "
             f"ON CONFLICT (source) DO UPDATE SET {field_name} = excluded.{field_name}", (source, data)),
            _plan_statement(source, field_name, value, data),
        )

    def set_document_field(self, source: str, name: str, value: Any) -> None:
        """``document[name] = value`` in one statement (a document that is not a JSON object becomes
        ``{name: value}``); ``name`` is none of ``PLAN_DOCUMENT_FIELDS``, so the plan's row stays."""
        assert name.isidentifier() and name not in PLAN_DOCUMENT_FIELDS
        data = json.dumps(value, ensure_ascii=False)
        document = ("CASE WHEN document IS NULL OR NOT json_valid(document) THEN '{}' "
                    "WHEN json_type(document) = 'object' THEN document ELSE '{}' END")
        if not self._write((f"UPDATE files SET document = json_set({document}, '$.{name}', json(?)) WHERE source = ?",
                            (data, source))):
            self.put(source, "document", {name: value})  # no record yet

    def set_stage(self, source: str, stage: str, entry: dict[str, Any], *, changed: bool,
                  document: dict[str, Any] | None = None) -> None:
        """``status[stage] = entry`` in one statement, with ``changed_at``: ``entry["at"]`` when
        ``changed``, else the stage's previous ``changed_at`` (null for a new row); with ``document``,
        the document record too (``put(source, "document", document)`` in the same two statements: a
        stage that writes both rewrites the file's row once)."""
        self._write(*self._stage_statements(source, stage, entry, changed, document))

    def set_stages(self, stage: str, entries: Sequence[tuple[str, dict[str, Any], bool]]) -> None:
        """``set_stage(source, stage, entry, changed=changed)`` of each of ``entries``, two statements for
        them all (a stage recording every file of its run at its end)."""
        pairs = [self._stage_statements(source, stage, entry, changed, None) for source, entry, changed in entries]
        if pairs:  # every pair has the same two statements (the stage's), each with its file's parameters
            (files_sql, _), (plan_sql, _) = pairs[0]
            self._write_many([(files_sql, [files[1] for files, _ in pairs]), (plan_sql, [plan[1] for _, plan in pairs])])

    def _stage_statements(self, source: str, stage: str, entry: dict[str, Any], changed: bool,
                          document: dict[str, Any] | None) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
        assert stage.isidentifier()
        path = f"$.{stage}"
        data = json.dumps({**entry, "changed_at": entry["at"] if changed else None}, ensure_ascii=False)
        keep_previous = f"json_set(json(?3), '$.changed_at', json_extract(status, '{path}.changed_at'))"
        status = (f"json_set(coalesce(status, '{{}}'), '$.source', ?1, '{path}', "
                  f"CASE WHEN ?4 THEN json(?3) ELSE {keep_previous} END)")
        if document is None:
            files = ("INSERT INTO files (source, status) VALUES (?1, json_object('source', ?1, ?2, json(?3))) "
                     f"ON CONFLICT (source) DO UPDATE SET status = {status}", (source, stage, data, 1 if changed else 0))
            plan = (f"INSERT INTO ingest_plan (source, stamp, stages, known, recorded) VALUES (?1, {_NEW_PLAN_ROW}, "
                    "json_object(?2, ?3), 1, 1) ON CONFLICT (source) DO UPDATE SET "
                    f"stages = json_set(coalesce(stages, '{{}}'), '{path}', ?3), known = 1, recorded = 1",
                    (source, stage, entry.get("status")))
            return files, plan
        text = json.dumps(document, ensure_ascii=False)
        files = ("INSERT INTO files (source, document, status) VALUES (?1, ?5, json_object('source', ?1, ?2, json(?3))) "
                 f"ON CONFLICT (source) DO UPDATE SET document = excluded.document, status = {status}",
                 (source, stage, data, 1 if changed else 0, text))
        fields = _plan_document_values(document)
        first = 4  # ?1 source, ?2 stage, ?3 its status, then the document's plan fields
        names = ", ".join(PLAN_DOCUMENT_FIELDS)
        values = ", ".join(f"?{first + i}" for i in range(len(fields)))
        plan = (f"INSERT INTO ingest_plan (source, stamp, {names}, stages, known, recorded) VALUES (?1, {_NEW_PLAN_ROW}, "
                f"{values}, json_object(?2, ?3), 1, 1) ON CONFLICT (source) DO UPDATE SET "
                f"{', '.join(f'{n} = excluded.{n}' for n in PLAN_DOCUMENT_FIELDS)}, "
                f"stages = json_set(coalesce(stages, '{{}}'), '{path}', ?3), known = 1, recorded = 1",
                (source, stage, entry.get("status"), *fields))
        return files, plan

    def delete(self, source: str) -> None:
        self._write(("DELETE FROM files WHERE source = ?", (source,)))
        self.delete_chunks(source)
        self.delete_raw(source)

    def put_raw(self, source: str, text: str) -> None:
        self._write(("INSERT OR REPLACE INTO raw (source, text) VALUES (?, ?)", (source, text)))

    def delete_raw(self, source: str) -> None:
        self._write(("DELETE FROM raw WHERE source = ?", (source,)))

    def stage_result(self, source: str, stage: str) -> tuple[Any, Any]:
        """``stage``'s status and run id in ``source``'s status (None, None when it has none), read in SQL:
        a stage asks this of each file, and the whole status is some 1.3 kB of JSON to decode."""
        assert stage.isidentifier()
        text = self._value(
            f"SELECT CASE WHEN json_valid(status) THEN json_extract(status, '$.{stage}.status', '$.{stage}.run_id') END "
            "FROM files WHERE source = ?", source)
        return (None, None) if text is None else tuple(json.loads(text))

    def sources_ok(self, stage: str, run_id: str | None) -> set[str]:
        """The sources whose ``status[stage]`` is ok or unchanged, with ``run_id`` when it is given
        (``stage_result`` of each, read in one query)."""
        assert stage.isidentifier()
        sql = ("SELECT source FROM files WHERE json_valid(status) "
               f"AND json_extract(status, '$.{stage}.status') IN ('ok', 'unchanged')")
        with self._lock:
            if run_id is None:
                return {row[0] for row in self._db.execute(sql)}
            return {row[0] for row in self._db.execute(sql + f" AND json_extract(status, '$.{stage}.run_id') = ?",
                                                        (run_id,))}

    def plan_document(self, source: str) -> dict[str, Any]:
        """``source``'s ``PLAN_DOCUMENT_FIELDS`` from ``ingest_plan`` (None where there is no value)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(PLAN_DOCUMENT_FIELDS)} FROM ingest_plan WHERE source = ?", (source,)).fetchone()
        return dict(zip(PLAN_DOCUMENT_FIELDS, row or (None,) * len(PLAN_DOCUMENT_FIELDS), strict=True))

    def _value(self, sql: str, source: str) -> Any:
        """The first column of the one row ``sql`` (with ``source`` as its parameter) finds, or None."""
        with self._lock:
            row = self._db.execute(sql, (source,)).fetchone()
        return None if row is None else row[0]

    def raw_text(self, source: str) -> str | None:
        return self._value("SELECT text FROM raw WHERE source = ?", source)

    def has_raw(self, source: str) -> bool:
        return self._value("SELECT 1 FROM raw WHERE source = ?", source) is not None

    def put_chunks(self, source: str, lines: str, stamp: str) -> None:
        self._write(("INSERT OR REPLACE INTO chunks (source, stamp, lines) VALUES (?, ?, ?)", (source, stamp, lines)))

    def delete_chunks(self, source: str) -> None:
        self._write(("DELETE FROM chunks WHERE source = ?", (source,)))

    def chunks_text(self, source: str) -> str | None:
        return self._value("SELECT lines FROM chunks WHERE source = ?", source)

    def plan_rows(self, stages: Sequence[str]) -> dict[str, tuple]:
        """Every file's record as the ingest plan reads it, in one query (no full document decoded):
        source → (sha256, reader_version, chunked, size, mtime_ns, chunks, synced text, chunks stamp,
        then each of ``stages``' status, and whether there is a status at all)."""
        sql = f"SELECT source, {', '.join(PLAN_DOCUMENT_FIELDS)}, synced, stamp, stages, recorded FROM ingest_plan"
        seen: dict[str | None, tuple] = {}  # most files share a few ``stages`` values: each decoded once

        def statuses(text: str | None) -> tuple:
            if text not in seen:
                value = _decoded(text) or {}
                seen[text] = tuple(value.get(stage) for stage in stages)
            return seen[text]

        with self._lock:
            return {row[0]: (*row[1:9], *statuses(row[9]), row[10]) for row in self._db.execute(sql)}

    def synced_sources(self) -> set[str]:
        """The sources whose ``synced`` is a JSON object (what ``get(source, "synced")`` gives as not None)."""
        with self._lock:
            return {row[0] for row in self._db.execute(
                "SELECT source FROM files WHERE json_valid(synced) AND json_type(synced) = 'object'")}

    def each_chunks_text(self, first: str = "", last: str | None = None) -> Iterator[tuple[str, str]]:
        """(source, chunk lines) of the rows of ``chunks`` from source ``first`` to ``last`` (None: every row)."""
        return self._paged("SELECT source, lines FROM chunks WHERE true", first=first, last=last)

    def _paged(self, select: str, rows_at_once: int = 1_000, *, first: str = "", last: str | None = None) -> Iterator[tuple]:
        """The rows of ``select`` (``SELECT source, … WHERE …``) a page at a time, by source from ``first``
        to ``last`` (None: the last row): nothing held between pages."""
        after, since = first, ">="
        while True:
            with self._lock:
                rows = self._db.execute(f"{select} AND source {since} ? ORDER BY source LIMIT ?", (after, rows_at_once)).fetchall()
            for row in rows:
                if last is not None and row[0] > last:
                    return
                yield row
            if len(rows) < rows_at_once:
                return
            after, since = rows[-1][0], ">"

    def chunks_stamp(self, source: str) -> str | None:
        return self._value("SELECT stamp FROM chunks WHERE source = ?", source)

    def _write(self, *statements: tuple[str, tuple]) -> int:
        """Run ``statements`` (SQL and parameters) in one transaction: the batch's, else their own.
        Returns how many rows the last one changed."""
        with self._lock:
            self._begin_batch_transaction()
            if self._db.in_transaction or len(statements) == 1:
                for sql, parameters in statements:
                    changed = self._db.execute(sql, parameters).rowcount
                return changed
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, parameters in statements:
                    changed = self._db.execute(sql, parameters).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return changed

    def _begin_batch_transaction(self) -> None:
        """Inside a ``batch`` with no transaction open: open one (under ``self._lock``)."""
        if self._batches and not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._transaction += 1
            # committed by a timer: the stage may do slow work (a reader, an embedding call)
            # before its next write, and the write lock is not kept from other processes meanwhile
            timer = threading.Timer(BATCH_COMMIT_SECONDS, self._commit, (self._transaction,))
            timer.daemon = True
            timer.start()

    def _write_many(self, statements: Sequence[tuple[str, Sequence[tuple]]]) -> None:
        """Each statement (SQL and the parameters of its rows) run for all its rows, in one transaction:
        the batch's, else their own."""
        with self._lock:
            self._begin_batch_transaction()
            own = not self._db.in_transaction
            if own:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
            except BaseException:
                if own:
                    self._db.execute("ROLLBACK")
                raise
            if own:
                self._db.execute("COMMIT")

    def _commit(self, transaction: int | None = None) -> None:
        """Commit the open transaction (only if it is still ``transaction``, when given)."""
        with self._lock:
            if not self._closed and self._db.in_transaction and transaction in (None, self._transaction):
                self._db.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes made until it ends (by any thread) in one transaction, committed at its end
        (also when it ends with an error: every write is a state a file may be left in)."""
        with self._lock:
            self._batches += 1
        try:
            yield
        finally:
            with self._lock:
                self._batches -= 1
            if not self._batches:
                self._commit()

    def sources_with_status(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT source FROM ingest_plan WHERE known ORDER BY source")]

    def each_document(self, rows_at_once: int = 1_000) -> Iterator[tuple[str, dict[str, Any]]]:
        """(source, document record) of each file with a status, decoded one at a time: a caller that
        keeps a little of each holds that little (70,624 decoded records at once: some 270 MB)."""
        for source, text in self._paged("SELECT source, document FROM files WHERE status IS NOT NULL", rows_at_once):
            yield source, _decoded(text) or {}

    def each_status(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(source, status) of each file with a status, in name order, a page at a time."""
        for source, status in self._paged("SELECT source, status FROM files WHERE status IS NOT NULL"):
            yield source, _decoded(status) or {}

    def each_record(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
        """(source, status, document, sync marker) of each file with a status, in name order, a page at a time."""
        for source, status, document, synced in self._paged(
            "SELECT source, status, document, synced FROM files WHERE status IS NOT NULL"
        ):
            yield source, _decoded(status) or {}, _decoded(document), _decoded(synced)

    def close(self) -> None:
        self._commit()
        with self._lock:
            self._closed = True
            self._db.close()


OPEN_RECORDS = 8  # state folders whose connection stays open in a process (the oldest is closed)
_OPEN: OrderedDict[str, _Records] = OrderedDict()
_OPEN_LOCK = threading.Lock()
_INHERITED: list[_Records] = []  # a forked child's copies of its parent's connections: never used nor closed


_IN_BATCH: tuple[object, _Records] | None = None  # (state_dir as passed, its records) of the last batch


def _forget_after_fork() -> None:
    global _IN_BATCH
    _INHERITED.extend(_OPEN.values())
    _OPEN.clear()
    _IN_BATCH = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _records(state_dir: Path) -> _Records:
    """This process's connection to ``state_dir``'s files.db."""
    global _IN_BATCH
    last = _IN_BATCH
    if last is not None and last[0] is state_dir and last[1]._batches:  # a stage's files, one after another
        return last[1]
    key = os.path.abspath(state_dir)
    with _OPEN_LOCK:
        records = _OPEN.get(key)
        # inside a batch its folder is in use: no need to check it is still there
        if records is not None and (records._batches or os.path.exists(records.path)):
            _OPEN.move_to_end(key)
            if records._batches:
                _IN_BATCH = (state_dir, records)
            return records
        if records is not None:  # its folder was removed: start again
            _OPEN.pop(key).close()
        records = _OPEN[key] = _Records(Path(key))
        while len(_OPEN) > OPEN_RECORDS:
            _OPEN.popitem(last=False)[1].close()
        return records
