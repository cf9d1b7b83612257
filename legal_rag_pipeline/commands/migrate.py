"""`legal-rag migrate --to URL`: copy the collection (points, vectors, payload, alias) to a Qdrant server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "migrate",
        help="copy the collection (points, vectors, payload, alias) to a Qdrant server, resumably",
        description=(
            "Copy the configured collection (by default the embedded one at QDRANT_PATH) to another Qdrant, "
            "in batches; an interrupted copy resumes when run again; the alias moves only after the point "
            "counts match."
        ),
    )
    p.add_argument("--to", required=True, help="https://host:6333 (a server) or path:/folder (an embedded copy)")
    p.add_argument(
        "--from",
        dest="source",
        help="source instead of the configured store: path:/folder or a URL (its key from QDRANT_API_KEY)",
    )
    p.add_argument("--api-key-env", default="QDRANT_API_KEY", help="variable holding the target's API key")
    p.add_argument("--batch-size", type=int, default=256, help="points per batch (default 256)")
    p.add_argument("--collection", help="alias/collection to copy (default COLLECTION_NAME)")
    p.add_argument("--quiet", action="store_true", help="no progress bar: plain progress lines")
    p.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout  # looked up per call: tests swap sys.stdout
    from .. import migration
    from ..definitions import build_store, configured
    from ..errors import ConfigurationError
    from ..progress import for_terminal, showing

    # Outside a run, EnvVar fields hold the variable's name: resolve them (the API key) first.
    store = configured(build_store(settings))
    name = args.collection or settings.collection_name
    store = store.model_copy(update={"collection_name": name})
    if args.source:
        source_store = migration.target_store(
            args.source, collection_name=name, api_key=os.environ.get("QDRANT_API_KEY"), template=store
        )
    else:
        source_store = store
    api_key = os.environ.get(args.api_key_env, "").strip() or None
    target = migration.target_store(args.to, collection_name=name, api_key=api_key, template=store)
    if migration.same_place(source_store, target):
        raise ConfigurationError(
            f"The source and the destination are the same ({target.describe()})",
            "give --to another server or folder (and --from, or QDRANT_PATH, for the source)",
        )
    checkpoint = migration.Checkpoint(Path(settings.state_dir) / "migrate-checkpoint.json")
    print(f"Copying {source_store.describe()} to {target.describe()} ...", file=out)

    with showing(for_terminal(out, getattr(args, "quiet", False), title="migrate")) as progress:

        def on_batch(report: migration.MigrationReport) -> None:
            if report.batches == 1:
                progress.start("copy", report.source_points, "points")
            progress.update("copy", report.copied + report.skipped)

        with source_store.connect() as source, target.connect() as dest:
            report = migration.migrate(
                source, dest, batch_size=args.batch_size, checkpoint=checkpoint, on_batch=on_batch
            )
        if report.batches > 1:
            progress.update("copy", report.copied + report.skipped)
            progress.finish("copy", f"{report.skipped:,} already there" if report.skipped else "")
    resumed = f", resumed after point {report.resumed_from}" if report.resumed_from is not None else ""
    print(
        f"Done: {report.target_points} of {report.source_points} points in {report.physical} "
        f"({report.copied} copied, {report.skipped} already there{resumed}); "
        f"alias {report.alias} -> {report.physical} on {target.describe()}.",
        file=out,
    )
    if target.server_mode and not settings.qdrant_server_mode:
        print(
            f"To use it: set QDRANT_URL={args.to}"
            + (f" and QDRANT_API_KEY (from {args.api_key_env})" if api_key else "")
            + ".",
            file=out,
        )
    return EXIT_OK
