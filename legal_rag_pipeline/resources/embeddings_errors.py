"""What can go wrong when calling an embedding service, each as one actionable sentence.

``translate()`` turns whatever ``huggingface_hub``/``httpx2`` raised into one of the
:class:`~legal_rag_pipeline.errors.EmbeddingError` subclasses below; ``retryable`` drives the retry
policy in ``embeddings.py``. Messages name the model and provider (or the endpoint URL), never a token.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass

import httpx2
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled
from huggingface_hub.utils import parse_ratelimit_headers

from legal_rag_pipeline.errors import EmbeddingError

TOKENS_URL = "https://huggingface.co/settings/tokens"
NEW_TOKEN_URL = "https://huggingface.co/settings/tokens/new?ownUserPermissions=inference.serverless.write&tokenType=fineGrained"
BILLING_URL = "https://huggingface.co/settings/billing"
INFERENCE_PROVIDERS_PERMISSION = "inference.serverless.write"  # "Make calls to Inference Providers"
PERMISSION_LABEL = '"Make calls to Inference Providers"'

# Settings named in messages (the names users set in .env / the launchpad).
TOKEN_SETTING = "HF_TOKEN"
ENDPOINT_SETTING = "EMBEDDINGS_ENDPOINT_URL"
ENDPOINT_KEY_SETTING = "EMBEDDINGS_ENDPOINT_API_KEY"
MODEL_SETTING = "EMBEDDINGS_MODEL_NAME"
PROVIDER_SETTING = "HF_PROVIDER"
BATCH_SIZE_SETTING = "EMBEDDINGS_BATCH_SIZE"
CONCURRENCY_SETTING = "EMBEDDINGS_CONCURRENCY"
TIMEOUT_SETTING = "EMBEDDINGS_TIMEOUT_SECONDS"
MAX_RETRY_SETTING = "EMBEDDINGS_MAX_RETRY_SECONDS"
TOKEN_BUDGET_SETTING = "CHUNK_TOKEN_BUDGET"


class EmbeddingAuthError(EmbeddingError):
    """No token, an invalid or revoked token, or a token without the Inference Providers permission."""


class EmbeddingCreditsExhausted(EmbeddingError):
    """402: the account has no credits left; the rest of the run makes no further calls."""


class EmbeddingModelUnavailable(EmbeddingError):
    """The model does not exist, is not served by the provider, or is not a sentence-embedding model."""


class EmbeddingRateLimited(EmbeddingError):
    retryable = True


class EmbeddingServiceUnavailable(EmbeddingError):
    """503/502/504/500: loading, overloaded or down; retried with backoff for a bounded time."""

    retryable = True


class EmbeddingTimeout(EmbeddingError):
    retryable = True


class EmbeddingConnectionError(EmbeddingError):
    retryable = True


class EmbeddingOffline(EmbeddingError):
    """``HF_HUB_OFFLINE`` blocks every request of huggingface_hub, loopback included."""


class EmbeddingBatchTooLarge(EmbeddingError):
    """The server refused the batch size: the caller splits the batch in halves and retries."""


class EmbeddingInputTooLong(EmbeddingError):
    """A text exceeds the model's input budget: it has to be re-chunked, retrying cannot help."""


class EmbeddingShapeError(EmbeddingError):
    """The service answered, but not with one vector of the expected size per text."""


class EmbeddingRequestError(EmbeddingError):
    """Any other refusal (4xx) we have no specific advice for."""


def with_retry_after(error: EmbeddingError, seconds: float | None) -> EmbeddingError:
    error.retry_after = seconds  # type: ignore[attr-defined]
    return error


def retry_after_of(error: BaseException) -> float | None:
    return getattr(error, "retry_after", None)


def gave_up(error: EmbeddingError, attempts: int, seconds: float) -> EmbeddingError:
    """The same error, saying that retries were exhausted."""
    plural = "s" if attempts != 1 else ""
    new = type(error)(
        f"{error.what} (gave up after {attempts} attempt{plural} in {seconds:.0f} s)", error.fix
    )
    return with_retry_after(new, retry_after_of(error))


@dataclass(frozen=True)
class Target:
    """Where the calls go, for messages: ``model X via provider P`` or ``endpoint URL``."""

    model: str
    provider: str
    endpoint_url: str | None
    secrets: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.endpoint_url:
            return f"endpoint {self.endpoint_url}"
        return f"model {self.model} via provider {self.provider}"

    @property
    def is_endpoint(self) -> bool:
        return bool(self.endpoint_url)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


# ---------------------------------------------------------------- messages for each situation


def no_token(target: Target) -> EmbeddingAuthError:
    return EmbeddingAuthError(
        f"No Hugging Face token is set for {target}",
        f"set {TOKEN_SETTING} to a fine-grained token with the {PERMISSION_LABEL} permission "
        f"(create one at {NEW_TOKEN_URL}, manage tokens at {TOKENS_URL}), "
        f"or set {ENDPOINT_SETTING} to use your own endpoint",
    )


def invalid_token(target: Target, status: int = 401) -> EmbeddingAuthError:
    if target.is_endpoint:
        return EmbeddingAuthError(
            f"{_cap(target)} rejected the API key ({status})",
            f"check {ENDPOINT_KEY_SETTING} (the endpoint's own key, not necessarily your Hugging Face token)",
        )
    return EmbeddingAuthError(
        f"Hugging Face rejected the token for {target} ({status}: invalid or revoked token)",
        f"check {TOKEN_SETTING}, or create a new fine-grained token with the {PERMISSION_LABEL} permission "
        f"at {TOKENS_URL}",
    )


def missing_permission(target: Target, status: int) -> EmbeddingAuthError:
    return EmbeddingAuthError(
        f"The Hugging Face token is not allowed to call Inference Providers for {target} ({status})",
        f"create a fine-grained token with the {PERMISSION_LABEL} permission at {TOKENS_URL} "
        f"and set it as {TOKEN_SETTING}",
    )


def credits_exhausted(target: Target) -> EmbeddingCreditsExhausted:
    if target.is_endpoint:
        return EmbeddingCreditsExhausted(
            f"{_cap(target)} answered 402 Payment Required; no more embedding calls are made in this run",
            "check the billing of the endpoint's account, then re-run",
        )
    return EmbeddingCreditsExhausted(
        f"The Hugging Face account has used up its Inference Providers credits (402 for {target}); "
        "no more embedding calls are made in this run",
        f"add credits or subscribe to PRO at {BILLING_URL}, or set {ENDPOINT_SETTING} "
        "to a self-hosted text-embeddings-inference endpoint",
    )


def model_not_served(target: Target, detail: str = "") -> EmbeddingModelUnavailable:
    if target.is_endpoint:
        return EmbeddingModelUnavailable(
            f"{_cap(target)} has no embedding route{_paren(detail)}",
            f"check {ENDPOINT_SETTING}: a text-embeddings-inference server's base URL (or its /embed route) "
            "or an Inference Endpoint URL",
        )
    return EmbeddingModelUnavailable(
        f"Model {target.model} is not deployed on provider {target.provider}{_paren(detail)}",
        f"pick a provider that serves it (https://huggingface.co/{target.model}) in {PROVIDER_SETTING}, "
        f"another model in {MODEL_SETTING}, or your own endpoint in {ENDPOINT_SETTING}",
    )


def no_provider(target: Target) -> EmbeddingModelUnavailable:
    return EmbeddingModelUnavailable(
        f"No inference provider serves model {target.model} (provider auto)",
        f"choose a model that Inference Providers serve in {MODEL_SETTING} "
        f"(https://huggingface.co/models?inference_provider=all&pipeline_tag=sentence-similarity), "
        f"or set {ENDPOINT_SETTING} to your own endpoint",
    )


def model_not_found(target: Target) -> EmbeddingModelUnavailable:
    return EmbeddingModelUnavailable(
        f"Model {target.model} does not exist on the Hugging Face Hub or is private",
        f"check {MODEL_SETTING} (for a private model, use a token that can read it)",
    )


def not_sentence_model(target: Target, detail: str) -> EmbeddingModelUnavailable:
    return EmbeddingModelUnavailable(
        f"Model {target.model} is not a sentence-embedding model{_paren(detail)}",
        f"choose a sentence-transformers model in {MODEL_SETTING}, "
        "e.g. sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
    )


def unsupported_provider(target: Target, detail: str) -> EmbeddingModelUnavailable:
    return EmbeddingModelUnavailable(
        f"Provider {target.provider} cannot compute embeddings for {target.model}{_paren(detail)}",
        f"set {PROVIDER_SETTING} to hf-inference or auto",
    )


def rate_limited(target: Target, retry_after: float | None) -> EmbeddingError:
    wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
    return with_retry_after(
        EmbeddingRateLimited(
            f"{_cap(target)} is rate limiting us (429{wait})",
            f"lower {CONCURRENCY_SETTING} or {BATCH_SIZE_SETTING}, or wait and re-run",
        ),
        retry_after,
    )


def unavailable(target: Target, status: int, detail: str, request_id: str | None) -> EmbeddingError:
    rid = f", request id {request_id}" if request_id else ""
    return EmbeddingServiceUnavailable(
        f"{_cap(target)} is unavailable ({status}{': ' + detail if detail else ''}{rid})",
        f"re-run later (the model may be loading or overloaded), or raise {MAX_RETRY_SETTING} to wait longer",
    )


def batch_too_large(target: Target, size: int, detail: str) -> EmbeddingBatchTooLarge:
    return EmbeddingBatchTooLarge(
        f"{_cap(target)} refused a batch of {size} text{'s' if size != 1 else ''}{_paren(detail)}",
        f"lower {BATCH_SIZE_SETTING}",
    )


def input_too_long(target: Target, detail: str) -> EmbeddingInputTooLong:
    return EmbeddingInputTooLong(
        f"A chunk exceeds the input budget of {target}{_paren(detail)}",
        f"lower {TOKEN_BUDGET_SETTING} so every chunk fits the model's limit, then re-run",
    )


def token_embeddings(target: Target, shape: tuple[int, ...]) -> EmbeddingShapeError:
    return EmbeddingShapeError(
        f"{_cap(target)} returned token embeddings of shape {shape} instead of one vector per text, "
        "so the model is not a sentence-embedding model",
        f"choose a sentence-transformers model in {MODEL_SETTING} "
        "(e.g. sentence-transformers/paraphrase-multilingual-mpnet-base-v2), "
        "or serve it with pooling (text-embeddings-inference /embed)",
    )


def wrong_shape(target: Target, shape: tuple[int, ...], expected: str) -> EmbeddingShapeError:
    return EmbeddingShapeError(
        f"{_cap(target)} returned an array of shape {shape}, expected {expected}",
        "check that the endpoint serves the configured model; "
        "a collection built with one model cannot take vectors of another",
    )


def bad_response(target: Target, detail: str) -> EmbeddingShapeError:
    return EmbeddingShapeError(
        f"{_cap(target)} answered with something that is not a list of vectors{_paren(detail)}",
        "check that the URL points at an embedding service",
    )


def timed_out(target: Target, timeout: float) -> EmbeddingError:
    return EmbeddingTimeout(
        f"{_cap(target)} did not answer within {timeout:g} s",
        f"check that the service is up, or raise {TIMEOUT_SETTING}",
    )


def cannot_connect(target: Target, url: str, reason: str) -> EmbeddingError:
    fix = (
        f"check {ENDPOINT_SETTING} and that the server is running"
        if target.is_endpoint
        else "check the network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT"
    )
    where = str(target) if target.is_endpoint else f"{url} for {target}"
    return EmbeddingConnectionError(f"Cannot reach {where}{_paren(reason)}", fix)


def offline(target: Target) -> EmbeddingOffline:
    return EmbeddingOffline(
        f"HF_HUB_OFFLINE is set, so huggingface_hub refuses every request, including those to {target}",
        f"unset HF_HUB_OFFLINE, use EMBEDDINGS_BACKEND=local with a model folder, "
        f"or leave {TOKEN_SETTING} and {ENDPOINT_SETTING} empty for BM25-only search",
    )


def request_refused(target: Target, status: int, detail: str) -> EmbeddingRequestError:
    return EmbeddingRequestError(
        f"{_cap(target)} refused the request ({status}{': ' + detail if detail else ''})",
        "check the embedding settings (model, provider, endpoint URL)",
    )


# ---------------------------------------------------------------- translation


def translate(
    error: BaseException, target: Target, *, batch_size: int, timeout: float, has_token: bool
) -> EmbeddingError:
    """Map an exception raised by ``InferenceClient.feature_extraction`` (or a Hub call) to our errors."""
    if isinstance(error, EmbeddingError):
        return error
    if isinstance(error, OfflineModeIsEnabled):
        return offline(target)
    if isinstance(error, (InferenceTimeoutError, httpx2.TimeoutException)):
        return timed_out(target, timeout)
    if isinstance(error, HfHubHTTPError) and getattr(error, "response", None) is not None:
        return _from_response(error, target, batch_size=batch_size, has_token=has_token)
    if isinstance(error, httpx2.TransportError):
        url = _url_of(error) or (target.endpoint_url or "the Hugging Face Hub")
        return cannot_connect(target, url, _short(type(error).__name__ + ": " + str(error), target))
    if isinstance(error, StopIteration):
        return no_provider(target)
    if isinstance(error, ValueError):
        text = str(error)
        if "inhomogeneous" in text or "setting an array element" in text:
            return bad_response(target, "vectors of different lengths: token embeddings?")
        if "doesn't support task" in text:
            return not_sentence_model(target, _short(text, target))
        if "No provider mapping" in text:
            return no_provider(target)
        if "not supported" in text and "Provider" in text:
            return unsupported_provider(target, _short(text, target))
        if isinstance(error, json.JSONDecodeError):
            return bad_response(target, "not JSON")
    raise error  # a bug: let it surface with its traceback


def _from_response(
    error: HfHubHTTPError, target: Target, *, batch_size: int, has_token: bool
) -> EmbeddingError:
    response = error.response
    status = response.status_code
    detail = _short(_server_message(error), target)
    lowered = detail.lower()
    is_model_info = "/api/models/" in str(getattr(response, "url", "") or "")
    if status in (401, 403):
        if target.is_endpoint:
            return invalid_token(target, status)
        if "sufficient permissions" in lowered or "inference providers" in lowered:
            return missing_permission(target, status)
        if not target.is_endpoint and not has_token:
            return no_token(target)
        if status == 401:
            return invalid_token(target, status)
        return missing_permission(target, status)
    if status == 402:
        return credits_exhausted(target)
    if status == 404 and is_model_info:
        return model_not_found(target)
    if status in (404, 400) and not (status == 400 and target.is_endpoint):
        return model_not_served(target, f"{status}{': ' + detail if detail else ''}")
    if status in (413, 422) or (status == 400 and target.is_endpoint):
        if "batch size" in lowered or status == 413:
            return batch_too_large(target, batch_size, detail or f"{status}")
        if "token" in lowered:
            return input_too_long(target, detail)
        return request_refused(target, status, detail)
    if status == 429:
        if "overloaded" in lowered:
            return with_retry_after(
                unavailable(target, status, detail, error.request_id), _retry_after(response)
            )
        return rate_limited(target, _retry_after(response))
    if status >= 500:
        return with_retry_after(unavailable(target, status, detail, error.request_id), _retry_after(response))
    return request_refused(target, status, detail)


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), else the ``RateLimit`` header's ``t=``."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return None


def _server_message(error: HfHubHTTPError) -> str:
    """The server's own words (``{"error": ...}`` body or X-Error-Message), without the client's framing."""
    if error.server_message:
        return error.server_message
    try:
        return error.response.text or ""
    except Exception:  # noqa: BLE001 - a streamed body that cannot be read: no detail
        return ""


def _url_of(error: httpx2.TransportError) -> str | None:
    try:
        request = error.request
    except RuntimeError:
        return None
    url = request.url
    return f"{url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}{url.path}"


def _short(text: str, target: Target, limit: int = 200) -> str:
    text = " ".join(target.redact(str(text)).split()).rstrip(". ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _paren(detail: str) -> str:
    return f" ({detail})" if detail else ""


def _cap(target: Target) -> str:
    text = str(target)
    return text[0].upper() + text[1:]
