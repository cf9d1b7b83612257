"""`legal-rag`: ingest, search and diagnose from the command line, over the same code as the UI.

Exit codes: 0 success, 1 some files (or the run) failed, 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from .errors import ConfigurationError, PipelineError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _settings(args: argparse.Namespace):
    from .settings import load_env_file, load_settings

    load_env_file()
    if getattr(args, "data", None):
        os.environ["DATA_DIR"] = args.data
    return load_settings()


# ---------------------------------------------------------------------------- ingest
_SQLITE_TUNED = False


def _cheap_sqlite_commits() -> None:
    """Dagster's SQLite storages run in WAL mode with synchronous=FULL: one fsync per stored event,
    and a run over 208 files stores about 1,700 events (0.1 s each on a busy disk). WAL with
    synchronous=NORMAL stays consistent after any crash (it may lose the last events on power loss)."""
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _normal_sync(dbapi_connection, _record) -> None:  # noqa: ANN001
        if isinstance(dbapi_connection, sqlite3.Connection):
            try:
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                pass

    _SQLITE_TUNED = True


def run_ingest(
    settings, *, confirm_delete: bool = False, everything: bool = False, out=None, quiet: bool = False,
    retry_failed: bool = False,
) -> int:
    """Plan, then materialise the four assets for the files that changed in recorded runs.

    The plan (planning.py) compares the folder with what was last synced: runs cover the new,
    changed and previously failed files (usually one contiguous partition range; files far apart
    make separate runs, ``planning.partition_spans``), and none is launched when nothing changed. A file
    that failed because of its own bytes and is unchanged since runs only with ``retry_failed``
    (``--retry-failed``; ingest/failures.py). ``everything`` (``--all``) runs every file on purpose. While the
    run works, its stages show progress on ``out`` (bars on a terminal, plain lines otherwise or
    with ``quiet``; progress.py); the per-file table follows.
    """
    out = out or sys.stdout
    from .readers import scan_data_dir
    from .registered import dagster_home, registered_already

    data_dir, state_dir = Path(settings.data_dir), Path(settings.state_dir)
    scan = scan_data_dir(data_dir) if data_dir.is_dir() else None
    keys = list(scan.files) if scan else []
    # The plan needs no Dagster; when it is empty and Dagster already lists these files, neither is
    # imported nor opened (registered.py).
    plan = None if everything or not keys else _plan(settings, scan.files, state_dir)
    failing = []  # failed because of their own bytes, unchanged since: not run (ingest/failures.py)
    if plan is not None:
        if retry_failed:
            plan.failed, plan.failing_as_before = sorted([*plan.failed, *plan.failing_as_before]), []
        failing = plan.failing_as_before
    if plan is not None and plan.compared:
        print(f"The daily comparison of the collection with the folder {plan.compared}.", file=out)
    if plan is not None and not plan.to_run and not plan.vanished and registered_already(state_dir, keys):
        _say_skipped(scan, out)
        _say_mode(settings, out)
        _say_nothing_changed(settings, plan, out)
        return _say_failing(state_dir, failing, out)

    if plan is not None and plan.to_run:  # files to read: the child reader starts while Dagster is imported
        from .readers.worker import shared_worker
        from .settings import load_limits

        shared_worker().start(load_limits())
    from .memory import loading_modules

    with loading_modules():  # Dagster's modules, the definitions and the instance
        _cheap_sqlite_commits()
        from .instance import get_instance, use_event_batches

        use_event_batches()

        from . import ingest
        from .artifacts import FileArtifacts, StageOutcome, known_sources
        from .definitions import build_definitions
        from .partitions import register_files
        from .planning import partition_spans, span_keys
        from .progress import for_terminal, showing
        from .reporting import summary_text

        defs = build_definitions(settings)
        instance = get_instance()

    ordered = register_files(instance, keys, state_dir, dagster_home())
    before = set(known_sources(state_dir))
    if keys and not before and (settings.qdrant_server_mode or Path(settings.qdrant_path).exists()):
        print(f"No local state in {state_dir} (a new machine, another directory or a lost folder): every file is read "
              "again, and texts the collection already holds are not embedded again.", file=out)

    if scan is None:
        print(f"The data folder {data_dir} does not exist.", file=out)
    _say_skipped(scan, out)
    if not keys:
        return _prune_only(settings, confirm_delete, out)
    _say_mode(settings, out)

    spans = [(ordered[0], ordered[-1])]
    if plan is not None:
        targets = plan.to_run
        if not targets:
            if plan.vanished:
                return _prune_only(settings, confirm_delete, out)
            _say_nothing_changed(settings, plan, out)
            return _say_failing(state_dir, failing, out)
        spans = partition_spans(ordered, targets) or spans
        print(f"Plan: {plan.summary()}.", file=out)
    del scan, plan  # the folder's paths and the plan are not the run's (23 MB at 70,624 files)
    span_files = [span_keys(ordered, span) for span in spans]
    job = defs.resolve_job_def("ingest_job")
    runs = f" in {len(spans)} runs (files far apart in the partition order)" if len(spans) > 1 else ""
    print(
        f"Ingesting {sum(map(len, span_files))} files into {settings.collection_name}{runs} ...", file=out, flush=True
    )
    with showing(for_terminal(out, quiet, title="ingest")):
        results = [_execute(job, instance, span, confirm_delete) for span in spans]
    run_of = {key: result.run_id for files, result in zip(span_files, results) for key in files}
    summaries = ingest.file_summaries([key for key in keys if key in run_of], state_dir, run_of)
    vanished = [
        StageOutcome(s, "ok", notes=["removed"]) for s in sorted(before - set(keys)) if not FileArtifacts(state_dir, s).dir.exists()
    ]
    print(summary_text(summaries, vanished), file=out)
    failed_files = [s for s in summaries.values() if s.status == "failed"]
    run_error = None
    for result in results:
        mine = [s for k, s in summaries.items() if run_of[k] == result.run_id]
        if not result.success and (
            not any(s.status == "failed" for s in mine) or all(s.status == "not run" for s in mine)
        ):
            run_error = _run_failure(result)
            break
    if run_error:
        print(run_error, file=out)
        return EXIT_FAILED
    total = len(summaries)
    recorded = f"Run {results[0].run_id[:8]} is" if len(results) == 1 else f"Runs {', '.join(r.run_id[:8] for r in results)} are"
    failing = [key for key in failing if key not in run_of]
    print(
        f"{total - len(failed_files)} of {total} files ingested into {settings.collection_name}"
        + (f"; {len(failed_files)} failed (see above)" if failed_files else "")
        + (f"; {len(keys) - total - len(failing)} other files unchanged since their last sync"
           if len(keys) > total + len(failing) else "")
        + f". {recorded} recorded in {os.environ['DAGSTER_HOME']}.",
        file=out,
    )
    return EXIT_FAILED if _say_failing(state_dir, failing, out) or failed_files else EXIT_OK


def _execute(job, instance, span: tuple[str, str], confirm_delete: bool):
    """One recorded run of ``job`` over ``span``, in this process (with fewer garbage collections:
    ``instance.fewer_collections``; only its failures held in memory: ``execute_keeping_failures``)."""
    from .instance import execute_keeping_failures, fewer_collections

    with fewer_collections():
        return execute_keeping_failures(
            job,
            instance,
            tags={
                "dagster/asset_partition_range_start": span[0],
                "dagster/asset_partition_range_end": span[1],
                "legal_rag/trigger": "cli",
            },
            run_config={
                "ops": {"qdrant_collection": {"config": {"confirm_mass_deletion": confirm_delete}}},
                # the run's events are recorded in the instance; the console gets progress and the table
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
        )


def _say_skipped(scan, out) -> None:
    for relpath, reason in (scan.skipped if scan else []):
        print(f"skipped {relpath}: {reason}", file=out)


def _say_mode(settings, out) -> None:
    if settings.dense_backend == "none":
        print(
            "No HF_TOKEN/HUGGINGFACE_API_KEY and no EMBEDDINGS_ENDPOINT_URL: ingesting with bm25 sparse vectors "
            "only (set one of them for dense vectors).",
            file=out,
        )


def _say_nothing_changed(settings, plan, out) -> None:
    print(
        f"Nothing changed since the last run: {len(plan.unchanged)} files in sync with "
        f"{settings.collection_name}; no run launched (`legal-rag ingest --all` runs every file).",
        file=out,
    )


FAILING_LISTED = 10  # files failing as before named with their reason; `legal-rag status --failed` lists all


def _say_failing(state_dir: Path, failing: Sequence[str], out) -> int:
    """Name the files not run because they fail as before (their reason and fix); EXIT_FAILED when there
    are any (the folder is not wholly ingested), else EXIT_OK."""
    if not failing:
        return EXIT_OK
    from .artifacts import FileArtifacts
    from .ingest.failures import STAGES_WITH_LASTING_FAILURES

    print(f"{len(failing)} file{'s' if len(failing) > 1 else ''} not run: failing as before, unchanged since "
          "(each runs again once it is replaced or edited, or with `legal-rag ingest --retry-failed`):", file=out)
    for key in failing[:FAILING_LISTED]:
        status = FileArtifacts(state_dir, key).status()
        entry = next((status[s] for s in STAGES_WITH_LASTING_FAILURES if (status.get(s) or {}).get("status") == "failed"), {})
        print(f"  {key}: {entry.get('error') or 'failed'}: {entry.get('fix') or ''}".rstrip(": "), file=out)
    if len(failing) > FAILING_LISTED:
        print(f"  ... and {len(failing) - FAILING_LISTED} more (`legal-rag status --failed` lists them)", file=out)
    return EXIT_FAILED


def _plan(settings, files, state_dir: Path):
    """The ingest plan, or None (run every file) when the collection cannot be looked at cheaply. It
    opens the plain store and embedder (``services``) and imports no Dagster, except for the local
    embedder (a resource; loading its model outweighs Dagster)."""
    from . import ingest
    from .planning import plan_ingest
    from .services import open_embedder, open_store

    store = open_store(settings)
    embedder = open_embedder(settings)
    model = embedder.model_id() if embedder.enabled() else ingest.BM25_ONLY_MODEL
    with ExitStack() as stack:  # the collection is read only for the daily comparison (ingest/verify.py)
        try:
            collection = stack.enter_context(store.connect(lazy=True))
            physical = collection.physical_name()
        except Exception:  # noqa: BLE001 - the run itself reports what is wrong with the store
            return None
        plan = plan_ingest(Path(settings.data_dir), files, state_dir, model=model, location=store.location(),
                           physical=physical, token_budget=settings.token_budget, collection=collection)
    return None if plan.full else plan


def _run_failure(result) -> str:
    """The one-sentence reason a run failed (a dg.Failure description, else the error message)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            user = getattr(event.event_specific_data, "user_failure_data", None)
            if user is not None and user.description:
                return user.description
            while error is not None and error.cause is not None and "dagster" in (error.cls_name or "").lower():
                error = error.cause
            return error.message.strip() if error else "the run failed"
    return "the run failed"


def _prune_only(settings, confirm_delete: bool, out) -> int:
    """No files: remove points of vanished files, guarded against emptying the collection."""
    from .definitions import build_embedder, build_resources, build_store

    store = build_store(settings, resolve=True)
    embedder = build_embedder(settings, resolve=True)
    data_folder = build_resources(settings)["data_folder"]
    with store.connect() as collection:
        if not collection.exists():
            print("Nothing to ingest and no collection yet.", file=out)
            return EXIT_OK
        try:
            _, vanished = data_folder.sync(collection, embedder, [], None, confirm_mass_deletion=confirm_delete)
            data_folder.update_validity(collection)
        except PipelineError as exc:
            print(str(exc), file=out)
            return EXIT_FAILED
    removed = ", ".join(f"{o.source} ({o.counts.get('points_deleted', 0)} points)" for o in vanished)
    print(f"Removed the points of {len(vanished)} files no longer in the data folder" + (f": {removed}." if removed else "."),
          file=out)
    return EXIT_OK


# ---------------------------------------------------------------------------- search
def run_search(
    settings, queries: Sequence[str], top_k: int, as_json: bool, law=None, source=None, out=None, document=None,
    as_of: str | None = "today",
) -> int:
    out = out or sys.stdout
    from .memory import loading_modules

    with loading_modules():
        from .search import search
        from .services import open_embedder, open_store  # not definitions: a search needs no Dagster

    store = open_store(settings)
    embedder = open_embedder(settings)
    with store.connect() as collection:
        if not collection.exists():
            print(f"Collection {settings.collection_name} does not exist yet: run `legal-rag ingest` first.", file=out)
            return EXIT_FAILED
        dense = collection.dense_size() is not None and embedder.enabled()
        if dense:  # the store reads ahead while the questions are embedded (none to wait for with bm25 alone)
            collection.expect_queries()
        vectors = embedder.embed(list(queries)) if dense else None
        for i, query in enumerate(queries):
            hits = search(
                collection,
                query,
                top_k,
                dense_vector=None if vectors is None else vectors[i].tolist(),
                law=law,
                source=source,
                document=document,
                fusion_weights=settings.fusion_weights,
                as_of=as_of,
            )
            if as_json:
                print(json.dumps({"query": query, "hits": [h.as_json() for h in hits]}, ensure_ascii=False), file=out)
                continue
            mode = "hybrid (dense + bm25)" if dense else "bm25"
            print(f"Query: {query}  [{mode}]", file=out)
            if not hits:
                print("  no results", file=out)
            for rank, hit in enumerate(hits, 1):
                where = " · ".join(
                    x for x in (hit.law, f"Điều {hit.article}" if hit.article else None, hit.source) if x
                )
                print(f"{rank:>2}. {hit.score:.3f}  {where}", file=out)
                note = hit.validity_note(None if as_of in (None, "today") else as_of)
                if hit.number or note:
                    print(f"    {' · '.join(x for x in (hit.number, note) if x)}", file=out)
                text = hit.page_content.replace("\n", " ")
                print(f"    {text[:240]}{'…' if len(text) > 240 else ''}", file=out)
    return EXIT_OK


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legal-rag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest the new and changed files of the data folder (recorded as a Dagster run)")
    p.add_argument("--data", help="data folder (default: DATA_DIR or ./data)")
    p.add_argument("--all", action="store_true", help="run every file, not only the new, changed and failed ones")
    p.add_argument("--retry-failed", action="store_true",
                   help="also run the files that failed because of their own bytes and are unchanged since")
    p.add_argument(
        "--confirm-delete",
        action="store_true",
        help="allow a run that removes what a vanished folder would: the folder missing or empty, half the files or more",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars: plain progress lines, as when not on a terminal")

    p = sub.add_parser("search", help="search the collection")
    p.add_argument("query", nargs="?", help="the question")
    p.add_argument("--queries-file", help="one query per line")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON line per query")
    p.add_argument("--law", help="only this law (its title, e.g. 'Luật Cư trú')")
    p.add_argument("--source", help="only this source file (path relative to the data folder)")
    p.add_argument("--number", help="only this document number (số hiệu), e.g. 91/2015/QH13")
    p.add_argument("--type", dest="doc_type", help="only this type of document, e.g. 'Nghị định'")
    p.add_argument("--issuer", help="only documents of this issuer, e.g. 'Chính phủ'")
    p.add_argument("--issued-after", help="only documents issued on or after this date (YYYY-MM-DD)")
    p.add_argument("--issued-before", help="only documents issued on or before this date (YYYY-MM-DD)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--as-of", metavar="YYYY-MM-DD", help="the law as it stood that day (default: in force today)")
    when.add_argument("--all-versions", action="store_true", help="every version: repealed and not yet in force too")

    for module in _command_modules():
        module.register(sub)
    return parser


def _as_of(args) -> str | None | bool:
    """``--as-of``/``--all-versions`` as search's ``as_of`` ("today", a day, None); False after
    printing why a date cannot be read."""
    if getattr(args, "all_versions", False):
        return None
    value = getattr(args, "as_of", None)
    if not value:
        return "today"
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        print(f"--as-of {value!r} is not a date: write it as YYYY-MM-DD, e.g. --as-of 2020-06-30.", file=sys.stderr)
        return False


def _command_modules():
    import importlib
    import pkgutil

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"{commands.__name__}.{info.name}")


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=r".*(is currently in beta|is currently in preview).*")
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args) if getattr(args, "needs_settings", True) else None
        if args.command == "ingest":
            return run_ingest(settings, confirm_delete=args.confirm_delete, everything=args.all, quiet=args.quiet,
                              retry_failed=args.retry_failed)
        if args.command == "search":
            queries = [args.query] if args.query else []
            if args.queries_file:
                queries += [q.strip() for q in Path(args.queries_file).read_text(encoding="utf-8").splitlines() if q.strip()]
            if not queries:
                print("Give a query, or --queries-file with one query per line.", file=sys.stderr)
                return EXIT_CONFIG
            from .search import DocumentFilter

            document = DocumentFilter(args.number, args.doc_type, args.issuer, args.issued_after, args.issued_before)
            as_of = _as_of(args)
            if as_of is False:
                return EXIT_CONFIG
            return run_search(
                settings, queries, args.top_k, args.json, law=args.law, source=args.source, document=document,
                as_of=as_of,
            )
        return args.handler(args, settings)
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except PipelineError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_CONFIG


def run() -> None:
    """The ``legal-rag`` command: ``main`` and the process's exit code.

    Once the command has finished, the interpreter's shutdown would walk every object the imports made
    (Dagster's modules are most of them) in its last garbage collections: 0.3 s of a short command.
    ``gc.freeze`` moves them out of the collector's sight first; files, connections and child processes
    are closed by the command itself, and atexit handlers still run. Tests call ``main``, not this."""
    code = main()
    import gc

    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
