"""Dense embeddings as Dagster resources: none (BM25-only), Hugging Face (provider or endpoint), local.

* :class:`Embedder` — the base class and the "none" backend: ``enabled()`` is False, searches are
  BM25-only.
* :class:`HuggingFaceEmbedder` — Hugging Face Inference Providers (``HF_TOKEN``) or a dedicated
  Inference Endpoint / self-hosted text-embeddings-inference (``endpoint_url``), through the real
  ``huggingface_hub.InferenceClient``. ``InferenceClient`` has no retries and no default timeout: both
  are ours (tenacity, bounded in attempts and total time, honouring ``Retry-After`` and ``RateLimit``).
* :class:`LocalEmbedder` — sentence-transformers in-process (``pip install '.[local]'``).

Every failure a user can meet is an :class:`~legal_rag_pipeline.errors.EmbeddingError` subclass with one
actionable sentence (see ``embeddings_errors.py``). Tokens never appear in messages, logs or reprs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from legal_rag_pipeline.embedder_base import Check, NoEmbeddings
from legal_rag_pipeline.errors import ConfigurationError, EmbeddingError, PipelineError
from legal_rag_pipeline.resources import embeddings_errors as errors
from legal_rag_pipeline.resources.hugging_face import (
    DEFAULT_MODEL,
    PROBE_TEXT,
    HuggingFaceMethods,
    l2_normalise,
)

logger = dg.get_dagster_logger("legal_rag_pipeline.embeddings")  # hugging_face.logger, in a run


class Embedder(NoEmbeddings, dg.ConfigurableResource):
    """No dense embeddings: the pipeline stores and searches BM25 sparse vectors only.

    Subclasses compute dense vectors; every ``embed()`` returns float32 ``(len(texts), dimension())``,
    L2-normalised, in input order. The BM25-only behaviour is ``embedder_base.NoEmbeddings``.
    """


class HuggingFaceEmbedder(HuggingFaceMethods, Embedder):
    """Sentence embeddings from Hugging Face: Inference Providers, or your own endpoint when
    ``endpoint_url`` is set (an Inference Endpoint or a text-embeddings-inference server)."""

    model: str = Field(default=DEFAULT_MODEL, description="Hub model id (also stored as embedding_model).")
    provider: str = Field(
        default="hf-inference", description='Inference provider, e.g. "hf-inference" or "auto".'
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description="Hugging Face token (HF_TOKEN): fine-grained with 'Make calls to Inference Providers'.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Inference Endpoint or text-embeddings-inference URL; when set, requests go there only.",
    )
    endpoint_api_key: str | None = Field(
        default=None,
        repr=False,
        description="Key sent to endpoint_url. The Hugging Face token is never sent to that host.",
    )
    batch_size: int = Field(
        default=32, ge=1, description="Texts per request (capped by the endpoint's /info)."
    )
    concurrency: int = Field(default=4, ge=1, description="Requests in flight at once.")
    timeout_seconds: float = Field(default=60, gt=0, description="Timeout of each request.")
    max_attempts: int = Field(default=6, ge=1, description="Attempts per batch for retryable failures.")
    max_retry_seconds: float = Field(
        default=300, ge=0, description="Total time one batch may spend retrying."
    )
    backoff_seconds: float = Field(default=1.0, ge=0, description="First backoff wait; doubles, with jitter.")
    max_backoff_seconds: float = Field(default=60, ge=0, description="Longest single backoff wait.")

    _dimension: int | None = PrivateAttr(default=None)
    _halted: EmbeddingError | None = PrivateAttr(default=None)  # set by a 402: no more calls this run
    _batch_cap: int | None = PrivateAttr(default=None)
    _info_read: bool = PrivateAttr(default=False)
    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)


class EmbeddingNotReady(EmbeddingError):
    """The run's preflight (``legal-rag doctor``'s checks without the probe call) failed."""


# Errors that the next request would meet again: after one, a run makes no further embedding call.
RUN_STOPPING_ERRORS = (
    errors.EmbeddingAuthError,
    errors.EmbeddingCreditsExhausted,
    errors.EmbeddingModelUnavailable,
    errors.EmbeddingOffline,
    EmbeddingNotReady,
)
READY_CHECK = "embedding_service_ready"


class RunPreflight:
    """The embedder as one run sees it: ``preflight(probe=False)`` before the first call, and no call
    at all after a failure that would repeat (bad token, no credits, model not served, offline).

    Nothing is checked (and nothing is sent) when the run has nothing to embed.
    :meth:`check_result` is the ``embedding_service_ready`` asset check shown in the UI.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.checks: list[Check] | None = None
        self.stopped: EmbeddingError | None = None
        self.texts = 0
        self._lock = threading.Lock()

    def enabled(self) -> bool:
        return self.embedder.enabled()

    def model_id(self) -> str:
        return self.embedder.model_id()

    def describe(self) -> str:
        return self.embedder.describe()

    def dimension(self) -> int:
        return self.embedder.dimension()

    def __getattr__(self, name: str) -> Any:  # anything else the stages may ask of the embedder
        if name.startswith("__") or name == "embedder":
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._before_call(texts)
        try:
            vectors = self.embedder.embed(texts)
        except RUN_STOPPING_ERRORS as error:
            with self._lock:
                self._stop(error)
            raise
        self.texts += len(texts)
        return vectors

    def embed_groups(self, groups: Iterable[Sequence[str]]) -> Iterator[np.ndarray | PipelineError]:
        """``Embedder.embed_groups`` after the preflight (checked before the first group with texts); a
        group that meets a run-stopping error halts the embedder, so every later group fails without a call."""
        groups = iter(groups)
        for texts in groups:
            if not texts:  # nothing to send, nothing to check yet
                yield np.zeros((0, 0), dtype=np.float32)
                continue
            try:
                self._before_call(texts)
            except PipelineError as error:
                yield error
                continue
            break
        else:
            return
        for result in self.embedder.embed_groups(itertools.chain([texts], groups)):
            if isinstance(result, RUN_STOPPING_ERRORS):
                with self._lock:
                    self._stop(result)
            elif isinstance(result, np.ndarray):
                self.texts += len(result)
            yield result

    def _before_call(self, texts: Sequence[str]) -> None:
        """The preflight, once, before the first call with texts; raises the error that stopped the run's calls."""
        with self._lock:
            if self.checks is None and self.stopped is None and texts:
                self.checks = self.embedder.preflight(probe=False)
                failed = next((c for c in self.checks if not c.ok), None)
                if failed is not None:
                    self._stop(EmbeddingNotReady(failed.detail, failed.fix))
                    logger.warning("Preflight of %s failed: %s", self.describe(), self.stopped)
            if self.stopped is not None:
                raise self.stopped

    def _stop(self, error: EmbeddingError) -> None:
        """Remember the first run-stopping error; the resource (shared by the run's later steps) halts too."""
        self.stopped = self.stopped or error
        halt = getattr(self.embedder, "halt", None)
        if halt is not None:
            halt(self.stopped)

    def check_result(self) -> dg.AssetCheckResult:
        lines = [f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}" for c in self.checks or []]
        if not self.embedder.enabled():
            passed, summary = True, "no embedding service configured: BM25-only search"
        elif self.checks is None and self.stopped is None:
            passed, summary = True, "not checked: nothing to embed in this run, so no call was made"
        elif self.stopped is not None:
            passed, summary = False, str(self.stopped)
        else:
            passed, summary = True, f"{self.describe()} ready; {self.texts} texts embedded"
        return dg.AssetCheckResult(
            asset_key="embedding_batches",
            check_name=READY_CHECK,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=summary,
            metadata={
                "summary": summary,
                "checks": dg.MetadataValue.md("\n".join(f"- {line}" for line in lines) or "none"),
            },
        )




class LocalEmbedder(Embedder):
    """sentence-transformers in this process (``pip install '.[local]'``): no network, no quota."""

    model: str = Field(
        default=DEFAULT_MODEL, description="Hub model id or a local folder with the model files."
    )
    model_name: str | None = Field(
        default=None, description="Stored as embedding_model; default: the model id, or local:<folder name>."
    )
    device: str | None = Field(default=None, description='"cpu", "cuda", "mps"; empty = automatic.')
    batch_size: int = Field(default=32, ge=1)

    _model: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def enabled(self) -> bool:
        return True

    def model_id(self) -> str:
        if self.model_name:
            return self.model_name
        path = Path(self.model)
        return f"local:{path.name}" if path.is_dir() else self.model

    def describe(self) -> str:
        return f"local model {self.model_id()}"

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise ConfigurationError(
                        "EMBEDDINGS_BACKEND=local needs sentence-transformers, which is not installed",
                        "pip install '.[local]'",
                    ) from None
                try:
                    self._model = SentenceTransformer(self.model, device=self.device or None)
                except Exception as exc:  # noqa: BLE001 - missing files, no network, bad folder
                    raise EmbeddingError(
                        f"Cannot load the local model {self.model} ({type(exc).__name__})",
                        f"set {errors.MODEL_SETTING} to a folder with the model files, or download it "
                        "first (hf download MODEL) while online",
                    ) from None
        return self._model

    def dimension(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        return int(dim) if dim else int(self.embed([PROBE_TEXT]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        vectors = model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return l2_normalise(vectors)

    def preflight(self, probe: bool = True) -> list[Check]:
        try:
            dim = self.dimension()
        except (ConfigurationError, EmbeddingError) as error:
            return [Check("local model", False, error.what, error.fix)]
        return [Check("local model", True, f"{self.describe()} loaded, {dim}-dimensional vectors")]
