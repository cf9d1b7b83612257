"""Token budget of the embedding model.

The default model, ``sentence-transformers/paraphrase-multilingual-mpnet-base-v2``, uses the XLM-R
SentencePiece tokenizer and silently truncates its input at 128 tokens (2 of them special: ``<s>`` and
``</s>``). Text beyond that is invisible to dense search, so every chunk must fit the budget.

The tokenizer files cannot be downloaded here, so ``count_tokens`` is a deliberately conservative
estimate; ``make_token_counter(path)`` counts exactly with a local Hugging Face ``tokenizer.json``
when the ``tokenizers`` package is installed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

DEFAULT_TOKEN_BUDGET = 128
SPECIAL_TOKENS = 2
# Safety margin on the syllable count: rare syllables, old-style tone placement ("thuỷ") and
# capitalised words are sometimes split by SentencePiece into 2-3 pieces.
_MARGIN = 1.15

_LETTER_RUNS = re.compile(r"[^\W\d_]+")
_DIGIT_RUNS = re.compile(r"[0-9]+")
_PUNCTUATION = re.compile(r"[^\w\s]")
# Two upper-case (Latin/Vietnamese) letters in a row: only then can an ALL-CAPS run be present.
_UPPERS = "".join(chr(c) for c in [*range(0x41, 0x250), *range(0x1E00, 0x1F00)] if chr(c).isupper())
_UPPER_PAIR = re.compile(f"[{re.escape(_UPPERS)}]{{2}}")

log = logging.getLogger(__name__)


def count_tokens(text: str) -> int:
    """Conservative estimate of the XLM-R token count of ``text``, special tokens included.

    Heuristic (errs on the high side):

    * each run of letters (a Vietnamese syllable) counts 1; a run longer than 7 letters counts
      ``ceil(len/4)``; an ALL-CAPS run counts ``ceil(len/2)``;
    * each run of digits counts ``ceil(len/3)`` ("2020" → 2, "68" → 1);
    * each punctuation or symbol character counts 1;
    * the sum is multiplied by 1.15 (rounded up) for syllables SentencePiece splits;
      (the estimate is additive over whitespace: count(a + " " + b) <= count(a) + count(b) - 2)
    * plus 2 special tokens.

    Whitespace is free. ``count_tokens("")`` is 2.
    """
    raw = 0
    for line in text.split("\n"):
        raw += _line_cost(line)
    return math.ceil(raw * _MARGIN) + SPECIAL_TOKENS


@lru_cache(maxsize=8_192)
def _line_cost(line: str) -> int:
    """Tokens of one line before the margin and the special tokens (cached: the chunker measures the
    same lines as an article, as clauses and as pieces, all within one file). The cache lives as
    long as the process: 65,536 lines held 28 MB to the end of a run once 17,656 files were
    chunked; 8,192 hold 4 MB, and chunking them took 9.5 s instead of 9.2 s (docs/performance.md)."""
    runs = _LETTER_RUNS.findall(line)
    total = len(runs) + len(_PUNCTUATION.findall(line)) + line.count("_")
    if runs and (max(map(len, runs)) > 7 or _UPPER_PAIR.search(line)):
        for run in runs:
            n = len(run)
            if n > 1 and run.isupper():
                # Upper-case Vietnamese ("CỘNG HÒA", "ĐIỀU") is rare in the training data: ~2 chars/token
                total += (n + 1) // 2 - 1
            elif n > 7:
                # a syllable has at most 7 letters ("nghiêng"); longer runs are foreign words: ~4 chars/token
                total += (n + 3) // 4 - 1
    for digits in _DIGIT_RUNS.findall(line):
        total += (len(digits) + 2) // 3
    return total


def make_token_counter(tokenizer_path: str | None) -> Callable[[str], int]:
    """A token counter: exact with a Hugging Face ``tokenizer.json`` when possible, else the estimate.

    ``tokenizer_path`` is the path of a ``tokenizer.json`` (or a folder holding one). When it is
    None, or the ``tokenizers`` package is not installed, ``count_tokens`` is returned (a warning is
    logged in the second case). A path that does not exist is a configuration mistake and raises
    ``FileNotFoundError``. The exact counter includes special tokens and never truncates.
    """
    if not tokenizer_path:
        return count_tokens
    path = Path(tokenizer_path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist: point to a tokenizer.json or unset it")
    try:
        from tokenizers import Tokenizer  # type: ignore[import-not-found]
    except ImportError:
        log.warning("the 'tokenizers' package is not installed: estimating token counts instead of using %s",
                    path)
        return count_tokens
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def exact_count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=True).ids)

    return exact_count
