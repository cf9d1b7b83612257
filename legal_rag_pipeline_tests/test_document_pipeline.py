"""End to end through the real Dagster run (``legal-rag ingest``): a folder of mixed real documents
(.docx, a VNI .doc, a TCVN3 .pdf, a two-page scan, a vbpl.vn page) plus a damaged one becomes
searchable articles in Unicode, each point carrying its document's number, type, issuer and date."""

from __future__ import annotations

import shutil

import pytest

from legal_rag_pipeline_tests.pipeline_env import make_env, shared_data


@pytest.mark.slow
def test_mixed_documents_are_searchable_under_their_number(tmp_path, monkeypatch):
    docs = shared_data() / "documents"
    if not docs.is_dir():
        pytest.skip(f"{docs} is absent")
    for tool in ("soffice", "tesseract"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; scripts/test.sh installs it")
    import pypdfium2 as pdfium

    env = make_env(tmp_path, monkeypatch)  # bm25 only: no embedding service needed
    for name in ("docx/nghi_dinh_19_2019_ND_CP.docx", "doc/2008-23.QD-991-UBND.doc",
                 "pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf", "html/vbpl-new-layout-doc_000002.html"):
        (env.data / name).parent.mkdir(exist_ok=True)
        shutil.copy2(docs / name, env.data / name)
    scan = pdfium.PdfDocument.new()
    scan.import_pages(pdfium.PdfDocument(str(docs / "pdf/80-qh-13.signed.pdf")), [0, 1])
    scan.save(str(env.data / "pdf" / "luat-80-scan.pdf"))
    (env.data / "pdf" / "damaged.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)

    code, out = env.ingest()
    assert code == 1, out  # one file failed, the others were ingested
    assert "damaged.pdf" in out and "corrupt" in out

    points = list(env.points().values())
    by_source: dict[str, list[dict]] = {}
    for payload in points:
        by_source.setdefault(payload["source"], []).append(payload)
    assert set(by_source) == {"docx/nghi_dinh_19_2019_ND_CP.docx", "doc/2008-23.QD-991-UBND.doc",
                              "pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf", "html/vbpl-new-layout-doc_000002.html",
                              "pdf/luat-80-scan.pdf"}
    expected = {
        "docx/nghi_dinh_19_2019_ND_CP.docx": ("19/2019/NĐ-CP", "Nghị định", "Chính phủ", "2019-02-19"),
        "doc/2008-23.QD-991-UBND.doc": ("991/QĐ-UBND", "Quyết định", "Ủy ban nhân dân tỉnh Bình Phước", "2008-05-14"),
        "pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf": ("01/2006/TT-NHNN", "Thông tư", "Ngân hàng Nhà nước Việt Nam",
                                                  "2006-02-20"),
        "html/vbpl-new-layout-doc_000002.html": ("121/2025/QH15", "Luật", "Quốc hội", "2025-12-10"),
    }
    for source, (number, doc_type, issuer, issued_on) in expected.items():
        for payload in by_source[source]:
            assert (payload["number"], payload["doc_type"], payload["issuer"], payload["issued_on"]) == (
                number, doc_type, issuer, issued_on), source
            assert payload["metadata"]["number"] == number
    assert {p["number"] for p in by_source["pdf/luat-80-scan.pdf"]} == {"80/2015/QH13"}
    assert {p["article"] for p in by_source["html/vbpl-new-layout-doc_000002.html"]} >= {str(n) for n in range(1, 46)}
    assert {p["article"] for p in by_source["docx/nghi_dinh_19_2019_ND_CP.docx"]} >= {str(n) for n in range(1, 29)}

    # Unicode search finds the legacy-encoded texts and the articles, under their number
    hits = env.search_json("phê duyệt kế hoạch thực hiện quy hoạch sử dụng rừng Bình Phước")
    assert hits[0]["source"] == "doc/2008-23.QD-991-UBND.doc"
    hits = env.search_json("góp vốn thành lập Quỹ bảo lãnh tín dụng doanh nghiệp nhỏ và vừa")
    assert hits[0]["source"] == "pdf/2006-16EZE_TT01.06GopvonDNNVV.pdf"
    hits = env.search_json("hụi họ biêu phường là gì")
    top = hits[0]
    assert top["source"] == "docx/nghi_dinh_19_2019_ND_CP.docx" and top["article"]
    payload = next(p for p in by_source[top["source"]] if p["article"] == top["article"])
    assert payload["number"] == "19/2019/NĐ-CP"

    # a second run reads nothing again (OCR included), nor the damaged file, unchanged since it failed
    code, out = env.ingest()
    assert code == 1 and "Nothing changed since the last run: 5 files in sync" in out, out
    assert "1 file not run: failing as before" in out and "  pdf/damaged.pdf: a corrupt or truncated PDF" in out
    # every file on purpose: each is hashed and found unchanged, nothing is read again
    code, out = env.ingest("--all")
    assert code == 1 and out.count("unchanged") >= 5, out
