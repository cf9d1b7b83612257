"""`legal-rag prune-history [--days N]`: prune Dagster's run history now (what the daily job does)."""

from __future__ import annotations

import argparse
import sys

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune-history",
        help="prune Dagster's runs older than N days (default DAGSTER_HISTORY_DAYS=30); each file's latest status stays",
        description=(
            "What the daily history_retention_job does, for people who run no daemon: runs that ended more "
            "than N days ago lose their logs and the events later runs superseded; a run left with nothing "
            "a view shows is deleted. Each file's latest status, error and figures stay."
        ),
    )
    p.add_argument("--days", type=float, help="prune runs older than this many days (default DAGSTER_HISTORY_DAYS)")
    p.set_defaults(handler=run_prune_history)


def run_prune_history(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout  # looked up per call: tests swap sys.stdout
    from ..history import prune_history
    from ..instance import get_instance

    days = args.days if args.days is not None else settings.history_days
    if days < 0:
        print(f"--days {days:g} is negative: give a number of days such as 30.", file=out)
        return 2
    instance = get_instance()
    try:
        print(prune_history(instance, days).summary(), file=out)
    finally:
        instance.dispose()
    return EXIT_OK
