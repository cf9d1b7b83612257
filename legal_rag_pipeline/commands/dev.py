"""`legal-rag dev`: the Dagster UI and daemon on this project, with its persistent local instance.

Equivalent to (from the project folder)::

    DAGSTER_HOME=$PWD/.dagster_home dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

plus two things done first: a new DAGSTER_HOME gets the project's dagster.yaml (telemetry off, no
"join the community" dialog, queued runs, run-level pools), and the ``qdrant_writer`` pool limit
is set to 1 on the instance. (The data-folder sensor sets that limit too at every tick, so plain
``dagster dev`` is safe as well.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dev",
        help="start the Dagster UI and daemon (dagster dev) with the project's DAGSTER_HOME",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--port", "-p", type=int, default=3000, help="webserver port (default 3000)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.set_defaults(handler=run_dev, needs_settings=False)


def dev_command(host: str, port: int, cwd: Path | None = None) -> list[str]:
    cwd = cwd or Path.cwd()
    target = (
        ["-w", "workspace.yaml"]
        if (cwd / "workspace.yaml").is_file()
        else ["-m", "legal_rag_pipeline.definitions"]
    )
    return [sys.executable, "-m", "dagster", "dev", *target, "-h", host, "-p", str(port)]


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def exposure_warning(host: str) -> str | None:
    """The warning printed when the UI is bound beyond this machine (Dagster OSS has no login)."""
    if host in LOOPBACK:
        return None
    return (
        f"Warning: --host {host} makes the UI reachable from other machines, and Dagster OSS has no login: "
        "anyone who reaches it can launch runs. Keep 127.0.0.1 and use an SSH tunnel, or deploy/ (password proxy)."
    )


def run_dev(args: argparse.Namespace, settings) -> int:
    import dagster as dg

    from ..instance import ensure_dagster_home, set_pool_limit, use_event_batches

    home = ensure_dagster_home()
    use_event_batches()  # dagster dev, its daemon and the runs it launches inherit it
    instance = dg.DagsterInstance.get()
    try:
        set_pool_limit(instance)
    finally:
        instance.dispose()
    command = dev_command(args.host, args.port)
    warning = exposure_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"DAGSTER_HOME={home}\n{' '.join(command[1:])}  ->  http://{args.host}:{args.port}", flush=True)
    os.execv(command[0], command)  # replaces this process: Ctrl-C reaches dagster dev directly
    return 0  # not reached
