"""Unicode and whitespace normalisation: every text is NFC before it is hashed, chunked or tokenised.

47 of the 318 real laws are written with decomposed diacritics (NFD): without NFC the same article
would get another point id and other lexical tokens than its composed twin.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Invisible characters that only get in the way: BOM, zero-width space/joiners, word joiner, soft hyphen.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060\u00ad"), None)
# Unicode spaces (NBSP, figure/narrow NBSP, en/em spaces..., ideographic space) become a plain space;
# vertical tab, form feed and the Unicode line/paragraph separators become a line break.
_SPACES = {
    **dict.fromkeys(map(ord, "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"), " "),
    **dict.fromkeys(map(ord, "\u200a\u202f\u205f\u3000"), " "),
    **dict.fromkeys(map(ord, "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), "\n"),
}
# Other C0/C1 control characters (never meaningful in a law or an answer) are dropped.
_CONTROLS = dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E)]
                          + [0x7F] + [c for c in range(0x80, 0xA0) if c != 0x85], None)
_TABLE = {**_CONTROLS, **_INVISIBLE, **_SPACES}

_H_SPACE_RUN = re.compile(r"[ \t]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFC, LF line ends, no invisible characters, single spaces, stripped lines, ≤ 1 blank line in a row.

    Idempotent: ``normalize_text(normalize_text(t)) == normalize_text(t)``.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_TABLE)
    # NFC after removing zero-width characters, which could sit between a letter and its mark.
    text = unicodedata.normalize("NFC", text)
    lines = [_H_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
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
