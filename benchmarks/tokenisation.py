"""Which Vietnamese tokenisation (and which text) should feed the `bm25` vector? Measured, not guessed.

For every lexical variant × lexical text, through the full pipeline (bm25 only): copy the 17 laws of
ALQAC 2023 from ../shared/data into a temporary data folder, `legal-rag ingest` them into a fresh
embedded Qdrant, then `legal-rag eval` on eval/alqac2023_train.json. Prints the table that is in
docs/retrieval.md.

    python benchmarks/tokenisation.py                       # every variant, the default lexical text
    python benchmarks/tokenisation.py --variants syllables+bigrams --texts chunk,title+chunk,headings+chunk
    python benchmarks/tokenisation.py --whole-article       # also the "whole article" option (offline)

Variants needing a package that is missing (pyvi, underthesea) are skipped with a note. Each
configuration runs in its own subprocesses with its own temporary state; nothing is written into
the repository. "--whole-article" scores BM25 over whole articles in this process with the same
tokens, the same BM25 weights and Qdrant's IDF formula (the pipeline gives each piece of an article
its own vector, so whole-article vectors are not something ``lexical_text(chunk)`` can produce).
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


def run_config(variant: str, text: str, workdir: Path) -> dict:
    """Ingest + eval for one configuration, in subprocesses; returns the eval JSON and timings."""
    root = workdir / f"{variant}__{text}".replace("+", "_")
    shutil.rmtree(root, ignore_errors=True)
    copy_laws(root / "data")
    env = {
        **os.environ,
        "DATA_DIR": str(root / "data"),
        "LEGAL_RAG_STATE_DIR": str(root / "state"),
        "QDRANT_PATH": str(root / "state" / "qdrant"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "EMBEDDINGS_BACKEND": "none",
        "LEXICAL_VARIANT": variant,
        "LEXICAL_TEXT": text,
    }
    for name in ("HF_TOKEN", "HUGGINGFACE_API_KEY", "EMBEDDINGS_ENDPOINT_URL", "QDRANT_URL", "QDRANT_HOST", "COLLECTION_NAME"):
        env.pop(name, None)
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--texts", default="headings+chunk", help="lexical texts (LEXICAL_TEXT), comma-separated")
    parser.add_argument("--whole-article", action="store_true", help="also score BM25 over whole articles (offline)")
    parser.add_argument("--workdir", help="temporary folder (default: a new one under /tmp)")
    args = parser.parse_args()
    if not QUESTIONS.exists():
        print(f"{QUESTIONS} is absent: this benchmark needs ../shared/data beside the project.", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="legal-rag-bench-"))
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
