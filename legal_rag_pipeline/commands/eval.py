"""`legal-rag eval --questions FILE`: recall@k and MRR@10 of the search on questions with known answers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="recall@k and MRR@10 of the search on ALQAC-format questions (table, Markdown report, plot)",
        description=(
            "Search every question (as `legal-rag search` does: hybrid, or bm25 alone without dense vectors) "
            "and report recall@k and MRR@10 per question type and overall. A multiple-choice question is searched "
            "with its options (`choices`). Each law_id is matched to an ingested law by its title (case, NFC and "
            "punctuation do not matter); --law-map maps the others. --save keeps the report, --compare shows what "
            "changed against a saved one."
        ),
    )
    p.add_argument("--questions", required=True, help="JSON list of {question_id, question_type, text, relevant_articles}")
    p.add_argument("--k", default="1,5,10", help="cut-offs, comma-separated (default 1,5,10)")
    p.add_argument("--law-map", help='JSON {"law_id": "ingested law title or source file"} for names that differ')
    p.add_argument("--report", help="write a Markdown report to this file")
    p.add_argument("--plot", help="write a PNG of recall against k to this file (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of the table")
    p.add_argument("--save", metavar="REPORT.json",
                   help="write the metrics and each question's rank as JSON (what --compare reads)")
    p.add_argument("--compare", metavar="REPORT.json",
                   help="show what changed against a saved report: per type and metric, and which questions moved")
    p.add_argument("--no-options", action="store_true",
                   help="search a multiple-choice question's text alone, without its options")
    p.add_argument("--law", help="search only this law (as `legal-rag search --law`)")
    p.add_argument("--source", help="search only this source file")
    p.add_argument("--qdrant-search", action="store_true",
                   help="send every bm25 query to Qdrant (default on embedded Qdrant: the same scoring in memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar: plain progress lines")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--as-of", metavar="YYYY-MM-DD", help="search the law as it stood that day (default: in force today)")
    when.add_argument("--all-versions", action="store_true", help="search every version: repealed and not yet in force too")
    p.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout
    from .. import evaluation
    from ..cli import _as_of
    from ..definitions import build_embedder, build_store
    from ..progress import for_terminal, showing

    as_of = _as_of(args)
    if as_of is False:
        return 2
    ks = evaluation.parse_ks(args.k)
    questions = evaluation.load_questions(args.questions)
    law_map = evaluation.load_law_map(args.law_map)
    before = evaluation.load_report(args.compare) if args.compare else None
    store = build_store(settings, resolve=True)
    embedder = build_embedder(settings, resolve=True)
    with store.connect() as collection:
        if not collection.exists():
            print(f"Collection {settings.collection_name} does not exist yet: run `legal-rag ingest` first.", file=out)
            return EXIT_FAILED
        # with --json, stdout is the JSON alone: progress goes to stderr
        with showing(for_terminal(sys.stderr if args.json else out, getattr(args, "quiet", False))) as progress:
            report = evaluation.evaluate(
                collection, questions, ks=ks, law_map=law_map, embedder=embedder, law=args.law, source=args.source,
                engine="qdrant" if args.qdrant_search else "auto", progress=progress,
                options=not args.no_options, fusion_weights=settings.fusion_weights, as_of=as_of,
            )
    comparison = evaluation.compare(report, before) if before is not None else None
    if args.json:
        data = report.as_json()
        if comparison is not None:
            data["compared_with"] = {"report": args.compare, **comparison.as_json()}
        print(json.dumps(data, ensure_ascii=False), file=out)
    else:
        options = ", without options" if args.no_options else ""
        print(
            f"{len(questions)} questions from {args.questions}, {report.mode} search "
            f"(lexical variant {settings.lexical.variant}{options}) on {settings.collection_name}:",
            file=out,
        )
        print(evaluation.format_table(report), file=out)
        if comparison is not None:
            print(file=out)
            print(evaluation.format_comparison(comparison, args.compare), file=out)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        saved = {**report.as_json(questions=True), "questions_file": str(args.questions),
                 "lexical_variant": settings.lexical.variant, "options": not args.no_options}
        Path(args.save).write_text(json.dumps(saved, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if not args.json:
            print(f"Saved: {args.save}", file=out)
    plot_name = None
    if args.plot:
        plot_path = evaluation.plot_recall(report, args.plot, title=Path(args.questions).name)
        plot_name = str(plot_path)
        if args.report:
            try:
                plot_name = str(plot_path.resolve().relative_to(Path(args.report).resolve().parent))
            except ValueError:
                plot_name = str(plot_path.resolve())
        if not args.json:
            print(f"Plot: {plot_path}", file=out)
    if args.report:
        text = evaluation.markdown_report(
            report,
            title=f"Retrieval evaluation: {Path(args.questions).name}",
            context={
                "questions": f"{args.questions} ({len(questions)})",
                "collection": settings.collection_name,
                "lexical variant": settings.lexical.variant,
                "options": "left out (--no-options)" if args.no_options else "searched with multiple-choice questions",
            },
            plot=plot_name,
        )
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text, encoding="utf-8")
        if not args.json:
            print(f"Report: {args.report}", file=out)
    return EXIT_OK
