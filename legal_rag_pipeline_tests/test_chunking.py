"""Normalisation, token budget and chunking (laws by article, Q&A rows, plain text)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from legal_rag_pipeline.errors import SourceFileError
from legal_rag_pipeline.readers import read_document
from legal_rag_pipeline.records import Chunk, Row, SkippedRow
from legal_rag_pipeline.text import (
    DEFAULT_TOKEN_BUDGET,
    chunk_rows,
    chunk_text,
    count_tokens,
    lexical_tokens,
    make_token_counter,
    normalize_cell,
    normalize_text,
    parse_law_title,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

EVAL_LAWS = {
    "Luật Phòng, chống ma túy": "laws/Luat-Phong-chong-ma-tuy-2021-445185.txt",
    "Luật Bảo vệ môi trường": "laws/Luat-so-72-2020-QH14-Bao-ve-moi-truong-2020-431147.txt",
    "Luật Viên chức": "laws/Luat-vien-chuc-2010-115271.txt",
    "Luật Cư trú": "laws/Luat-68-2020-QH14-cu-tru-435315.txt",
    "Luật Tiếp cận thông tin": "laws/Luat-tiep-can-thong-tin-2016-280116.txt",
    "Luật Trồng trọt": "laws/Luat-Trong-trot-2018-336355.txt",
    "Luật An ninh mạng": "laws/Luat-an-ninh-mang-2018-351416.txt",
    "Luật Chăn nuôi": "laws/Luat-Chan-nuoi-2018-353242.txt",
    "Hiến pháp": "laws_blankline/hien-phap.txt",
    "Luật Du lịch": "laws/Luat-du-lich-2017-322936.txt",
    "Luật Tố tụng hành chính": "laws/Luat-to-tung-hanh-chinh-2015-298372.txt",
    "Luật Hôn nhân và gia đình": "laws/Luat-Hon-nhan-va-gia-dinh-2014-238640.txt",
    "Bộ luật dân sự": "laws/Bo-luat-dan-su-2015-296215.txt",
    "Luật Điện ảnh": "laws/Luat-Dien-anh-2022-486445.txt",
    "Luật Trọng tài thương mại": "laws/Luat-Trong-tai-thuong-mai-2010-108083.txt",
    "Luật Thanh niên": "laws/Luat-thanh-nien-so-57-2020-QH14-416260.txt",
    "Luật Giáo dục": "laws/Luat-giao-duc-2019-367665.txt",
}


def need_shared() -> None:
    if not (SHARED / "laws").is_dir():
        pytest.skip(f"real data folder {SHARED} is absent (only present beside the project checkout and in CI)")


def fold(s: str) -> str:
    return unicodedata.normalize("NFC", s).casefold()


# --------------------------------------------------------------------------------------------------
# Normalisation and tokens
# --------------------------------------------------------------------------------------------------
def test_normalize_text():
    raw = "\ufeffĐie\u0302\u0300u 1.\u00a0Pha\u0323m  vi\t\tđiều\u200b chỉnh  \r\n\r\n\r\n\r\n  Luật này\rquy định. \n"
    assert normalize_text(raw) == "Điều 1. Phạm vi điều chỉnh\n\nLuật này\nquy định."
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)
    assert normalize_text("") == ""
    assert normalize_cell(None) == "" and normalize_cell(12.0) == "12" and normalize_cell(3.5) == "3.5"
    assert normalize_cell("  a\u00a0 b ") == "a b"


def _normalize_every_step(text: str) -> str:
    """normalize_text without its shortcut for a text already normal (what it must equal)."""
    from legal_rag_pipeline.text import normalize as module

    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = module._DROP.sub("", text)
    text = module._SPACE.sub(" ", text)
    text = module._BREAK.sub("\n", text)
    text = unicodedata.normalize("NFC", text)
    text = module._H_SPACE_RUN.sub(" ", text)
    text = module._SPACE_AROUND_BREAK.sub("\n", text)
    text = module._MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def test_normalize_text_gives_what_every_step_gives_also_when_it_takes_its_shortcut():
    import random

    pieces = ["a", "Đ", "ề", "e\u0302\u0300", " ", "  ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\u00a0",
              "\u200b", "\ufeff", "\x0c", "\u2028", "\x85", "\x1f", "\u3000", "Điều 1.", "khoản", " \n", "\n "]
    rng = random.Random(16)
    texts = ["", "a", " a", "a ", "\n", "Luật này.\n\nĐiều 1. Phạm vi", "x\u00a0"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(20_000)]
    for text in texts:
        assert normalize_text(text) == _normalize_every_step(text), repr(text)
        once = normalize_text(text)
        assert normalize_text(once) is once or once == ""  # a normal text is given back as it is


def test_normalize_text_keeps_real_laws_as_every_step_does():
    need_shared()
    for path in sorted((SHARED / "laws").glob("*.txt"))[:40]:
        text = path.read_text(encoding="utf-8")
        assert normalize_text(text) == _normalize_every_step(text), path.name
        normal = normalize_text(text)
        assert normalize_text(normal) is normal, path.name


def test_count_tokens_is_conservative_and_additive():
    assert count_tokens("") == 2
    syllables = "luật này quy định về việc thực hiện quyền tự do cư trú của công dân"
    assert count_tokens(syllables) >= len(syllables.split()) + 2
    assert count_tokens("CỘNG HÒA XÃ HỘI") > count_tokens("Cộng hòa xã hội")
    assert count_tokens("Luật số 68/2020/QH14.") > count_tokens("Luật số")
    a, b = "Điều 1. Phạm vi điều chỉnh", "1. Luật này quy định về cư trú; 2. Công dân có quyền."
    assert count_tokens(a + "\n" + b) <= count_tokens(a) + count_tokens(b) - 2


def test_make_token_counter_falls_back_to_estimate(tmp_path):
    assert make_token_counter(None) is count_tokens
    with pytest.raises(FileNotFoundError):
        make_token_counter(str(tmp_path / "missing" / "tokenizer.json"))
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        (tmp_path / "tokenizer.json").write_text("{}")
        assert make_token_counter(str(tmp_path)) is count_tokens


# --------------------------------------------------------------------------------------------------
# Law chunking on made-up laws
# --------------------------------------------------------------------------------------------------
LAW = """QUỐC HỘI
Luật số: 99/2099/QH99
LUẬT
THỬ NGHIỆM
Căn cứ Hiến pháp nước Cộng hòa xã hội chủ nghĩa Việt Nam;
Quốc hội ban hành Luật Thử nghiệm.
Chương I
NHỮNG QUY ĐỊNH CHUNG
Điều 1. Phạm vi điều chỉnh
Luật này quy định về thử nghiệm, trừ trường hợp quy định tại
Điều 5 của Luật này.
Mục 1. QUY ĐỊNH RIÊNG
Điều 2. Giải thích từ ngữ
1. Một là một.
2. Hai là hai.
Chương II
QUYỀN VÀ NGHĨA VỤ
Mục 1
CÔNG DÂN
Điều 3: Quyền
Công dân có quyền thử.
Điều 3a. Nghĩa vụ
Công dân có nghĩa vụ thử.
Điều 2. Điều được trích dẫn lại
Nội dung trích.
Nơi nhận: ...
CHỦ TỊCH QUỐC HỘI"""


def test_a_one_article_file_has_no_chunk_of_its_title_alone():
    # "<law title>" then one article (how a folder of one file per article is often made): the title is
    # carried by the article's chunk, not a point of its own that answers nothing
    text = normalize_text("Luật Thử nghiệm 2020\nĐiều 7. Quyền của công dân\n1. Công dân có quyền thử.\n2. Công dân có quyền hỏi.")
    chunks = chunk_text("luat-thu-nghiem/dieu-0007.txt", text)
    assert [c.chunk_key for c in chunks] == ["dieu-7"]
    assert chunks[0].metadata["law"] == "Luật Thử nghiệm 2020"  # the line names the law (not the file's name)
    # a preamble that says more than the title stays a chunk
    more = normalize_text("Luật Thử nghiệm 2020\nCăn cứ Hiến pháp nước Cộng hòa xã hội chủ nghĩa Việt Nam;\n"
                          "Điều 7. Quyền của công dân\nCông dân có quyền thử.")
    assert [c.chunk_key for c in chunk_text("x.txt", more)] == ["preamble", "dieu-7"]
    # a file of a title alone (no article) keeps it: it is all the file says
    assert [c.chunk_key for c in chunk_text("y.txt", normalize_text("Luật Thử nghiệm 2020"))]


def test_law_articles_metadata_and_keys():
    chunks = chunk_text("law.txt", normalize_text(LAW))
    keys = [c.chunk_key for c in chunks]
    assert keys == ["preamble", "dieu-1", "dieu-2", "dieu-3", "dieu-3a", "dieu-2~2"]
    by_key = {c.chunk_key: c for c in chunks}
    assert by_key["preamble"].metadata["kind"] == "law_preamble"
    assert by_key["preamble"].text.startswith("QUỐC HỘI")
    one = by_key["dieu-1"]
    assert one.text == ("Điều 1. Phạm vi điều chỉnh\nLuật này quy định về thử nghiệm, trừ trường hợp quy định tại\n"
                        "Điều 5 của Luật này.")
    assert one.metadata == {"kind": "law", "law": "Luật Thử nghiệm", "part": None,
                            "chapter": "Chương I — NHỮNG QUY ĐỊNH CHUNG", "section": None, "article": "1",
                            "article_title": "Phạm vi điều chỉnh", "clause": None}
    assert by_key["dieu-2"].metadata["section"] == "Mục 1 — QUY ĐỊNH RIÊNG"
    three = by_key["dieu-3"]
    assert three.metadata["chapter"] == "Chương II — QUYỀN VÀ NGHĨA VỤ"
    assert three.metadata["section"] == "Mục 1 — CÔNG DÂN"
    assert three.metadata["article_title"] == "Quyền" and three.text == "Điều 3: Quyền\nCông dân có quyền thử."
    assert by_key["dieu-3a"].metadata["article"] == "3a"
    assert by_key["dieu-2~2"].text.endswith("CHỦ TỊCH QUỐC HỘI")  # signatures stay in the last article
    assert len({c.point_id for c in chunks}) == len(chunks)


def _long_article(clauses: int = 12, points: int = 0) -> str:
    lines = ["LUẬT", "DÀI", "Điều 7. Điều rất dài", "Mở đầu của điều."]
    for k in range(1, clauses + 1):
        lines.append(f"{k}. Khoản số {k} quy định " + "việc thực hiện quyền và nghĩa vụ của công dân " * 3 + ".")
        for p in "abcdđeg"[:points]:
            lines.append(f"{p}) Điểm {p} của khoản {k}: " + "cơ quan nhà nước có thẩm quyền " * 4 + ";")
    return "\n".join(lines)


def test_long_article_split_at_clauses_with_heading():
    chunks = chunk_text("dai.txt", normalize_text(_long_article()))
    pieces = [c for c in chunks if c.metadata["kind"] == "law"]
    assert len(pieces) > 1
    assert [c.chunk_key for c in pieces] == [f"dieu-7/{i}" for i in range(1, len(pieces) + 1)]
    for c in pieces:
        assert c.text.startswith("Điều 7. Điều rất dài\n")
        assert count_tokens(c.text) <= DEFAULT_TOKEN_BUDGET
        assert c.metadata["article"] == "7"
        body_first = c.text.split("\n")[1]
        assert body_first[0].isdigit() or body_first.startswith("Mở đầu")  # cut at clause boundaries
    assert pieces[0].metadata["clause"].startswith("1")
    assert pieces[-1].metadata["clause"].endswith("12")
    # nothing lost: every clause is somewhere
    joined = "\n".join(c.text for c in pieces)
    for k in range(1, 13):
        assert f"\n{k}. Khoản số {k} " in joined


def test_long_clause_split_at_points():
    chunks = chunk_text("dai.txt", normalize_text(_long_article(clauses=2, points=6)))
    pieces = [c for c in chunks if c.metadata["kind"] == "law"]
    for c in pieces:
        assert count_tokens(c.text) <= DEFAULT_TOKEN_BUDGET
        second = c.text.split("\n")[1]
        assert second[0].isdigit() or second[1] == ")" or second.startswith("Mở đầu"), second
    assert {c.metadata["clause"] for c in pieces} >= {"1", "2"}


@pytest.mark.parametrize("budget", [20, 40, 128, 512])
def test_every_piece_fits_any_budget(budget):
    text = normalize_text(_long_article(clauses=3, points=3) + "\n" + "Câu " * 300 + "\n" + "x" * 400)
    chunks = chunk_text("t.txt", text, budget=budget)
    assert chunks
    for c in chunks:
        assert count_tokens(c.text) <= budget, (c.chunk_key, count_tokens(c.text))
    assert len({c.chunk_key for c in chunks}) == len(chunks)


def test_custom_counter_is_respected():
    text = normalize_text(_long_article(clauses=4))

    def by_chars(t: str) -> int:  # a non-additive counter: the chunker checks every piece with it
        return len(t) // 3 + 2

    for c in chunk_text("t.txt", text, budget=100, count_tokens=by_chars):
        assert by_chars(c.text) <= 100


def test_unstructured_text_paragraph_packing():
    text = normalize_text("Đoạn một ngắn.\n\nĐoạn hai ngắn.\n\n" + "Đoạn ba rất dài. " * 80)
    chunks = chunk_text("notes.md", text)
    assert [c.chunk_key for c in chunks][:1] == ["p1"]
    assert chunks[0].text.startswith("Đoạn một ngắn.\n\nĐoạn hai ngắn.")
    assert all(c.metadata == {"kind": "text"} for c in chunks)
    assert all(count_tokens(c.text) <= DEFAULT_TOKEN_BUDGET for c in chunks)
    assert chunk_text("empty.txt", "") == []


def test_references_are_not_headings():
    text = normalize_text("Sổ tay\nĐiều 11 của Luật này áp dụng.\nĐiều 6, khoản 2 Điều 46.\nHết.")
    chunks = chunk_text("x.txt", text)
    assert [c.metadata["kind"] for c in chunks] == ["text"]


def _articles(text: str) -> list[tuple[str, str]]:
    """(article, article_title) of each law chunk, in order, once per article."""
    out: list[tuple[str, str]] = []
    for c in chunk_text("x.txt", normalize_text(text)):
        key = (c.metadata.get("article"), c.metadata.get("article_title"))
        if c.metadata["kind"] == "law" and (not out or out[-1] != key):
            out.append(key)
    return out


@pytest.mark.parametrize("heading", [
    "Điều 5- Nhiệm vụ của Ủy ban",
    "Điều 5 - Nhiệm vụ của Ủy ban",
    "Điều 5 – Nhiệm vụ của Ủy ban",
    "Điều 5.- Nhiệm vụ của Ủy ban",
    "Điều 5 . Nhiệm vụ của Ủy ban",
    "Điều 5: Nhiệm vụ của Ủy ban",
])
def test_article_separators_dash_and_spaced_dot(heading):
    text = f"Điều 4. Giải thích từ ngữ\nNội dung.\n{heading}\n1. Lập kế hoạch.\nĐiều 6. Hiệu lực\nHết."
    assert _articles(text) == [("4", "Giải thích từ ngữ"), ("5", "Nhiệm vụ của Ủy ban"), ("6", "Hiệu lực")]


def test_dash_range_is_not_a_heading():
    text = "Điều 1. Phạm vi\nNội dung.\nĐiều 5-7 của Luật này được áp dụng.\nĐiều 2. Đối tượng\nHết."
    assert [a for a, _ in _articles(text)] == ["1", "2"]


def test_wrapped_cross_reference_out_of_sequence_is_body_text():
    text = ("Điều 12. Đăng ký thay đổi\n1. Doanh nghiệp gửi hồ sơ theo quy định tại\n"
            "Điều 116 Luật Doanh nghiệp đến phòng đăng ký kinh doanh.\n"
            "Điều 116.\n"
            "Điều 13. Công bố nội dung\nHết.")
    chunks = chunk_text("x.txt", normalize_text(text))
    assert [c.metadata["article"] for c in chunks] == ["12", "13"]
    assert "Điều 116 Luật Doanh nghiệp đến phòng" in chunks[0].text


def test_loose_headings_in_sequence_still_start_articles():
    # Luat-cong-nghe-thong-tin-2006: "Điều 5" has no separator; older laws put the title on the next line
    text = ("Điều 4. Giải thích từ ngữ\nNội dung.\n"
            "Điều 5 Chính sách của Nhà nước về ứng dụng và phát triển công nghệ thông tin\nNội dung.\n"
            "Điều 6\nNội dung quản lý nhà nước\nNội dung.\n"
            "Điều 6a.\nĐiều mới bổ sung\nNội dung.\n"
            "Điều 1\nĐiều lệ kèm theo bắt đầu lại\nNội dung.")
    assert [a for a, _ in _articles(text)] == ["4", "5", "6", "6a", "1"]


def test_article_list_in_an_appendix_is_not_a_heading():
    # Luat-quy-hoach-322935.txt: after its last article, a table of the laws it amends lists "Điều 11" alone
    text = ("Điều 58. Hiệu lực thi hành\nLuật này có hiệu lực.\nĐiều 59. Quy định chuyển tiếp\nNội dung.\n"
            "12.\nLuật Khí tượng thủy văn số 90/2015/QH13\nĐiều 11\n13.\n"
            "Luật Điện lực số 28/2004/QH11\nĐiều 8, Điều 8a, Điều 9, Điều 10")
    chunks = chunk_text("x.txt", normalize_text(text))
    assert [c.metadata["article"] for c in chunks] == ["58", "59"]
    assert chunks[-1].text.endswith("Điều 8, Điều 8a, Điều 9, Điều 10")


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------
def test_chunk_rows():
    rows = [
        Row("S!2", " Nội thuỷ là gì? ", "Vùng nước\u00a0phía trong.", {"sheet": "S", "row": 2}),
        SkippedRow("S!3", "blank answer"),
        Row("line 4", None, "Văn bản", {"original_source": "x.pdf", "line": 4}),
        Row("S!5", "Dài?", "chữ " * 400, {"sheet": "S", "row": 5}),
    ]
    out = list(chunk_rows("qa.xlsx", rows))
    assert out[0] == Chunk("qa.xlsx", "S!2", "Nội thuỷ là gì?\nVùng nước phía trong.",
                           {"kind": "qa", "question": "Nội thuỷ là gì?", "sheet": "S", "row": 2})
    assert out[1] == SkippedRow("S!3", "blank answer")
    assert out[2].text == "Văn bản" and out[2].metadata["kind"] == "record"
    assert out[2].metadata["original_source"] == "x.pdf"
    assert out[3].metadata["over_budget"] is True and "over_budget" not in out[0].metadata


# --------------------------------------------------------------------------------------------------
# Real laws
# --------------------------------------------------------------------------------------------------
def test_eval_law_titles():
    need_shared()
    for law_id, rel in EVAL_LAWS.items():
        path = SHARED / rel
        title = parse_law_title(normalize_text(read_document(path, rel).text), path.stem)
        assert fold(title) == fold(law_id), (rel, title)


def test_every_real_law_chunks_within_budget():
    need_shared()
    files = sorted((SHARED / "laws").glob("*.txt")) + sorted((SHARED / "laws_blankline").glob("*.txt"))
    assert len(files) == 318
    empty = []
    for path in files:
        rel = f"{path.parent.name}/{path.name}"
        try:
            doc = read_document(path, rel)
        except SourceFileError as exc:
            assert "empty file" in str(exc), str(exc)
            empty.append(rel)
            continue
        text = normalize_text(doc.text)
        chunks = chunk_text(rel, text)
        assert chunks, rel
        over = [(c.chunk_key, n) for c in chunks if (n := count_tokens(c.text)) > DEFAULT_TOKEN_BUDGET]
        assert not over, (rel, over[:3])
        assert len({c.chunk_key for c in chunks}) == len(chunks), rel
        if "Điều 1." in text:
            articles = {c.metadata["article"] for c in chunks if c.metadata["kind"] == "law"}
            assert len(articles) >= 5, (rel, len(articles))
    assert len(empty) <= 1, empty  # laws_blankline has one 0-byte file


def test_real_laws_article_numbers_in_order():
    """Over both law folders: articles come in increasing order (a restart at 1 allowed), and every
    number skipped is absent from the file as a line start (a gap is the file's, not a lost heading)."""
    need_shared()
    files = sorted((SHARED / "laws").glob("*.txt")) + sorted((SHARED / "laws_blankline").glob("*.txt"))
    assert len(files) == 318
    total = 0
    for path in files:
        if path.stat().st_size == 0:
            continue
        text = normalize_text(read_document(path, path.name).text)
        numbers = [int(a.rstrip("abcdefghijklmnopqrstuvwxyzđ")) for a, _ in _articles(text)]
        total += len(numbers)
        starts = {int(m.group(1)) for m in re.finditer(r"^(?:Điều|ĐIỀU)\s*(\d+)", text, re.M)}
        backwards = [(a, b) for a, b in zip(numbers, numbers[1:]) if b <= a and b != 1]
        lost = [n for a, b in zip(numbers, numbers[1:]) for n in range(a + 1, b) if n in starts]
        assert not backwards and not lost, (path.name, backwards, lost)
    assert total == 29074  # chunker 3: one fewer than chunker 2, "Điều 11" in Luat-quy-hoach's appendix table


def test_non_nfc_law_normalises_like_its_nfc_form():
    need_shared()
    path = SHARED / "laws" / "Luat-thue-xuat-khau-thue-nhap-khau-2016-280693.txt"
    raw = read_document(path, "x").text
    assert not unicodedata.is_normalized("NFC", raw)
    nfc = unicodedata.normalize("NFC", raw)
    assert normalize_text(raw) == normalize_text(nfc)
    assert lexical_tokens(raw) == lexical_tokens(nfc)
    a = chunk_text("x", normalize_text(raw))
    b = chunk_text("x", normalize_text(nfc))
    assert [c.point_id for c in a] == [c.point_id for c in b]
    assert [c.text_sha256 for c in a] == [c.text_sha256 for c in b]


def test_a_law_s_title_is_parsed_once_for_its_chunks_and_its_validity():
    """The chunker and the validity reader ask parse_law_title for the same text one after the other
    (ingest/normalize.py): the second is answered from the first's reading."""
    from legal_rag_pipeline.ingest.normalize import _validity_facts
    from legal_rag_pipeline.readers.header import document_info

    need_shared()
    text = normalize_text((SHARED / EVAL_LAWS["Luật Điện ảnh"]).read_text(encoding="utf-8"))
    parse_law_title.cache_clear()
    _validity_facts("Luat-Dien-anh.txt", text, document_info(text))
    chunks = chunk_text("Luat-Dien-anh.txt", text)
    info = parse_law_title.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert chunks[0].metadata["law"] == "Luật Điện ảnh"
