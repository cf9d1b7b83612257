"""`legal-rag rebuild`: a new versioned collection from the saved artifacts, checked, swapped in atomically."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rebuild",
        help="rebuild the collection into a new versioned one and move the alias to it (zero downtime)",
        description=(
            "Build a new versioned collection from the chunks and embeddings saved by ingest (embedding only "
            "what the configured model has not embedded yet), run the collection checks on it, then move "
            "the alias COLLECTION_NAME to it atomically and drop the old one. A failure drops the new "
            "collection and leaves the alias where it was. A collection created before aliases is first "
            "migrated behind an alias without losing points."
        ),
    )
    p.add_argument("--data", help="data folder (default: DATA_DIR or ./data): only its files are rebuilt")
    p.add_argument("--if-needed", action="store_true",
                   help="rebuild only when the model, vector size or lexical layout differs from the configuration")
    p.add_argument("--migrate-only", action="store_true",
                   help="only move a pre-alias collection behind an alias (every point kept), no rebuild")
    p.add_argument("--confirm-delete", action="store_true",
                   help="allow a rebuild that leaves out half the files or more (MAX_DELETE_FRACTION; gone from the data folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars: plain progress lines")
    p.set_defaults(handler=run_rebuild)


def run_rebuild(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout
    from .. import rebuild
    from ..definitions import build_embedder, build_store
    from ..deletion import DeletionLimits
    from ..progress import for_terminal, showing

    store = build_store(settings, resolve=True)
    embedder = build_embedder(settings, resolve=True)
    print(f"Rebuilding {store.describe()} from {settings.state_dir} ...", file=out, flush=True)
    with showing(for_terminal(out, getattr(args, "quiet", False), title="rebuild")) as progress:
        report = rebuild.rebuild(
            store,
            embedder,
            Path(settings.state_dir),
            Path(settings.data_dir),
            confirm_delete=args.confirm_delete,
            limits=DeletionLimits(settings.max_delete_fraction, settings.max_delete_points_fraction),
            only_if_needed=args.if_needed,
            migrate_only=args.migrate_only,
            progress=progress,
        )
    if report is None:
        print(
            "Nothing to rebuild: the collection fits the configuration"
            if not args.migrate_only
            else f"{settings.collection_name} is an alias of a versioned collection.",
            file=out,
        )
        return EXIT_OK
    if report.reasons:
        print("Why: " + "; ".join(report.reasons), file=out)
    print(report.summary(), file=out)
    return EXIT_OK
