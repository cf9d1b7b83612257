"""The data folder and the pipeline's own state folder, as a resource the UI can change."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from ..deletion import DeletionLimits


log = logging.getLogger(__name__)


class DataFolder(dg.ConfigurableResource):
    """Where the source files are, where per-file artifacts go, and the chunking budget."""

    data_dir: str = Field(default="./data", description="Folder whose files are ingested (DATA_DIR).")
    state_dir: str = Field(default=".legal_rag", description="Per-file artifacts: decoded text, chunks, embeddings.")
    token_budget: int = Field(default=128, description="Model input budget in tokens for one chunk.")
    max_delete_fraction: float = Field(
        default=0.5,
        description="A run in which this share of the files or more vanish at once is refused (MAX_DELETE_FRACTION).",
    )
    max_delete_points_fraction: float = Field(
        default=0.5,
        description="A run removing more than this share of the points, from MAX_DELETE_FRACTION of the files "
        "or more, is refused (MAX_DELETE_POINTS_FRACTION).",
    )

    verify_sync: bool = Field(
        default=False, description="Every run compares the whole collection with the folder (LEGAL_RAG_VERIFY_SYNC)."
    )
    confirm_delete: bool = Field(
        default=False, description="Lift the mass-deletion guard for every run (LEGAL_RAG_CONFIRM_DELETE); prefer the "
        "run config's confirm_mass_deletion for one run.",
    )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def deletion_limits(self) -> DeletionLimits:
        from ..deletion import DeletionLimits

        return DeletionLimits(self.max_delete_fraction, self.max_delete_points_fraction)

    def sync(
        self, collection, embedder, sources, run_id: str | None, *, confirm_mass_deletion: bool = False, progress=None,
        embedded=None,
    ):
        """``ingest.sync_stage`` over this folder, with its deletion limits; the mass-deletion guard
        (deletion.py) is lifted by ``confirm_mass_deletion`` or ``confirm_delete`` (LEGAL_RAG_CONFIRM_DELETE=1)."""
        from .. import ingest

        result = ingest.sync_stage(
            list(sources),
            self.data_path,
            self.state_path,
            run_id,
            collection,
            embedder,
            limits=self.deletion_limits,
            confirm_mass_deletion=confirm_mass_deletion or self.confirm_delete,
            verify=self.verify_sync,
            embedded=embedded,
            **({"progress": progress} if progress is not None else {}),
        )
        return result

    def update_validity(self, collection):
        """The validity fields of every ingested file's points in line with the corpus view (payload
        updates only; validity/sync.py): after every sync (the writer step, the prune job and the CLI's
        prune), since a file added, changed or removed can change what other files' points say."""
        from ..validity.sync import apply_validity

        report = apply_validity(self.state_path, collection)
        if report.files_updated or report.failed:
            log.info(
                "Validity: %d files' points updated (%d points, %.1f s)%s", report.files_updated,
                report.points_updated, report.seconds,
                f"; {len(report.failed)} not updated, retried next run" if report.failed else "",
            )
        return report
