"""`legal-rag status`: every known file, what the pipeline did with it last, and the collection's counts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="what the pipeline holds: every file's status, chunks, points, model and last run",
        description=(
            "A table of every file known to the state folder or present in the data folder: ingested, "
            "unchanged since when, failed at which stage (with the reason and the fix), changed or new (not "
            "ingested yet), removed; its chunks, points, embedding model and last run. It reads the state "
            "folder and stats the data folder; the points are the collection's own counts when the store "
            "can be opened (otherwise those recorded at each file's last sync). Works while the daemon is up."
        ),
    )
    p.add_argument("--failed", action="store_true", help="only the files whose last run failed")
    p.add_argument("--json", action="store_true", help="one JSON object: the collection and every file")
    p.set_defaults(handler=run_status)


def _when(value: str | None) -> str:
    return value.replace("T", " ").replace("+00:00", " UTC") if value else "–"


def _collection_counts(settings, sources: list[str]) -> tuple[dict[str, int] | None, dict, str | None]:
    """(points per file, collection facts, why not available)."""
    from ..errors import PipelineError
    from ..services import open_store

    if not settings.qdrant_server_mode and not Path(settings.qdrant_path).exists():
        return {}, {"name": settings.collection_name, "exists": False}, None  # opening would create the folder
    store = open_store(settings)
    try:
        with store.connect() as collection:
            if not collection.exists():
                return {}, {"name": settings.collection_name, "exists": False}, None
            counts = collection.counts_by_source(sources)
            facts = {
                "name": settings.collection_name,
                "exists": True,
                "physical": collection.physical_name(),
                "points": collection.count(),
                "dense_size": collection.dense_size(),
                "location": store.describe(),
            }
            return counts, facts, None
    except PipelineError as exc:  # e.g. the embedded folder is in use by a run: say so, show the rest
        return None, {"name": settings.collection_name}, str(exc)


def run_status(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout
    from ..status import folder_status, with_counts

    statuses = folder_status(Path(settings.data_dir), Path(settings.state_dir))
    counts, facts, unavailable = _collection_counts(settings, [s.source for s in statuses])
    if counts is not None:
        with_counts(statuses, counts)
    shown = [s for s in statuses if s.status == "failed"] if args.failed else statuses

    if args.json:
        print(
            json.dumps(
                {"collection": {**facts, "unavailable": unavailable}, "files": [s.as_json() for s in shown]},
                ensure_ascii=False,
            ),
            file=out,
        )
        return EXIT_OK

    if unavailable:
        print(f"Collection counts unavailable ({unavailable.rstrip('.')}); points as recorded at each file's "
              "last sync.", file=out)
    elif facts.get("exists"):
        print(
            f"{facts['location'][0].upper()}{facts['location'][1:]} ({facts['physical']}): {facts['points']:,} points"
            + (f", {facts['dense_size']}-dimensional dense vectors" if facts.get("dense_size") else ", bm25 only"),
            file=out,
        )
    else:
        print(f"Collection {facts['name']} does not exist yet: run `legal-rag ingest`.", file=out)

    header = ["file", "status", "chunks", "points", "model", "last run", "when"]
    rows = []
    for s in shown:
        label = {
            "unchanged": f"unchanged since {_when(s.since)}" if s.since else "unchanged",
            "failed": f"failed at {s.stage}",
            "interrupted": f"interrupted before {s.stage}",
        }.get(s.status, s.status)
        rows.append([
            s.source,
            label,
            "–" if s.chunks is None else f"{s.chunks:,}",
            "–" if s.points is None else f"{s.points:,}",
            (s.model or "–").rsplit("/", 1)[-1],
            (s.run_id or "–")[:8],
            _when(s.at),
        ])
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), file=out)
    for s, row in zip(shown, rows, strict=True):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if s.status == "failed":
            print(f"    {s.error}: {s.fix}", file=out)
        elif s.status in {"interrupted", "changed", "new"} and s.fix:
            print(f"    {s.fix}", file=out)
        elif s.status == "removed":
            print("    no longer in the data folder; the next run removes its points", file=out)
        if s.validity and s.validity.get("status") != "in force":
            v = s.validity
            detail = "; ".join([*v.get("parts_ended", [])[:3], *(f"amended by {a}" for a in v.get("amended_by", [])[:3])])
            print(f"    validity: {v['status']}" + (f" — {detail}" if detail else ""), file=out)

    tally: dict[str, int] = {}
    for s in statuses:
        tally[s.status] = tally.get(s.status, 0) + 1
    order = ["ingested", "unchanged", "failed", "interrupted", "changed", "new", "removed"]
    print(
        f"{len(statuses)} files: " + ", ".join(f"{tally[k]} {k}" for k in order if tally.get(k))
        + ("" if not args.failed else f" ({len(shown)} shown)")
        + ".",
        file=out,
    )
    if counts is not None and facts.get("exists"):
        stray = facts["points"] - sum(counts.values())
        if stray > 0:
            print(f"{stray:,} points of the collection belong to no file known here (another state folder, "
                  "or the old script).", file=out)
    return EXIT_OK
