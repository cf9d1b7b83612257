"""Vietnamese lexical tokens and BM25 sparse vectors (Qdrant applies the IDF part with its modifier).

Text is NFC-normalised, lower-cased and tone-folded, so "Nội thuỷ" in a law and "nội thủy" in a
question give the same token. Documents and queries go through the same ``lexical_tokens``.

The variant is chosen by measurement (``benchmarks/tokenisation.py``, table in
docs/retrieval.md): syllables + bigrams wins on ALQAC 2023. ``LEXICAL_VARIANT`` selects another
one (settings.py, carried by the store: ``Collection.lexical``); the collection's points must then
be rebuilt (``legal-rag rebuild``), since queries and documents must be tokenised alike.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from .normalize import normalize_text

VARIANTS = ("syllables", "syllables+bigrams", "pyvi", "underthesea")
# The measured winner (recall@5 0.97 on ALQAC 2023 train, bm25 only; see docs/retrieval.md).
DEFAULT_VARIANT = "syllables+bigrams"
# What feeds a chunk's bm25 vector, chosen by measurement (docs/retrieval.md): "headings+chunk" = law
# title, chapter and section titles, then the chunk (which starts with its article heading);
# "title+chunk" = law title and chunk; "chunk" = the chunk alone.
LEXICAL_TEXTS = ("headings+chunk", "title+chunk", "chunk")
DEFAULT_LEXICAL_TEXT = "headings+chunk"


@dataclass(frozen=True)
class Lexical:
    """How a collection's bm25 vectors are made: the tokeniser ``variant`` (documents and queries alike)
    and the ``text`` of a chunk that feeds it. Chosen in settings (LEXICAL_VARIANT, LEXICAL_TEXT); a
    collection's points must be rebuilt (``legal-rag rebuild``) when it changes."""

    variant: str = DEFAULT_VARIANT
    text: str = DEFAULT_LEXICAL_TEXT


DEFAULT_LEXICAL = Lexical()

_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")  # huyền, sắc, ngã, hỏi, nặng
_VOWELS = frozenset("aăâeêioôơuưy")
# Syllables whose nucleus is oa / oe / uy: the tone goes on the first vowel without a final consonant
# (hòa, khỏe, thủy, úy) and on the second with one (hoàn, khoét, huỳnh).
_OA_OE_UY = re.compile(r"([bcdđghklmnprstvx]*)(oa|oe|uy)(ch|ng|nh|[cmnpt])?")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Punctuation (anything but letters, digits, whitespace) separates phrases: no bigram crosses it.
_PHRASE_BREAK = re.compile(r"[^\w\s]|_", re.UNICODE)


def _place_tone(base: str, pos: int, tone: str) -> str:
    return base[:pos] + unicodedata.normalize("NFC", base[pos] + tone) + base[pos + 1:]


@lru_cache(maxsize=1 << 18)
def fold_tone_marks(word: str) -> str:
    """Lower-case, NFC, and one canonical tone placement for the syllables written two ways.

    "hoà"/"hòa" → "hòa", "thuỷ"/"thủy" → "thủy", "uý"/"úy" → "úy", "khoẻ"/"khỏe" → "khỏe";
    with a final consonant the tone stays on the second vowel ("hòan" → "hoàn"). After "qu" the
    u belongs to the consonant, so "qúy" → "quý". Other words are only lower-cased and NFC'd.
    """
    w = unicodedata.normalize("NFC", word.lower())
    decomposed = unicodedata.normalize("NFD", w)
    tones = [c for c in decomposed if c in _TONE_MARKS]
    if len(tones) != 1:
        return w
    tone = tones[0]
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))
    m = _OA_OE_UY.fullmatch(base)
    if m:
        onset, _nucleus, coda = m.groups()
        return _place_tone(base, len(onset) + (1 if coda else 0), tone)
    if base.startswith("qu") and len(base) > 2 and base[2] in _VOWELS:
        # the tone belongs to the vowel after "qu" when it is a single vowel (quý, quá, quẻ, quỳnh)
        rest_vowels = 0
        for ch in base[2:]:
            if ch in _VOWELS:
                rest_vowels += 1
            else:
                break
        if rest_vowels == 1:
            return _place_tone(base, 2, tone)
    return w


def _phrases(text: str) -> list[list[str]]:
    """Lower-cased, folded words grouped by the punctuation that separates them."""
    text = normalize_text(text).lower()
    return [[fold_tone_marks(w) for w in _WORD.findall(part)] for part in _PHRASE_BREAK.split(text)]


@lru_cache(maxsize=1)
def _pyvi_tokenizer():
    try:
        from pyvi import ViTokenizer  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - pyvi is a declared dependency of this variant
        raise RuntimeError("the 'pyvi' lexical variant needs the pyvi package: pip install pyvi") from exc
    return ViTokenizer


@lru_cache(maxsize=1)
def _underthesea_tokenize():
    try:
        from underthesea import word_tokenize  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "the 'underthesea' lexical variant needs the underthesea package: pip install underthesea"
        ) from exc
    return word_tokenize


def _segmented_words(segmented: str) -> list[str]:
    """Words of a segmenter's output ("ma_túy xử_lý") as folded syllables joined by "_"."""
    tokens = []
    for word in segmented.lower().split():
        syllables = [fold_tone_marks(s) for s in _WORD.findall(word.replace("_", " "))]
        if syllables:
            tokens.append("_".join(syllables))
    return tokens


def lexical_tokens(text: str, variant: str = DEFAULT_VARIANT, stopwords: Iterable[str] | None = None) -> list[str]:
    """Tokens for the BM25 sparse vector.

    * ``"syllables"``: lower-cased, NFC, tone-folded syllables; punctuation dropped, numbers kept
      ("Điều 5." → ["điều", "5"]).
    * ``"syllables+bigrams"``: the syllables plus "a_b" for adjacent syllables not separated by
      punctuation ("nội thủy" → ["nội", "thủy", "nội_thủy"]).
    * ``"pyvi"``: pyvi word segmentation, each word's syllables joined by "_" ("nội_thủy").
    * ``"underthesea"``: underthesea's word segmentation, the same way (optional package).

    ``stopwords`` (folded, lower-case) are dropped when given; by default nothing is dropped.
    """
    stop = frozenset(stopwords or ())
    if variant == "syllables":
        tokens = [w for phrase in _phrases(text) for w in phrase]
    elif variant == "syllables+bigrams":
        phrases = _phrases(text)
        tokens = [w for phrase in phrases for w in phrase]
        tokens += [f"{a}_{b}" for phrase in phrases for a, b in pairwise(phrase)]
    elif variant == "pyvi":
        tokens = _segmented_words(_pyvi_tokenizer().tokenize(normalize_text(text)))
    elif variant == "underthesea":
        tokens = _segmented_words(_underthesea_tokenize()(normalize_text(text), format="text"))
    else:
        raise ValueError(f"unknown lexical variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    if stop:
        tokens = [t for t in tokens if t not in stop]
    return tokens


@lru_cache(maxsize=1 << 14)
def token_index(token: str) -> int:
    """Stable unsigned 32-bit index of a token (blake2b, the same in every process and machine).

    Cached: a corpus repeats its common syllables and bigrams millions of times. The cache keeps the
    16,384 most recent. Keeping every token (the 208 laws have 126,212, a national corpus many more)
    found 98.3 % of lookups against 90.2 %, in the same time, and held 31 MB against 10 MB in the
    write's bm25 helper, growing with the corpus (their 18,023 articles, twice; docs/performance.md,
    seventeenth pass).
    """
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def _to_sparse(weights: dict[int, float]) -> tuple[list[int], list[float]]:
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def sparse_vector(tokens: list[str], *, k1: float = 1.2, b: float = 0.75,
                  avg_len: float = 256) -> tuple[list[int], list[float]]:
    """BM25 term-frequency weights ``tf*(k1+1)/(tf + k1*(1-b+b*len/avg_len))`` by token index.

    Hash collisions are merged by summing; indices are sorted ascending. No tokens → ([], []).
    """
    if not tokens:
        return [], []
    length_norm = k1 * (1 - b + b * len(tokens) / avg_len)
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens).items():
        idx = token_index(token)
        weights[idx] = weights.get(idx, 0.0) + tf * (k1 + 1) / (tf + length_norm)
    return _to_sparse(weights)


def query_sparse_vector(tokens: list[str]) -> tuple[list[int], list[float]]:
    """Query side: each distinct token weighs 1.0 (colliding tokens sum), indices sorted."""
    weights: dict[int, float] = {}
    for token in set(tokens):
        idx = token_index(token)
        weights[idx] = weights.get(idx, 0.0) + 1.0
    return _to_sparse(weights)


def document_sparse_vector(text: str, variant: str = DEFAULT_VARIANT, **bm25) -> tuple[list[int], list[float]]:
    """``sparse_vector(lexical_tokens(text, variant))``; ``bm25`` passes k1 / b / avg_len."""
    return sparse_vector(lexical_tokens(text, variant), **bm25)


# A bm25 vector: (indices, values), as lists or as ``packed`` arrays.
Sparse = tuple[Sequence[int], Sequence[float]]


def packed(sparse: Sparse) -> tuple[array, array]:
    """A bm25 vector as two machine arrays (unsigned 32-bit indices, 64-bit values: the same numbers).

    Held between its making and its write (the group the helper answered, the groups in flight to the
    write process), a chunk's vector of Python lists takes 3-4 times the memory of its arrays: at the
    dense ingest's peak the helper's answers alone held 61 MB, and packing took the ingest's processes
    from 594-599 to 522 MB (docs/performance.md, twenty-ninth pass). The stores read both alike."""
    return array("I", sparse[0]), array("d", sparse[1])


def query_vector(text: str, variant: str = DEFAULT_VARIANT) -> tuple[list[int], list[float]]:
    """``query_sparse_vector(lexical_tokens(text, variant))``."""
    return query_sparse_vector(lexical_tokens(text, variant))
