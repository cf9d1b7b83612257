"""Reading a legal question (text/query.py): options, laws, document numbers, articles, scaffolding."""

from __future__ import annotations

import unicodedata

from legal_rag_pipeline.text.lexical import lexical_tokens
from legal_rag_pipeline.text.query import (
    ArticleMention,
    find_articles,
    find_laws,
    find_numbers,
    question_with_options,
    strip_scaffolding,
)

TITLES = [
    "Luật Cư trú",
    "Luật Giáo dục",
    "Luật Giáo dục nghề nghiệp",
    "Bộ luật Dân sự",
    "Luật Phòng, chống ma túy",
    "Luật Tố tụng hành chính",
    "Hiến pháp",  # one word after the type is still two words
]


def laws(text: str) -> list[str]:
    return [m.value for m in find_laws(text, TITLES)]


def test_options_are_part_of_the_question():
    text = question_with_options("Hành vi nào sau đây bị cấm?", {"A": "Tảo hôn.", "B": " Cưỡng ép ly hôn ", "C": ""})
    assert text == "Hành vi nào sau đây bị cấm?\nA. Tảo hôn.\nB. Cưỡng ép ly hôn"
    assert question_with_options("Câu hỏi?", None) == "Câu hỏi?"
    assert question_with_options("Câu hỏi?", [("A", "một")]) == "Câu hỏi?\nA. một"
    # the options' words are searched
    assert {"tảo", "hôn", "cưỡng_ép"} <= set(lexical_tokens(text))


def test_a_law_is_named_by_its_full_title_whatever_the_case_tone_or_punctuation():
    assert laws("Theo Luật Cư Trú, thời hạn tạm trú là bao lâu?") == ["Luật Cư trú"]
    assert laws("theo luật phòng chống ma tuý") == ["Luật Phòng, chống ma túy"]
    assert laws(unicodedata.normalize("NFD", "Bộ luật Dân sự 2015 quy định")) == ["Bộ luật Dân sự"]
    assert laws("theo luat phong chong ma tuy") == ["Luật Phòng, chống ma túy"]  # typed without diacritics
    assert laws("Hiến pháp năm 2013") == ["Hiến pháp"]


def test_the_longest_title_wins_and_ordinary_words_are_not_laws():
    assert laws("Luật Giáo dục nghề nghiệp quy định") == ["Luật Giáo dục nghề nghiệp"]
    assert laws("Luật Giáo dục và Luật Cư trú") == ["Luật Giáo dục", "Luật Cư trú"]
    assert laws("trình độ giáo dục nghề nghiệp") == []  # no "Luật": a subject, not a law
    assert laws("đăng ký cư trú") == []
    assert laws("Luật này quy định") == []
    assert find_laws("Luật Cư trú", ["Luật"]) == []  # a one-word title never matches


def test_document_numbers_but_not_dates():
    assert [m.value for m in find_numbers("Luật số 68/2020/QH14 và Nghị định 19/2019/nđ-cp")] == [
        "68/2020/QH14", "19/2019/NĐ-CP"]
    assert [m.value for m in find_numbers("91 / 2015 / QH13")] == ["91/2015/QH13"]
    assert find_numbers("hết ngày 31/12/2022, kể từ ngày 01/01/2023") == []


def test_articles_and_the_law_they_belong_to():
    assert find_articles("Điều 5 Luật Cư trú quy định gì?", TITLES) == [ArticleMention("5", law="Luật Cư trú")]
    assert find_articles("khoản 2 Điều 12a của Bộ luật Dân sự", TITLES) == [ArticleMention("12a", law="Bộ luật Dân sự")]
    assert find_articles("Điều 5 Luật số 68/2020/QH14", TITLES) == [ArticleMention("5", number="68/2020/QH14")]
    # the law named right after the article, not the other one
    assert find_articles("Theo Điều 5 Luật Cư trú và Bộ luật Dân sự", TITLES) == [ArticleMention("5", law="Luật Cư trú")]
    # the only law of the question
    assert find_articles("Theo Luật Cư trú, Điều 20 quy định gì?", TITLES) == [ArticleMention("20", law="Luật Cư trú")]
    # no law, or two laws and none right after: the article alone does not say which law
    assert find_articles("Điều 5 và Điều 7 quy định gì?", TITLES) == [ArticleMention("5"), ArticleMention("7")]
    assert find_articles("Luật Cư trú và Bộ luật Dân sự, Điều 5", TITLES) == [ArticleMention("5")]
    # "Điều nào" (which one) is not an article
    assert find_articles("Điều nào sau đây đúng?", TITLES) == []


def test_scaffolding_is_taken_out_and_the_subject_stays():
    assert strip_scaffolding("Thời hạn tạm trú tối đa là 02 năm, đúng hay sai?") == "thời hạn tạm trú tối đa là 02 năm, . ?"
    assert strip_scaffolding("Trường hợp nào sau đây không được đăng ký thường trú?") == (
        "trường hợp . . không được đăng ký thường trú?")
    assert strip_scaffolding("Theo quy định của pháp luật hiện hành, Chọn câu trả lời đúng nhất.") == ". , . ."
    options = question_with_options("Hành vi nào bị cấm?", {"A": "Tảo hôn", "B": "Ly hôn", "C": "Cả A, B đều đúng"})
    assert strip_scaffolding(options) == "hành vi . bị cấm? . tảo hôn . ly hôn . ."
    # a lone "a)" is a point of a clause, not an option
    assert strip_scaffolding("điểm a) khoản 1 Điều 5") == "điểm a) khoản 1 điều 5"
    # no bigram across what was taken out
    assert "hợp_ngôn" not in lexical_tokens(strip_scaffolding("Trường hợp nào sau đây ngôn ngữ"))
