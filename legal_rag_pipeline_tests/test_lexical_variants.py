"""The lexical variant and the text that feeds bm25: selectable, and the same for documents and queries."""

from __future__ import annotations

import unicodedata

import pytest

from legal_rag_pipeline import ingest
from legal_rag_pipeline.errors import ConfigurationError
from legal_rag_pipeline.records import Chunk
from legal_rag_pipeline.text import lexical
from legal_rag_pipeline.search import SparseIndex
from legal_rag_pipeline.settings import load_lexical
from legal_rag_pipeline.stores.store import Store
from legal_rag_pipeline.text.lexical import (
    DEFAULT_LEXICAL_TEXT,
    DEFAULT_VARIANT,
    Lexical,
    document_sparse_vector,
    lexical_tokens,
    packed,
    query_vector,
)

TEXT = "Điều 9. Nội thuỷ là vùng nước phía trong đường cơ sở"


def test_default_is_the_measured_winner_and_settings_select(monkeypatch):
    monkeypatch.delenv("LEXICAL_VARIANT", raising=False)
    monkeypatch.delenv("LEXICAL_TEXT", raising=False)
    assert load_lexical() == Lexical(DEFAULT_VARIANT, DEFAULT_LEXICAL_TEXT) == Lexical("syllables+bigrams", "headings+chunk")
    assert "nội_thủy" in lexical_tokens(TEXT)
    monkeypatch.setenv("LEXICAL_VARIANT", "Syllables")
    monkeypatch.setenv("LEXICAL_TEXT", "chunk")
    assert load_lexical() == Lexical("syllables", "chunk")
    assert "nội_thủy" not in lexical_tokens(TEXT, load_lexical().variant)
    monkeypatch.setenv("LEXICAL_VARIANT", "words")
    with pytest.raises(ConfigurationError, match="LEXICAL_VARIANT"):
        load_lexical()
    monkeypatch.setenv("LEXICAL_VARIANT", "syllables")
    monkeypatch.setenv("LEXICAL_TEXT", "everything")
    with pytest.raises(ConfigurationError, match="LEXICAL_TEXT"):
        load_lexical()


def test_the_store_carries_the_variant_to_queries(tmp_path):
    """Queries are tokenised as the collection's points were: the variant comes with the store."""
    store = Store(path=str(tmp_path / "q"), lexical_variant="syllables", lexical_text="chunk")
    with store.connect() as collection:
        assert collection.lexical == Lexical("syllables", "chunk")
        index = SparseIndex([], collection.lexical)
    assert index.lexical.variant == "syllables"
    with Store(path=str(tmp_path / "d")).connect() as collection:
        assert collection.lexical == Lexical()


@pytest.mark.parametrize("variant", ["syllables", "syllables+bigrams", "pyvi", "underthesea"])
def test_case_nfc_and_tone_placement_fold_alike_for_documents_and_queries(variant):
    if variant in {"pyvi", "underthesea"}:
        pytest.importorskip(variant)
    old_style = "NỘI THUỶ, hoà giải"
    new_style = unicodedata.normalize("NFD", "nội thủy, hòa giải")
    assert lexical_tokens(old_style, variant) == lexical_tokens(new_style, variant)
    assert query_vector(old_style, variant) == query_vector(new_style, variant)
    if variant.startswith("syllables"):  # segmenters cut words by context, syllables do not
        doc_indices, _ = document_sparse_vector(TEXT, variant)
        query_indices, _ = query_vector("nội thủy", variant)
        assert set(query_indices) <= set(doc_indices)


def test_underthesea_joins_words():
    pytest.importorskip("underthesea")
    tokens = lexical_tokens("Công dân có quyền tự do cư trú theo quy định của pháp luật.", "underthesea")
    assert "công_dân" in tokens and "pháp_luật" in tokens and "." not in tokens


def test_missing_segmenter_says_how_to_install(monkeypatch):
    lexical._underthesea_tokenize.cache_clear()
    import builtins

    real_import = builtins.__import__

    def no_underthesea(name, *args, **kwargs):
        if name == "underthesea":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_underthesea)
    with pytest.raises(RuntimeError, match="pip install underthesea"):
        lexical_tokens("xin chào", "underthesea")
    lexical._underthesea_tokenize.cache_clear()


def _law_chunk() -> Chunk:
    return Chunk(
        "luat.txt",
        "dieu-4/2",
        "Điều 4. Điều kiện đăng ký thường trú\n2. Công dân được đăng ký thường trú ...",
        {"kind": "law", "law": "Luật Cư trú", "part": None, "chapter": "Chương II — ĐĂNG KÝ THƯỜNG TRÚ",
         "section": "Mục 1 — ĐĂNG KÝ THƯỜNG TRÚ", "article": "4", "clause": "2"},
    )


def test_lexical_text_modes():
    chunk = _law_chunk()
    text = ingest.lexical_text(chunk)  # the default: headings+chunk
    assert text.startswith("Luật Cư trú.\nĐĂNG KÝ THƯỜNG TRÚ.\nĐĂNG KÝ THƯỜNG TRÚ.\n") and text.endswith(chunk.text)
    # a full stop after each heading: no bigram joins the law title to the chapter title
    assert "trú_đăng" not in lexical_tokens(text, "syllables+bigrams")
    assert ingest.lexical_text(chunk, "title+chunk") == "Luật Cư trú.\n" + chunk.text
    assert ingest.lexical_text(chunk, "chunk") == chunk.text
    with pytest.raises(ValueError, match="everything"):
        ingest.lexical_text(chunk, "everything")
    # the mode reaches the point's bm25 vector
    only_chunk = ingest.chunk_point(chunk, 0, "sha", "m", "now", None, lexical=Lexical(text="chunk")).sparse
    assert only_chunk == packed(document_sparse_vector(chunk.text))
    assert ingest.chunk_point(chunk, 0, "sha", "m", "now", None).sparse == packed(document_sparse_vector(text))


def test_qa_rows_feed_their_text_alone():
    row = Chunk("hoi-dap.xlsx", "Sheet1!2", "Hỏi?\nĐáp.", {"kind": "qa", "question": "Hỏi?"})
    assert ingest.lexical_text(row) == row.text
