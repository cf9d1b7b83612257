"""What `legal-rag ingest` last registered in Dagster, kept in the state folder, so that a run with
nothing to do needs no Dagster.

A `legal-rag ingest` with nothing changed spent 2 of its 2.6 s importing Dagster and opening the
instance, only to find the data folder's files already listed as partitions. After registering them,
``record_registered`` writes the instance's home and a digest of the keys; ``registered_already``
says whether the same keys were registered in the same home. Not noticed: a home whose database was
replaced under the same path, or a partition deleted by hand in the UI; the next change, or
`legal-rag ingest --all`, registers the keys again.

The nightly tick keeps the same record for its instance's home: a tick that finds the same keys
does not list the 70,000 partitions again, and lists them only when it launches a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

DEFAULT_HOME = ".dagster_home"
REGISTERED_FILE = "dagster_partitions.json"


def dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home when unset (``instance.ensure_dagster_home`` creates it)."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / DEFAULT_HOME).resolve()


def _record(keys: Iterable[str], home: Path) -> dict[str, str]:
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()
    return {"home": str(home.resolve()), "keys": digest}


def record_registered(state_dir: Path, keys: Iterable[str], home: Path | None = None) -> None:
    """After the partitions were made ``keys`` in the Dagster home ``home`` (the current one by default;
    a state folder that does not exist yet is left alone: nothing can be in sync without one)."""
    if not state_dir.is_dir():
        return
    path = state_dir / REGISTERED_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_record(keys, home or dagster_home())), encoding="utf-8")
    tmp.replace(path)


def registered_already(state_dir: Path, keys: Iterable[str], home: Path | None = None) -> bool:
    """Whether ``keys`` are the partitions last registered in the Dagster home ``home`` (the current one
    by default), by this state folder. A home without ``dagster.yaml`` (a new one, or an instance
    that is not kept on disk) never is."""
    home = home or dagster_home()
    if not (home / "dagster.yaml").is_file():
        return False
    try:
        recorded = json.loads((state_dir / REGISTERED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _record(keys, home)
