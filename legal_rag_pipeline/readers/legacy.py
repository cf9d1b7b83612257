"""Legacy Vietnamese 8-bit encodings (TCVN3/ABC and VNI) → Unicode NFC.

Documents typed before Unicode use fonts whose glyphs sit on Latin-1 code points: in TCVN3
(``.VnTime``, ``.VnArial``…) ``Chính phủ`` is stored as ``ChÝnh phñ`` and the soft hyphen U+00AD is
the letter ư; in VNI (``VNI-Times``…) ``ỦY BAN`` is ``UÛY BAN`` (a base letter, then a mark letter).

Two ways to decide, and a false positive is worse than a miss (a Unicode text is never converted):

* by the font of a run of text (``font_encoding``), where the format has fonts (.docx, and .doc/.rtf
  through LibreOffice): a run is converted only when its text holds nothing but Latin-1 characters;
* by the content (``guess_encoding``), where it has none (a PDF's text layer): the legacy letters
  must be frequent and genuine Vietnamese Unicode letters absent.

The tables are those of viparse 0.1.31 (MIT, github.com/TrizenX/viparse-corpus), measured on real
government documents; TCVN3 agrees with glibc's ``iconv -f TCVN5712-1`` on every slot it fills.
"""

from __future__ import annotations

import re
import unicodedata

TCVN3 = "tcvn3"
VNI = "vni"

# TCVN3 surface character → Unicode letter. 0xA1–0xA7 are the capital base vowels; TCVN3 has no
# accented capitals (the ".VnTimeH" fonts draw the lower-case bytes as capitals).
_TCVN3_PAIRS = (
    "¡Ă ¢Â £Ê ¤Ô ¥Ơ ¦Ư §Đ ¨ă ©â ªê «ô ¬ơ \u00adư ®đ "
    "µà ¸á ¶ả ·ã ¹ạ »ằ ¾ắ ¼ẳ ½ẵ Æặ Çầ Êấ Èẩ Éẫ Ëậ Ìè Ðé Îẻ Ïẽ Ñẹ Òề Õế Óể Ôễ Öệ "
    "×ì Ýí Øỉ Üĩ Þị ßò ãó áỏ âõ äọ åồ èố æổ çỗ éộ êờ íớ ëở ìỡ îợ ïù óú ñủ òũ ôụ "
    "õừ øứ öử ÷ữ ùự úỳ ýý ûỷ üỹ þỵ"
)
TCVN3_TABLE: dict[str, str] = {pair[0]: pair[1] for pair in _TCVN3_PAIRS.split(" ")}

# VNI: a base letter followed by a mark character (longest match first); đ, ư, ơ and some i's are
# single characters.
_VNI_PAIRS = (
    "ñđ ÑĐ aøà aùá aïạ aûả aáấ aäậ aêă aââ aõã aàầ aåẩ aéắ aüẵ aëặ aèằ aãẫ "
    "AØÀ AÙÁ AÂÂ AÛẢ AÕÃ AÏẠ AÊĂ AÁẤ AÅẨ AÄẬ AÀẦ AÃẪ AÉẮ AÈẰ AÜẴ AËẶ "
    "eäệ eáế eàề eâê eåể eùé eûẻ eõẽ eãễ eøè eïẹ EÄỆ EÁẾ EÀỀ EÂÊ EÅỂ EØÈ EÙÉ EÏẸ EÛẺ EÕẼ EÃỄ "
    "òị æỉ ÒỊ ÆỈ ÓĨ óĩ IØÌ IÙÍ iøì iùí "
    "ôơ oäộ oâô oáố ôïợ oùó ôøờ ôûở ôùớ oøò oåổ oàồ oïọ oãỗ oûỏ oõõ ôõỡ "
    "OÄỘ ÔƠ OÂÔ ÔÛỞ OÅỔ OÁỐ OØÒ OÙÓ OÀỒ ÔÙỚ ÔØỜ OÕÕ OÏỌ OÛỎ OÃỖ ÔÕỠ ÔÏỢ "
    "öư uûủ öïự uïụ öùứ öûử öøừ uùú öõữ uøù uõũ ÖƯ UÛỦ ÖÙỨ UÕŨ UÏỤ ÖÛỬ ÖÕỮ ÖÏỰ UØÙ UÙÚ ÖØỪ "
    "yùý yõỹ yûỷ yøỳ YÙÝ YÛỶ YØỲ YÏỴ yïỵ YÕỸ"
)
VNI_TABLE: dict[str, str] = {}
for _pair in _VNI_PAIRS.split(" "):
    VNI_TABLE[_pair[:-1]] = _pair[-1]
_VNI_RE = re.compile("|".join(re.escape(k) for k in sorted(VNI_TABLE, key=len, reverse=True)))
_TCVN3_RE = re.compile("[" + re.escape("".join(TCVN3_TABLE)) + "]")

# What a PDF text layer gives for two TCVN3 slots of the .VnTime fonts: U+2212 for ư (0xAD) and
# U+2219 for ã (0xB7); restored only next to a letter (a minus between digits stays a minus).
_LETTERISH = "[^\\W\\d_]|[\u00a1-\u00ff]"  # a letter, or a Latin-1 legacy letter (¬ is ơ in TCVN3)
_PDF_GLYPHS = re.compile(f"(?<={_LETTERISH})[\u2212\u2219]|[\u2212\u2219](?={_LETTERISH})")
_PDF_GLYPH_MAP = {"\u2212": "\u00ad", "\u2219": "\u00b7"}

# Characters that exist only in Unicode Vietnamese text (never in a Latin-1 legacy surface).
_UNICODE_VIET = re.compile("[\u0102\u0103\u0110\u0111\u0128\u0129\u0168\u0169\u01a0\u01a1\u01af\u01b0"
                           "\u1ea0-\u1ef9\u0300\u0301\u0303\u0309\u0323]")
_BEYOND_LATIN1 = re.compile("[^\x00-\xff\u2212\u2219\u2000-\u200b\u2018-\u201f\u2026]")


def font_encoding(font: str | None) -> str | None:
    """The legacy encoding a font name implies: ``.VnTime``/``.VnArialH``… → tcvn3, ``VNI-Times``… →
    vni; None for any other (Unicode) font."""
    if not font:
        return None
    name = font.strip().lower()
    if name.startswith(".vn") or name.startswith("vn ") or name.startswith("abc "):
        return TCVN3
    if name.startswith("vni-") or name.startswith("vni "):
        return VNI
    return None


def is_capitals_font(font: str | None) -> bool:
    """TCVN3 "H" fonts (``.VnTimeH``, ``.VnArialH``): the bytes are lower-case letters drawn as capitals."""
    if not font or font_encoding(font) != TCVN3:
        return False
    return font.strip().rstrip("0123456789 ").endswith("H")


def convertible(text: str) -> bool:
    """True when ``text`` could be legacy bytes at all: nothing beyond Latin-1 (and a few punctuation
    marks Word substitutes). A run that already holds a Unicode Vietnamese letter is Unicode."""
    return not _BEYOND_LATIN1.search(text)


def convert(text: str, encoding: str, capitals: bool = False) -> str:
    """Legacy ``text`` → Unicode NFC. ``capitals``: the run was drawn in a TCVN3 capitals font."""
    if encoding == TCVN3:
        text = _PDF_GLYPHS.sub(lambda m: _PDF_GLYPH_MAP[m.group(0)], text)
        out = _TCVN3_RE.sub(lambda m: TCVN3_TABLE[m.group(0)], text)
        if capitals:
            out = out.upper()
    elif encoding == VNI:
        out = _VNI_RE.sub(lambda m: VNI_TABLE[m.group(0)], text)
    else:
        raise ValueError(f"unknown legacy encoding {encoding!r}")
    return unicodedata.normalize("NFC", out)


def convert_run(text: str, font: str | None) -> tuple[str, str | None]:
    """(text, encoding applied or None) for one run of text drawn in ``font``."""
    encoding = font_encoding(font)
    if encoding is None or not text or not convertible(text):
        return text, None
    if text.isascii():
        # the same in every encoding, except that a capitals font draws it as capitals
        return (text.upper() if is_capitals_font(font) else text), None
    return convert(text, encoding, capitals=is_capitals_font(font)), encoding


# The content guess: the words of Vietnamese running text that are everywhere (của, và, các, được…).
# Converted with the right table, a legacy text is full of them; with the wrong one, or a text in
# another language, hardly any.
_COMMON = frozenset(
    "của và các được có là này theo trong cho năm ngày tháng những người không về với đến một khi "
    "để thì hoặc tại từ do đã quy định việc nhà nước quyết điều khoản luật thông tư nghị".split()
)
_LEGACY_LETTER = re.compile("[\u00a1-\u00bf\u00c4-\u00c8\u00cb\u00ce\u00cf\u00d1\u00d6-\u00d8\u00db-\u00df"
                            "\u00e4-\u00e8\u00eb\u00ee\u00ef\u00f1\u00f6-\u00f8\u00fb-\u00ff\u2212]")
_WORD = re.compile(r"[^\W\d_]+|[\u00a1-\u00bf\u00d7\u00f7\u2212]+")
_TOKEN = re.compile(r"\S+")


def _common_share(words: list[str]) -> float:
    return sum(1 for w in words if w.lower().strip(".,;:()\"'") in _COMMON) / max(1, len(words))


def guess_encoding(text: str) -> tuple[str | None, str]:
    """(encoding or None, why) judging by the content alone (no fonts).

    Legacy only when the text holds no Unicode Vietnamese letter, at least a tenth of its words (and
    at least 20) carry a character Vietnamese Unicode never uses (``©``, ``µ``, ``ñ``…), and one table
    turns it into Vietnamese: at least 8% of the converted words are among the commonest, at least
    twice as many as the other table gives. Otherwise None: Unicode, or undecided (said in ``why``).
    """
    sample = text[:200_000]
    tokens = _TOKEN.findall(sample)
    if not tokens:
        return None, "no words"
    if len(_UNICODE_VIET.findall(sample)) > max(3, len(tokens) // 200):
        return None, "Unicode Vietnamese"
    odd = sum(1 for t in tokens if _LEGACY_LETTER.search(t))
    if odd < 20 or odd < len(tokens) / 10:
        if odd >= 5 and odd >= len(tokens) / 50:
            return None, f"undecided: {odd} of {len(tokens)} words look legacy-encoded, too few to convert"
        return None, "no legacy letters"
    shares = {name: _common_share(_TOKEN.findall(convert(sample, name))) for name in (TCVN3, VNI)}
    best = max(shares, key=shares.get)  # type: ignore[arg-type]
    other = shares[VNI if best == TCVN3 else TCVN3]
    if shares[best] < 0.08 or shares[best] < 2 * other:
        return None, (f"undecided: {odd} of {len(tokens)} words look legacy-encoded, but neither TCVN3 "
                      f"({shares[TCVN3]:.0%} common words) nor VNI ({shares[VNI]:.0%}) gives Vietnamese")
    return best, f"{odd} of {len(tokens)} words in {best.upper()}, {shares[best]:.0%} common words once converted"
