"""Configuration from the environment and a `.env` file in the working directory.

Variable names are the old script's, so its users' `.env` keeps working. Nothing here reads a
secret's value into a place where it could be printed: resources receive secrets through
``dg.EnvVar`` (see definitions.py) and the CLI builds the same resources from these settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

from .errors import ConfigurationError
from .readers.limits import Limits
from .text.lexical import DEFAULT_LEXICAL_TEXT, DEFAULT_VARIANT, LEXICAL_TEXTS, VARIANTS, Lexical

DEFAULT_MODEL = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"
DEFAULT_COLLECTION = "legal_rag"
DEFAULT_STATE_DIR = ".legal_rag"


def load_env_file(path: Path | None = None) -> None:
    """Load `.env` from the working directory without overriding the real environment."""
    load_dotenv(path or Path.cwd() / ".env", override=False)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number", f"set {name} to an integer such as {default}") from None


def _env_optional_int(name: str) -> int | None:
    return None if _env(name) is None else _env_int(name, 0)


def _env_bool(name: str, default: bool | None) -> bool | None:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not true or false", f"set {name} to true or false")


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number", f"set {name} to a number such as {default}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: str
    state_dir: str
    qdrant_path: str
    qdrant_engine: str  # embedded engine: "edge" (Qdrant Edge) or "client" (qdrant-client local mode)
    qdrant_url: str | None
    qdrant_host: str | None
    qdrant_port: int
    collection_name: str
    embeddings_backend: str  # "auto" | "api" | "local" | "none"
    model: str
    provider: str
    endpoint_url: str | None
    batch_size: int
    concurrency: int
    timeout_seconds: float
    max_retry_seconds: float
    token_budget: int
    max_delete_fraction: float
    has_hf_token: bool
    has_endpoint_key: bool
    has_qdrant_api_key: bool
    # Qdrant server / cluster (ignored by the embedded mode).
    qdrant_https: bool | None = None
    qdrant_prefer_grpc: bool = False
    qdrant_grpc_port: int = 6334
    qdrant_timeout: int = 60
    qdrant_lock_wait_seconds: float = 120.0  # a run waiting for an embedded folder a search holds
    qdrant_shard_number: int | None = None
    qdrant_replication_factor: int | None = None
    qdrant_write_consistency_factor: int | None = None
    qdrant_on_disk: bool = False
    # Retries of embedding requests (429/503/timeouts): first backoff wait (doubles, with jitter) and attempts.
    backoff_seconds: float = 1.0
    max_attempts: int = 6
    # The mass-deletion guard (deletion.py): a run in which max_delete_fraction of the files or more vanish
    # at once is refused, and so is one removing more than this share of the points from that many files.
    max_delete_points_fraction: float = 0.5
    # What one source file may cost (readers/limits.py); from the environment only, never from the UI.
    limits: Limits = field(default_factory=Limits)
    # Hybrid search: weights of the bm25 and dense lists in the reciprocal-rank fusion (None: equal).
    fusion_weights: tuple[float, float] | None = None
    # Dagster's run history older than this many days is pruned (history.py); each file's latest status stays.
    history_days: float = 30.0
    # How bm25 vectors are made (LEXICAL_VARIANT, LEXICAL_TEXT); the store carries it to writer and search.
    lexical: Lexical = field(default_factory=Lexical)
    # Every sync compares the whole collection (LEGAL_RAG_VERIFY_SYNC), and the mass-deletion guard is
    # lifted for every run (LEGAL_RAG_CONFIRM_DELETE): both off unless set.
    verify_sync: bool = False
    confirm_delete: bool = False
    # The data-folder sensor's default status (DATA_FOLDER_SENSOR: running or stopped; the UI's wins).
    sensor_status: str = "running"
    # The nightly re-ingest (NIGHTLY_CRON, NIGHTLY_TIMEZONE; validated where the schedule is built).
    nightly_cron: str = "0 2 * * *"
    nightly_timezone: str = "Asia/Ho_Chi_Minh"
    # Seconds between two progress lines of one stage (PROGRESS_LOG_SECONDS).
    progress_log_seconds: float = 10.0

    @property
    def hf_token_var(self) -> str:
        """The name of the variable holding the Hugging Face token (never its value)."""
        return "HF_TOKEN" if _env("HF_TOKEN") else "HUGGINGFACE_API_KEY"

    @property
    def dense_backend(self) -> str:
        """Which embedder the run uses: "api", "local" or "none" (bm25-only)."""
        if self.embeddings_backend != "auto":
            return self.embeddings_backend
        return "api" if (self.has_hf_token or self.endpoint_url) else "none"

    @property
    def qdrant_server_mode(self) -> bool:
        return bool(self.qdrant_url or self.qdrant_host)


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", "./data")).expanduser()
    state_dir = Path(_env("LEGAL_RAG_STATE_DIR", DEFAULT_STATE_DIR)).expanduser()
    qdrant_path = Path(_env("QDRANT_PATH", str(state_dir / "qdrant"))).expanduser()
    backend = (_env("EMBEDDINGS_BACKEND", "auto") or "auto").lower()
    if backend not in {"auto", "api", "local", "none"}:
        raise ConfigurationError(
            f"EMBEDDINGS_BACKEND={backend!r} is not known", "use auto, api, local or none"
        )
    engine = (_env("QDRANT_ENGINE", "edge") or "edge").lower()
    if engine not in {"edge", "client"}:
        raise ConfigurationError(
            f"QDRANT_ENGINE={engine!r} is not known",
            "use edge (Qdrant Edge, the default) or client (qdrant-client's local mode)",
        )
    nightly = load_nightly()
    settings = Settings(
        data_dir=str(data_dir),
        state_dir=str(state_dir),
        qdrant_path=str(qdrant_path),
        qdrant_engine=engine,
        qdrant_url=_env("QDRANT_URL"),
        qdrant_host=_env("QDRANT_HOST"),
        qdrant_port=_env_int("QDRANT_PORT", 6333),
        collection_name=_env("COLLECTION_NAME", DEFAULT_COLLECTION),
        embeddings_backend=backend,
        model=_env("EMBEDDINGS_MODEL_NAME", DEFAULT_MODEL),
        provider=_env("HF_PROVIDER", "hf-inference"),
        endpoint_url=_env("EMBEDDINGS_ENDPOINT_URL"),
        batch_size=_env_int("EMBEDDINGS_BATCH_SIZE", 32),
        concurrency=_env_int("EMBEDDINGS_CONCURRENCY", 4),
        timeout_seconds=_env_float("EMBEDDINGS_TIMEOUT_SECONDS", 60.0),
        max_retry_seconds=_env_float("EMBEDDINGS_MAX_RETRY_SECONDS", 300.0),
        token_budget=_env_int("CHUNK_TOKEN_BUDGET", 128),
        max_delete_fraction=_env_float("MAX_DELETE_FRACTION", 0.5),
        max_delete_points_fraction=_env_float("MAX_DELETE_POINTS_FRACTION", 0.5),
        has_hf_token=bool(_env("HF_TOKEN") or _env("HUGGINGFACE_API_KEY")),
        has_endpoint_key=bool(_env("EMBEDDINGS_ENDPOINT_API_KEY")),
        has_qdrant_api_key=bool(_env("QDRANT_API_KEY")),
        qdrant_https=_env_bool("QDRANT_HTTPS", None),
        qdrant_prefer_grpc=bool(_env_bool("QDRANT_PREFER_GRPC", False)),
        qdrant_grpc_port=_env_int("QDRANT_GRPC_PORT", 6334),
        qdrant_timeout=_env_int("QDRANT_TIMEOUT", 60),
        qdrant_lock_wait_seconds=_env_float("QDRANT_LOCK_WAIT_SECONDS", 120.0),
        qdrant_shard_number=_env_optional_int("QDRANT_SHARD_NUMBER"),
        qdrant_replication_factor=_env_optional_int("QDRANT_REPLICATION_FACTOR"),
        qdrant_write_consistency_factor=_env_optional_int("QDRANT_WRITE_CONSISTENCY_FACTOR"),
        qdrant_on_disk=bool(_env_bool("QDRANT_ON_DISK", False)),
        backoff_seconds=_env_float("EMBEDDINGS_BACKOFF_SECONDS", 1.0),
        max_attempts=_env_int("EMBEDDINGS_MAX_ATTEMPTS", 6),
        limits=load_limits(),
        fusion_weights=_env_weights("FUSION_WEIGHTS"),
        history_days=_env_float("DAGSTER_HISTORY_DAYS", 30.0),
        lexical=load_lexical(),
        verify_sync=env_flag("LEGAL_RAG_VERIFY_SYNC"),
        confirm_delete=env_flag("LEGAL_RAG_CONFIRM_DELETE"),
        sensor_status=load_sensor_status(),
        nightly_cron=nightly[0],
        nightly_timezone=nightly[1],
        progress_log_seconds=load_progress_seconds(),
    )
    if not settings.qdrant_server_mode and _inside(qdrant_path, data_dir):
        raise ConfigurationError(
            f"QDRANT_PATH {qdrant_path} is inside DATA_DIR {data_dir}",
            "point QDRANT_PATH at a folder outside the data folder, or the database would be ingested as data",
        )
    if settings.history_days < 0:
        raise ConfigurationError(
            f"DAGSTER_HISTORY_DAYS={settings.history_days:g} is negative", "set it to a number of days such as 30"
        )
    if settings.batch_size < 1 or settings.concurrency < 1:
        raise ConfigurationError(
            "EMBEDDINGS_BATCH_SIZE and EMBEDDINGS_CONCURRENCY must be at least 1", "set them to positive integers"
        )
    return settings


def _env_weights(name: str) -> tuple[float, float] | None:
    """"1,2" → (1.0, 2.0): the bm25 and dense weights of the hybrid fusion; unset → None."""
    raw = _env(name)
    if raw is None:
        return None
    try:
        weights = tuple(float(x) for x in raw.replace(";", ",").split(","))
    except ValueError:
        weights = ()
    if len(weights) != 2 or min(weights) < 0 or max(weights) <= 0:
        raise ConfigurationError(
            f"{name}={raw!r} is not two weights", f"set {name} to the bm25 and dense weights, e.g. 1,2 (or unset it)"
        )
    return weights  # type: ignore[return-value]


def env_flag(name: str) -> bool:
    """A switch that is off unless set to 1/true/yes/on (LEGAL_RAG_VERIFY_SYNC, LEGAL_RAG_CONFIRM_DELETE)."""
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def load_lexical() -> Lexical:
    """LEXICAL_VARIANT (the tokeniser) and LEXICAL_TEXT (what of a chunk feeds bm25), validated."""
    variant = (_env("LEXICAL_VARIANT") or DEFAULT_VARIANT).lower()
    if variant not in VARIANTS:
        raise ConfigurationError(
            f"LEXICAL_VARIANT={variant!r} is not a lexical variant",
            f"set it to one of {', '.join(VARIANTS)} (or unset it for {DEFAULT_VARIANT})",
        )
    text = (_env("LEXICAL_TEXT") or DEFAULT_LEXICAL_TEXT).lower()
    if text not in LEXICAL_TEXTS:
        raise ConfigurationError(f"LEXICAL_TEXT={text!r} is not known", f"use one of {', '.join(LEXICAL_TEXTS)}")
    return Lexical(variant, text)


def load_sensor_status() -> str:
    """DATA_FOLDER_SENSOR: running (default) or stopped."""
    value = (_env("DATA_FOLDER_SENSOR") or "running").lower()
    if value not in {"running", "stopped"}:
        raise ConfigurationError(f"DATA_FOLDER_SENSOR={value!r} is not known", "use running or stopped")
    return value


def load_progress_seconds() -> float:
    """PROGRESS_LOG_SECONDS (default 10; 0: a line at every step of a stage)."""
    try:
        return max(0.0, _env_float("PROGRESS_LOG_SECONDS", Settings.progress_log_seconds))
    except ConfigurationError:
        return Settings.progress_log_seconds


def load_nightly() -> tuple[str, str]:
    """(NIGHTLY_CRON, NIGHTLY_TIMEZONE), unvalidated (automation/schedules.py checks them)."""
    return _env("NIGHTLY_CRON", Settings.nightly_cron), _env("NIGHTLY_TIMEZONE", Settings.nightly_timezone)


def load_limits() -> Limits:
    """The per-file limits: MAX_FILE_BYTES, MAX_UNCOMPRESSED_BYTES, MAX_COMPRESSION_RATIO, MAX_SHEET_ROWS,
    MAX_SHEET_CELLS, MAX_PDF_PAGES, MAX_TEXT_CHARS, READ_TIMEOUT_SECONDS, READ_MEMORY_BYTES."""
    d = Limits()
    return Limits(
        max_file_bytes=_env_int("MAX_FILE_BYTES", d.max_file_bytes),
        max_uncompressed_bytes=_env_int("MAX_UNCOMPRESSED_BYTES", d.max_uncompressed_bytes),
        max_compression_ratio=_env_float("MAX_COMPRESSION_RATIO", d.max_compression_ratio),
        max_sheet_rows=_env_int("MAX_SHEET_ROWS", d.max_sheet_rows),
        max_sheet_cells=_env_int("MAX_SHEET_CELLS", d.max_sheet_cells),
        max_pdf_pages=_env_int("MAX_PDF_PAGES", d.max_pdf_pages),
        max_text_chars=_env_int("MAX_TEXT_CHARS", d.max_text_chars),
        read_timeout_seconds=_env_float("READ_TIMEOUT_SECONDS", d.read_timeout_seconds),
        max_reader_memory_bytes=_env_int("READ_MEMORY_BYTES", d.max_reader_memory_bytes),
    )


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False
