"""The document's own metadata, read from its header block and closing articles.

Every official text opens with the same block, which is what a lawyer cites::

    QUỐC HỘI -------                        ← issuer (cơ quan ban hành)
    CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM Độc lập - Tự do - Hạnh phúc
    Luật số: 68/2020/QH14                   ← number (số hiệu); also "Số: 01/2021/NĐ-CP"
    Hà Nội, ngày 13 tháng 11 năm 2020       ← date of issue (ngày ban hành)
    LUẬT                                    ← type (loại văn bản)
    CƯ TRÚ                                  ← title

and states its date of effect in one of the last articles ("Luật này có hiệu lực thi hành từ ngày 01
tháng 7 năm 2021"). Amending texts say so in their title ("Luật sửa đổi, bổ sung một số điều của
Luật …"). ``document_info`` works on normalised text (NFC, stripped lines), whatever the format.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

# The fields ``document_info`` returns: chunk metadata and flat payload fields next to ``law``, ``article``.
DOCUMENT_FIELDS = ("number", "doc_type", "issuer", "issued_on", "effective_from", "amends")

# Types, longest first so "BỘ LUẬT" wins over "LUẬT" and "THÔNG TƯ LIÊN TỊCH" over "THÔNG TƯ".
DOC_TYPES = {
    "THÔNG TƯ LIÊN TỊCH": "Thông tư liên tịch",
    "NGHỊ QUYẾT LIÊN TỊCH": "Nghị quyết liên tịch",
    "BỘ LUẬT": "Bộ luật",
    "HIẾN PHÁP": "Hiến pháp",
    "PHÁP LỆNH": "Pháp lệnh",
    "NGHỊ ĐỊNH": "Nghị định",
    "NGHỊ QUYẾT": "Nghị quyết",
    "THÔNG TƯ": "Thông tư",
    "QUYẾT ĐỊNH": "Quyết định",
    "CHỈ THỊ": "Chỉ thị",
    "ÁN LỆ": "Án lệ",
    "LUẬT": "Luật",
    "LỆNH": "Lệnh",
}
_TYPE_ALT = "|".join(re.escape(k) for k in DOC_TYPES)
_TYPE_LINE = re.compile(rf"^({_TYPE_ALT})(?![\wÀ-ỹ])\s*(.*)$", re.I)
# Kind from the number's code when the header names none: 19/2019/NĐ-CP → Nghị định.
_CODE_TYPES = (("TTLT", "Thông tư liên tịch"), ("NĐ", "Nghị định"), ("NQ", "Nghị quyết"), ("QĐ", "Quyết định"),
               ("TT", "Thông tư"), ("CT", "Chỉ thị"), ("PL", "Pháp lệnh"), ("AL", "Án lệ"), ("L", "Lệnh"))

_NUMBER = re.compile(
    r"(?<![\w/])(\d{1,5})\s*/\s*(?:((?:19|20)\d{2})\s*/\s*)?"
    r"([A-ZĐ]{1,8}(?:\s?\d{1,2}(?![\d/]))?(?:\s?-\s?[A-ZĐ]{1,10}\d{0,2})*)(?![\wÀ-ỹ/])"
)
# "Số:", "Luật số:", and OCR's "sô:" / "so:"
# Before 2000: "21-LCT/HĐNN8", "18-L/CTN", "102-SL/L-004"
_OLD_NUMBER = re.compile(r"(?<![\w/])\d{1,5}\s*-\s*[A-ZĐ]{1,8}\s*/\s*[A-ZĐ]{1,10}\d{0,2}(?:-[A-ZĐ0-9]{1,6})*(?![\wÀ-ỹ/])")
_PREAMBLE = re.compile(r"^(?:Căn cứ|Theo đề nghị|Xét đề nghị|Để |Thực hiện )", re.I)
_NUMBER_LABEL = re.compile(r"(?:^|[\s(])(?:s[ốôoó]|S[ỐÔO])\s*(?:hiệu\s*)?:?\s*", re.I)
_DATE_WORDS = re.compile(r"ngày\s+(\d{1,2})\s*(?:tháng|/|-)\s*(\d{1,2})\s*(?:năm|/|-)\s*((?:19|20)\d{2})", re.I)
_DATE_NUMERIC = re.compile(r"ngày\s+(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*((?:19|20)\d{2})", re.I)
_PLACE_DATE = re.compile(r"(?:^|\s)[\wÀ-ỹ. ]{2,40},\s*ngày\s+\d{1,2}\s+tháng\s*\d{1,2}\s+năm\s+\d{4}", re.I)
_NATIONAL = re.compile(r"CỘNG\s+H[OÒ]\s*[AÀ]\s+XÃ\s+HỘI|Độc\s+lập\s*[-–]\s*Tự\s+do", re.I)
# "Điều 5." / "Điều 5: " / "Điều 5 - " (not the range "Điều 5-7")
_ARTICLE = re.compile(r"^(?:Điều|ĐIỀU)\s*\d+[a-zđ]?\s*(?:[.:]|[-–—](?!\s*\d))", re.I)
_CHAPTER = re.compile(r"^(?:Chương|CHƯƠNG|Phần thứ|PHẦN THỨ)\s+\S+", re.I)
_EFFECT = re.compile(
    r"có\s+hiệu\s+lực(?:\s+thi\s+hành)?(?:\s+kể)?\s+từ\s+ngày\s+"
    r"(?:(\d{1,2})\s*(?:tháng|/|-)\s*(\d{1,2})\s*(?:năm|/|-)\s*((?:19|20)\d{2})|(ký|ban\s+hành))",
    re.I,
)
_PASSED = re.compile(r"thông\s+qua\s+ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})\s+năm\s+((?:19|20)\d{2})", re.I)
_AMENDS = re.compile(r"sửa\s+đổi\s*,?\s*(?:bổ\s+sung\s+)?(?:một\s+số\s+điều\s+)?(?:của\s+)?(.+)$", re.I)
_SEPARATORS = re.compile(r"[-–—_*=.•]{3,}")

# Issuers as they are written in running text (the header has them in capitals).
_ISSUER_NAMES = {
    "QUỐC HỘI": "Quốc hội",
    "ỦY BAN THƯỜNG VỤ QUỐC HỘI": "Ủy ban Thường vụ Quốc hội",
    "CHÍNH PHỦ": "Chính phủ",
    "THỦ TƯỚNG CHÍNH PHỦ": "Thủ tướng Chính phủ",
    "CHỦ TỊCH NƯỚC": "Chủ tịch nước",
    "TÒA ÁN NHÂN DÂN TỐI CAO": "Tòa án nhân dân tối cao",
    "HỘI ĐỒNG THẨM PHÁN TÒA ÁN NHÂN DÂN TỐI CAO": "Hội đồng Thẩm phán Tòa án nhân dân tối cao",
    "VIỆN KIỂM SÁT NHÂN DÂN TỐI CAO": "Viện kiểm sát nhân dân tối cao",
    "NGÂN HÀNG NHÀ NƯỚC VIỆT NAM": "Ngân hàng Nhà nước Việt Nam",
    "NGÂN HÀNG NHÀ NƯỚC": "Ngân hàng Nhà nước Việt Nam",
    "KIỂM TOÁN NHÀ NƯỚC": "Kiểm toán nhà nước",
}
_ISSUER_START = re.compile(
    r"^(QUỐC HỘI|ỦY BAN|UỶ BAN|UBND|CHÍNH PHỦ|THỦ TƯỚNG|CHỦ TỊCH|BỘ\s|TÒA ÁN|TOÀ ÁN|HỘI ĐỒNG|VIỆN|NGÂN HÀNG|"
    r"KIỂM TOÁN|TỔNG CỤC|CỤC|SỞ|BAN\s|HỘI\s)",
    re.I,
)
# "Nghị định của Chính phủ số …", "Được Hội đồng Thẩm phán Tòa án nhân dân tối cao thông qua …",
# "Quốc hội ban hành Luật …": the issuer named in running text.
_ISSUER_IN_TEXT = re.compile(
    r"(?:(?:^|\s)của\s+|^Được\s+|^)(Quốc hội|Ủy ban Thường vụ Quốc hội|Chính phủ|Thủ tướng Chính phủ|"
    r"Hội đồng Thẩm phán Tòa án nhân dân tối cao|Chủ tịch nước)(?=\s+(?:ban hành|số|thông qua|nước|ngày|$))",
    re.I,
)


def _iso(day: str, month: str, year: str) -> str | None:
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _header_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines[:120]:
        if _ARTICLE.match(line) or _CHAPTER.match(line):
            break
        out.append(line)
    return out[:60]


def parse_number(text: str) -> str | None:
    """"Số: 99/ 1998/TT-BTC" → "99/1998/TT-BTC", "Luật số: 62/2006/QH 11" → "62/2006/QH11", and the
    older form "Số: 18-L/CTN" → "18-L/CTN"."""
    match = _NUMBER.search(text)
    if not match:
        old = _OLD_NUMBER.search(text)
        return re.sub(r"\s+", "", old.group(0)) if old else None
    number, year, code = match.groups()
    code = re.sub(r"\s+", "", code)
    if re.fullmatch(r"AL\d+", code):  # "Án lệ số 43/2021/AL¹": a footnote mark glued to the code
        code = "AL"
    return "/".join(p for p in (number, year, code) if p)


def number_key(number: str) -> str:
    """A document number as a comparable key: "91/2015/qh13", "91 / 2015 / QH13" → "91/2015/QH13";
    "19/2019/ND-CP" (typed without Đ, as datasets often are) → "19/2019/NĐ-CP". For matching an
    ALQAC ``law_id`` or a ``--number`` filter against the ``number`` payload field."""
    key = re.sub(r"\s+", "", unicodedata.normalize("NFC", number or "")).upper()
    parts = key.split("/")
    if len(parts) > 1:
        code = parts[-1]
        for plain, proper in (("ND-", "NĐ-"), ("QD-", "QĐ-"), ("-HDTP", "-HĐTP"), ("-HDND", "-HĐND"),
                              ("-HDNN", "-HĐNN")):
            code = code.replace(plain, proper)
        if code in ("ND", "QD"):
            code = code[0] + "Đ"
        parts[-1] = code
    return "/".join(parts)


def _find_number(header: list[str]) -> str | None:
    """The first "Số: …" of the header ("Luật số:", "Nghị định của Chính phủ số …", "ÁN LỆ SỐ …"),
    never one cited by the preamble ("Căn cứ Nghị quyết số 51/2001/QH10 …")."""
    for i, line in enumerate(header):
        if _PREAMBLE.match(line):
            break
        if len(line) > 300:
            continue
        label = _NUMBER_LABEL.search(line)
        if label:
            rest = line[label.end():].strip()
            found = parse_number(rest or (header[i + 1] if i + 1 < len(header) else ""))  # "Số:" / "64/2006/QH11"
            if found:
                return found
    return None


def _find_type(header: list[str], number: str | None) -> str | None:
    candidates: list[tuple[int, str]] = []
    for i, line in enumerate(header):
        bare = _SEPARATORS.sub("", line).strip()
        m = _TYPE_LINE.match(bare)
        if not m:
            continue
        kind, rest = DOC_TYPES[m.group(1).upper()], m.group(2).strip()
        letters = [c for c in bare if c.isalpha()]
        upper = bool(letters) and all(c.isupper() for c in letters)
        if upper and not re.match(r"(?:SỐ|số)\b", rest):
            candidates.append((0, kind))  # "BỘ LUẬT", "NGHỊ ĐỊNH", "LUẬT CƯ TRÚ", "ÁN LỆ SỐ 43…" below
        elif not rest or rest.startswith(":"):
            candidates.append((1, kind))  # "Thông tư" alone (a PDF typed in lower case)
        elif re.match(r"(?:của|CỦA)\s", rest) or (upper and re.match(r"(?:SỐ|số)\b", rest)):
            candidates.append((2, kind))  # "Nghị định của Chính phủ số …", "ÁN LỆ SỐ 43/2021/AL"
        elif re.match(r"(?:số|Số)\s*:", rest):
            candidates.append((3, kind))  # "Luật số: 91/2015/QH13" (also the line of a Bộ luật)
        del i
    if candidates:
        return min(candidates)[1]
    if number:
        code = number.rsplit("/", 1)[-1].upper()
        for prefix, kind in _CODE_TYPES:
            if code.startswith(prefix + "-") or code == prefix:
                return kind
        if re.fullmatch(r"QH\d+", code):
            return "Luật"
    return None


def _pretty_issuer(name: str) -> str:
    name = re.sub(r"\s+", " ", name).strip(" .,:;-–—_*")
    key = name.upper().replace("UỶ", "ỦY").replace("TOÀ", "TÒA")
    if key in _ISSUER_NAMES:
        return _ISSUER_NAMES[key]
    low = name.lower()
    words = low.split(" ")
    if words[0] == "bộ" and len(words) > 1:  # a ministry: "Bộ Tài chính", "Bộ Tư pháp"
        return "Bộ " + words[1].capitalize() + (" " + " ".join(words[2:]) if len(words) > 2 else "")
    for place in ("tỉnh ", "thành phố ", "huyện ", "quận ", "thị xã "):
        at = low.find(place)
        if at >= 0:  # "Ủy ban nhân dân tỉnh Bình Phước": the place's words capitalised
            head, tail = low[: at + len(place)], low[at + len(place):]
            return (head[0].upper() + head[1:] + " ".join(w.capitalize() for w in tail.split(" "))).replace(
                "Ubnd", "UBND")
    pretty = low[0].upper() + low[1:]
    return pretty.replace("việt nam", "Việt Nam").replace("nhà nước việt", "Nhà nước Việt")


def _find_issuer(header: list[str]) -> str | None:
    parts: list[str] = []
    for line in header[:12]:
        bare = _SEPARATORS.sub(" ", line).strip()
        national = _NATIONAL.search(bare)
        if national:  # "ỦY BAN NHÂN DÂN CỘNG HOÀ XÃ HỘI …": the issuer is what comes before
            bare = bare[: national.start()].strip()
        if not bare:
            if parts:
                break
            continue
        if _NUMBER_LABEL.search(bare) or _PLACE_DATE.search(bare) or _TYPE_LINE.match(bare) and not parts:
            break
        if not parts and not _ISSUER_START.match(bare):
            if national:
                continue
            break
        if parts and (_TYPE_LINE.match(bare) or len(bare) > 60):
            break
        parts.append(bare)
        if len(parts) == 3:
            break
    if parts:
        return _pretty_issuer(" ".join(parts))
    for line in header:
        m = _ISSUER_IN_TEXT.search(line)
        if m:
            return _pretty_issuer(m.group(1))
    return None


def _find_issued_on(header: list[str], tail: str) -> str | None:
    for line in header:
        if _PLACE_DATE.search(line) and len(line) < 160:
            m = _DATE_WORDS.search(line)
            if m:
                return _iso(*m.groups())
    for line in header[:25]:
        m = _PASSED.search(line)  # "Được Hội đồng Thẩm phán … thông qua ngày 24 tháng 02 năm 2021" (án lệ)
        if m:
            return _iso(*m.groups())
    for line in header[:25]:
        if line.lower().startswith(("căn cứ", "theo đề nghị", "xét đề nghị")):
            continue
        m = _DATE_NUMERIC.search(line) or _DATE_WORDS.search(line)
        if m:
            return _iso(*m.groups())
    m = None
    for m in _PASSED.finditer(tail):
        pass
    return _iso(*m.groups()) if m else None


def _find_effective(text: str, issued_on: str | None) -> str | None:
    tail = text[-max(6000, len(text) // 4):]
    for m in _EFFECT.finditer(tail):
        if m.group(4):
            return issued_on
        return _iso(m.group(1), m.group(2), m.group(3))
    return None


def _find_amends(header: list[str], doc_type: str | None) -> str | None:
    for i, line in enumerate(header):
        bare = _SEPARATORS.sub("", line).strip()
        m = _TYPE_LINE.match(bare)
        if not m or (m.group(2) and not _AMENDS.search(m.group(2))) and not (
                i + 1 < len(header) and _AMENDS.match(header[i + 1])):
            continue
        title = m.group(2) or (header[i + 1] if i + 1 < len(header) else "")
        if i + 2 < len(header) and title.upper() == title and header[i + 2].upper() == header[i + 2] \
                and not _ARTICLE.match(header[i + 2]) and len(header[i + 2]) < 200:
            title += " " + header[i + 2]
        a = _AMENDS.search(title)
        if not a:
            continue
        target = a.group(1).strip(" .;:")
        if not target:
            return None
        number = parse_number(target)
        if number:
            return number
        low = target.lower()
        return low[0].upper() + low[1:].replace("việt nam", "Việt Nam")
    return None


def document_info(text: str) -> dict[str, str | None]:
    """``number``, ``doc_type``, ``issuer``, ``issued_on`` and ``effective_from`` (ISO dates), and
    ``amends`` (the number or title an amending text amends); None for what the text does not say."""
    lines = [line.strip() for line in text[:30_000].split("\n")]
    lines = [line for line in lines if line]
    header = _header_lines(lines)
    number = _find_number(header)
    doc_type = _find_type(header, number)
    issuer = _find_issuer(header)
    issued_on = _find_issued_on(header, text[-8000:])
    return {
        "number": number,
        "doc_type": doc_type,
        "issuer": issuer,
        "issued_on": issued_on,
        "effective_from": _find_effective(text, issued_on),
        "amends": _find_amends(header, doc_type),
    }
