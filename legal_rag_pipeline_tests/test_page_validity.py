"""The status a saved vbpl.vn page shows above its text ("Hiệu lực: Hết hiệu lực một phần", "Ngày có
hiệu lực: 01/01/2018", "Còn hiệu lực"): read by readers/html.py ``page_validity`` and kept in the file's
document record under "page_validity" by the read stage."""

from __future__ import annotations

import pytest

from legal_rag_pipeline.readers.html import page_validity
from legal_rag_pipeline_tests.pipeline_env import shared_data

OLD_PAGE = "html/vbpl-bo-luat-hinh-su-100-2015-QH13.html"
NEW_PAGE = "html/vbpl-new-layout-doc_000002.html"


def _docs():
    folder = shared_data() / "documents"
    if not (folder / OLD_PAGE).is_file() or not (folder / NEW_PAGE).is_file():
        pytest.skip(f"the saved vbpl.vn pages are absent from {folder}")
    return folder


def _old_layout(*items: str) -> bytes:
    lis = "".join(f'<li class="red"><span>{label} </span>\n\t\t{value}</li>' for label, value in
                  (item.split("|") for item in items))
    return ('<html><head><meta charset="utf-8"></head><body><div class="fulltext">'
            f'<div class="vbInfo"><ul>{lis}'
            '</ul></div><div><div id="toanvancontent"><p>Điều 1. Phạm vi điều chỉnh</p></div></div></div>'
            "</body></html>").encode()


def _new_layout(status: str, *dates: str) -> bytes:
    items = "".join('<div class="lawDocumentHeader_dateItem__nkH9h">'
                    f'<span class="lawDocumentHeader_dateLabel__qMxwC">{label}</span>'
                    f'<span class="lawDocumentHeader_dateValue__LVLL7">{value}</span></div>'
                    for label, value in (d.split("|") for d in dates))
    return ('<!DOCTYPE html><html><body><div class="lawDocumentHeader_container__PaHQ0">'
            '<h1 class="lawDocumentHeader_title___34g0">Luật Thử số 1/2026/QH15</h1>'
            '<div class="lawDocumentHeader_statusAndDateContainer__1D4F3">'
            f'<div class="effStatus_detailStatusTag__vzQ0k">{status}</div>'
            f'<div class="lawDocumentHeader_dateInfoContainer__HDaaO">{items}</div></div></div>'
            '<p class="prov-article">Điều 1. Phạm vi điều chỉnh</p></body></html>').encode()


def test_real_pages_old_and_new_layout():
    docs = _docs()
    assert page_validity((docs / OLD_PAGE).read_bytes()) == {
        "status": "Hết hiệu lực một phần", "in_force": True, "effective_from": "2018-01-01",
        "valid_to": None, "updated_on": None}
    assert page_validity((docs / NEW_PAGE).read_bytes()) == {
        "status": "Còn hiệu lực", "in_force": True, "effective_from": "2026-03-01",
        "valid_to": None, "updated_on": "2026-04-15"}


def test_old_layout_repealed_with_end_date():
    page = _old_layout("Hiệu lực:|Hết hiệu lực toàn bộ", "Ngày có hiệu lực:|01/07/2016",
                       "Ngày hết hiệu lực:|01/01/2025")
    assert page_validity(page) == {"status": "Hết hiệu lực toàn bộ", "in_force": False,
                                   "effective_from": "2016-07-01", "valid_to": "2025-01-01",
                                   "updated_on": None}


def test_new_layout_not_yet_in_force():
    page = _new_layout("Chưa có hiệu lực", "Ngày có hiệu lực:|01/03/2026", "Ngày cập nhật:|10/12/2025")
    assert page_validity(page) == {"status": "Chưa có hiệu lực", "in_force": None,
                                   "effective_from": "2026-03-01", "valid_to": None,
                                   "updated_on": "2025-12-10"}


def test_unknown_words_and_bad_dates_are_kept_as_unknown():
    page = _old_layout("Hiệu lực:|Chưa xác định", "Ngày có hiệu lực:|31/02/2018")
    assert page_validity(page) == {"status": "Chưa xác định", "in_force": None, "effective_from": None,
                                   "valid_to": None, "updated_on": None}


def test_pages_without_the_status_block():
    assert page_validity(b"<html><body><p>Dieu 1. Pham vi</p></body></html>") is None
    # the legal text's own words are never read as the page's status
    text = ("<html><body><div id='toanvancontent'><p><b>Hiệu lực:</b> Hết hiệu lực toàn bộ</p>"
            "<p>Điều 2. Hiệu lực thi hành</p></div></body></html>")
    assert page_validity(text.encode()) is None


def test_read_stage_keeps_the_page_status_in_the_document_record(tmp_path):
    from legal_rag_pipeline import ingest
    from legal_rag_pipeline.artifacts import FileArtifacts

    docs = _docs()  # read where it is, through the real read stage (child reader process)
    state = tmp_path / "state"
    outcome = ingest.read_stage(docs, NEW_PAGE, state, "run-1")
    assert outcome.status == "ok", outcome
    document = FileArtifacts(state, NEW_PAGE).document()
    assert document["page_validity"] == {"status": "Còn hiệu lực", "in_force": True,
                                         "effective_from": "2026-03-01", "valid_to": None,
                                         "updated_on": "2026-04-15"}
