"""Hugging Face embeddings without Dagster: what the ``HuggingFaceEmbedder`` resource does, and the plain
``HuggingFaceClient`` that `legal-rag search` and `doctor` use to embed a question.

``HuggingFaceMethods`` is the one implementation (batches, requests in flight, retries, the endpoint's
/info, the preflight checks). Two classes carry it, as ``stores.store.StoreMethods`` is carried:

* ``HuggingFaceClient`` — a dataclass built from ``Settings`` (``services.open_embedder``): a search
  never imports Dagster for it (1.5 s of a cold `legal-rag search`);
* ``resources.embeddings.HuggingFaceEmbedder`` — the Dagster resource with the same fields, documented
  for the UI, which runs use.

Requests go through the real ``huggingface_hub.InferenceClient``: Inference Providers (``HF_TOKEN``) or
a dedicated Inference Endpoint / self-hosted text-embeddings-inference (``endpoint_url``).
``InferenceClient`` has no retries and no default timeout: both are ours (tenacity, bounded in attempts
and total time, honouring ``Retry-After`` and ``RateLimit``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
)
from tenacity.wait import wait_random_exponential

from legal_rag_pipeline.embedder_base import Check, NoEmbeddings
from legal_rag_pipeline.errors import EmbeddingError, PipelineError
from legal_rag_pipeline.resources import embeddings_errors as errors
from legal_rag_pipeline.resources import hf_decoding
from legal_rag_pipeline.resources.embeddings_errors import Target

DEFAULT_MODEL = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"
PROBE_TEXT = "Điều 1. Phạm vi điều chỉnh"
ENDPOINT_PLACEHOLDER_KEY = "no-endpoint-api-key"  # sent instead of the HF token to keyless endpoints

# The logger ``dagster.get_dagster_logger("legal_rag_pipeline.embeddings")`` returns (a run captures it),
# named here without importing Dagster.
logger = logging.getLogger("dagster.builtin.legal_rag_pipeline.embeddings")


@dataclass
class _Sent:
    """One group's batches in a request pool, and the event that stops their retries."""

    futures: list[Future[np.ndarray]]
    stop: threading.Event


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class HuggingFaceMethods:
    """What a Hugging Face embedder does with its fields: mixed into ``HuggingFaceClient`` and the
    ``HuggingFaceEmbedder`` resource. Every ``embed()`` returns float32 ``(len(texts), dimension())``,
    L2-normalised, in input order."""

    model: str
    provider: str
    token: str | None
    endpoint_url: str | None
    endpoint_api_key: str | None
    batch_size: int
    concurrency: int
    timeout_seconds: float
    max_attempts: int
    max_retry_seconds: float
    backoff_seconds: float
    max_backoff_seconds: float

    # ---------------------------------------------------------------- description

    def enabled(self) -> bool:
        return True

    def model_id(self) -> str:
        return self.model

    def describe(self) -> str:
        return str(self._target())

    def _target(self) -> Target:
        return Target(
            model=self.model,
            provider=self.provider,
            endpoint_url=self.endpoint_url or None,
            secrets=tuple(s for s in (self.token, self.endpoint_api_key) if s),
        )

    # ---------------------------------------------------------------- public API

    def dimension(self) -> int:
        """The model's real output size, probed once with a one-text call."""
        if self._dimension is None:
            self.embed([PROBE_TEXT])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches, ``concurrency`` requests in flight, order preserved."""
        texts = list(texts)
        self._check_usable()
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        batches = self._batches(texts)
        if len(batches) == 1 or self.concurrency == 1:
            return np.vstack([self._embed_batch(batch) for batch in batches])
        with ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(batches)), thread_name_prefix="embed"
        ) as pool:
            result = self._collect(self._submit(pool, batches))
        if isinstance(result, BaseException):
            raise result
        return result

    def embed_groups(self, groups: Iterable[Sequence[str]]) -> Iterator[np.ndarray | PipelineError]:
        """Each group's vectors (or the ``PipelineError`` that stopped it), in order, with ``concurrency``
        requests in flight across the groups.

        A group's requests are queued behind the one before it in one pool, so when a group's last
        requests are answered the slots go straight to the next group's first ones. ``embed()`` per group
        let them run down to one request in flight, then paused while the group was saved and the next
        one's texts read: on a dense ingest of the 208 laws, 97 pauses with nothing in flight (3.4 s) and
        the drains, 53.6 s of embedding against 48.8 s now (docs/performance.md). The next group is taken
        from ``groups`` before this one is awaited, so the caller saves one group's vectors while the
        next is on the wire; at most two groups are in flight."""
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="embed")
        in_flight: deque[_Sent | np.ndarray | PipelineError] = deque()
        try:
            for texts in groups:
                try:
                    self._check_usable()
                    texts = list(texts)
                    in_flight.append(self._submit(pool, self._batches(texts)) if texts
                                     else np.zeros((0, self._dimension or 0), dtype=np.float32))
                except PipelineError as error:
                    in_flight.append(error)
                if len(in_flight) > 1:
                    yield self._collect(in_flight.popleft())
            while in_flight:
                yield self._collect(in_flight.popleft())
        finally:  # the caller stopped early (or failed): nothing more is sent
            for sent in in_flight:
                if isinstance(sent, _Sent):
                    sent.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _batches(self, texts: list[str]) -> list[list[str]]:
        # one text (a search's question) fits any endpoint's batch limit: no /info round trip for it
        size = self._effective_batch_size() if len(texts) > 1 else 1
        return [texts[i : i + size] for i in range(0, len(texts), size)]

    def _submit(self, pool: ThreadPoolExecutor, batches: list[list[str]]) -> _Sent:
        stop = threading.Event()
        return _Sent([pool.submit(self._embed_batch, b, stop) for b in batches], stop)

    @staticmethod
    def _collect(sent: _Sent | np.ndarray | PipelineError) -> np.ndarray | PipelineError:
        """The vectors of ``sent``'s batches in order, or the error of the first that failed (the others
        are cancelled and stop retrying). An error that is not ours (a bug) is raised."""
        if not isinstance(sent, _Sent):  # an empty group's vectors, or the error that kept it from being sent
            return sent
        done, _ = wait(sent.futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in sent.futures if f in done and f.exception() is not None), None)
        if failed is None:
            return np.vstack([f.result() for f in sent.futures])
        sent.stop.set()
        for future in sent.futures:
            future.cancel()
        error = failed.exception()
        if isinstance(error, PipelineError):
            return error
        raise error  # type: ignore[misc]

    def halt(self, error: EmbeddingError) -> None:
        """Make no further call with this resource (this run): every ``embed()`` raises ``error``."""
        self._halted = error

    def preflight(self, probe: bool = True) -> list[Check]:
        """Prerequisites in order; stops at the first failure that makes later checks meaningless.

        ``probe=False`` leaves out the one-text embedding call (the run's preflight: its first batch
        is the probe, and an unchanged re-run must make no call at all).
        """
        checks = self._preflight_endpoint() if self.endpoint_url else self._preflight_provider()
        if probe and all(c.ok for c in checks):
            checks.append(self._probe_check())
        return checks

    # ---------------------------------------------------------------- batches, retries, splitting

    def _check_usable(self) -> None:
        if self._halted is not None:
            raise self._halted
        target = self._target()
        if _offline():
            raise errors.offline(target)
        if not target.is_endpoint and not self.token:
            raise errors.no_token(target)

    def _embed_batch(self, batch: list[str], stop: threading.Event | None = None) -> np.ndarray:
        try:
            vectors = self._call_with_retries(batch, stop)
        except errors.EmbeddingBatchTooLarge:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            with self._lock:
                self._batch_cap = max(1, min(self._batch_cap or len(batch), half))
            logger.info(
                "%s refused %d texts per request; splitting into %d + %d",
                self.describe(),
                len(batch),
                half,
                len(batch) - half,
            )
            return np.vstack([self._embed_batch(batch[:half], stop), self._embed_batch(batch[half:], stop)])
        return self._check_shape(vectors, len(batch))

    def _call_with_retries(self, batch: list[str], stop: threading.Event | None) -> np.ndarray:
        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, EmbeddingError) and e.retryable),
            stop=stop_any(
                stop_after_attempt(self.max_attempts),
                stop_before_delay(self.max_retry_seconds),  # also when a Retry-After would overrun it
                lambda _: self._halted is not None or (stop is not None and stop.is_set()),
            ),
            wait=self._wait,
            before_sleep=self._log_retry,
            sleep=stop.wait if stop is not None else time.sleep,  # another batch failing ends the wait
            reraise=True,
        )
        try:
            return retrying(self._call, batch)
        except EmbeddingError as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            if error.retryable and attempts > 1:
                raise errors.gave_up(error, attempts, time.monotonic() - started) from None
            raise

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hinted = errors.retry_after_of(error) if error else None
        if hinted is not None:
            return hinted  # Retry-After / RateLimit t=; stop_before_delay gives up if it exceeds the budget
        backoff = wait_random_exponential(multiplier=self.backoff_seconds, max=self.max_backoff_seconds)
        return backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "Embedding request failed (attempt %d of %d), retrying in %.1f s: %s",
            state.attempt_number,
            self.max_attempts,
            state.upcoming_sleep,
            error,
        )

    def _call(self, batch: list[str]) -> np.ndarray:
        """One HTTP request, translated to our errors; a 402 halts the resource for the rest of the run."""
        if self._halted is not None:
            raise self._halted
        target = self._target()
        try:
            model = None if target.is_endpoint else self.model
            result = hf_decoding.feature_extraction(self._get_client(), batch, model)
        except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know (bugs)
            error = errors.translate(
                exc,
                target,
                batch_size=len(batch),
                timeout=self.timeout_seconds,
                has_token=bool(self.token),
            )
            if isinstance(error, errors.EmbeddingCreditsExhausted):
                self._halted = error
            raise error from None
        return result

    def _check_shape(self, vectors: Any, count: int) -> np.ndarray:
        target = self._target()
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 3:
            raise errors.token_embeddings(target, array.shape)
        if array.ndim == 1 and count == 1 and array.size > 0:
            array = array.reshape(1, -1)
        expected_dim = self._dimension
        expected = f"({count}, {expected_dim})" if expected_dim else f"{count} vectors"
        if array.ndim != 2 or array.shape[0] != count or array.shape[1] == 0:
            raise errors.wrong_shape(target, array.shape, expected)
        with self._lock:
            if self._dimension is None:
                self._dimension = int(array.shape[1])
        if array.shape[1] != self._dimension:
            raise errors.wrong_shape(target, array.shape, f"({count}, {self._dimension})")
        if not np.all(np.isfinite(array)):
            raise errors.bad_response(target, "NaN or infinite values")
        return l2_normalise(array)

    # ---------------------------------------------------------------- client and endpoint limits

    def _get_client(self) -> Any:
        if self._client is None:
            from huggingface_hub import InferenceClient

            if self.endpoint_url:
                # Never let huggingface_hub fall back to the machine's HF token for a foreign host.
                self._client = InferenceClient(
                    base_url=self.endpoint_url,
                    token=self.endpoint_api_key or ENDPOINT_PLACEHOLDER_KEY,
                    timeout=self.timeout_seconds,
                )
            else:
                self._client = InferenceClient(
                    provider=self.provider, token=self.token, timeout=self.timeout_seconds
                )
        return self._client

    def _endpoint_base(self) -> str:
        base = (self.endpoint_url or "").rstrip("/")
        return base.removesuffix("/embed")

    def _endpoint_get(self, route: str) -> Any:
        """GET {endpoint}/route with the endpoint's key and our timeout; returns the httpx2 response."""
        from huggingface_hub.utils import get_session

        headers = {"authorization": f"Bearer {self.endpoint_api_key}"} if self.endpoint_api_key else {}
        return get_session().get(
            f"{self._endpoint_base()}/{route}", headers=headers, timeout=self.timeout_seconds
        )

    def _read_info(self) -> dict[str, Any]:
        try:
            response = self._endpoint_get("info")
            if response.status_code == 200:
                info = response.json()
                return info if isinstance(info, dict) else {}
        except Exception as exc:  # noqa: BLE001 - /info is optional (only text-embeddings-inference has it)
            logger.debug("No /info from %s: %s", self.describe(), type(exc).__name__)
        return {}

    def _effective_batch_size(self) -> int:
        if self.endpoint_url and not self._info_read:
            self._apply_info(self._read_info())
        return max(1, min(self.batch_size, self._batch_cap or self.batch_size))

    def _apply_info(self, info: dict[str, Any]) -> None:
        """Cap the batch size at the endpoint's advertised ``max_client_batch_size`` (read once)."""
        limit = info.get("max_client_batch_size")
        with self._lock:
            if self._info_read:
                return
            self._info_read = True
            if isinstance(limit, int) and limit > 0 and limit < self.batch_size:
                logger.info("%s accepts at most %d texts per request", self.describe(), limit)
                self._batch_cap = min(self._batch_cap or limit, limit)

    # ---------------------------------------------------------------- doctor

    def _probe_check(self) -> Check:
        name = "model answers"
        try:
            dim = len(self.embed([PROBE_TEXT])[0])
        except EmbeddingError as error:
            return Check(name, False, error.what, error.fix)
        return Check(name, True, f"{self.describe()} returns {dim}-dimensional vectors")

    def _preflight_provider(self) -> list[Check]:
        from huggingface_hub import HfApi, constants

        target = self._target()
        if _offline():
            error = errors.offline(target)
            return [Check("network", False, error.what, error.fix)]
        if not self.token:
            error = errors.no_token(target)
            return [Check("Hugging Face token", False, error.what, error.fix)]
        try:
            info = HfApi(endpoint=constants.ENDPOINT).whoami(token=self.token)
        except Exception as exc:  # noqa: BLE001
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status == 401:
                error = errors.invalid_token(target)
            else:
                error = errors.translate(
                    exc, target, batch_size=1, timeout=self.timeout_seconds, has_token=True
                )
            return [Check("Hugging Face token", False, error.what, error.fix)]
        access = (info.get("auth") or {}).get("accessToken") or {}
        role = access.get("role") or "unknown"
        checks = [Check("Hugging Face token", True, f"valid token of {info.get('name', '?')} (role {role})")]
        if role == "fineGrained":
            fine = access.get("fineGrained") or {}
            permissions = set(fine.get("global") or [])
            for scoped in fine.get("scoped") or []:
                permissions.update(scoped.get("permissions") or [])
            if errors.INFERENCE_PROVIDERS_PERMISSION not in permissions:
                error = errors.missing_permission(target, 403)
                checks.append(
                    Check(
                        "Inference Providers permission",
                        False,
                        f"the fine-grained token lacks {errors.PERMISSION_LABEL}",
                        error.fix,
                    )
                )
                return checks
            checks.append(
                Check("Inference Providers permission", True, f"token has {errors.PERMISSION_LABEL}")
            )
        else:
            checks.append(
                Check("Inference Providers permission", True, f"a {role} token may call Inference Providers")
            )
        return checks

    def _preflight_endpoint(self) -> list[Check]:
        target = self._target()
        if _offline():
            error = errors.offline(target)
            return [Check("network", False, error.what, error.fix)]
        try:
            response = self._endpoint_get("health")
            healthy = response.status_code == 200
            detail = f"GET /health answered {response.status_code}"
        except Exception as exc:  # noqa: BLE001
            error = errors.translate(exc, target, batch_size=1, timeout=self.timeout_seconds, has_token=False)
            return [Check("endpoint reachable", False, error.what, error.fix)]
        checks = [
            Check(
                "endpoint reachable",
                True,
                detail + ("" if healthy else " (no /health route: not text-embeddings-inference?)"),
            )
        ]
        info = self._read_info()
        self._apply_info(info)  # the run's batches need not ask /info again
        if info:
            limits = ", ".join(
                f"{key} {info[key]}"
                for key in ("model_id", "max_client_batch_size", "max_batch_tokens", "max_input_length")
                if key in info
            )
            checks.append(Check("endpoint limits", True, limits))
        else:
            checks.append(
                Check(
                    "endpoint limits", True, f"no /info: using {errors.BATCH_SIZE_SETTING}={self.batch_size}"
                )
            )
        return checks


@dataclass
class HuggingFaceClient(HuggingFaceMethods, NoEmbeddings):
    """The Hugging Face embedder without Dagster, for a command's own process (search, doctor); the
    fields and their meaning are ``HuggingFaceEmbedder``'s."""

    model: str = DEFAULT_MODEL
    provider: str = "hf-inference"
    token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    endpoint_api_key: str | None = field(default=None, repr=False)
    batch_size: int = 32
    concurrency: int = 4
    timeout_seconds: float = 60
    max_attempts: int = 6
    max_retry_seconds: float = 300
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60

    _dimension: int | None = field(default=None, init=False, repr=False)
    _halted: EmbeddingError | None = field(default=None, init=False, repr=False)
    _batch_cap: int | None = field(default=None, init=False, repr=False)
    _info_read: bool = field(default=False, init=False, repr=False)
    _client: Any = field(default=None, init=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode()) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }
