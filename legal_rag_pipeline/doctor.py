"""`legal-rag doctor`: the prerequisites of an ingest, checked in order, each with its fix.

1. the embedding service (``Embedder.preflight()``): the Hugging Face token is present and valid
   (``whoami``), allowed to call Inference Providers, and the model answers one tiny call on the
   configured provider; or the endpoint's ``/health``, ``/info`` limits and one tiny call; or the
   local model loads. BM25-only configurations get an informational line, not a failure;
2. Qdrant is reachable (the embedded folder not locked by another process);
3. the collection's dense vector size equals the model's (when the collection exists).

The same embedding checks, without the probe call, run inside every ingest before its first paid
call (the ``embedding_service_ready`` asset check, resources/embeddings.py ``RunPreflight``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, EmbeddingError, StoreError

OK, FAIL, INFO = "ok", "fail", "info"
MARKS = {OK: "✓", FAIL: "✗", INFO: "i"}
SECRET_VARS = ("HF_TOKEN", "HUGGINGFACE_API_KEY", "EMBEDDINGS_ENDPOINT_API_KEY", "QDRANT_API_KEY")


@dataclass(frozen=True)
class Row:
    """One line of the table: ``status`` is "ok", "fail" or "info"."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Report:
    embeddings: str
    store: str
    rows: list[Row]

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_checks(settings: Any) -> Report:
    from .services import open_embedder, open_store

    embedder = open_embedder(settings)
    rows: list[Row] = []
    model_dim: int | None = None
    if not embedder.enabled():
        rows.append(
            Row(
                "dense embeddings",
                INFO,
                "not configured (no HF_TOKEN/HUGGINGFACE_API_KEY, no EMBEDDINGS_ENDPOINT_URL): search is BM25-only",
                "set HF_TOKEN or EMBEDDINGS_ENDPOINT_URL to add dense vectors",
            )
        )
    else:
        try:
            checks = embedder.preflight(probe=True)
        except (ConfigurationError, EmbeddingError) as error:
            checks = []
            rows.append(Row("embedding service", FAIL, error.what, error.fix))
        rows += [Row(c.name, OK if c.ok else FAIL, c.detail, c.fix) for c in checks]
        if checks and all(c.ok for c in checks):
            model_dim = embedder.dimension()  # known from the probe: no further call

    store = open_store(settings)
    try:
        with store.connect() as collection:
            collection.lock()  # an embedded folder held by another process says so here
            exists = collection.exists()
            rows.append(Row("Qdrant reachable", OK, store.describe()))
            rows.append(_collection_row(collection, exists, embedder, model_dim))
            if exists and (advice := collection.layout_advice()):
                rows.append(Row("collection layout", INFO, advice))
    except StoreError as error:
        rows.append(Row("Qdrant reachable", FAIL, error.what, error.fix))
    except Exception as exc:  # noqa: BLE001 - a server that is down, refuses the key, or answers oddly
        rows.append(_unreachable(store, exc))
    return Report(_redact(embedder.describe()), _redact(store.describe()), rows)


def _collection_row(collection: Any, exists: bool, embedder: Any, model_dim: int | None) -> Row:
    name = "collection vector size"
    if not exists:
        return Row(
            name, INFO, f"collection {collection.name} does not exist yet: `legal-rag ingest` creates it"
        )
    have = collection.dense_size()
    built_with = _stored_model(collection)
    note = f" (points from {built_with})" if built_with else ""
    if not embedder.enabled():
        if have is None:
            return Row(name, OK, f"collection {collection.name} is BM25-only, as configured{note}")
        return Row(
            name,
            FAIL,
            f"Collection {collection.name} holds {have}-dimensional dense vectors{note} but no embedding "
            "service is configured (BM25-only), so ingests are refused",
            "set HF_TOKEN or EMBEDDINGS_ENDPOINT_URL (and EMBEDDINGS_MODEL_NAME) back to the collection's model, "
            "or run `legal-rag rebuild` to build a BM25-only collection and switch to it",
        )
    model = embedder.model_id()
    if model_dim is None:
        return Row(
            name,
            INFO,
            f"collection {collection.name} holds {_size(have)}{note}; not compared: the model did not answer",
        )
    if have == model_dim:
        return Row(
            name,
            OK,
            f"collection {collection.name} holds {have}-dimensional vectors, as {model} produces{note}",
        )
    if have is None:
        return Row(
            name,
            FAIL,
            f"Collection {collection.name} is BM25-only (no dense vectors) but {model} produces "
            f"{model_dim}-dimensional vectors, so ingests are refused",
            "run `legal-rag rebuild` to build a collection with dense vectors and switch to it without downtime, "
            "or unset HF_TOKEN/EMBEDDINGS_ENDPOINT_URL to keep BM25-only search",
        )
    return Row(
        name,
        FAIL,
        f"Collection {collection.name} holds {have}-dimensional dense vectors{note} but {model} produces "
        f"{model_dim}-dimensional vectors, so ingests are refused",
        "run `legal-rag rebuild` to build a new collection for this model and switch to it without downtime, "
        "or set EMBEDDINGS_MODEL_NAME back to the collection's model",
    )


def _size(have: int | None) -> str:
    return f"{have}-dimensional dense vectors" if have else "no dense vectors (BM25-only)"


def _stored_model(collection: Any) -> str | None:
    """The embedding_model of one point, to name what built the collection (None when empty)."""
    try:
        points, _ = collection.scroll(fields=["embedding_model"], limit=1)
    except Exception:  # noqa: BLE001 - informational only
        return None
    if not points:
        return None
    return points[0].payload.get("embedding_model") or None


def _unreachable(store: Any, exc: Exception) -> Row:
    text = " ".join(_redact(f"{type(exc).__name__}: {exc}").split())[:200]
    lowered = text.lower()
    if "401" in lowered or "403" in lowered or "unauthorized" in lowered or "forbidden" in lowered:
        fix = "check QDRANT_API_KEY (the server refused it)"
    else:
        fix = "check QDRANT_URL (or QDRANT_HOST/QDRANT_PORT), that the server is running, and QDRANT_API_KEY"
    return Row("Qdrant reachable", FAIL, f"Cannot reach {store.describe()} ({text})", fix)


def _redact(text: str) -> str:
    for name in SECRET_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            text = text.replace(value, "***")
    return text


def render(report: Report) -> str:
    width = max((len(r.name) for r in report.rows), default=0)
    lines = [
        "legal-rag doctor",
        f"  embeddings: {report.embeddings}",
        f"  qdrant:     {report.store}",
        "",
    ]
    for row in report.rows:
        lines.append(f"  {MARKS[row.status]} {row.name.ljust(width)}  {_redact(row.detail)}")
        if row.status == FAIL and row.fix:
            lines.append(f"    {' ' * width}  fix: {_redact(row.fix)}")
    lines.append("")
    failed = len(report.failed)
    if failed:
        lines.append(
            f"{failed} check{'s' if failed != 1 else ''} failed: apply the fixes above, then run `legal-rag doctor` again."
        )
    else:
        lines.append("All checks passed.")
    return "\n".join(lines)
