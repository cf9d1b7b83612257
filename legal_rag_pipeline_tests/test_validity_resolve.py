"""The corpus view (validity/resolve.py) and its payload plan (validity/sync.py), as plain functions."""

from __future__ import annotations

from legal_rag_pipeline.validity.model import (
    ABOLISHES,
    AMENDS,
    ARTICLE,
    CHAPTER,
    CLAUSE,
    REPEALS,
    DocumentFacts,
    Relation,
    Scope,
    Target,
)
from legal_rag_pipeline.validity.resolve import (
    AMBIGUOUS,
    APPLIED,
    CIRCULAR,
    LATER,
    NO_DATE,
    NOT_IN_FOLDER,
    SELF,
    FileValidity,
    arabic,
    resolve,
)
from legal_rag_pipeline.validity.sync import APPLIED_KEY, PackedViews, payload_groups, plan_validity_updates

OLD = DocumentFacts(number="68/2014/QH13", title="Luật Doanh nghiệp", year=2014, effective_from="2015-07-01")
NEW = DocumentFacts(
    number="59/2020/QH14", title="Luật Doanh nghiệp", year=2020, effective_from="2021-01-01",
    relations=[Relation(REPEALS, Target(number="68/2014/QH13"), source_article="217",
                        sentence="Luật Doanh nghiệp số 68/2014/QH13 hết hiệu lực kể từ ngày Luật này có hiệu lực thi hành")],
)


# the law on vocational education, one clause of it amended and one article abolished by the education law
VOCATIONAL = DocumentFacts(number="74/2014/QH13", year=2014, effective_from="2015-07-01")
EDUCATION = DocumentFacts(
    number="43/2019/QH14", year=2019, effective_from="2020-07-01",
    relations=[
        Relation(AMENDS, Target(number="74/2014/QH13"), scopes=(Scope(CLAUSE, article="32", clause="3"),),
                 source_article="113", source_clause="1"),
        Relation(ABOLISHES, Target(number="74/2014/QH13"), scopes=(Scope(ARTICLE, article="37"),),
                 source_article="113", source_clause="3"),
    ],
)


def art(n: str, chapter: str | None = None) -> dict:
    return {"kind": "law", "article": n, "chapter": chapter}


def test_a_law_ends_when_its_successor_takes_effect():
    view = resolve({"old.txt": OLD, "new.txt": NEW})
    old = view.files["old.txt"].payload(art("1"))
    assert (old["valid_from"], old["valid_to"], old["repealed_by"]) == ("2015-07-01", "2021-01-01", "59/2020/QH14")
    new = view.files["new.txt"].payload(art("1"))
    assert (new["valid_from"], new["valid_to"], new["repealed_by"]) == ("2021-01-01", None, None)
    assert view.status("old.txt", "2020-12-31")["status"] == "in force"
    assert view.status("old.txt", "2021-01-01")["status"].startswith("not in force since 2021-01-01 (repealed by 59/2020/QH14)")
    assert [r.outcome for r in view.relations] == [APPLIED]


def test_without_the_successor_the_old_law_is_in_force():
    view = resolve({"old.txt": OLD})
    assert view.files["old.txt"].payload(art("5"))["valid_to"] is None
    assert view.status("old.txt", "2030-01-01")["status"] == "in force"


def test_a_chapter_in_roman_numerals_ends_only_its_articles():
    complaints = DocumentFacts(number="02/2011/QH13", title="Luật Khiếu nại", year=2011, effective_from="2012-07-01")
    citizens = DocumentFacts(
        number="42/2013/QH13", year=2013, effective_from="2014-07-01",
        relations=[Relation(REPEALS, Target(number="02/2011/QH13"), scopes=(Scope(CHAPTER, chapter="V"),))],
    )
    view = resolve({"k.txt": complaints, "t.txt": citizens})
    fv = view.files["k.txt"]
    assert fv.payload(art("58", "Chương 5 — TIẾP CÔNG DÂN"))["valid_to"] == "2014-07-01"
    assert fv.payload(art("2", "Chương I — NHỮNG QUY ĐỊNH CHUNG"))["valid_to"] is None
    assert view.status("k.txt", "2020-01-01")["status"] == "partly not in force"


def test_exceptions_keep_what_they_name_and_articles_can_be_listed():
    target = DocumentFacts(number="67/2014/QH13", year=2014, effective_from="2015-07-01")
    later = DocumentFacts(
        number="61/2020/QH14", year=2020, effective_from="2021-01-01",
        relations=[
            Relation(REPEALS, Target(number="67/2014/QH13"), exceptions=(Scope(ARTICLE, article="75"),)),
        ],
    )
    fv = resolve({"a.txt": target, "b.txt": later}).files["a.txt"]
    assert fv.payload(art("74"))["valid_to"] == "2021-01-01"
    assert fv.payload(art("75"))["valid_to"] is None


def test_an_amended_article_stays_law_and_says_by_what():
    view = resolve({"v.txt": VOCATIONAL, "e.txt": EDUCATION})
    fv = view.files["v.txt"]
    assert fv.payload(art("32"))["valid_to"] is None
    assert fv.payload(art("32"))["amended_by"] == [{"number": "43/2019/QH14", "article": "113", "from": "2020-07-01"}]
    assert fv.payload(art("33"))["amended_by"] == []
    assert fv.payload(art("37"))["valid_to"] == "2020-07-01"
    assert view.status("v.txt", "2021-01-01")["status"] == "partly not in force, amended"
    # the amending provision is linked to what it changes
    assert view.files["e.txt"].payload(art("113"))["amends_articles"] == [{"number": "74/2014/QH13", "article": "32"}]
    # each piece of the amending article links to what its own clauses change
    piece = {**art("113"), "clause": "2-4"}
    assert view.files["e.txt"].payload(piece)["amends_articles"] == []
    assert view.files["e.txt"].payload({**art("113"), "clause": "1"})["amends_articles"] == [
        {"number": "74/2014/QH13", "article": "32"}]



def test_packed_views_give_back_each_files_view_and_keep_equal_ones_once():
    """What the writer holds through a write (PackedViews): the view of each file it writes, equal to the
    resolved one (endings, amendments and links included), equal views stored once, no other file's."""
    articles = {f"v/dieu-{n}.txt": VOCATIONAL for n in range(1, 4)}  # one-article files of one law
    view = resolve({**articles, "e.txt": EDUCATION, "other.txt": OLD}).files
    packed = PackedViews(view, [*articles, "e.txt", "missing.txt"])
    assert len(packed) == 4 and packed.get("other.txt") is None and packed.get("missing.txt") is None
    for source in [*articles, "e.txt"]:
        again = packed.get(source)
        assert again == view[source] and again.digest() == view[source].digest()
        assert again is not view[source]  # a fresh object each time: a caller cannot change another's
    assert packed.get("v/dieu-1.txt").payload(art("37"))["valid_to"] == "2020-07-01"
    assert packed.get("e.txt").payload(art("113"))["amends_articles"] == [{"number": "74/2014/QH13", "article": "32"}]
    assert len({id(b) for b in packed._packed.values()}) == 2  # the law's three files share one


def test_relations_that_cannot_be_trusted_change_nothing():
    a = DocumentFacts(number="1/2010/QH12", title="Luật A", year=2010, effective_from="2011-01-01")
    b = DocumentFacts(
        number="2/2005/QH11", title="Luật B", year=2005,  # issued before A: cannot repeal it
        effective_from="2006-01-01",
        relations=[Relation(REPEALS, Target(number="1/2010/QH12"))],
    )
    c = DocumentFacts(number="3/2012/QH13", year=2012, relations=[Relation(REPEALS, Target(number="1/2010/QH12"))])  # no date
    d = DocumentFacts(number="4/2013/QH13", year=2013, effective_from="2014-01-01",
                      relations=[Relation(REPEALS, Target(number="4/2013/QH13")),  # itself
                                 Relation(REPEALS, Target(number="99/2001/QH10")),  # not here
                                 Relation(REPEALS, Target(title="Luật Trùng", year=None))])  # two documents
    e1 = DocumentFacts(number="5/2000/QH10", title="Luật Trùng", year=2000)
    e2 = DocumentFacts(number="6/2001/QH10", title="Luật Trùng", year=2001)
    view = resolve({"a": a, "b": b, "c": c, "d": d, "e1": e1, "e2": e2})
    outcomes = sorted(r.outcome for r in view.relations)
    assert outcomes == sorted([LATER, NO_DATE, SELF, NOT_IN_FOLDER, AMBIGUOUS])
    for source in view.files:
        assert view.files[source].payload(art("1"))["valid_to"] is None
    assert any("no readable date" in p for p in view.problems)


def test_two_documents_that_end_each_other_are_reported_and_neither_applied():
    a = DocumentFacts(number="1/2010/QH12", year=2010, effective_from="2011-01-01",
                      relations=[Relation(REPEALS, Target(number="2/2010/QH12"))])
    b = DocumentFacts(number="2/2010/QH12", year=2010, effective_from="2011-01-01",
                      relations=[Relation(REPEALS, Target(number="1/2010/QH12"))])
    view = resolve({"a": a, "b": b})
    assert {r.outcome for r in view.relations} == {CIRCULAR}
    assert view.files["a"].payload(art("1"))["valid_to"] is None


def test_by_title_and_year_and_numbers_as_typed():
    old = DocumentFacts(number=None, title="Luật Thi đua, Khen thưởng", year=2003, issued_on="2003-11-26",
                        effective_from="2004-04-01")
    new = DocumentFacts(number="06/2022/QH15", year=2022, effective_from="2024-01-01",
                        relations=[Relation(REPEALS, Target(title="Luật Thi đua, khen thưởng", year=2003))])
    typed = DocumentFacts(number="62/2006/QH 11", year=2006, effective_from="2007-01-01")
    later = DocumentFacts(number="1/2010/QH12", year=2010, effective_from="2011-01-01",
                          relations=[Relation(REPEALS, Target(number="62/2006/QH11"))])
    view = resolve({"old": old, "new": new, "typed": typed, "later": later})
    assert view.files["old"].payload(art("1"))["valid_to"] == "2024-01-01"
    assert view.files["typed"].payload(art("1"))["valid_to"] == "2011-01-01"


def test_duplicates_are_reported_and_both_copies_get_the_same_validity():
    view = resolve({"laws/old.txt": OLD, "blank/old.txt": OLD, "new.txt": NEW})
    assert view.duplicates == {"68/2014/QH13": ["blank/old.txt", "laws/old.txt"]}
    assert view.files["laws/old.txt"].payload(art("1")) == view.files["blank/old.txt"].payload(art("1"))


def test_the_page_date_wins_and_the_text_date_is_kept():
    facts = DocumentFacts(number="1/2024/QH15", year=2024, effective_from="2025-01-01",
                          page={"status": "Còn hiệu lực", "effective_from": "2025-07-01", "valid_to": None})
    payload = resolve({"p.html": facts}).files["p.html"].payload(art("1"))
    assert (payload["valid_from"], payload["valid_from_text"], payload["validity_source"]) == ("2025-07-01", "2025-01-01", "page")


def test_arabic_numerals():
    assert [arabic(x) for x in ("V", "iv", "XIV", "5", "", "Một")] == ["5", "4", "14", "5", None, None]


def test_the_plan_updates_only_what_changed_in_this_collection():
    view = resolve({"old.txt": OLD, "new.txt": NEW})
    key = "edge:/q|legal_rag_1"
    applied = {s: {APPLIED_KEY: {"collection": key, "digest": fv.digest()}} for s, fv in view.files.items()}
    assert not plan_validity_updates(view, applied, key, view.files).updates
    # the successor removed: only the old law's points change
    alone = resolve({"old.txt": OLD})
    assert list(plan_validity_updates(alone, applied, key, ["old.txt"]).updates) == ["old.txt"]
    # another collection (a rebuild): everything again
    assert len(plan_validity_updates(view, applied, "edge:/q|legal_rag_2", view.files).updates) == 2
    # files not in the collection are left alone
    assert not plan_validity_updates(alone, {}, key, []).updates


def test_points_are_grouped_by_the_payload_they_get():
    fv = resolve({"k.txt": DocumentFacts(number="02/2011/QH13", year=2011, effective_from="2012-07-01"),
                  "t.txt": DocumentFacts(number="42/2013/QH13", year=2013, effective_from="2014-07-01", relations=[
                      Relation(REPEALS, Target(number="02/2011/QH13"), scopes=(Scope(CHAPTER, chapter="5"),))])}).files["k.txt"]
    groups = payload_groups(fv, [("p1", art("1", "Chương I")), ("p2", art("58", "Chương V")), ("p3", art("59", "Chương V"))])
    assert sorted((p["valid_to"] or "", ids) for p, ids in groups) == [("", ["p1"]), ("2014-07-01", ["p2", "p3"])]
    assert FileValidity.from_json(fv.to_json()).digest() == fv.digest()


# ------------------------------------------------------------------------------------------------ real laws
def _real_view(*names: str):
    from legal_rag_pipeline.readers.header import document_info
    from legal_rag_pipeline.text.normalize import normalize_text
    from legal_rag_pipeline.validity.extract import read_validity
    from legal_rag_pipeline_tests.pipeline_env import shared_data

    data = shared_data()
    facts = {}
    for name in names:
        text = normalize_text((data / name).read_text(encoding="utf-8"))
        facts[name] = read_validity(text, document_info(text))
    return resolve(facts)


def test_real_pairs_nobody_listed():
    """Pairs found in the two folders: Luật Dạy nghề ended by Luật Giáo dục nghề nghiệp, Luật Kinh doanh bảo
    hiểm 2000 by the 2022 law (whose own articles 95 and 109-116 start only in 2028), Luật Điện ảnh 2006 by
    the 2022 law; Luật Phí và lệ phí, named in Luật Giáo dục 2019's repeal clause as an earlier amending act,
    stays in force."""
    day_nghe, gdnn = "laws_blankline/luat-day-nghe.txt", "laws/Luat-Giao-duc-nghe-nghiep-2014-259733.txt"
    kdbh_2000, kdbh_2022 = "laws/Luat-Kinh-doanh-bao-hiem-2000-24-2000-QH10-47229.txt", "laws/Luat-Kinh-doanh-bao-hiem-2022-465916.txt"
    film_2006, film_2022 = "laws/Luat-dien-anh-2006-62-2006-QH11-12986.txt", "laws/Luat-Dien-anh-2022-486445.txt"
    fees, education = "laws/Luat-phi-va-le-phi-2015-298376.txt", "laws/Luat-giao-duc-2019-367665.txt"
    view = _real_view(day_nghe, gdnn, kdbh_2000, kdbh_2022, film_2006, film_2022, fees, education)
    assert view.files[day_nghe].payload(art("1"))["valid_to"] == "2015-07-01"
    assert view.files[day_nghe].payload(art("1"))["repealed_by"] == "74/2014/QH13"
    assert view.files[kdbh_2000].payload(art("1"))["repealed_by"] == "08/2022/QH15"
    assert view.files[kdbh_2000].payload(art("1"))["valid_to"] == "2023-01-01"
    assert view.files[kdbh_2022].payload(art("95"))["valid_from"] == "2028-01-01"
    assert view.files[kdbh_2022].payload(art("1"))["valid_from"] == "2023-01-01"
    assert view.files[film_2006].payload(art("1"))["valid_to"] == "2023-01-01"
    for kept in (gdnn, fees, kdbh_2022, film_2022, education):
        assert view.status(kept, "2026-12-02")["status"].startswith("in force"), kept


def test_the_records_json_is_what_asdict_gives():
    """``plain`` (the records' to_json) against ``dataclasses.asdict``, on the facts and views of real pairs:
    the same values, the same types (tuples stay tuples), so digests and stored records do not change."""
    from dataclasses import asdict

    from legal_rag_pipeline.validity.model import plain

    names = ("laws_blankline/luat-day-nghe.txt", "laws/Luat-Giao-duc-nghe-nghiep-2014-259733.txt",
             "laws/Luat-Kinh-doanh-bao-hiem-2000-24-2000-QH10-47229.txt", "laws/Luat-Kinh-doanh-bao-hiem-2022-465916.txt",
             "laws/Luat-giao-duc-2019-367665.txt")
    view = _real_view(*names)
    assert any(v.endings for v in view.files.values()) and any(v.amendments for v in view.files.values())
    for name in names:
        assert repr(view.files[name].to_json()) == repr(asdict(view.files[name]))
    for facts in (EDUCATION, NEW, OLD):
        assert repr(plain(facts)) == repr(asdict(facts))
        assert DocumentFacts.from_json(facts.to_json()) == facts


def test_a_pages_official_status_reaches_the_view_from_the_document_record():
    """The read stage keeps a vbpl.vn page's status as ``page_validity``; the normalize stage keeps the text's
    facts: both meet in the view, the page's dates first. A Q&A sheet (no facts, no page) has no view."""
    from legal_rag_pipeline.validity.sync import FACTS_KEY, PAGE_KEY, facts_of

    text = DocumentFacts(number="100/2015/QH13", year=2015, effective_from="2016-07-01")
    records = {
        "vbpl.html": {FACTS_KEY: text.to_json(),
                      PAGE_KEY: {"status": "Hết hiệu lực toàn bộ", "in_force": False, "effective_from": "2018-01-01",
                                 "valid_to": "2025-07-01", "updated_on": None}},
        "hoi-dap.xlsx": {PAGE_KEY: None},
    }
    view = resolve(facts_of(records))
    assert list(view.files) == ["vbpl.html"]
    payload = view.files["vbpl.html"].payload(art("1"))
    assert (payload["valid_from"], payload["valid_from_text"], payload["valid_to"], payload["validity_source"]) == (
        "2018-01-01", "2016-07-01", "2025-07-01", "page")
    assert view.status("vbpl.html", "2026-01-01")["status"] == "not in force since 2025-07-01"
