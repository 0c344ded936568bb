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
    first_texts = ["order amount", "customer email", "email campaign", "order status", "refund reason",
                   "customer segment"]
    index.add(_runs(tokenize, first_texts))
    index.delete([0])
    folder = tmp_path / "search" / "column"
    folder.mkdir(parents=True)
    first = index.save(folder, "column")
    loaded = SparseIndex.load(folder)
    for term in ("email", "order"):
        a, b = index.scores([term]), loaded.scores([term])
        assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1])
    # Rows added to a loaded index are saved as a segment of their own; the saved ones are shared as
    # they are, and the state read back scores as an index built in one go.
    loaded.add(_runs(tokenize, ["order email", "refund amount"]))
    loaded.delete([2])
    second = loaded.save(folder, "column")
    assert first < second and len(second) == 2 * len(first)
    again = SparseIndex.load(folder)
    whole = SparseIndex()
    whole.add(_runs(tokenize, [*first_texts, "order email", "refund amount"]))
    whole.delete([0, 2])
    for term in ("email", "order", "amount", "refund"):
        got, want = again.scores([term]), whole.scores([term])
        assert got[0].tolist() == want[0].tolist() and np.allclose(got[1], want[1])
    # Once over a quarter of the rows are deleted the segments are merged into one.
    again.delete([1])
    assert len(again.save(folder, "column")) == 2  # one segment: its arrays and their layout
    assert SparseIndex.load(folder).scores(["email"])[0].tolist() == [6]
