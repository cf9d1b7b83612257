"""`legal-rag validity`: every relation found between the documents, with the sentence it came from."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validity",
        help="which documents and articles are in force: every repeal, abolition and amendment found, with its sentence",
        description=(
            "Reads what the last ingest recorded of each file (no Qdrant, no source file opened) and resolves it "
            "across the folder, as the pipeline does: each document's status on a day, then every relation a "
            "document states on another (repeals, abolishes, amends), the articles it names, from when, whether "
            "it was applied or why not (target not in the folder, a title matching several documents, no date, "
            "circular), and the sentence it was read from, so a lawyer can check it."
        ),
    )
    p.add_argument("--file", help="only relations stated by or applied to this file (path in the data folder)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="statuses on that day (default: today)")
    p.add_argument("--json", action="store_true", help="one JSON object: documents, relations, duplicates, problems")
    p.set_defaults(handler=run_validity)


def run_validity(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout
    from ..validity.sync import corpus_view

    day = args.as_of or date.today().isoformat()
    view, _ = corpus_view(Path(settings.state_dir))
    relations = [r for r in view.relations if not args.file or args.file in (r.source, *r.targets)]
    files = [s for s in sorted(view.files) if not args.file or s == args.file]
    statuses = {s: view.status(s, day) for s in files}
    if args.json:
        print(json.dumps({
            "as_of": day,
            "documents": [{"source": s, **statuses[s]} for s in files],
            "relations": [r.as_json() for r in relations],
            "duplicates": view.duplicates,
            "problems": view.problems,
        }, ensure_ascii=False), file=out)
        return EXIT_OK
    if not view.files:
        print("No document known yet: run `legal-rag ingest` first.", file=out)
        return EXIT_OK
    print(f"Documents on {day}:", file=out)
    for s in files:
        st = statuses[s]
        print(f"  {s}  [{st.get('number') or 'no number'}]  {st['status']}", file=out)
        for part in st.get("parts_ended", []):
            print(f"      ends: {part}", file=out)
        for by in st.get("amended_by", []):
            print(f"      amended by {by}", file=out)
    print(f"\n{len(relations)} relations:", file=out)
    for r in relations:
        where = f"Điều {r.source_article}" if r.source_article else "—"
        print(f"  {r.source} ({r.source_number or '?'}, {where}) {r.kind} {r.target} [{r.scope}]"
              f" from {r.on or '?'}: {r.outcome}", file=out)
        print(f"      “{r.sentence.strip()[:400]}”", file=out)
    if view.duplicates:
        print("\nNumbers carried by several files (reported, not merged):", file=out)
        for number, sources in sorted(view.duplicates.items()):
            print(f"  {number}: {', '.join(sources)}", file=out)
    if view.problems:
        print("\nProblems (nothing was changed for them):", file=out)
        for problem in view.problems:
            print(f"  {problem[:500]}", file=out)
    return EXIT_OK
