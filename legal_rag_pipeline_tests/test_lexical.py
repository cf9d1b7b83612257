"""Vietnamese lexical tokens (tone folding, variants) and BM25 sparse vectors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tracemalloc
import unicodedata

import pytest

from legal_rag_pipeline.text import lexical
from legal_rag_pipeline.text.lexical import (
    DEFAULT_VARIANT,
    document_sparse_vector,
    fold_tone_marks,
    lexical_tokens,
    packed,
    query_sparse_vector,
    query_vector,
    sparse_vector,
    token_index,
)


@pytest.mark.parametrize("old,new", [
    ("hoà", "hòa"), ("hòa", "hòa"), ("thuỷ", "thủy"), ("thủy", "thủy"), ("uý", "úy"), ("úy", "úy"),
    ("khoẻ", "khỏe"), ("khỏe", "khỏe"), ("Hoá", "hóa"), ("THUỶ", "thủy"), ("loã", "lõa"), ("tuỵ", "tụy"),
    ("hoàn", "hoàn"), ("hòan", "hoàn"), ("huỳnh", "huỳnh"), ("khoét", "khoét"),  # with a final consonant
    ("quý", "quý"), ("qúy", "quý"), ("quá", "quá"), ("quyền", "quyền"), ("thuyền", "thuyền"),
    ("hoài", "hoài"), ("của", "của"), ("nội", "nội"), ("2020", "2020"), ("qh14", "qh14"),
])
def test_fold_tone_marks(old, new):
    assert fold_tone_marks(old) == new
    assert fold_tone_marks(unicodedata.normalize("NFD", old)) == new


def test_old_and_new_style_give_the_same_tokens():
    assert lexical_tokens("Điều 9. Nội thuỷ") == lexical_tokens("điều 9. nội thủy")
    assert query_vector("vùng nội thủy là gì") == query_vector("Vùng NỘI THUỶ là gì")


def test_variants():
    text = "Điều 5. Nội thuỷ, lãnh hải (năm 2012)"
    assert lexical_tokens(text, "syllables") == ["điều", "5", "nội", "thủy", "lãnh", "hải", "năm", "2012"]
    assert lexical_tokens(text, "syllables+bigrams") == [
        "điều", "5", "nội", "thủy", "lãnh", "hải", "năm", "2012", "điều_5", "nội_thủy", "lãnh_hải", "năm_2012"]
    assert DEFAULT_VARIANT == "syllables+bigrams"
    assert lexical_tokens("") == []
    assert lexical_tokens("a b c", "syllables", stopwords={"b"}) == ["a", "c"]
    with pytest.raises(ValueError, match="unknown lexical variant"):
        lexical_tokens(text, "nope")


def test_pyvi_variant():
    pytest.importorskip("pyvi")
    tokens = lexical_tokens("Công dân có quyền tự do cư trú theo quy định của pháp luật.", "pyvi")
    assert "công_dân" in tokens and "pháp_luật" in tokens
    assert all(t == t.lower() and "." not in t for t in tokens)
    assert lexical_tokens("Hoà giải", "pyvi") == lexical_tokens("hòa giải", "pyvi")


def test_sparse_vector_bm25_weights():
    indices, values = sparse_vector(["a", "b", "a"], k1=1.2, b=0.75, avg_len=3)
    assert indices == sorted(indices) and len(indices) == 2
    weight = dict(zip(indices, values))
    assert weight[token_index("a")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weight[token_index("b")] == pytest.approx(1 * 2.2 / (1 + 1.2))
    assert sparse_vector([]) == ([], [])
    # longer documents weigh a term less
    short = dict(zip(*sparse_vector(["x"] * 2, avg_len=10)))[token_index("x")]
    long = dict(zip(*sparse_vector(["x"] * 2 + ["y"] * 40, avg_len=10)))[token_index("x")]
    assert long < short


def test_a_packed_vector_keeps_its_numbers_in_far_less_memory():
    text = " ".join(f"Điều {n}. Quyền và nghĩa vụ của tổ chức, cá nhân số {n * 7}" for n in range(40))
    made = document_sparse_vector(text, "syllables+bigrams")
    assert len(made[0]) > 100
    indices, values = packed(made)
    # the same numbers (indices are unsigned 32-bit, values 64-bit floats), read back as lists by the stores
    assert list(indices) == made[0] and list(values) == made[1]
    assert pickle.loads(pickle.dumps((indices, values))) == (indices, values)
    assert len(pickle.dumps((indices, values))) < len(pickle.dumps(made))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [document_sparse_vector(text, "syllables+bigrams") for _ in range(20)]
        as_lists = tracemalloc.get_traced_memory()[0] - before
        del held
        before = tracemalloc.get_traced_memory()[0]
        held = [packed(document_sparse_vector(text, "syllables+bigrams")) for _ in range(20)]
        as_arrays = tracemalloc.get_traced_memory()[0] - before
        assert len(held) == 20  # alive while measured
    finally:
        tracemalloc.stop()
    # 3.2 times here (the token indices' int objects are shared through token_index's cache)
    assert as_arrays * 2.5 < as_lists, (as_arrays, as_lists)


def test_query_sparse_vector():
    indices, values = query_sparse_vector(["nội", "thủy", "nội"])
    assert indices == sorted(indices) and values == [1.0, 1.0]


def test_collisions_are_summed(monkeypatch):
    monkeypatch.setattr(lexical, "token_index", lambda token: 7)
    assert query_sparse_vector(["a", "b"]) == ([7], [2.0])
    indices, values = sparse_vector(["a", "b"])
    assert indices == [7] and len(values) == 1


def test_indices_are_stable_across_processes():
    code = ("from legal_rag_pipeline.text.lexical import document_sparse_vector as d;"
            "print(d('Điều 9. Nội thuỷ là vùng nước'))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=str(_project_root())).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(document_sparse_vector("Điều 9. Nội thuỷ là vùng nước"))
    assert 0 <= token_index("nội_thủy") < 2**32


def _project_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
