"""Per-file artifacts between the assets, on local disk under the state folder.

The built-in IO managers cannot store an output that spans many partitions, and the embeddings
must survive a failed run (they cost quota), so each stage writes its result per source file:

    <state>/files/<slug>-<hash>/document.json   fingerprint and reader facts (raw_documents)
                               raw.jsonl        decoded text or rows, UTF-8 (raw_documents)
                               chunks.jsonl     normalised chunks with point ids (normalized_records)
                               embeddings.npz   vectors by point id, with the model id (embedding_batches)
                               status.json      the last outcome of each stage, its run and time (CLI, `status`)
                               synced.json      what the collection held for it after its last sync

Writes go to a temporary file first and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .records import Chunk


@dataclass
class StageOutcome:
    """What one stage did to one file; shown in the UI metadata and the CLI summary."""

    source: str
    status: str  # "ok" | "unchanged" | "failed" | "skipped"
    error: str | None = None
    fix: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in {"ok", "unchanged"}


def _slug(source: str) -> str:
    """One folder name per source: no separator survives and the hash ends it, so no key (``..``,
    ``/etc/x``, ``a/../../b``) can name a folder outside ``<state>/files``."""
    digest = hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source)[-60:].strip("_")
    return f"{stem}-{digest}"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "files" / _slug(source)

    # --- json documents -------------------------------------------------------
    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.dir / name).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _write_json(self, name: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8")
        _atomic_write(self.dir / name, lambda h: h.write(data))

    def document(self) -> dict[str, Any] | None:
        return self._read_json("document.json")

    def write_document(self, value: dict[str, Any]) -> None:
        self._write_json("document.json", value)

    def synced(self) -> dict[str, Any] | None:
        """The sync marker written after this file's points were last brought in line (see ingest.sync_stage)."""
        return self._read_json("synced.json")

    def write_synced(self, value: dict[str, Any]) -> None:
        self._write_json("synced.json", value)

    def clear_synced(self) -> None:
        (self.dir / "synced.json").unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        return self._read_json("status.json") or {}

    def record_outcome(self, stage: str, outcome: StageOutcome, run_id: str | None = None) -> None:
        """Keep ``stage``'s outcome with its run and time (``at``); ``changed_at`` is when the stage
        last changed something for this file (status "ok"), shown by `legal-rag status`."""
        status = self.status()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        changed_at = now if outcome.status == "ok" else (status.get(stage) or {}).get("changed_at")
        status["source"] = self.source
        status[stage] = {**asdict(outcome), "run_id": run_id, "at": now, "changed_at": changed_at}
        self._write_json("status.json", status)

    def stage_ok(self, stage: str, run_id: str | None) -> bool:
        """Did ``stage`` succeed for this file in this run (or at all, when run_id is None)?"""
        entry = self.status().get(stage)
        if not entry or entry.get("status") not in {"ok", "unchanged"}:
            return False
        return run_id is None or entry.get("run_id") == run_id

    # --- jsonl streams --------------------------------------------------------
    def _write_jsonl(self, name: str, items: Iterable[dict[str, Any]]) -> int:
        count = 0

        def write(handle) -> None:
            nonlocal count
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False).encode("utf-8"))
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
        return self._write_jsonl("raw.jsonl", items)

    def read_raw(self) -> Iterator[dict[str, Any]]:
        return self._read_jsonl("raw.jsonl")

    def write_chunks(self, chunks: Iterable[Chunk]) -> int:
        return self._write_jsonl(
            "chunks.jsonl",
            (
                {"id": c.point_id, "chunk_key": c.chunk_key, "text": c.text, "metadata": c.metadata}
                for c in chunks
            ),
        )

    def read_chunks(self) -> Iterator[Chunk]:
        for item in self._read_jsonl("chunks.jsonl"):
            yield Chunk(source=self.source, chunk_key=item["chunk_key"], text=item["text"], metadata=item["metadata"])

    def chunk_ids(self) -> list[str]:
        return [item["id"] for item in self._read_jsonl("chunks.jsonl")]

    def has_chunks(self) -> bool:
        return (self.dir / "chunks.jsonl").exists()

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
        shutil.rmtree(self.dir, ignore_errors=True)


def known_sources(state_dir: str | Path) -> list[str]:
    """Sources that have artifacts (files ingested at least once)."""
    root = Path(state_dir) / "files"
    sources = []
    if root.exists():
        for status in root.glob("*/status.json"):
            try:
                sources.append(json.loads(status.read_text(encoding="utf-8"))["source"])
            except (json.JSONDecodeError, KeyError):
                continue
    return sorted(sources)
