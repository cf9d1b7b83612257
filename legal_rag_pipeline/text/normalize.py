"""Unicode and whitespace normalisation: every text is NFC before it is hashed, chunked or tokenised.

47 of the 318 real laws are written with decomposed diacritics (NFD): without NFC the same article
would get another point id and other lexical tokens than its composed twin.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Invisible characters that only get in the way: BOM, zero-width space/joiners, word joiner, soft hyphen,
# and the C0/C1 control characters that never mean anything in a law or an answer.
_DROP = re.compile("[\ufeff\u200b\u200c\u200d\u2060\u00ad\x00-\x08\x0e-\x1b\x1f\x7f\x80-\x84\x86-\x9f]")
# Unicode spaces (NBSP, figure/narrow NBSP, en/em spaces..., ideographic space) become a plain space.
_SPACE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# Vertical tab, form feed, file/group/record separators, NEL and the Unicode line/paragraph
# separators become a line break.
_BREAK = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_H_SPACE_RUN = re.compile(r"[ \t]{2,}|\t")
_SPACE_AROUND_BREAK = re.compile(r" \n ?|\n ")
_MANY_NEWLINES = re.compile(r"\n{3,}")
# A character one of the steps below removes or replaces; with the runs they change (looked for as
# substrings, each a fast scan), what a text already normal has none of. Every text is normalised where
# it is read, and again where it is chunked and where its title is looked for: a normal text is
# returned after these scans instead of going through every step.
_ODD_CHARACTER = re.compile("[" + "".join(p.pattern[1:-1] for p in (_DROP, _SPACE, _BREAK)) + "]")
_CHANGED_RUNS = ("\r", "\t", "  ", " \n", "\n ", "\n\n\n")


def _already_normal(text: str) -> bool:
    """Whether every step of ``normalize_text`` gives ``text`` back unchanged (``text`` not empty)."""
    if text[0].isspace() or text[-1].isspace() or any(run in text for run in _CHANGED_RUNS):
        return False
    return _ODD_CHARACTER.search(text) is None and unicodedata.is_normalized("NFC", text)


def normalize_text(text: str) -> str:
    """NFC, LF line ends, no invisible characters, single spaces, stripped lines, ≤ 1 blank line in a row.

    Idempotent: ``normalize_text(normalize_text(t)) == normalize_text(t)``.
    """
    if not text:
        return ""
    if _already_normal(text):
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _DROP.sub("", text)
    text = _SPACE.sub(" ", text)
    text = _BREAK.sub("\n", text)
    # NFC after removing zero-width characters, which could sit between a letter and its mark.
    text = unicodedata.normalize("NFC", text)
    if "  " in text or "\t" in text:
        text = _H_SPACE_RUN.sub(" ", text)
    text = _SPACE_AROUND_BREAK.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def normalize_cell(value: Any) -> str:
    """A spreadsheet/JSON cell as clean text: ``None`` → "", numbers via ``str()``, then ``normalize_text``.

    Integral floats (Excel stores 12 as 12.0 in some writers) are written without ".0".
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return normalize_text(str(value))
