"""A loopback HTTP server that speaks the embedding APIs our pipeline calls (a test helper, not a test).

One server answers both ways of reaching a model:

* **endpoint path** (Inference Endpoint / self-hosted text-embeddings-inference): ``POST /embed`` and
  ``POST /`` with ``{"inputs": [...]}``, ``GET /info``, ``GET /health``;
* **provider path** (Hugging Face Inference Providers through ``huggingface_hub``):
  ``GET /api/models/<org>/<name>[?expand=inferenceProviderMapping]``,
  ``POST /hf-inference/models/<org>/<name>/pipeline/feature-extraction``, ``GET /api/whoami-v2``,
  and ``GET /api/agent-harnesses`` (always 404: a JSON list there would be cached by the client for 24 h).

Vectors are deterministic and **not** normalised: the sum of one pseudo-random vector per word (seeded by
the word's sha256) plus a small text-specific part, so texts that share words are similar and a query
made of a document's words ranks that document high.

Failures are injected per request (``fail_next``), persistently (``fail_always``), or by mode
(``shape``, ``hang_seconds``, ``max_batch_size``, ``max_input_tokens``, ``tokens``); everything the
server receives is recorded in ``requests``.

Point ``huggingface_hub`` at the server with :func:`huggingface_hub_pointed_at` (the
``embeddings_server`` fixture in ``conftest.py`` does it for you)::

    with EmbeddingServer(dim=8) as server, huggingface_hub_pointed_at(server.url, tmp_path):
        HuggingFaceEmbedder(endpoint_url=server.url).embed(["a"])         # endpoint path
        HuggingFaceEmbedder(token="hf_test").embed(["a"])                 # provider path
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson

DEFAULT_MODEL = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"
INFERENCE_PROVIDERS_PERMISSION = "inference.serverless.write"

#: Route names used by ``fail_next``/``fail_always`` filters and by ``count()``.
EMBED_ROUTES = ("embed", "provider")  # TEI / endpoint POST and Inference Providers POST

_WORD = re.compile(r"\w+", re.UNICODE)
_PROVIDER_PATH = re.compile(r"^/hf-inference/models/(?P<model>[^/]+/[^/]+)/pipeline/(?P<task>[\w-]+)$")
_MODEL_INFO_PATH = re.compile(r"^/api/models/(?P<model>[^/]+/[^/]+)$")


@dataclass
class Reply:
    """One scripted answer: status, body (dict/list → JSON, str/bytes as is) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    routes: tuple[str, ...] = EMBED_ROUTES

    def matches(self, route: str) -> bool:
        return route in self.routes


@dataclass
class FakeToken:
    """What ``/api/whoami-v2`` says about a token; ``role`` is "fineGrained", "read" or "write"."""

    role: str = "fineGrained"
    permissions: tuple[str, ...] = (INFERENCE_PROVIDERS_PERMISSION,)
    user: str = "tester"

    def can_call_inference_providers(self) -> bool:
        return self.role != "fineGrained" or INFERENCE_PROVIDERS_PERMISSION in self.permissions


@dataclass
class ModelSpec:
    """A model as the fake Hub knows it; ``served`` = deployed on the hf-inference provider."""

    pipeline_tag: str = "sentence-similarity"
    tags: tuple[str, ...] = ("sentence-transformers", "feature-extraction", "sentence-similarity")
    served: bool = True


@dataclass
class RecordedRequest:
    method: str
    path: str
    route: str
    headers: dict[str, str]  # lower-cased names
    texts: list[str] | None = None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


# ---------------------------------------------------------------- ready-made failures (TEI / Hub wording)


def loading(model: str = DEFAULT_MODEL, estimated_time: float = 1.0) -> Reply:
    return Reply(503, {"error": f"Model {model} is currently loading", "estimated_time": estimated_time})


def overloaded(status: int = 429) -> Reply:
    """TEI's back-pressure answer (429 "overloaded" without Retry-After) or a 502/504 from a proxy."""
    return Reply(status, {"error": "Model is overloaded", "error_type": "overloaded"})


def rate_limited(retry_after: str | None = None, ratelimit_t: int | None = None) -> Reply:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if ratelimit_t is not None:
        headers["RateLimit"] = f'"api";r=0;t={ratelimit_t}'
        headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
    return Reply(429, {"error": "Rate limit reached. You reached the rate limit for requests."}, headers)


def credits_exhausted() -> Reply:
    return Reply(
        402,
        {
            "error": "You have exceeded your monthly included credits for Inference Providers. "
            "Subscribe to PRO to get 20x more monthly included credits."
        },
    )


def not_served(model: str = DEFAULT_MODEL) -> Reply:
    return Reply(404, {"error": f"Model {model} is not supported HF inference api"})


def invalid_credentials() -> Reply:
    return Reply(
        401,
        {"error": "Invalid credentials in Authorization header"},
        {"X-Error-Message": "Invalid credentials in Authorization header"},
    )


def missing_permission(user: str = "tester") -> Reply:
    return Reply(
        403,
        {
            "error": "This authentication method does not have sufficient permissions to call "
            f"Inference Providers on behalf of user {user}"
        },
    )


# ---------------------------------------------------------------- vectors


class _Vectors:
    """Deterministic, un-normalised vectors: Σ word vectors + 0.1 · text vector, scaled by 2 + #words."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()  # _row holds it while _seeded takes it
        self._rows: dict[str, int] = {}  # word -> its row in _words
        self._words = np.zeros((1024, dim))

    def _seeded(self, key: str) -> np.ndarray:
        vec = self._cache.get(key)  # a dict read needs no lock
        if vec is not None:
            return vec
        with self._lock:
            vec = self._cache.get(key)
            if vec is None:
                seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
                vec = np.random.default_rng(seed).standard_normal(self.dim)
                if len(self._cache) < 100_000:
                    self._cache[key] = vec
        return vec

    def __call__(self, text: str) -> list[float]:
        words = [w.lower() for w in _WORD.findall(text)]
        vec = 0.1 * self._seeded("text:" + text)
        if words:  # one summation over the words' rows (a benchmark's server answers 69,000 texts)
            rows = [self._row(word) for word in words]  # before _words is read: it may grow meanwhile
            vec = vec + self._words[rows].sum(axis=0)
        vec = vec / (np.linalg.norm(vec) or 1.0) * (2.0 + len(words))
        return vec.tolist()

    def _row(self, word: str) -> int:
        """The row of ``word``'s vector in ``_words`` (added on first sight)."""
        row = self._rows.get(word)
        if row is None:
            with self._lock:
                row = self._rows.get(word)
                if row is None:
                    row = len(self._rows)
                    if row == len(self._words):
                        self._words = np.concatenate([self._words, np.zeros_like(self._words)])
                    self._words[row] = self._seeded("word:" + word)
                    self._rows[word] = row
        return row


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per word, plus [CLS] and [SEP]."""
    return len(_WORD.findall(text)) + 2


# ---------------------------------------------------------------- server


class EmbeddingServer:
    """ThreadingHTTPServer on 127.0.0.1 (free port). Attributes may be changed while it runs.

    Args:
        dim: vector size.
        model_id: what ``/info`` reports (TEI); the Hub side knows ``models``.
        latency: seconds slept per embedding request; ``latency_per_text`` more per text.
        max_batch_size: above it, TEI's 422 "batch size N > maximum allowed batch size M"; also
            reported by ``/info`` as ``max_client_batch_size`` (None → /info says 32, no check).
        max_input_tokens: a text with more (fake) tokens gets TEI's 422 "must have less than N tokens".
        shape: None (correct), "tokens" (n, 4, dim) token embeddings, "wrong_dim" (n, dim - 1),
            "missing_row" (n - 1, dim), "flat" (dim,) for the whole batch.
        hang_seconds: sleep that long before answering embedding requests (ended early by stop()).
        info_status: status of ``GET /info`` (e.g. 404 for an endpoint that has no /info).
    """

    def __init__(
        self,
        *,
        dim: int = 768,
        model_id: str = DEFAULT_MODEL,
        latency: float = 0.0,
        latency_per_text: float = 0.0,
        max_batch_size: int | None = None,
        max_input_tokens: int | None = None,
        shape: str | None = None,
        hang_seconds: float = 0.0,
        info_status: int = 200,
    ) -> None:
        self.model_id = model_id
        self.latency = latency
        self.latency_per_text = latency_per_text
        self.max_batch_size = max_batch_size
        self.max_input_tokens = max_input_tokens
        self.shape = shape
        self.hang_seconds = hang_seconds
        self.info_status = info_status
        self.models: dict[str, ModelSpec] = {model_id: ModelSpec()}
        #: Known tokens; empty → any non-empty bearer token is valid with full permissions.
        self.tokens: dict[str, FakeToken] = {}
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._dim = dim
        self._vectors = _Vectors(dim)
        self._failures: deque[Reply] = deque()
        self._always: Reply | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration

    @property
    def dim(self) -> int:
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value
        self._vectors = _Vectors(value)

    def fail_next(self, *replies: Reply) -> None:
        """Queue failures; each is consumed by the next request on one of its ``routes``."""
        with self._lock:
            self._failures.extend(replies)

    def fail_always(self, reply: Reply | None) -> None:
        """Answer every request on the reply's routes with it (None to stop)."""
        self._always = reply

    def add_token(self, token: str, **spec: Any) -> None:
        self.tokens[token] = FakeToken(**spec)

    def vector(self, text: str) -> np.ndarray:
        """The un-normalised vector the server returns for ``text``."""
        return np.asarray(self._vectors(text), dtype=np.float32)

    # -- lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        server = self

        class Handler(_Handler):
            owner = server

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="loopback", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- records

    def count(self, route: str | None = None) -> int:
        """Requests received on ``route`` ("embed", "provider", "info", "health", "model_info", "whoami",
        "agent_harnesses", "unknown"), or on the embedding routes when None."""
        routes = EMBED_ROUTES if route is None else (route,)
        with self._lock:
            return sum(1 for r in self.requests if r.route in routes)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r.route for r in self.requests)

    def batch_sizes(self) -> list[int]:
        """Number of texts of each embedding request, in arrival order."""
        with self._lock:
            return [len(r.texts) for r in self.requests if r.texts is not None]

    def authorizations(self, route: str | None = None) -> list[str | None]:
        """Authorization header of each request on ``route`` (all routes when None)."""
        with self._lock:
            return [r.authorization for r in self.requests if route is None or r.route == route]

    def all_headers_text(self) -> str:
        """Every recorded header as one string, to assert a secret never reached this server."""
        with self._lock:
            return "\n".join(f"{k}: {v}" for r in self.requests for k, v in r.headers.items())

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    # -- used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _scripted(self, route: str) -> Reply | None:
        with self._lock:
            for i, reply in enumerate(self._failures):
                if reply.matches(route):
                    del self._failures[i]
                    return reply
        if self._always is not None and self._always.matches(route):
            return self._always
        return None

    @contextmanager
    def _in_flight_request(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: EmbeddingServer
    protocol_version = "HTTP/1.1"
    # An answer leaves at once, as a real server's does. Without it the body of a short answer on a kept
    # connection (GET /health, GET /info) waited for the client's delayed acknowledgement of the headers
    # (Nagle's algorithm): 40-44 ms each, which no configured latency asked for.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            # orjson: the same numbers as json.dumps, 20x faster; a benchmark's server spent 18 ms of its
            # GIL on each 32-vector answer, and that, not the pipeline, bounded the requests in flight
            data = orjson.dumps(body)
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (str, bytes)):
            headers.setdefault("Content-Type", "application/json")
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests): fine
            self.close_connection = True

    def _send_reply(self, reply: Reply) -> None:
        self._send(reply.status, reply.body, reply.headers)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[7:].strip() or None if value.lower().startswith("bearer ") else None

    def _route(self, method: str, path: str) -> str:
        if method == "POST" and path in ("/", "/embed"):
            return "embed"
        if method == "POST" and _PROVIDER_PATH.match(path):
            return "provider"
        if method == "GET":
            if path == "/info":
                return "info"
            if path == "/health":
                return "health"
            if path == "/api/whoami-v2":
                return "whoami"
            if path == "/api/agent-harnesses":
                return "agent_harnesses"
            if _MODEL_INFO_PATH.match(path):
                return "model_info"
        return "unknown"

    def _handle(self, method: str) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        route = self._route(method, split.path)
        body = self._read_json() if method == "POST" else None
        texts = None
        if route in EMBED_ROUTES and isinstance(body, dict):
            inputs = body.get("inputs")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner._record(RecordedRequest(method, split.path, route, headers, texts))

        if route in EMBED_ROUTES:
            with owner._in_flight_request():
                self._embed(route, split.path, texts, body)
            return
        scripted = owner._scripted(route)
        if scripted is not None:
            return self._send_reply(scripted)
        if route == "health":
            return self._send(200, "ok")
        if route == "info":
            return self._info()
        if route == "whoami":
            return self._whoami()
        if route == "model_info":
            return self._model_info(_MODEL_INFO_PATH.match(split.path)["model"], parse_qs(split.query))
        return self._send(404, {"error": "Not Found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- routes

    def _info(self) -> None:
        owner = self.owner
        if owner.info_status != 200:
            return self._send(owner.info_status, {"error": "Not Found"})
        self._send(
            200,
            {
                "model_id": owner.model_id,
                "model_sha": None,
                "model_dtype": "float32",
                "model_type": {"embedding": {"pooling": "mean"}},
                "max_concurrent_requests": 512,
                "max_input_length": owner.max_input_tokens or 512,
                "max_batch_tokens": 16384,
                "max_batch_requests": None,
                "max_client_batch_size": owner.max_batch_size or 32,
                "tokenization_workers": 2,
                "version": "1.5.0",
            },
        )

    def _token_error(self, token: str | None) -> Reply | None:
        """The Hub's answer to a missing / unknown / under-privileged token, or None when it is fine."""
        owner = self.owner
        if token is None:
            return Reply(401, {"error": "Invalid username or password."})
        if owner.tokens and token not in owner.tokens:
            return invalid_credentials()
        return None

    def _whoami(self) -> None:
        token = self._bearer()
        error = self._token_error(token)
        if error is not None:
            return self._send_reply(error)
        spec = self.owner.tokens.get(token) or FakeToken()
        access_token: dict[str, Any] = {
            "displayName": "legal-rag",
            "role": spec.role,
            "createdAt": "2026-01-01",
        }
        if spec.role == "fineGrained":
            access_token["fineGrained"] = {
                "canReadGatedRepos": False,
                "global": list(spec.permissions),
                "scoped": [],
            }
        self._send(
            200,
            {
                "type": "user",
                "id": "0123456789abcdef",
                "name": spec.user,
                "fullname": "Test User",
                "isPro": False,
                "canPay": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": access_token},
            },
        )

    def _model_info(self, model: str, query: dict[str, list[str]]) -> None:
        owner = self.owner
        token = self._bearer()
        if token is not None and owner.tokens and token not in owner.tokens:
            return self._send_reply(invalid_credentials())
        spec = owner.models.get(model)
        if spec is None:
            return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        info: dict[str, Any] = {
            "_id": hashlib.sha1(model.encode()).hexdigest()[:24],
            "id": model,
            "modelId": model,
            "pipeline_tag": spec.pipeline_tag,
            "tags": list(spec.tags),
            "library_name": "sentence-transformers",
            "private": False,
        }
        if "inferenceProviderMapping" in ",".join(query.get("expand", []) + query.get("expand[]", [])):
            info["inferenceProviderMapping"] = (
                {"hf-inference": {"status": "live", "providerId": model, "task": "feature-extraction"}}
                if spec.served
                else {}
            )
        self._send(200, info)

    def _embed(self, route: str, path: str, texts: list[str] | None, body: Any) -> None:
        owner = self.owner
        if owner.hang_seconds:
            owner._sleep(owner.hang_seconds)
        scripted = owner._scripted(route)
        if scripted is not None:
            return self._send_reply(scripted)
        if route == "provider":
            error = self._token_error(self._bearer())
            if error is None:
                spec = owner.tokens.get(self._bearer() or "")
                if spec is not None and not spec.can_call_inference_providers():
                    error = missing_permission(spec.user)
            if error is not None:
                return self._send_reply(error)
            model = _PROVIDER_PATH.match(path)["model"]
            model_spec = owner.models.get(model)
            if model_spec is None or not model_spec.served:
                return self._send_reply(not_served(model))
        if texts is None:
            return self._send(
                422, {"error": "Failed to deserialize the JSON body", "error_type": "Validation"}
            )
        # the answer leaves ``latency`` + ``latency_per_text`` a text after the request came in, its
        # own work (the vectors, the checks) inside that time as a real server's is: computed after
        # the wait, it added 5-8 ms of this process's lock to each 32-text answer of a benchmark
        deadline = time.monotonic() + owner.latency + owner.latency_per_text * len(texts)
        refusal = None
        if owner.max_batch_size is not None and len(texts) > owner.max_batch_size:
            refusal = f"batch size {len(texts)} > maximum allowed batch size {owner.max_batch_size}"
        elif owner.max_input_tokens is not None:
            too_long = next((t for t in texts if count_tokens(t) > owner.max_input_tokens), None)
            if too_long is not None:
                refusal = (f"Input validation error: `inputs` must have less than {owner.max_input_tokens} "
                           f"tokens. Given: {count_tokens(too_long)}")
        if refusal:
            owner._sleep(deadline - time.monotonic())
            return self._send(422, {"error": refusal, "error_type": "Validation"})
        vectors = [owner._vectors(text) for text in texts]
        if owner.shape == "tokens":
            out: Any = [[[x * (1 + t / 10) for x in v] for t in range(4)] for v in vectors]
        elif owner.shape == "wrong_dim":
            out = [v[:-1] for v in vectors]
        elif owner.shape == "missing_row":
            out = vectors[:-1]
        elif owner.shape == "flat":
            out = vectors[0]
        else:
            out = vectors
        data = orjson.dumps(out)
        owner._sleep(deadline - time.monotonic())
        self._send(200, data, {"Content-Type": "application/json"})


# ---------------------------------------------------------------- pointing huggingface_hub at the server

_ENV_TO_CLEAR = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_API_KEY",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


@contextmanager
def huggingface_hub_pointed_at(url: str, hf_home: str | os.PathLike[str]) -> Iterator[None]:
    """Send every Hub and Inference-Providers request of ``huggingface_hub`` to ``url``; undo on exit.

    ``huggingface_hub`` reads ``HF_ENDPOINT``/``HF_HOME`` into constants at import time and builds the
    hf-inference provider helpers (with the router URL baked in) at import time, so setting the
    environment is not enough: the constants, the helpers' ``base_url`` and the lru caches of model
    look-ups are patched too. Machine tokens (``HF_TOKEN``, a token file) and offline flags are hidden
    so a test sees only the token it passes.
    """
    from huggingface_hub import constants
    from huggingface_hub.inference._providers import PROVIDERS, _common, hf_inference
    from huggingface_hub.utils import _detect_agent

    hf_home = Path(hf_home)
    hf_home.mkdir(parents=True, exist_ok=True)
    url = url.rstrip("/")
    saved_env = {name: os.environ.get(name) for name in (*_ENV_TO_CLEAR, "HF_ENDPOINT", "HF_HOME")}
    constant_values = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(hf_home),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
        "HF_HUB_OFFLINE": False,
    }
    saved_constants = {name: getattr(constants, name) for name in constant_values}
    helpers = [
        h
        for task, h in PROVIDERS["hf-inference"].items()
        if task in ("feature-extraction", "sentence-similarity")
    ]
    saved_base_urls = [h.base_url for h in helpers]
    saved_registry = _detect_agent._registry

    def clear_caches() -> None:
        hf_inference._check_supported_task.cache_clear()
        hf_inference._fetch_recommended_models.cache_clear()
        _common._fetch_inference_provider_mapping.cache_clear()

    for name in _ENV_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ["HF_ENDPOINT"] = url
    os.environ["HF_HOME"] = str(hf_home)
    for name, value in constant_values.items():
        setattr(constants, name, value)
    for helper in helpers:
        helper.base_url = f"{url}/hf-inference"
    _detect_agent._registry = _detect_agent._EMPTY_REGISTRY
    clear_caches()
    try:
        yield
    finally:
        clear_caches()
        _detect_agent._registry = saved_registry
        for helper, base_url in zip(helpers, saved_base_urls, strict=True):
            helper.base_url = base_url
        for name, value in saved_constants.items():
            setattr(constants, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def texts_sharing_words(n: int, prefix: str = "Điều") -> Sequence[str]:
    """``n`` distinct short Vietnamese-looking texts, handy as a batch."""
    return [f"{prefix} {i}. Quy định về nội thủy và lãnh hải số {i}" for i in range(n)]
