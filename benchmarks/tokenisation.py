"""Which Vietnamese tokenisation (and which text) should feed the `bm25` vector, and how should a
question be read? Measured, not guessed.

For every lexical variant × lexical text, through the full pipeline (bm25 only): copy the 17 laws of
ALQAC 2023 from ../shared/data into a temporary data folder, `legal-rag ingest` them into a fresh
embedded Qdrant, then `legal-rag eval` on eval/alqac2023_train.json. Prints the table that is in
docs/retrieval.md.

    python benchmarks/tokenisation.py                       # every variant, the default lexical text
    python benchmarks/tokenisation.py --variants syllables+bigrams --texts chunk,title+chunk,headings+chunk
    python benchmarks/tokenisation.py --whole-article       # also the "whole article" option (offline)
    python benchmarks/tokenisation.py --reading             # how a question is read (issue 13), 17 laws
    python benchmarks/tokenisation.py --reading --laws all  # the same over the 208 laws of laws/

Variants needing a package that is missing (pyvi, underthesea) are skipped with a note. Each
configuration runs in its own subprocesses with its own temporary state; nothing is written into
the repository. "--whole-article" scores BM25 over whole articles in this process with the same
tokens, the same BM25 weights and Qdrant's IDF formula (the pipeline gives each piece of an article
its own vector, so whole-article vectors are not something ``lexical_text(chunk)`` can produce).

"--reading" ingests the laws once through the pipeline (default configuration, bm25 only), runs
`legal-rag eval` with and without the questions' options, then scores variants in this process on the
pipeline's own points with ``search.SparseIndex`` and ``search.search`` (Qdrant's formula; the
default variant must give the pipeline's figures, which is checked): the heading of an article
repeated in its ``bm25`` text (field weighting), BM25's k1 and b, the scaffolding taken out of the
question, a law the question names as a boost or a filter. Each variant is reported on the whole set
and on two halves (every other question of each type): a variant is kept only when it wins by more
than one question and loses on neither half; for a parameter, the value best on one half is checked
on the other (docs/retrieval.md, "Reading a question").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
QUESTIONS = SHARED / "eval" / "alqac2023_train.json"
VARIANTS = ["syllables", "syllables+bigrams", "pyvi", "underthesea"]
NEEDS = {"pyvi": "pyvi", "underthesea": "underthesea"}


def eval_laws() -> list[tuple[str, Path]]:
    """(law_id, file) of the 17 laws, from the mapping table in ../shared/data/README.md."""
    readme = (SHARED / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+?) \| (laws(?:_blankline)?/\S+\.txt) \|$", readme, re.MULTILINE)
    return [(law, SHARED / rel) for law, rel in rows]


def copy_laws(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    laws = eval_laws()
    for _, path in laws:
        shutil.copy2(path, data_dir / path.name)
    return len(laws)


def _project_env(root: Path, **overrides: str) -> dict:
    """The environment of a scratch project under ``root``: bm25 only, no server, no secret, the
    default configuration unless ``overrides`` say otherwise."""
    env = {
        **os.environ,
        "DATA_DIR": str(root / "data"),
        "LEGAL_RAG_STATE_DIR": str(root / "state"),
        "QDRANT_PATH": str(root / "state" / "qdrant"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "EMBEDDINGS_BACKEND": "none",
    }
    for name in ("HF_TOKEN", "HUGGINGFACE_API_KEY", "EMBEDDINGS_ENDPOINT_URL", "QDRANT_URL", "QDRANT_HOST",
                 "COLLECTION_NAME", "LEXICAL_VARIANT", "LEXICAL_TEXT", "FUSION_WEIGHTS"):
        env.pop(name, None)
    env.update(overrides)
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    return env


def run_config(variant: str, text: str, workdir: Path) -> dict:
    """Ingest + eval for one configuration, in subprocesses; returns the eval JSON and timings."""
    root = workdir / f"{variant}__{text}".replace("+", "_")
    shutil.rmtree(root, ignore_errors=True)
    copy_laws(root / "data")
    env = _project_env(root, LEXICAL_VARIANT=variant, LEXICAL_TEXT=text)
    cli = [sys.executable, "-m", "legal_rag_pipeline.cli"]
    t0 = time.perf_counter()
    ingest = subprocess.run([*cli, "ingest"], check=False, env=env, cwd=root, capture_output=True, text=True)
    t1 = time.perf_counter()
    if ingest.returncode != 0:
        raise RuntimeError(f"ingest failed for {variant}/{text}:\n{ingest.stdout[-2000:]}\n{ingest.stderr[-2000:]}")
    ev = subprocess.run(
        [*cli, "eval", "--questions", str(QUESTIONS), "--k", "1,5,10", "--json"],
        check=False, env=env, cwd=root, capture_output=True, text=True,
    )
    t2 = time.perf_counter()
    if ev.returncode != 0:
        raise RuntimeError(f"eval failed for {variant}/{text}:\n{ev.stdout[-2000:]}\n{ev.stderr[-2000:]}")
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    shutil.rmtree(root, ignore_errors=True)
    return {"metrics": result["metrics"]["overall"], "ingest_s": t1 - t0, "eval_s": t2 - t1}


def whole_article(variant: str) -> dict:
    """BM25 over whole articles (the published reference's unit), scored in process."""
    from legal_rag_pipeline.evaluation import load_questions, normalise_title
    from legal_rag_pipeline.text.chunking import chunk_text
    from legal_rag_pipeline.text.lexical import lexical_tokens
    from legal_rag_pipeline.text.normalize import normalize_text

    k1, b, avg_len = 1.2, 0.75, 256
    docs: list[tuple[str, str, Counter]] = []
    for law, path in eval_laws():
        articles: dict[str, list[str]] = defaultdict(list)
        for c in chunk_text(path.name, normalize_text(path.read_text(encoding="utf-8"))):
            if c.metadata.get("article"):
                body = c.text if not articles[c.metadata["article"]] else c.text.split("\n", 1)[-1]
                articles[c.metadata["article"]].append(body)
        for number, parts in articles.items():
            docs.append((normalise_title(law), number, Counter(lexical_tokens("\n".join(parts), variant))))
    df: Counter = Counter()
    for _, _, tf in docs:
        df.update(tf.keys())
    n = len(docs)
    weights = []
    for _, _, tf in docs:
        length = sum(tf.values())
        norm = k1 * (1 - b + b * length / avg_len)
        weights.append({t: f * (k1 + 1) / (f + norm) for t, f in tf.items()})
    ranks = []
    for q in load_questions(QUESTIONS):
        terms = set(lexical_tokens(q.text, variant))
        scores = [
            sum(w[t] * math.log((n - df[t] + 0.5) / (df[t] + 0.5) + 1) for t in terms if t in w) for w in weights
        ]
        order = sorted(range(n), key=lambda i: -scores[i])[:10]
        law_id, art = q.relevant[0]
        rank = next((r for r, i in enumerate(order, 1) if docs[i][0] == normalise_title(law_id) and docs[i][1] == art), None)
        ranks.append(rank)
    recall = lambda k: sum(1 for r in ranks if r and r <= k) / len(ranks)
    return {"metrics": {"recall@1": recall(1), "recall@5": recall(5), "recall@10": recall(10),
                        "mrr@10": sum(1 / r for r in ranks if r) / len(ranks)}}


# ---------------------------------------------------------------------------------------------- reading
def _ingest(data_files: list[Path], root: Path) -> dict:
    """The files ingested by the pipeline (bm25 only, default configuration) under ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for path in data_files:
        shutil.copy2(path, root / "data" / path.name)
    env = _project_env(root)
    cli = [sys.executable, "-m", "legal_rag_pipeline.cli"]
    done = subprocess.run([*cli, "ingest", "--quiet"], check=False, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return env


def _pipeline_eval(env: dict, root: Path, options: bool) -> dict:
    cli = [sys.executable, "-m", "legal_rag_pipeline.cli", "eval", "--questions", str(QUESTIONS), "--json", "--quiet"]
    done = subprocess.run([*cli, *([] if options else ["--no-options"])], check=False, env=env, cwd=root,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"eval failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["metrics"]


def _index(records: list, heading_weight: int = 1, k1: float = 1.2, b: float = 0.75):
    """SparseIndex over the pipeline's points, the bm25 weights remade with the article heading's tokens
    counted ``heading_weight`` times (and BM25's k1, b)."""
    from legal_rag_pipeline import ingest
    from legal_rag_pipeline.search import SparseIndex
    from legal_rag_pipeline.text.lexical import lexical_tokens, sparse_vector

    points = []
    for chunk, record in records:
        if heading_weight == 1 and (k1, b) == (1.2, 0.75):
            sparse = record.sparse
        else:
            tokens = lexical_tokens(ingest.lexical_text(chunk))
            if chunk.metadata.get("article"):
                tokens += lexical_tokens(chunk.text.split("\n", 1)[0]) * (heading_weight - 1)
            sparse = sparse_vector(tokens, k1=k1, b=b)
        points.append((record.id, dict(zip(*sparse, strict=True)), record.payload))
    return SparseIndex(points)


def _ranks(index, questions, mapped, *, options: bool, rewrite=None, law_boost=None, law_filter=False) -> list:
    """Rank of each question's article (None: not in the top 10) with one way of reading it."""
    from legal_rag_pipeline.evaluation import score
    from legal_rag_pipeline.search import group_hits, search
    from legal_rag_pipeline.text.lexical import query_vector
    from legal_rag_pipeline.text.query import find_laws

    titles = index.facet_values("law")
    ranks = []
    for q in questions:
        text = q.query(options)
        searched = rewrite(text) if rewrite else text
        named = [m.value for m in find_laws(q.text, titles)]
        if law_boost is None and not (law_filter and named):
            hits = search(index, searched, 10)
        else:
            kind, beta = law_boost or ("all", 0.0)
            if kind == "framing":  # only "Theo Luật X, …" at the start of the question
                named = [m.value for m in find_laws(q.text, titles)
                         if re.fullmatch(r"\s*(?:theo|căn cứ|trong)\s*", q.text.lower()[:m.start])]
            points = index.query(sparse=query_vector(searched), limit=2000)
            if law_filter and named:
                points = [p for p in points if p.payload.get("law") in named]
            for p in points:
                if p.payload.get("law") in named:
                    p.score *= 1 + beta
            hits = group_hits(points, 10)  # best first, ties in the files' order (search.best_first)
        ranks.append(score(q, hits, mapped).first_rank())
    return ranks


def _figures(ranks: list, questions, keep=None) -> dict:
    chosen = [(r, q) for i, (r, q) in enumerate(zip(ranks, questions, strict=True)) if keep is None or keep[i]]
    n = len(chosen) or 1
    at = lambda k, rows: sum(1 for r, _ in rows if r is not None and r <= k)
    out = {"r1": at(1, chosen) / n, "r5": at(5, chosen) / n, "r10": at(10, chosen) / n,
           "mrr": sum(1 / r for r, _ in chosen if r) / n, "hits1": at(1, chosen), "hits5": at(5, chosen)}
    for qtype in dict.fromkeys(q.type for q in questions):
        rows = [(r, q) for r, q in chosen if q.type == qtype]
        out[qtype] = at(1, rows) / (len(rows) or 1)
    return out


def reading(laws: str, workdir: Path) -> int:
    """The variant table of docs/retrieval.md ("Reading a question"), with the split-half guard."""
    from legal_rag_pipeline import ingest
    from legal_rag_pipeline.artifacts import FileArtifacts, known_sources
    from legal_rag_pipeline.evaluation import ingested_laws, load_questions, map_laws
    from legal_rag_pipeline.resources.qdrant import QdrantStore
    from legal_rag_pipeline.text.query import strip_scaffolding

    files = [p for _, p in eval_laws()] if laws == "17" else sorted((SHARED / "laws").glob("*.txt"))
    root = workdir / f"reading-{laws}"
    t0 = time.perf_counter()
    env = _ingest(files, root)
    print(f"ingested {len(files)} laws in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    pipeline = {options: _pipeline_eval(env, root, options) for options in (False, True)}

    questions = load_questions(QUESTIONS)
    position: dict[str, int] = {}
    half = []
    for q in questions:  # every other question of each type
        position[q.type] = position.get(q.type, -1) + 1
        half.append(position[q.type] % 2 == 0)
    halves = (half, [not h for h in half])
    state = root / "state"
    records = []
    for source in known_sources(state):
        sha = (FileArtifacts(state, source).document() or {}).get("sha256", "")
        for i, chunk in enumerate(FileArtifacts(state, source).read_chunks()):
            records.append((chunk, ingest.chunk_point(chunk, i, sha, ingest.BM25_ONLY_MODEL, "now", None)))
    with QdrantStore(path=str(state / "qdrant")).connect() as collection:
        laws_in = ingested_laws(collection)
    mapped = map_laws(sorted({law for q in questions for law, _ in q.relevant}), laws_in, {})

    rows: list[tuple[str, str, dict, list]] = []  # (group, name, figures, ranks)
    indexes = {(1, 1.2, 0.75): _index(records)}
    for options in (False, True):
        regime = "question and options" if options else "question only"
        base = _ranks(indexes[(1, 1.2, 0.75)], questions, mapped, options=options)
        got = _figures(base, questions)
        want = pipeline[options]["overall"]
        check = "" if abs(got["r1"] - want["recall@1"]) < 1e-9 and abs(got["mrr"] - want["mrr@10"]) < 1e-6 else " (≠ pipeline!)"
        rows.append((regime, f"pipeline: legal-rag eval{'' if options else ' --no-options'}{check}", got, base))
        variants: list[tuple[str, dict]] = [
            ("scaffolding taken out", {"rewrite": strip_scaffolding}),
            ("law named: filter", {"law_filter": True}),
        ]
        variants += [(f"law named: boost ×{1 + beta:g}", {"law_boost": ("all", beta)}) for beta in (0.25, 0.5, 1.0)]
        variants += [(f"law named as 'Theo …,': boost ×{1 + beta:g}", {"law_boost": ("framing", beta)}) for beta in (0.5, 1.0)]
        for name, kwargs in variants:
            ranks = _ranks(indexes[(1, 1.2, 0.75)], questions, mapped, options=options, **kwargs)
            rows.append((regime, name, _figures(ranks, questions), ranks))
        for key in [(2, 1.2, 0.75), (3, 1.2, 0.75), (4, 1.2, 0.75), (1, 0.9, 0.75), (1, 1.6, 0.75), (1, 1.2, 0.5),
                    (1, 1.2, 0.9)]:
            if key not in indexes:
                indexes[key] = _index(records, *key)
            ranks = _ranks(indexes[key], questions, mapped, options=options)
            name = f"heading ×{key[0]}" if key[0] != 1 else f"k1 {key[1]}, b {key[2]}"
            rows.append((regime, name, _figures(ranks, questions), ranks))
        print(f"  {regime}: {len(rows)} rows", file=sys.stderr, flush=True)

    types = list(dict.fromkeys(q.type for q in questions))
    print(f"{len(files)} laws, bm25 only; Δ@1 = questions first minus the pipeline's, whole set / half A / half B")
    print()
    print("| reading | variant | recall@1 | recall@5 | recall@10 | MRR@10 | " + " | ".join(f"r@1 {t}" for t in types)
          + " | Δ@1 (A / B) | Δ@5 |")
    print("|---|---|---:|---:|---:|---:|" + "---:|" * len(types) + "---:|---:|")
    baselines = {regime: ranks for regime, name, _, ranks in rows if name.startswith("pipeline")}
    def delta(ranks: list, base: list, k: int, keep=None) -> int:
        return _figures(ranks, questions, keep)[f"hits{k}"] - _figures(base, questions, keep)[f"hits{k}"]

    for regime, name, f, ranks in rows:
        base = baselines[regime]
        print(f"| {regime} | {name} | {f['r1']:.2f} | {f['r5']:.2f} | {f['r10']:.2f} | {f['mrr']:.3f} | "
              + " | ".join(f"{f[t]:.2f}" for t in types)
              + f" | {delta(ranks, base, 1):+d} ({delta(ranks, base, 1, halves[0]):+d} / "
              f"{delta(ranks, base, 1, halves[1]):+d}) | {delta(ranks, base, 5):+d} |")
    with_options, text_only = baselines["question and options"], baselines["question only"]
    print()
    print(f"Options read with the question, against the question alone: {delta(with_options, text_only, 1):+d} questions "
          f"first ({delta(with_options, text_only, 1, halves[0]):+d} / {delta(with_options, text_only, 1, halves[1]):+d} "
          f"on halves A / B), {delta(with_options, text_only, 5):+d} in the top 5.")
    # tune a parameter on one half, check it on the other
    print()
    for family in ("heading ×", "k1 ", "law named: boost"):
        for regime in dict.fromkeys(r for r, *_ in rows):
            members = [(n, r) for g, n, _, r in rows if g == regime and n.startswith((family, "pipeline"))]
            for tune, check in ((0, 1), (1, 0)):
                score_on = lambda ranks, h: _figures(ranks, questions, halves[h])["hits1"]
                best_name, best = max(members, key=lambda m: (score_on(m[1], tune), m[0].startswith("pipeline")))
                base = baselines[regime]
                print(f"{regime}, {family.strip()}: tuned on half {'AB'[tune]} → {best_name}; on half {'AB'[check]} "
                      f"{score_on(best, check) - score_on(base, check):+d} questions first")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--texts", default="headings+chunk", help="lexical texts (LEXICAL_TEXT), comma-separated")
    parser.add_argument("--whole-article", action="store_true", help="also score BM25 over whole articles (offline)")
    parser.add_argument("--workdir", help="temporary folder (default: a new one under /tmp)")
    parser.add_argument("--reading", action="store_true", help="how a question is read: the variants of issue 13")
    parser.add_argument("--laws", choices=["17", "all"], default="17",
                        help="--reading over the 17 laws of the questions (default) or all 208 of laws/")
    args = parser.parse_args()
    if not QUESTIONS.exists():
        print(f"{QUESTIONS} is absent: this benchmark needs ../shared/data beside the project.", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="legal-rag-bench-"))
    if args.reading:
        try:
            return reading(args.laws, workdir)
        finally:
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for variant in args.variants.split(","):
        if variant in NEEDS and importlib.util.find_spec(NEEDS[variant]) is None:
            print(f"skipping {variant}: pip install {NEEDS[variant]}", file=sys.stderr)
            continue
        for text in args.texts.split(","):
            result = run_config(variant, text, workdir)
            rows.append((variant, text, result))
            m = result["metrics"]
            print(f"  {variant} / {text}: recall@5 {m['recall@5']:.2f} (ingest {result['ingest_s']:.0f} s, "
                  f"eval {result['eval_s']:.0f} s)", file=sys.stderr, flush=True)
        if args.whole_article:
            rows.append((variant, "whole article (offline)", whole_article(variant)))
    print("| variant | bm25 text | recall@1 | recall@5 | recall@10 | MRR@10 | ingest s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for variant, text, result in rows:
        m = result["metrics"]
        ingest_s = f"{result['ingest_s']:.0f}" if "ingest_s" in result else "–"
        print(f"| {variant} | {text} | {m['recall@1']:.2f} | {m['recall@5']:.2f} | {m['recall@10']:.2f} | "
              f"{m['mrr@10']:.2f} | {ingest_s} |")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
