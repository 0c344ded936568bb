import math
from pathlib import Path

import numpy as np
import pytest

from meshpilot.tools.search_index import K1, B, SparseIndex
from meshpilot.tools.tokens import Tokenizer


def test_names_are_split_the_way_schemas_write_them() -> None:
    tokenize = Tokenizer()
    assert tokenize("customerLifetimeValue") == ["custom", "lifetim", "valu"]
    assert tokenize("order_ID2 HTTPServer") == ["order", "id", "2", "http", "server"]
    assert tokenize("What are the customers' emails?") == ["custom", "email"]


def _runs(tokenize: Tokenizer, texts: list[str]) -> list[list[tuple[list[str], float]]]:
    return [[(tokenize(t), 1.0)] for t in texts]


def test_bm25_matches_the_formula() -> None:
    tokenize = Tokenizer()
    texts = ["order amount", "order status order", "customer email"]
    index = SparseIndex()
    index.add(_runs(tokenize, texts))
    rows, scores = index.scores(["order"])
    lengths = [2, 3, 2]
    avgdl = sum(lengths) / 3
    idf = math.log1p((3 - 2 + 0.5) / (2 + 0.5))
    expected = {0: idf * 1 * (K1 + 1) / (1 + K1 * (1 - B + B * 2 / avgdl)),
                1: idf * 2 * (K1 + 1) / (2 + K1 * (1 - B + B * 3 / avgdl))}
    assert dict(zip(rows.tolist(), scores.tolist())) == pytest.approx(expected, rel=1e-5)


def test_deleted_rows_disappear_and_a_merge_restores_exact_statistics() -> None:
    tokenize = Tokenizer()
    texts = ["order amount", "order status", "customer email", "order email"]
    index = SparseIndex()
    index.add(_runs(tokenize, texts[:2]))
    index.add(_runs(tokenize, texts[2:]))
    index.delete([1])
    rows, _ = index.scores(["order"])
    assert rows.tolist() == [0, 3]
    index.compact()
    fresh = SparseIndex()
    fresh.add(_runs(tokenize, [texts[0], "", texts[2], texts[3]]))
    fresh.delete([1])
    for term in ("order", "email", "amount"):
        got, want = index.scores([term]), fresh.scores([term])
        assert got[0].tolist() == want[0].tolist()
        assert got[1] == pytest.approx(want[1], rel=1e-5)


def test_save_and_load_give_the_same_scores(tmp_path: Path) -> None:
    tokenize = Tokenizer()
    index = SparseIndex()
    index.add(_runs(tokenize, ["order amount", "customer email", "email campaign"]))
    index.delete([0])
    index.save(tmp_path)
    loaded = SparseIndex.load(tmp_path)
    for term in ("email", "order"):
        a, b = index.scores([term]), loaded.scores([term])
        assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1])
