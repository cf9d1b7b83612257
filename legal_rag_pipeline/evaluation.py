"""Retrieval evaluation on questions linked to the articles that answer them (ALQAC format).

A question is ``{question_id, question_type, text, relevant_articles: [{law_id, article_id}]}``, and a
multiple-choice one has ``choices: {"A": "…", …}``: it is searched with its options, as a person
reads it (``text.query.question_with_options``; ``options=False`` searches the text alone).
Each ``law_id`` is mapped to the ingested law by its title (``search.normalise_title``: NFC,
case, tone placement and punctuation do not matter), or through a law map
(``{"law_id": "title or source file"}``) for names that differ. A hit is relevant when it comes
from a file of that law and its article number equals ``article_id``.

Metrics, per question then averaged (overall and per ``question_type``):
recall@k = share of the question's relevant articles among its top-k hits (top-k are k different
articles, see ``search.group_hits``); MRR@10 = 1 / rank of the first relevant hit within 10.

The search is the one users get (``search.search``): hybrid when the collection has dense vectors
and an embedder is configured, ``bm25`` alone otherwise. ``bm25`` alone on embedded Qdrant is
scored by ``search.SparseIndex`` (the collection's own vectors and Qdrant's IDF formula, in memory:
embedded Qdrant takes about a second per sparse query); ``engine="qdrant"`` forces Qdrant queries.

``EvalReport.as_json(questions=True)`` also holds each question's rank, which ``compare`` reads to say
what changed against a saved report: per type and metric, and which questions moved.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .stores.base import Collection
from .search import Hit, SparseIndex, match_law_titles, normalise_title, search
from .text.query import question_with_options

DEFAULT_KS = (1, 5, 10)
MRR_DEPTH = 10
OVERALL = "overall"


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    text: str
    relevant: tuple[tuple[str, str], ...]  # (law_id, article_id)
    choices: tuple[tuple[str, str], ...] = ()  # a multiple-choice question's options: (("A", "…"), …)

    def query(self, options: bool = True) -> str:
        """What is searched: the text, then one line per option ("A. …") unless ``options`` is False."""
        return question_with_options(self.text, self.choices) if options and self.choices else self.text


@dataclass
class QuestionResult:
    question: Question
    ranks: list[int | None]  # rank of each relevant article in the hits (None: not in the top depth)
    hits: list[tuple[str | None, str | None]]  # (law, article) of the hits, best first
    unmapped: list[str] = field(default_factory=list)  # law ids that match no ingested law

    def recall(self, k: int) -> float:
        if not self.ranks:
            return 0.0
        return sum(1 for r in self.ranks if r is not None and r <= k) / len(self.ranks)

    def first_rank(self) -> int | None:
        """Rank of the first relevant article among the hits (None: not among them)."""
        found = [r for r in self.ranks if r is not None]
        return min(found) if found else None

    def reciprocal_rank(self, depth: int = MRR_DEPTH) -> float:
        found = [r for r in self.ranks if r is not None and r <= depth]
        return 1.0 / min(found) if found else 0.0


@dataclass
class Metrics:
    questions: int
    recall: dict[int, float]
    mrr: float


@dataclass
class EvalReport:
    ks: tuple[int, ...]
    depth: int
    results: list[QuestionResult]
    mode: str  # "hybrid (dense + bm25)" or "bm25"
    law_sources: dict[str, list[str]]  # law_id -> ingested files it was mapped to
    unmapped: dict[str, int]  # law_id -> questions that cite it

    def metrics(self, results: Sequence[QuestionResult] | None = None, ks: Sequence[int] | None = None) -> Metrics:
        results = self.results if results is None else results
        ks = self.ks if ks is None else ks
        n = len(results)
        return Metrics(
            questions=n,
            recall={k: (sum(r.recall(k) for r in results) / n if n else 0.0) for k in ks},
            mrr=sum(r.reciprocal_rank(MRR_DEPTH) for r in results) / n if n else 0.0,
        )

    def by_type(self) -> dict[str, Metrics]:
        """Metrics per question type (in first-seen order), then ``overall``."""
        groups: dict[str, list[QuestionResult]] = defaultdict(list)
        for result in self.results:
            groups[result.question.type].append(result)
        table = {qtype: self.metrics(items) for qtype, items in groups.items()}
        table[OVERALL] = self.metrics()
        return table

    def curve(self, results: Sequence[QuestionResult] | None = None) -> list[float]:
        """Mean recall at k = 1 .. depth (the plot)."""
        results = self.results if results is None else results
        n = len(results) or 1
        return [sum(r.recall(k) for r in results) / n for k in range(1, self.depth + 1)]

    def as_json(self, questions: bool = False) -> dict[str, Any]:
        """Metrics per type; with ``questions``, also each question's rank and first hits (for ``compare``)."""
        data: dict[str, Any] = {
            "mode": self.mode,
            "ks": list(self.ks),
            "metrics": {
                name: {"questions": m.questions, **{f"recall@{k}": m.recall[k] for k in self.ks}, "mrr@10": m.mrr}
                for name, m in self.by_type().items()
            },
            "unmapped_laws": self.unmapped,
        }
        if questions:
            data["questions"] = [
                {
                    "id": r.question.id,
                    "type": r.question.type,
                    "rank": r.first_rank(),
                    "hits": [f"{law or '?'} · Điều {art}" if art else (law or "Q&A") for law, art in r.hits[:3]],
                }
                for r in self.results
            ]
        return data


# ---------------------------------------------------------------------------------------------- input
def parse_ks(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """"1,5,10" → (1, 5, 10): sorted, distinct, each ≥ 1."""
    if text is None:
        return DEFAULT_KS
    try:
        values = [int(x) for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip()]
    except ValueError:
        raise ConfigurationError(f"--k {text!r} is not a list of whole numbers", "write e.g. --k 1,5,10") from None
    if not values or min(values) < 1:
        raise ConfigurationError(f"--k {text!r} needs numbers of 1 or more", "write e.g. --k 1,5,10")
    return tuple(sorted(set(values)))


def _article_id(value: Any) -> str:
    text = str(value).strip().lower()
    return re.sub(r"^(điều|dieu)\s*", "", text).rstrip(".")


def load_questions(path: str | Path) -> list[Question]:
    """Questions in the ALQAC format: a JSON list (or ``{"questions": [...]}``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigurationError(f"The questions file {path} does not exist", "give --questions an existing JSON file") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"The questions file {path} is not valid JSON ({exc})", "fix the file") from None
    if isinstance(data, dict):
        data = data.get("questions", data.get("data"))
    if not isinstance(data, list):
        raise ConfigurationError(
            f"The questions file {path} holds no list of questions", "give a JSON list of ALQAC-format questions"
        )
    questions = []
    for i, item in enumerate(data, 1):
        try:
            relevant = tuple(
                (str(a["law_id"]), _article_id(a["article_id"])) for a in item["relevant_articles"]
            )
            text = str(item["text"])
            choices = item.get("choices") or {}
            choices = tuple((str(k), str(v)) for k, v in (choices.items() if isinstance(choices, dict) else choices))
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(
                f"Question {i} of {path} lacks `text` or `relevant_articles: [{{law_id, article_id}}]`",
                "write each question in the ALQAC format",
            ) from None
        questions.append(
            Question(
                id=str(item.get("question_id", i)),
                type=str(item.get("question_type") or "unspecified"),
                text=text,
                relevant=relevant,
                choices=choices,
            )
        )
    return questions


def load_law_map(path: str | Path | None) -> dict[str, str]:
    """``{"law_id": "ingested title or source file"}`` from a JSON file (empty without a file)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"The law map {path} cannot be read ({exc})", 'give a JSON object {"law_id": "title"}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError(f"The law map {path} is not a JSON object of strings", 'write {"law_id": "title or file"}')
    return {str(k): v for k, v in data.items()}


# ---------------------------------------------------------------------------------------------- mapping
def ingested_laws(collection: Collection) -> dict[str, set[str]]:
    """``{law title: {source files}}`` of the collection, plus ``{"#<number key>": {source files}}`` for
    each document number (số hiệu) read from the documents' headers."""
    from .readers.header import number_key

    laws: dict[str, set[str]] = defaultdict(set)
    for point in collection.iter_points(fields=["law", "source", "number"], batch=16384):
        payload = point.payload
        if not payload.get("source"):
            continue
        if payload.get("law"):
            laws[str(payload["law"])].add(str(payload["source"]))
        if payload.get("number"):
            laws[NUMBER_PREFIX + number_key(str(payload["number"]))].add(str(payload["source"]))
    return laws


NUMBER_PREFIX = "#"


def map_laws(law_ids: Sequence[str], laws: dict[str, set[str]], law_map: dict[str, str]) -> dict[str, set[str]]:
    """Each law id → the source files of the ingested law it names (empty set: not ingested).

    The law map is consulted first (by exact id, then by normalised id); its value is a title
    (compared like ids) or a source file. Without an entry, an id that is a document number
    (``91/2015/QH13``, as in ALQAC 2022) is compared with the documents' numbers, else the id is
    compared with the titles.
    """
    from .readers.header import number_key

    sources_by_file = {s for files in laws.values() for s in files}
    normalised_map = {normalise_title(k): v for k, v in law_map.items()}
    titles = [t for t in laws if not t.startswith(NUMBER_PREFIX)]
    result: dict[str, set[str]] = {}
    for law_id in law_ids:
        target = law_map.get(law_id) or normalised_map.get(normalise_title(law_id)) or law_id
        if target in sources_by_file:
            result[law_id] = {target}
            continue
        by_number = laws.get(NUMBER_PREFIX + number_key(target))
        if "/" in target and by_number:  # an ALQAC 2022 law_id such as 91/2015/QH13: the document's number
            result[law_id] = set(by_number)
            continue
        key = normalise_title(target)
        matched = [t for t in titles if normalise_title(t) == key]
        result[law_id] = {s for t in matched for s in laws[t]}
    return result


# ---------------------------------------------------------------------------------------------- run
def evaluate(
    collection: Collection,
    questions: Sequence[Question],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    law_map: dict[str, str] | None = None,
    embedder: Any = None,
    law: str | None = None,
    source: str | None = None,
    engine: str = "auto",
    progress: Any = None,
    options: bool = True,
    fusion_weights: tuple[float, float] | None = None,
    as_of: str | None = "today",
) -> EvalReport:
    """Search every question (with its options, unless ``options`` is False) and score the hits.

    ``progress`` (progress.py), when given, counts the questions searched ("search").

    ``engine``: "qdrant" (every query through Qdrant), "memory" (bm25 in memory, ``SparseIndex``)
    or "auto" (memory for bm25 alone where the store scores sparse queries in Python, i.e.
    qdrant-client's local mode; Qdrant Edge and servers answer a query in about a millisecond).
    """
    ks = tuple(sorted(set(ks)))
    depth = max(max(ks), MRR_DEPTH)
    laws = ingested_laws(collection)
    law_ids = sorted({law_id for q in questions for law_id, _ in q.relevant})
    mapped = map_laws(law_ids, laws, law_map or {})
    unmapped: dict[str, int] = {}
    for q in questions:
        for law_id, _ in q.relevant:
            if not mapped[law_id]:
                unmapped[law_id] = unmapped.get(law_id, 0) + 1

    dense = embedder is not None and embedder.enabled() and collection.dense_size() is not None
    texts = [q.query(options) for q in questions]
    vectors = embedder.embed(texts) if dense and questions else None
    memory = engine == "memory" or (engine == "auto" and not dense and collection.scores_in_python)
    index = SparseIndex.from_collection(collection) if memory and not dense else None
    results = []
    if progress is not None:
        progress.start("search", len(questions), "questions")
    for i, q in enumerate(questions):
        if progress is not None and i:
            progress.advance("search")
        hits = search(
            collection if index is None else index,
            texts[i],
            depth,
            dense_vector=None if vectors is None else [float(x) for x in vectors[i]],
            law=law,
            source=source,
            fusion_weights=fusion_weights,
            as_of=as_of,
        )
        results.append(score(q, hits, mapped))
    if progress is not None:
        progress.update("search", len(questions))
        progress.finish("search")
    return EvalReport(
        ks=ks,
        depth=depth,
        results=results,
        mode="hybrid (dense + bm25)" if dense else "bm25",
        law_sources={k: sorted(v) for k, v in mapped.items()},
        unmapped=unmapped,
    )


def score(question: Question, hits: Sequence[Hit], mapped: dict[str, set[str]]) -> QuestionResult:
    ranks: list[int | None] = []
    for law_id, article_id in question.relevant:
        sources = mapped.get(law_id, set())
        rank = next(
            (
                i
                for i, hit in enumerate(hits, 1)
                if hit.source in sources and hit.article is not None and str(hit.article).lower() == article_id
            ),
            None,
        )
        ranks.append(rank)
    return QuestionResult(
        question=question,
        ranks=ranks,
        hits=[(h.law, h.article) for h in hits],
        unmapped=[law_id for law_id, _ in question.relevant if not mapped.get(law_id)],
    )


# ---------------------------------------------------------------------------------------------- output
def _rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    header = ["question type", "questions", *[f"recall@{k}" for k in report.ks], f"MRR@{MRR_DEPTH}"]
    rows = [
        [name, str(m.questions), *[f"{m.recall[k]:.3f}" for k in report.ks], f"{m.mrr:.3f}"]
        for name, m in report.by_type().items()
    ]
    return header, rows


def format_table(report: EvalReport) -> str:
    """The console table: one row per question type, then ``overall``."""
    header, rows = _rows(report)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    if report.unmapped:
        out.append("")
        out.append(
            "Laws not found in the collection (their questions count as misses; map them with --law-map): "
            + ", ".join(f"{k} ({v} questions)" for k, v in sorted(report.unmapped.items()))
        )
    return "\n".join(out)


def markdown_table(report: EvalReport) -> str:
    header, rows = _rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(report: EvalReport, *, title: str = "Retrieval evaluation", context: dict[str, str] | None = None,
                    plot: str | None = None) -> str:
    """A Markdown report: settings, the table, the curve (when plotted), the misses."""
    parts = [f"# {title}", ""]
    for key, value in (context or {}).items():
        parts.append(f"* **{key}**: {value}")
    parts.append(f"* **search**: {report.mode}, top-k = k different articles")
    parts += ["", markdown_table(report), ""]
    if plot:
        parts += [f"![recall against k]({plot})", ""]
    if report.unmapped:
        parts.append("Laws not found in the collection (questions counted as misses; use `--law-map`): "
                     + ", ".join(f"{k} ({v})" for k, v in sorted(report.unmapped.items())))
        parts.append("")
    misses = [r for r in report.results if r.recall(max(report.ks)) < 1.0]
    parts.append(f"## Questions not fully answered in the top {max(report.ks)} ({len(misses)})")
    parts.append("")
    if misses:
        parts.append("| id | type | relevant | first hits |")
        parts.append("|---|---|---|---|")
        for r in misses:
            gold = "; ".join(f"{law} · Điều {art}" for law, art in r.question.relevant)
            got = "; ".join(f"{law or '?'} · Điều {art}" if art else f"{law or 'Q&A'}" for law, art in r.hits[:3])
            parts.append(f"| {r.question.id} | {r.question.type} | {gold} | {got} |")
    else:
        parts.append("None.")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------- compare
@dataclass
class Comparison:
    """What changed between a saved report (``before``) and this one, per question type and metric."""

    metrics: list[str]
    rows: list[tuple[str, dict[str, float | None], dict[str, float]]]  # (type, before, now)
    better: list[tuple[str, str, int | None, int | None]]  # (id, type, rank before, rank now)
    worse: list[tuple[str, str, int | None, int | None]]
    unmatched: int  # questions of one report that the other does not have
    per_question: bool = True  # False: the saved report has no ranks per question (printed by --json)

    def as_json(self) -> dict[str, Any]:
        return {
            "metrics": {
                qtype: {m: {"before": before.get(m), "now": now.get(m),
                            "delta": None if before.get(m) is None else now[m] - before[m]} for m in self.metrics}
                for qtype, before, now in self.rows
            },
            "better": [{"id": i, "type": t, "before": b, "now": n} for i, t, b, n in self.better],
            "worse": [{"id": i, "type": t, "before": b, "now": n} for i, t, b, n in self.worse],
            "unmatched": self.unmatched,
            "per_question": self.per_question,
        }


def load_report(path: str | Path) -> dict[str, Any]:
    """A report saved by ``legal-rag eval --save`` (or printed by ``--json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"The report {path} does not exist", "give --compare a file written by --save") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"The report {path} is not valid JSON ({exc})", "give --compare a file written by --save") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ConfigurationError(f"The report {path} holds no metrics", "give --compare a file written by --save or --json")
    return data


def compare(report: EvalReport, before: dict[str, Any]) -> Comparison:
    """Deltas per question type and metric against ``before`` (a saved report), and the questions whose
    first relevant article moved up or down (only when ``before`` holds them: ``--save`` writes them)."""
    now = report.as_json(questions=True)
    metrics = [f"recall@{k}" for k in report.ks] + ["mrr@10"]
    rows = [
        (qtype, {m: before["metrics"].get(qtype, {}).get(m) for m in metrics}, {m: values[m] for m in metrics})
        for qtype, values in now["metrics"].items()
    ]
    old = {str(q["id"]): q for q in before.get("questions") or []}
    better, worse = [], []
    for q in now["questions"]:
        if q["id"] not in old:
            continue
        was, is_ = old[q["id"]].get("rank"), q["rank"]
        if was == is_:
            continue
        if is_ is not None and (was is None or is_ < was):
            better.append((q["id"], q["type"], was, is_))
        else:
            worse.append((q["id"], q["type"], was, is_))
    unmatched = len(set(old) ^ {q["id"] for q in now["questions"]}) if old else 0
    return Comparison(metrics, rows, better, worse, unmatched, per_question=bool(old))


def format_comparison(comparison: Comparison, name: str = "the saved report") -> str:
    """The console table of a comparison: per type, each metric as now (± change), then the moves."""
    def cell(before: float | None, now: float) -> str:
        if before is None:
            return f"{now:.3f} (new)"
        delta = now - before
        return f"{now:.3f} ({'=' if abs(delta) < 5e-4 else f'{delta:+.3f}'})"

    header = ["question type", *comparison.metrics]
    rows = [[qtype, *(cell(before[m], now[m]) for m in comparison.metrics)] for qtype, before, now in comparison.rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out = [f"Against {name} (now, and the change):", line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    rank = lambda r: "-" if r is None else str(r)
    for label, moves in (("better", comparison.better), ("worse", comparison.worse)):
        if moves:
            out.append(f"{len(moves)} {label}: " + ", ".join(f"{i} ({t}) {rank(b)}→{rank(n)}" for i, t, b, n in moves))
    if not comparison.per_question:
        out.append("The saved report has no ranks per question (write it with --save to see which questions moved).")
    elif not comparison.better and not comparison.worse:
        out.append("No question moved.")
    if comparison.unmatched:
        out.append(f"{comparison.unmatched} questions are in one report only.")
    return "\n".join(out)


def plot_recall(report: EvalReport, path: str | Path, *, title: str = "Recall against k") -> Path:
    """A PNG of mean recall against k (1 .. depth): overall and per question type."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError(
            "The plot needs matplotlib, which is not installed",
            "pip install 'legal-rag-pipeline[eval]' (or pip install matplotlib), or leave out --plot",
        ) from None
    path = Path(path)
    ks = list(range(1, report.depth + 1))
    groups: dict[str, list[QuestionResult]] = defaultdict(list)
    for result in report.results:
        groups[result.question.type].append(result)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        for qtype, items in groups.items():
            if len(groups) > 1:
                ax.plot(ks, report.curve(items), marker=".", linewidth=1, alpha=0.8, label=f"{qtype} ({len(items)})")
        ax.plot(ks, report.curve(), marker="o", linewidth=2.5, color="black", label=f"overall ({len(report.results)})")
        ax.set_xlabel("k (different articles returned)")
        ax.set_ylabel("recall@k")
        ax.set_xticks(ks)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{title} — {report.mode}")
        ax.legend(loc="lower right")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


__all__ = [
    "DEFAULT_KS",
    "Comparison",
    "EvalReport",
    "Question",
    "compare",
    "evaluate",
    "format_comparison",
    "format_table",
    "load_law_map",
    "load_questions",
    "load_report",
    "map_laws",
    "markdown_report",
    "match_law_titles",
    "parse_ks",
    "plot_recall",
]
