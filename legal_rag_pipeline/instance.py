"""The Dagster instance the CLI records its runs in (the same one `dagster dev` shows)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

TEMPLATE = Path(__file__).parent / "instance_config" / "dagster.yaml"
DEFAULT_HOME = ".dagster_home"
WRITER_POOL = "qdrant_writer"


def ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or ./.dagster_home when unset; give a new one the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATE, config)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    set_pool_limit(instance)
    return instance


def set_pool_limit(instance: dg.DagsterInstance, limit: int = 1) -> None:
    """Writers to the collection never overlap: the pool's limit is set explicitly, not defaulted."""
    storage = instance.event_log_storage
    try:
        if storage.get_concurrency_info(WRITER_POOL).slot_count != limit:
            storage.set_concurrency_slots(WRITER_POOL, limit)
    except NotImplementedError:  # storages without pools (in-memory test instances)
        pass
