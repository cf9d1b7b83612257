"""The mass-deletion guard: a folder that went away must not empty the collection, a person deleting a
file must not need a flag.

It counts files, not points. A missing mount, an emptied folder or half of a folder unmounted make
many *files* vanish at once; one file a person deleted on purpose is one file, however many points
it held (the Civil Code is 1,344 of the sample's 1,369 points). So a run is refused when:

1. the data folder is missing or has no files while the collection holds points;
2. ``max_file_fraction`` (MAX_DELETE_FRACTION, half by default) or more of the files the collection
   holds vanish in one go;
3. it would remove more than ``max_point_fraction`` (MAX_DELETE_POINTS_FRACTION) of the points *and*
   ``max_file_fraction`` or more of the files lose points (vanished or shrunk: a reader that suddenly
   yields little from every file).

One file vanishing or shrinking never trips rules 2 and 3, whatever its size (so one of two files
may go). The refusal names
how many files vanished, the first few, and how to confirm. Plain functions: ``ingest.sync_stage``
(ingest runs, the prune job the sensor starts) and ``rebuild.rebuild`` call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MassDeletionRefused

NAMED = 5  # vanished files named in the message

INGEST_CONFIRM = (
    "if that is intended, run again with `legal-rag ingest --confirm-delete` (or set confirm_mass_deletion: true "
    "in the qdrant_collection config in the launchpad)"
)
REBUILD_CONFIRM = "if that is intended, run again with `legal-rag rebuild --confirm-delete`"


@dataclass(frozen=True)
class DeletionLimits:
    max_file_fraction: float = 0.5  # MAX_DELETE_FRACTION: this share of the files vanishing at once is refused
    max_point_fraction: float = 0.5  # MAX_DELETE_POINTS_FRACTION: with the files' share, of the points


@dataclass
class Deletion:
    """What a run would remove from the collection."""

    files_held: int  # files with points in the collection before the run
    points_held: int
    vanished: list[str] = field(default_factory=list)  # files gone from the folder, with points
    shrunk: list[str] = field(default_factory=list)  # files still there that lose points
    points_removed: int = 0  # net: points deleted minus none added back for the same file
    folder_empty: bool = False  # the data folder is missing or has no file to ingest


def _named(files: Sequence[str]) -> str:
    shown = ", ".join(sorted(files)[:NAMED])
    return shown + (f" and {len(files) - NAMED} more" if len(files) > NAMED else "")


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "all"


def check_deletion(
    deletion: Deletion,
    limits: DeletionLimits,
    *,
    collection: str,
    data_dir: Path | str | None,
    confirm: str = INGEST_CONFIRM,
) -> None:
    """Raise MassDeletionRefused when the run removes what a vanished folder would (see the module)."""
    d = deletion
    if not d.points_held:
        return
    gone = len(d.vanished)
    if d.folder_empty:
        raise MassDeletionRefused(
            f"Refusing to empty collection {collection}: the data folder {data_dir} is missing or has no files "
            f"to ingest, so all {d.files_held} files ({_named(d.vanished) or 'none named'}) would vanish and "
            f"all {d.points_held} points be deleted; an unmounted or replaced folder looks like this",
            confirm,
        )
    if gone > 1 and gone >= limits.max_file_fraction * d.files_held:
        raise MassDeletionRefused(
            f"Refusing to remove {gone} of the {d.files_held} files of collection {collection} at once "
            f"({_share(gone, d.files_held)}, at or over the {limits.max_file_fraction:.0%} limit of MAX_DELETE_FRACTION; "
            f"{d.points_removed} points): {_named(d.vanished)} are no longer in the data folder {data_dir}, "
            f"as when part of it is unmounted",
            confirm,
        )
    losing = gone + len(d.shrunk)
    if (
        losing > 1
        and d.points_removed > limits.max_point_fraction * d.points_held
        and losing >= limits.max_file_fraction * d.files_held
    ):
        what = ", ".join(
            part
            for part in (
                f"{gone} vanished ({_named(d.vanished)})" if gone else "",
                f"{len(d.shrunk)} shrunk ({_named(d.shrunk)})" if d.shrunk else "",
            )
            if part
        )
        raise MassDeletionRefused(
            f"Refusing to delete {d.points_removed} of the {d.points_held} points of collection {collection} "
            f"({_share(d.points_removed, d.points_held)}, over the {limits.max_point_fraction:.0%} limit of "
            f"MAX_DELETE_POINTS_FRACTION) from {losing} of its {d.files_held} files ({what})",
            confirm,
        )
