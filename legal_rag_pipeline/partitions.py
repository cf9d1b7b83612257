"""One dynamic partition per source file, keyed by its path relative to the data folder."""

from collections.abc import Collection, Sequence
from pathlib import Path

import dagster as dg

from .registered import record_registered

source_files = dg.DynamicPartitionsDefinition(name="source_files")
# SQLite refuses statements with too many variables (dagster issue #16260): partitions are added in chunks.
PARTITION_BATCH = 500


def in_batches(keys: Sequence[str]) -> list[Sequence[str]]:
    """``keys`` in slices of at most PARTITION_BATCH."""
    return [keys[i : i + PARTITION_BATCH] for i in range(0, len(keys), PARTITION_BATCH)]


def register_files(instance: dg.DagsterInstance, keys: Collection[str], state_dir: Path, home: Path | None) -> list[str]:
    """Make the partitions the folder's files ``keys`` (new ones added in ``keys``' order, vanished ones deleted), record
    that in the state folder for the Dagster home ``home`` (``registered.py``; nothing recorded without
    one, or without files), and return the partitions in their order (the order runs' ranges use)."""
    existing = list(instance.get_dynamic_partitions(source_files.name))
    known, present = set(existing), set(keys)
    gone = [key for key in existing if key not in present]
    for key in gone:
        instance.delete_dynamic_partition(source_files.name, key)
    new = [key for key in keys if key not in known]
    for batch in in_batches(new):
        instance.add_dynamic_partitions(source_files.name, list(batch))
    if keys and home is not None:
        record_registered(state_dir, keys, home)
    return list(instance.get_dynamic_partitions(source_files.name)) if (gone or new) else existing
