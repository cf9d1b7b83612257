"""`legal-rag doctor`: check the token, the model, the endpoint, Qdrant and the collection, with fixes."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check the embedding service (token, permission, model or endpoint), Qdrant and the collection",
        description=(
            "Check, in order: the Hugging Face token (present, valid, allowed to call Inference Providers) and "
            "one tiny call to the model, or the endpoint's /health, /info and one tiny call, or the local model; "
            "then Qdrant and the collection's vector size. Prints a fix for each failing check; exit code 1 "
            "when any fails."
        ),
    )
    p.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout  # looked up per call: tests swap sys.stdout
    from ..doctor import render, run_checks

    report = run_checks(settings)
    print(render(report), file=out)
    return EXIT_OK if report.ok else EXIT_FAILED
