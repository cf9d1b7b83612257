"""Copy a collection (behind its alias) to another Qdrant: a server, a cluster or another folder.

The same code path serves every target: the destination is just another ``QdrantStore``. The copy

* creates the destination's physical collection with the project's layout (``Collection.create_physical``:
  unnamed cosine dense vector of the source's size, ``bm25`` sparse vector with the IDF modifier,
  payload indexes) and the *target's* cluster parameters (shards, replicas, write consistency, on-disk);
* scrolls the source in point-id order, in batches, with vectors and payload, and upserts each batch
  (upserts by id are idempotent: a batch copied twice leaves one point);
* records a checkpoint (the next point id) after every batch, so an interrupted copy resumes where it
  stopped; without a checkpoint it still skips the ids the destination already holds;
* verifies the counts (source == destination) and only then points the alias at the copy.

qdrant-client's own ``migrate`` helper keeps the sparse modifier and payload indexes but copies the
source's (local: single-node) shard settings, drops or refuses an existing destination collection,
is not resumable and does not move aliases, hence this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, StoreError
from .resources.qdrant import SPARSE_NAME, Collection, PointRecord, QdrantStore, StoredPoint

log = logging.getLogger(__name__)

PATH_PREFIX = "path:"


@dataclass
class MigrationReport:
    alias: str
    physical: str
    source_points: int
    target_points: int
    copied: int = 0  # points upserted in this call
    skipped: int = 0  # points the destination already had (resume without checkpoint)
    batches: int = 0
    resumed_from: Any = None
    complete: bool = False
    notes: list[str] = field(default_factory=list)


class MigrationInterrupted(Exception):
    """Raised by ``migrate`` when ``max_batches`` stops it early (tests, or a deliberate partial copy)."""

    def __init__(self, report: MigrationReport) -> None:
        super().__init__(f"stopped after {report.batches} batches ({report.copied} points copied)")
        self.report = report


def target_store(
    to: str,
    *,
    collection_name: str,
    api_key: str | None = None,
    template: QdrantStore | None = None,
) -> QdrantStore:
    """The destination store for ``--to``: ``path:/folder`` (qdrant-client local mode) or an ``http(s)://`` URL.

    Cluster and client parameters (shards, replicas, on-disk, gRPC, timeout) come from ``template``,
    the store built from the settings, so QDRANT_SHARD_NUMBER etc. apply to the new collection.
    """
    t = template or QdrantStore()
    common = dict(
        collection_name=collection_name,
        shard_number=t.shard_number,
        replication_factor=t.replication_factor,
        write_consistency_factor=t.write_consistency_factor,
        on_disk=t.on_disk,
        upsert_batch_size=t.upsert_batch_size,
    )
    if to.startswith(PATH_PREFIX):
        path = to[len(PATH_PREFIX) :]
        if not path:
            raise ConfigurationError("--to path: needs a folder", "write --to path:/some/folder")
        # qdrant-client's local mode: the folder other qdrant-client programs (LangChain) can open
        return QdrantStore(path=path, engine="client", **common)
    if to.startswith(("http://", "https://")):
        return QdrantStore(
            path=None,
            url=to,
            api_key=api_key,
            https=t.https,
            prefer_grpc=t.prefer_grpc,
            grpc_port=t.grpc_port,
            timeout_seconds=t.timeout_seconds,
            **common,
        )
    raise ConfigurationError(
        f"--to {to!r} is neither a URL nor a folder",
        "use --to https://qdrant.example.vn:6333 (a server) or --to path:/some/folder (an embedded copy)",
    )


def same_place(a: QdrantStore, b: QdrantStore) -> bool:
    if a.server_mode or b.server_mode:
        return (a.url, a.host, a.port) == (b.url, b.host, b.port) and a.server_mode == b.server_mode
    return Path(a.path or "").resolve() == Path(b.path or "").resolve()


class Checkpoint:
    """The next point id to copy, per (alias, physical collection, destination), in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self, key: str) -> Any:
        if self.path is None or not self.path.exists():
            return None
        return json.loads(self.path.read_text()).get(key)

    def save(self, key: str, offset: Any) -> None:
        if self.path is None:
            return
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        data[key] = offset
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def clear(self, key: str) -> None:
        if self.path is None or not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        data.pop(key, None)
        if data:
            self.path.write_text(json.dumps(data))
        else:
            self.path.unlink()


def _layout(collection: Collection, physical: str) -> tuple[int | None, bool]:
    """(dense size or None, has the bm25 sparse vector) of a physical collection."""
    layout = collection.layout(
        physical, "migrate it with qdrant-client's `QdrantClient.migrate`, or rebuild it with `legal-rag ingest`"
    )
    return layout.dense, layout.sparse


def _to_point(record: StoredPoint) -> PointRecord:
    return PointRecord(record.id, record.dense, record.sparse or ([], []), record.payload)


def migrate(
    source: Collection,
    target: Collection,
    *,
    batch_size: int = 256,
    checkpoint: Checkpoint | None = None,
    max_batches: int | None = None,
    on_batch: Callable[[MigrationReport], None] | None = None,
) -> MigrationReport:
    """Copy ``source``'s collection (and alias) into ``target``; see the module docstring."""
    if batch_size < 1:
        raise ConfigurationError("--batch-size must be at least 1", "use e.g. --batch-size 256")
    checkpoint = checkpoint or Checkpoint(None)
    physical = source.physical_name()
    if physical is None:
        raise StoreError(
            f"There is no collection {source.name} to migrate in {source.store.describe()}",
            "run `legal-rag ingest` first, or check COLLECTION_NAME and QDRANT_PATH",
        )
    dense, sparse = _layout(source, physical)
    if not sparse:
        raise StoreError(
            f"Collection {physical} has no `{SPARSE_NAME}` sparse vector: it was not built by this project",
            "rebuild it with `legal-rag ingest`",
        )

    if not target.has_physical(physical):
        target.create_physical(physical, dense, metadata=source.layout(physical).metadata)
    else:
        have, _ = _layout(target, physical)
        if have != dense:
            raise StoreError(
                f"The destination already has a collection {physical} with a different dense vector size "
                f"({have} instead of {dense})",
                "delete it on the destination, or migrate into another Qdrant",
            )
    source_count = source.count(physical=physical)
    report = MigrationReport(
        alias=source.name, physical=physical, source_points=source_count, target_points=0
    )
    key = f"{source.name}|{physical}|{target.store.describe()}"
    offset = checkpoint.load(key)
    report.resumed_from = offset

    while True:
        records, next_offset = source.scroll(
            physical=physical, limit=batch_size, offset=offset, fields=True, vectors=True
        )
        if records:
            present = {p.id for p in target.retrieve([r.id for r in records], physical=physical)}
            todo = [_to_point(r) for r in records if r.id not in present]
            if todo:
                target.upsert(todo, collection=physical)
            report.copied += len(todo)
            report.skipped += len(records) - len(todo)
            report.batches += 1
        offset = next_offset
        if offset is None:
            break
        checkpoint.save(key, offset)
        if on_batch is not None:
            on_batch(report)
        if max_batches is not None and report.batches >= max_batches:
            report.target_points = target.count(physical=physical)
            raise MigrationInterrupted(report)

    report.target_points = target.count(physical=physical)
    if report.target_points != source_count:
        raise StoreError(
            f"Verification failed: {physical} has {source_count} points in the source but "
            f"{report.target_points} in the destination; the alias {source.name} was not moved",
            "run the same `legal-rag migrate` again (it resumes); if the destination holds extra points, "
            "delete its collection and migrate again",
        )
    if target.alias_target() != physical:
        target.point_alias(physical)
        report.notes.append(f"alias {source.name} -> {physical}")
    checkpoint.clear(key)
    report.complete = True
    return report


def report_dict(report: MigrationReport) -> dict[str, Any]:
    return asdict(report)
