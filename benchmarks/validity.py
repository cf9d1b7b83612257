"""The law in force: what is found in the real laws, and what the corpus view costs a run.

1. Reads the 208 laws of ../shared/data/laws and the 110 of laws_blankline as the pipeline does
   (normalise, ``read_validity``), resolves them together, and counts the relations found and applied
   and the documents and articles not in force today.
2. Ingests the 208 laws (bm25 only, embedded defaults, a real ``legal-rag ingest``) once as 208 law
   files and once as one file per article, then times the corpus view in that state folder and
   collection: a run's step when nothing changed (the plan: every record read, the view resolved,
   nothing written) and a full re-application (every file's record of what its points carry
   cleared, as after a lost state: every point's validity fields set again, no embedding).

    python benchmarks/validity.py --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_files import legal_rag, project
from run import write_results
from sensor_scale import LAWS, REPO, split_laws

sys.path.insert(0, str(REPO))
MARKER = "validity"


def corpus_counts() -> dict:
    from legal_rag_pipeline.readers.header import document_info
    from legal_rag_pipeline.text.chunking import chunk_text
    from legal_rag_pipeline.text.normalize import normalize_text
    from legal_rag_pipeline.validity.extract import read_validity
    from legal_rag_pipeline.validity.resolve import APPLIED, resolve

    facts, articles = {}, {}
    began = time.perf_counter()
    for folder in (LAWS, LAWS.parent / "laws_blankline"):
        for path in sorted(folder.glob("*.txt")):
            text = normalize_text(path.read_text(encoding="utf-8"))
            key = f"{folder.name}/{path.name}"
            facts[key] = read_validity(text, document_info(text))
            articles[key] = {c.metadata["article"]: c.metadata for c in chunk_text(key, text) if c.metadata.get("article")}
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    view = resolve(facts)
    resolve_s = time.perf_counter() - began
    today = date.today().isoformat()
    statuses = [view.status(s, today)["status"] for s in view.files]
    ended = amended = 0
    for source, fv in view.files.items():
        for metadata in articles[source].values():
            payload = fv.payload(metadata)
            ended += bool(payload["valid_to"] and payload["valid_to"] <= today)
            amended += bool(payload["amended_by"])
    return {
        "files": len(facts),
        "read_ms_per_file": 1000 * read_s / len(facts),
        "resolve_s": resolve_s,
        "found": Counter(r.kind for r in view.relations),
        "applied": Counter(r.kind for r in view.relations if r.outcome == APPLIED),
        "not_applied": Counter(r.outcome for r in view.relations if r.outcome != APPLIED),
        "documents_not_in_force": sum(s.startswith("not in force") for s in statuses),
        "documents_partly": sum(s.startswith("partly") for s in statuses),
        "articles_not_in_force": ended,
        "articles_amended": amended,
        "numbers_on_two_files": len(view.duplicates),
    }


def view_cost(env: dict[str, str]) -> dict:
    """Times ``apply_validity`` in this project's state folder and collection (in this process)."""
    os.environ.update({k: env[k] for k in ("DATA_DIR", "LEGAL_RAG_STATE_DIR", "QDRANT_PATH", "DAGSTER_HOME")})
    from legal_rag_pipeline.artifacts import FileArtifacts, known_sources, records_batch
    from legal_rag_pipeline.definitions import build_store
    from legal_rag_pipeline.settings import load_settings
    from legal_rag_pipeline.validity.sync import APPLIED_KEY, apply_validity

    settings = load_settings()
    state = Path(settings.state_dir)
    with build_store(settings, resolve=True).connect() as collection:
        steady = apply_validity(state, collection)
        with records_batch(state):
            for source in known_sources(state):
                art = FileArtifacts(state, source)
                document = art.document() or {}
                if document.pop(APPLIED_KEY, None) is not None:
                    art.write_document(document)
        full = apply_validity(state, collection)
    return {"steady_s": steady.seconds, "steady_updated": steady.files_updated, "full_s": full.seconds,
            "full_files": full.files_updated, "full_points": full.points_updated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="write the figures into this RESULTS.md")
    args = parser.parse_args()
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()[0]
    counts = corpus_counts()
    print(counts, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        laws = sorted(LAWS.glob("*.txt"))
        whole = project(work / "laws")
        for law in laws:
            (Path(whole["DATA_DIR"]) / law.name).write_bytes(law.read_bytes())
        ingest_s, _ = legal_rag(whole, "ingest", "--quiet")
        rows.append({"shape": f"{len(laws)} law files", "ingest_s": ingest_s, **view_cost(whole)})
        print(rows[-1], flush=True)
        parts = project(work / "split")
        files = split_laws(Path(parts["DATA_DIR"]), None, laws)
        ingest_s, _ = legal_rag(parts, "ingest", "--quiet")
        rows.append({"shape": f"{files:,} one-article files", "ingest_s": ingest_s, **view_cost(parts)})
        print(rows[-1], flush=True)
    load = (load_before, os.getloadavg()[0])
    c = counts
    lines = [
        f"## The law in force: relations found and the corpus view's cost — {began} UTC\n",
        f"`python benchmarks/validity.py --results benchmarks/RESULTS.md`; load {load[0]:.1f} → {load[1]:.1f}, "
        f"{os.cpu_count()} cores.\n",
        f"Read from the {c['files']} laws of `laws` and `laws_blankline` (normalised, chunked and read for validity in "
        f"{c['read_ms_per_file']:.1f} ms a file; resolved together in {c['resolve_s'] * 1000:.0f} ms): relations found {dict(c['found'])}; applied between "
        f"files of the folder {dict(c['applied'])}; not applied {dict(c['not_applied'])}. Today "
        f"{c['documents_not_in_force']} documents are not in force and {c['documents_partly']} partly; "
        f"{c['articles_not_in_force']:,} articles not in force, {c['articles_amended']:,} amended; "
        f"{c['numbers_on_two_files']} numbers are carried by two files (the same law in both folders).\n",
        "| corpus (bm25 only) | first ingest | view in a run, nothing to update | full re-application | points updated |",
        "|---|---|---|---|---|",
        *(f"| {r['shape']} | {r['ingest_s']:.1f} s | {r['steady_s']:.2f} s | {r['full_s']:.1f} s ({r['full_files']:,} files) "
          f"| {r['full_points']:,} |" for r in rows),
        "",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.results:
        write_results(args.results, MARKER, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
