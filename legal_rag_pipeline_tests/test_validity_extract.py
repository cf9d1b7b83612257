"""Validity read from the texts: dates of effect, repeals, abolitions and amendments.

Unit tests run on real sentences quoted from the laws; the file tests run on the real laws in
/work/shared/data and are skipped, saying why, when that folder is absent.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from legal_rag_pipeline.readers.header import number_key
from legal_rag_pipeline.text.normalize import normalize_text
from legal_rag_pipeline.validity.extract import find_targets, parse_scopes, read_validity, roman_to_arabic
from legal_rag_pipeline.validity.model import (
    ABOLISHES,
    AMENDS,
    ARTICLE,
    CHAPTER,
    CLAUSE,
    POINT,
    REPEALS,
    SECTION,
    DocumentFacts,
    Scope,
    Target,
)

DATA = Path("/work/shared/data")
FOLDERS = (DATA / "laws", DATA / "laws_blankline")

HEADER = "QUỐC HỘI\nLuật số: 43/2019/QH14\nHà Nội, ngày 14 tháng 6 năm 2019\nLUẬT\nGIÁO DỤC\n"


def law(body: str, header: str = HEADER) -> DocumentFacts:
    return read_validity(normalize_text(header + body))


def targets(facts: DocumentFacts, kind: str) -> list[str]:
    return [r.target.label() for r in facts.relations if r.kind == kind]


# --------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("raw, key", [
    ("62/2006/QH 11", "62/2006/QH11"),
    ("Số:24/2000/QH10", "24/2000/QH10"),
    ("19/2019/ND-CP", "19/2019/NĐ-CP"),
])
def test_numbers_are_number_keys(raw: str, key: str) -> None:
    facts = law(f"Điều 1. Hiệu lực thi hành\nLuật Điện ảnh số {raw} hết hiệu lực kể từ ngày Luật này có hiệu lực.")
    assert targets(facts, REPEALS) == [key]
    assert number_key(raw.removeprefix("Số:")) == key


def test_number_in_running_text() -> None:
    refs = find_targets("theo Nghị định số 78/2015/NĐ-CP và Luật Doanh nghiệp số 68/2014/QH13")
    assert [r.target.number for r in refs] == ["78/2015/NĐ-CP", "68/2014/QH13"]
    assert find_targets("Luật số 68/2014/QH13")[0].target == Target(number="68/2014/QH13", year=2014)


# --------------------------------------------------------------------------------------------- scopes
def test_roman_numerals() -> None:
    assert [roman_to_arabic(r) for r in ("V", "XIV", "IX", "5")] == ["5", "14", "9", "5"]


def test_scopes_from_a_real_list() -> None:
    # Luật An toàn, vệ sinh lao động 2015, Điều 93
    scopes = parse_scopes("Mục 3 Chương III, khoản 4 Điều 84, điểm b khoản 1 và điểm a khoản 2 Điều 86, "
                          "các điều 104, 105, 106, 107, 116 và 117")
    assert scopes[:4] == (
        Scope(SECTION, chapter="3", section="3"),
        Scope(CLAUSE, article="84", clause="4"),
        Scope(POINT, article="86", clause="1", point="b"),
        Scope(POINT, article="86", clause="2", point="a"),
    )
    assert [s.article for s in scopes[4:]] == ["104", "105", "106", "107", "116", "117"]
    assert parse_scopes("Điều 5, Điều 7") == (Scope(ARTICLE, article="5"), Scope(ARTICLE, article="7"))
    assert parse_scopes("Chương V") == (Scope(CHAPTER, chapter="5"),)
    assert parse_scopes("khoản 3 và khoản 4 Điều 19") == (Scope(CLAUSE, article="19", clause="3"),
                                                          Scope(CLAUSE, article="19", clause="4"))
    # "Chương IV-A" is not chapter 4
    assert parse_scopes("Chương IV-A về thuế môn bài") == ()


# --------------------------------------------------------------------------------------------- dates
def test_effective_date_absolute() -> None:
    facts = law("Điều 218. Hiệu lực thi hành\n1. Luật này có hiệu lực thi hành từ ngày 01 tháng 01 năm 2021.")
    assert facts.effective_from == "2021-01-01"
    assert facts.effective_rule == "1. Luật này có hiệu lực thi hành từ ngày 01 tháng 01 năm 2021."
    assert law("Điều 5. Hiệu lực\nLuật này có hiệu lực từ ngày 1/7/2016.").effective_from == "2016-07-01"


def test_effective_date_relative() -> None:
    assert law("Điều 5. Hiệu lực\nLuật này có hiệu lực kể từ ngày ký.").effective_from == "2019-06-14"
    assert law("Điều 5. Hiệu lực\nNghị định này có hiệu lực sau 45 ngày kể từ ngày ký ban hành.").effective_from \
        == "2019-07-29"
    no_date = law("Điều 5. Hiệu lực\nLuật này có hiệu lực sau 45 ngày kể từ ngày công bố.", header="LUẬT\nA\n")
    assert no_date.effective_from is None
    assert no_date.unreadable == ["Luật này có hiệu lực sau 45 ngày kể từ ngày công bố."]


def test_parts_with_their_own_date() -> None:
    # Luật Kinh doanh bảo hiểm 2022, Điều 156
    facts = law("Điều 156. Hiệu lực thi hành\n"
                "1. Luật này có hiệu lực thi hành kể từ ngày 01 tháng 01 năm 2023, trừ trường hợp quy định tại khoản 2 "
                "Điều này.\n2. Khoản 3 Điều 86, khoản 4 và khoản 5 Điều 94, Điều 95, khoản 3 và khoản 4 Điều 99, các "
                "điều 109, 110, 111, 112, 113, 114 và 116 của Luật này có hiệu lực thi hành từ ngày 01 tháng 01 năm 2028.")
    assert facts.effective_from == "2023-01-01"
    assert facts.article_effective == {a: "2028-01-01" for a in ("95", "109", "110", "111", "112", "113", "114", "116")}
    assert (Scope(CLAUSE, article="86", clause="3"), "2028-01-01") in facts.part_effective
    assert len(facts.part_effective) == 5


# --------------------------------------------------------------------------------------------- repeals
def test_whole_repeal_by_number() -> None:
    facts = law("Điều 218. Hiệu lực thi hành\n1. Luật này có hiệu lực thi hành từ ngày 01 tháng 01 năm 2021.\n"
                "2. Luật Doanh nghiệp số 68/2014/QH13 hết hiệu lực kể từ ngày Luật này có hiệu lực thi hành.")
    [rel] = facts.relations
    assert (rel.kind, rel.target.number, rel.scopes, rel.source_article, rel.effective) == \
        (REPEALS, "68/2014/QH13", (), "218", None)


def test_repeal_with_own_date() -> None:
    facts = law("Điều 9. Hiệu lực\nPháp lệnh Cảnh vệ số 25/2005/PL-UBTVQH11 hết hiệu lực kể từ ngày 01 tháng 7 năm 2016.")
    assert facts.relations[0].effective == "2016-07-01"


def test_amended_by_acts_are_not_repealed() -> None:
    facts = law("Điều 114. Hiệu lực thi hành\n2. Luật Giáo dục số 38/2005/QH11 đã được sửa đổi, bổ sung một số điều "
                "theo Luật số 44/2009/QH12, Luật số 74/2014/QH13 và Luật số 97/2015/QH13 hết hiệu lực kể từ ngày Luật "
                "này có hiệu lực thi hành, trừ trường hợp quy định tại Điều 115 của Luật này.")
    [rel] = facts.relations
    assert rel.target.number == "38/2005/QH11"
    assert rel.exceptions == ()  # "Điều 115 của Luật này" is a transitional rule of the stating law


def test_repeal_by_title_and_year() -> None:
    facts = law("Điều 341. Hiệu lực thi hành\n2. Bộ luật hàng hải Việt Nam năm 2005 hết hiệu lực kể từ ngày Bộ luật này "
                "có hiệu lực thi hành.")
    assert facts.relations[0].target == Target(title="Bộ luật hàng hải Việt Nam", year=2005)


def test_several_documents_and_chapters() -> None:
    # Luật Tiếp công dân 2013, Điều 35
    facts = law("Điều 35. Hiệu lực thi hành\nNhững quy định về tiếp công dân tại Chương V của Luật khiếu nại, tố cáo "
                "số 09/1998/QH10 đã được sửa đổi, bổ sung một số điều theo Luật số 26/2004/QH11 và Luật số 58/2005/QH11"
                ", Chương V của Luật khiếu nại số 02/2011/QH13 hết hiệu lực thi hành kể từ ngày Luật này có hiệu lực.")
    got = {(r.target.number, r.scopes) for r in facts.relations}
    assert got == {("09/1998/QH10", (Scope(CHAPTER, chapter="5"),)),
                   ("02/2011/QH13", (Scope(CHAPTER, chapter="5"),))}


def test_repeal_with_exception_on_the_target() -> None:
    facts = law("Điều 76. Điều khoản thi hành\n3. Luật Đầu tư số 67/2014/QH14 đã được sửa đổi, bổ sung một số điều theo "
                "Luật số 90/2015/QH13, Luật số 03/2016/QH14, Luật số 04/2017/QH14, Luật số 28/2018/QH14 và Luật số "
                "42/2019/QH14 hết hiệu lực kể từ ngày Luật này có hiệu lực thi hành, trừ Điều 75 của Luật Đầu tư số "
                "67/2014/QH14.")
    [rel] = facts.relations
    assert rel.target.number == "67/2014/QH14"
    assert rel.exceptions == (Scope(ARTICLE, article="75"),)


def test_list_of_repealed_documents() -> None:
    # Luật Quản lý ngoại thương 2017, Điều 112
    facts = law("Điều 112. Hiệu lực thi hành\n2. Các pháp lệnh sau đây hết hiệu lực kể từ ngày Luật này có hiệu lực thi "
                "hành, trừ trường hợp quy định tại Điều 113 của Luật này:\n"
                "a) Pháp lệnh về Tự vệ trong nhập khẩu hàng hóa nước ngoài vào Việt Nam số 42/2002/PL-UBTVQH10;\n"
                "b) Pháp lệnh Chống bán phá giá hàng hóa nhập khẩu vào Việt Nam số 20/2004/PL-UBTVQH11;\n"
                "c) Pháp lệnh Chống trợ cấp hàng hóa nhập khẩu vào Việt Nam số 22/2004/PL-UBTVQH11.")
    assert targets(facts, REPEALS) == ["42/2002/PL-UBTVQH10", "20/2004/PL-UBTVQH11", "22/2004/PL-UBTVQH11"]


def test_provisions_named_by_subject_are_unreadable_not_repealed() -> None:
    sentence = ("2. Các quy định về viễn thông của Pháp lệnh bưu chính, viễn thông số 43/2002/PL-UBTVQH10 hết hiệu lực "
                "kể từ ngày Luật này có hiệu lực.")
    facts = law("Điều 9. Hiệu lực thi hành\n" + sentence)
    assert facts.relations == []
    assert facts.unreadable == [sentence]


def test_licences_ending_are_not_repeals() -> None:
    facts = law("Điều 156. Các trường hợp giấy phép lao động hết hiệu lực\n12. Giấy phép lao động hết hiệu lực đối với "
                "người lao động là người nước ngoài làm việc tại Việt Nam theo quy định tại Điều 156 của Bộ luật này.")
    assert facts.relations == []


def test_own_number_and_preamble_are_never_targets() -> None:
    facts = law("Căn cứ Luật Giáo dục số 38/2005/QH11 hết hiệu lực kể từ ngày 01 tháng 01 năm 2020;\n"
                "Điều 1. Phạm vi\nLuật Giáo dục số 43/2019/QH14 hết hiệu lực kể từ ngày 01 tháng 01 năm 2030.")
    assert facts.relations == []


# --------------------------------------------------------------------------------------------- amendments
AMENDING_ARTICLE = """Điều 113. Sửa đổi, bổ sung một số điều của Luật Giáo dục nghề nghiệp số 74/2014/QH13 đã được sửa đổi, bổ sung một số điều theo Luật số 97/2015/QH13 và Luật số 21/2017/QH14
1. Sửa đổi, bổ sung điểm a và điểm b khoản 3 Điều 32 như sau:
“a) Người có bằng tốt nghiệp trung học phổ thông;
Điều 32. Luật Giáo dục số 11/1998/QH10 hết hiệu lực kể từ ngày Luật này có hiệu lực.
b) Bãi bỏ Điều 9 của Luật Dược số 34/2005/QH11.”
2. Sửa đổi, bổ sung khoản 3 Điều 33 như sau:
“3. Thời gian đào tạo trình độ cao đẳng theo niên chế được thực hiện từ 02 đến 03 năm học.”
3. Bổ sung Điều 10a vào sau Điều 10 như sau:
4. Bãi bỏ
Điều 37 và điểm đ khoản 1 Điều 38.
Điều 114. Hiệu lực thi hành
1. Luật này có hiệu lực thi hành từ ngày 01 tháng 7 năm 2020.
"""


def test_amending_article_one_relation_per_clause() -> None:
    facts = law(AMENDING_ARTICLE)
    got = [(r.kind, r.target.number, r.source_article, r.source_clause, r.scopes) for r in facts.relations]
    assert got == [
        (AMENDS, "74/2014/QH13", "113", "1", (Scope(POINT, article="32", clause="3", point="a"),
                                              Scope(POINT, article="32", clause="3", point="b"))),
        (AMENDS, "74/2014/QH13", "113", "2", (Scope(CLAUSE, article="33", clause="3"),)),
        (AMENDS, "74/2014/QH13", "113", "3", (Scope(ARTICLE, article="10a"),)),
        (ABOLISHES, "74/2014/QH13", "113", "4", (Scope(ARTICLE, article="37"),
                                                 Scope(POINT, article="38", clause="1", point="đ"))),
    ]
    assert facts.effective_from == "2020-07-01"


def test_clause_naming_its_own_document() -> None:
    # Luật Cư trú 2020, Điều 37 ("3. Bãi bỏ" ends a line in that file)
    facts = law("Điều 37. Sửa đổi, bổ sung, bãi bỏ một số điều của các luật có liên quan đến quản lý cư trú\n"
                "1. Sửa đổi, bổ sung khoản 1 Điều 9 của Luật Căn cước công dân số 59/2014/QH13 như sau:\n"
                "“1. Nội dung thông tin được thu thập, cập nhật gồm:\na) Họ, chữ đệm và tên khai sinh;\n"
                "s) Ngày, tháng, năm chết hoặc mất tích.”.\n3. Bãi bỏ\n"
                "khoản 3 và khoản 4 Điều 19 của Luật Thủ đô số 25/2012/QH13.\n"
                "6. Bổ sung khoản 5 vào Điều 82 của Luật Khám bệnh, chữa bệnh số 40/2009/QH12\nnhư sau:")
    got = [(r.kind, r.target.number, r.source_clause, r.scopes) for r in facts.relations]
    assert got == [
        (AMENDS, "59/2014/QH13", "1", (Scope(CLAUSE, article="9", clause="1"),)),
        (ABOLISHES, "25/2012/QH13", "3", (Scope(CLAUSE, article="19", clause="3"),
                                          Scope(CLAUSE, article="19", clause="4"))),
        (AMENDS, "40/2009/QH12", "6", (Scope(CLAUSE, article="82", clause="5"),)),
    ]


def test_replacing_words() -> None:
    # Luật Doanh nghiệp 2020, Điều 217
    facts = law("Điều 217. Sửa đổi, bổ sung một số điều của luật có liên quan đến đăng ký kinh doanh\n"
                "3. Thay thế cụm từ “doanh nghiệp nhà nước” bằng cụm từ “doanh nghiệp do Nhà nước nắm giữ 100% vốn điều "
                "lệ” quy định tại điểm m khoản 1 Điều 35 và điểm k khoản 1 Điều 37 của Luật Ngân sách nhà nước số "
                "83/2015/QH13.")
    [rel] = facts.relations
    assert (rel.kind, rel.target.number) == (AMENDS, "83/2015/QH13")
    assert rel.scopes == (Scope(POINT, article="35", clause="1", point="m"), Scope(POINT, article="37", clause="1",
                                                                                  point="k"))


def test_standalone_abolition_in_closing_provisions() -> None:
    facts = law("Điều 155. Hiệu lực thi hành\n2. Bãi bỏ Điều 57 của Luật hàng không dân dụng Việt Nam số 66/2006/QH11.")
    [rel] = facts.relations
    assert (rel.kind, rel.target.number, rel.scopes) == (ABOLISHES, "66/2006/QH11", (Scope(ARTICLE, article="57"),))


def test_powers_to_abolish_are_not_abolitions() -> None:
    facts = law("Điều 70. Nhiệm vụ\n11. Bãi bỏ văn bản của Chủ tịch nước, Ủy ban thường vụ Quốc hội, Chính phủ trái với "
                "Hiến pháp, luật, nghị quyết của Quốc hội;\n19. Sửa đổi, bổ sung điều lệ.")
    assert facts.relations == []


def test_older_amending_law_passive_clauses() -> None:
    header = ("Số: 18/2000/QH10\nHà Nội, ngày 09 tháng 6 năm 2000\nLUẬT\nSỬA ĐỔI, BỔ SUNG MỘT SỐ ĐIỀU CỦA LUẬT ĐẦU TƯ "
              "NƯỚC NGOÀI TẠI VIỆT NAM SỐ 18/2000/QH10 NGÀY 09 THÁNG 6 NĂM 2000\n")
    facts = law('Điều 1: Sửa đổi, bổ sung một số điều của Luật đầu tư nước ngoài tại Việt Nam như sau:\n'
                '2. Khoản 1 Điều 14 được sửa đổi như sau:\n"1. Những vấn đề quan trọng nhất.\nĐiều 2. Hiệu lực."\n'
                '3. Bổ sung Điều 19a như sau:', header=header)
    got = [(r.target.title, r.source_clause, r.scopes) for r in facts.relations]
    assert got == [("Luật đầu tư nước ngoài tại Việt Nam", "2", (Scope(CLAUSE, article="14", clause="1"),)),
                   ("Luật đầu tư nước ngoài tại Việt Nam", "3", (Scope(ARTICLE, article="19a"),))]


# --------------------------------------------------------------------------------------------- real files
def _needs_data() -> None:
    if not all(folder.is_dir() for folder in FOLDERS):
        pytest.skip("the real laws are not here: /work/shared/data/laws and laws_blankline are absent")


def _read(name: str) -> DocumentFacts:
    _needs_data()
    for folder in FOLDERS:
        path = folder / name
        if path.exists():
            return read_validity(normalize_text(path.read_text(encoding="utf-8", errors="replace")))
    pytest.skip(f"{name} is not in the data folders")


def _rel(facts: DocumentFacts, kind: str, number: str) -> list:
    return [r for r in facts.relations if r.kind == kind and r.target.number == number]


@pytest.mark.parametrize("name", ["Luat-Doanh-nghiep-so-59-2020-QH14-427301.txt", "luat-doanh-nghiep.txt"])
def test_file_doanh_nghiep_2020(name: str) -> None:
    facts = _read(name)
    assert facts.number == "59/2020/QH14" and facts.effective_from == "2021-01-01"
    [rel] = _rel(facts, REPEALS, "68/2014/QH13")
    assert rel.scopes == () and rel.effective is None and rel.source_article == "217"  # "Điều 217. Điều khoản thi hành"


def test_file_thi_dua_khen_thuong_2022() -> None:
    facts = _read("Luat-Thi-dua-Khen-thuong-2022-418232.txt")
    assert targets(facts, REPEALS) == ["15/2003/QH11"]  # named by number, not by title
    assert facts.effective_from == "2024-01-01"


def test_file_tiep_cong_dan_2013() -> None:
    facts = _read("Luat-tiep-cong-dan-2013-215839.txt")
    [rel] = _rel(facts, REPEALS, "02/2011/QH13")
    assert rel.scopes == (Scope(CHAPTER, chapter="5"),)
    assert not _rel(facts, REPEALS, "26/2004/QH11") and not _rel(facts, REPEALS, "58/2005/QH11")


@pytest.mark.parametrize("name", ["Luat-giao-duc-2019-367665.txt", "luat-giao-duc.txt"])
def test_file_giao_duc_2019(name: str) -> None:
    facts = _read(name)
    assert targets(facts, REPEALS) == ["38/2005/QH11"]
    assert not [r for r in facts.relations if r.target.number in ("74/2014/QH13", "97/2015/QH13")
                and r.kind in (REPEALS, ABOLISHES)]
    amended = [(r.source_article, r.source_clause, r.scopes) for r in _rel(facts, AMENDS, "74/2014/QH13")]
    assert amended == [
        ("113", "1", (Scope(POINT, article="32", clause="3", point="a"), Scope(POINT, article="32", clause="3", point="b"))),
        ("113", "2", (Scope(CLAUSE, article="33", clause="3"),)),
    ]


def test_file_quy_hoach_2017() -> None:
    facts = _read("Luat-quy-hoach-322935.txt")
    [rel] = _rel(facts, AMENDS, "74/2014/QH13")
    assert (rel.source_article, rel.source_clause, rel.scopes) == ("57", "5", (Scope(ARTICLE, article="8"),))
    # the new wording of Điều 8 in quotes gives no relation of its own
    assert all(r.source_clause in (None, "1", "2", "3", "4", "5", "6", "7", "8") for r in facts.relations)


@pytest.mark.parametrize("name", ["Luat-68-2020-QH14-cu-tru-435315.txt", "luat-cu-tru.txt"])
def test_file_cu_tru_2020(name: str) -> None:
    facts = _read(name)
    assert targets(facts, REPEALS) == ["81/2006/QH11"]
    [rel] = _rel(facts, ABOLISHES, "25/2012/QH13")  # "3. Bãi bỏ" ends a line in the first file
    assert rel.scopes == (Scope(CLAUSE, article="19", clause="3"), Scope(CLAUSE, article="19", clause="4"))
    assert _rel(facts, AMENDS, "59/2014/QH13")[0].scopes == (Scope(CLAUSE, article="9", clause="1"),)
    assert not _rel(facts, AMENDS, "32/2013/QH13")


def test_file_quan_ly_ngoai_thuong_2017() -> None:
    facts = _read("Luat-Quan-ly-ngoai-thuong-2017-322219.txt")
    assert targets(facts, REPEALS) == ["42/2002/PL-UBTVQH10", "20/2004/PL-UBTVQH11", "22/2004/PL-UBTVQH11"]
    [rel] = _rel(facts, ABOLISHES, "36/2005/QH11")  # "Ðiều" written with the Icelandic Ð in this file
    assert [s.article for s in rel.scopes] == ["28", "29", "30", "31", "33", "242", "243", "244", "245", "246", "247"]


@pytest.mark.parametrize("name", ["Bo-luat-to-tung-dan-su-2015-296861.txt", "bo-luat-to-tung-dan-su.txt"])
def test_file_to_tung_dan_su_2015(name: str) -> None:
    facts = _read(name)
    [rel] = _rel(facts, REPEALS, "24/2004/QH11")
    assert rel.exceptions == (Scope(ARTICLE, article="159"), Scope(POINT, article="192", clause="1", point="h"))
    assert not _rel(facts, REPEALS, "65/2011/QH12")
    [gone] = _rel(facts, ABOLISHES, "10/2012/QH13")
    assert [s.article for s in gone.scopes] == [*map(str, range(223, 233)), "234"]
    assert _rel(facts, AMENDS, "10/2012/QH13")[0].scopes == (Scope(ARTICLE, article="51"),)


def test_file_an_toan_ve_sinh_lao_dong_2015() -> None:
    facts = _read("Luat-an-toan-ve-sinh-lao-dong-2015-281961.txt")
    [rel] = _rel(facts, REPEALS, "58/2014/QH13")
    assert rel.scopes[0] == Scope(SECTION, chapter="3", section="3") and len(rel.scopes) == 10


def test_file_kinh_doanh_bao_hiem_2022() -> None:
    facts = _read("Luat-Kinh-doanh-bao-hiem-2022-465916.txt")
    assert targets(facts, REPEALS) == ["24/2000/QH10"]
    assert not _rel(facts, REPEALS, "61/2010/QH12") and not _rel(facts, AMENDS, "24/2000/QH10")
    assert facts.article_effective["116"] == "2028-01-01"


def test_corpus_all_files() -> None:
    """Every file of both folders: no failure, sane counts, no relation on the document itself, and fast
    enough to run per file in the pipeline."""
    _needs_data()
    counts = {REPEALS: 0, ABOLISHES: 0, AMENDS: 0}
    times, files = [], 0
    for folder in FOLDERS:
        for path in sorted(folder.iterdir()):
            text = normalize_text(path.read_text(encoding="utf-8", errors="replace"))
            start = time.perf_counter()
            facts = read_validity(text)
            times.append(time.perf_counter() - start)
            files += 1
            for rel in facts.relations:
                counts[rel.kind] += 1
                assert rel.target.number is None or rel.target.number != facts.number, (path.name, rel)
                assert rel.target.number or rel.target.title, (path.name, rel)
                assert rel.target.number in (None, number_key(rel.target.number))
    median = statistics.median(times)
    print(f"\n{files} files; {counts}; median {median * 1000:.1f} ms, max {max(times) * 1000:.1f} ms per file")
    assert files == 318
    assert counts[REPEALS] >= 220 and counts[ABOLISHES] >= 40 and counts[AMENDS] >= 130
    assert median < 0.05


def test_article_of_an_amending_law_named_by_its_title() -> None:
    # Luật Thuế giá trị gia tăng 2008, Điều 15: the number is the amending law's, the scope is its Điều 2
    facts = law("Điều 15. Hiệu lực thi hành\n3. Bãi bỏ Điều 2 của Luật sửa đổi, bổ sung một số Điều của Luật thuế tiêu "
                "thụ đặc biệt và Luật thuế giá trị gia tăng số 57/2005/QH11.")
    [rel] = facts.relations
    assert (rel.kind, rel.target.number, rel.scopes) == (ABOLISHES, "57/2005/QH11", (Scope(ARTICLE, article="2"),))
