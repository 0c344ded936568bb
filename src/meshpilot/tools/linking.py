"""The ranking behind `link_schema`: which tables a question needs, among every table of the catalog.

Search ranks a table by how well its own words match. A question about the data usually needs several
tables of one product, so linking adds what a table's own words cannot show:
- coverage: the share of the question's content words (each weighted by its rarity) the table holds, and
  the share its whole product holds; a product that accounts for all of the question beats one where a
  single word matches a table's name strongly;
- joins: a table whose foreign-key neighbour matches the question, or that joins at all, beats an
  isolated table that matches as well;
- words that say how to compute rather than what (most, total, number, list...) and bare numbers count
  for nothing in coverage: "older than 56" names a value, not a table of `college_56`.

The weights were fitted (a listwise softmax over each question's gold tables, numpy, no library) on the
dev half of Spider's databases, in Spider's and Spider-Syn's wordings, and are reported on the held-out
half by benchmarks/schema_linking.py. They are relative to the table's own match (1.0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from meshpilot.tools.search_index import DATASET_TO_COLUMN, PRODUCT_TO_COLUMN, gather

if TYPE_CHECKING:
    from meshpilot.tools.search_index import CatalogIndex, SparseIndex

COLUMN_MATCH = 0.15  # the best-matching column of the table
PRODUCT_MATCH = 0.08  # the product's own match (its name and description)
TABLE_COVERAGE = 0.21
PRODUCT_COVERAGE = 0.81
NEIGHBOUR_MATCH = 0.27  # the best own match among the table's foreign-key neighbours
JOINS = 0.15  # the table has a foreign key (either way)

CANDIDATES = 60  # tables taken on their search score alone
TOP_PRODUCTS = 5  # products whose tables are all candidates, by their coverage of the question...
PER_PRODUCT = 50  # ...at most this many each, best first
JOINED_CANDIDATES = 30  # the best candidates (at least 3k) whose foreign keys are read
MATCHING_COLUMNS_PER_TABLE = 10  # columns marked as matching the question: 10 per table asked for

# Words that shape the query rather than pick its tables. Stemmed with the index's tokenizer.
_COMPUTING_WORDS = (
    "most least number count total average sum maximum minimum max min list name names different distinct order "
    "descending ascending sorted each every top highest lowest largest smallest greatest more less than also "
    "both either other only return display provide information details detail id ids record records"
)


def rank_tables(index: CatalogIndex, question: str,
                neighbours: Callable[[Iterable[str]], Mapping[str, list[tuple[str, str, str]]]],
                k: int) -> tuple[list[tuple[int, float]], list[int]]:
    """The `k` best dataset rows for the question with their scores, best first, and the rows of the
    columns that match it. `neighbours(refs)` gives the foreign keys of those datasets (dataset ref ->
    [(column, other ref, other column)])."""
    terms = list(dict.fromkeys(index.tokenizer(question)))
    widened = index.thesaurus.expand(terms)
    products, datasets, columns = (index.kinds[kind] for kind in ("product", "dataset", "column"))
    own_dataset = index._own_scores(datasets, widened)
    own_product = index._own_scores(products, widened)
    column_rows, column_own = columns.sparse.scores(widened)
    column_best = np.zeros(datasets.sparse.size, dtype=np.float32)
    if len(column_own):
        parents = columns.parent[column_rows]
        np.maximum.at(column_best, parents[parents >= 0], (column_own / column_own.max())[parents >= 0])

    content = [t for t in terms if not t.isdigit() and t not in _computing_words(index)]
    table_coverage = _coverage(datasets.sparse, content)
    product_coverage = _coverage(products.sparse, content)
    has_product = datasets.product >= 0
    of_product = np.where(has_product, datasets.product, 0)

    base = own_dataset + 0.5 * column_best + np.where(has_product, own_product[of_product], 0)
    evidence = np.flatnonzero(((own_dataset > 0) | (column_best > 0)) & datasets.sparse.live)
    chosen = set(evidence[_top(base[evidence], CANDIDATES)].tolist())
    if product_coverage.any():
        for product in _top(product_coverage, TOP_PRODUCTS):
            if product_coverage[product] <= 0:
                break
            rows = np.flatnonzero((datasets.product == product) & datasets.sparse.live)
            chosen.update(rows[_top(base[rows], PER_PRODUCT)].tolist())
    if not chosen:
        return [], []
    rows = np.fromiter(sorted(chosen), dtype=np.int64, count=len(chosen))

    score = (own_dataset[rows] + COLUMN_MATCH * column_best[rows]
             + PRODUCT_MATCH * np.where(has_product[rows], own_product[of_product[rows]], 0)
             + TABLE_COVERAGE * table_coverage[rows]
             + PRODUCT_COVERAGE * np.where(has_product[rows], product_coverage[of_product[rows]], 0))
    # Joins decide among the best only: finding a table's foreign keys reads its document.
    best = _top(score, max(JOINED_CANDIDATES, 3 * k))
    rows, score = rows[best], score[best]
    refs = [datasets.docs[int(r)].ref for r in rows]
    keys = neighbours(refs)
    # A neighbour that matches the question well is among these: its own match is most of a score.
    row_of = dict(zip(refs, rows.tolist(), strict=True))
    score += NEIGHBOUR_MATCH * np.array([max((own_dataset[row_of[o]] for _, o, _ in keys.get(ref, []) if o in row_of),
                                             default=0.0) for ref in refs], dtype=np.float32)
    score += JOINS * np.array([bool(keys.get(ref)) for ref in refs], dtype=np.float32)
    order = _top(score, k)
    tables = [(int(rows[i]), float(score[i])) for i in order]

    # The columns that match, as search ranks them (with their table's and product's match).
    column_score = (column_own + DATASET_TO_COLUMN * gather(own_dataset, columns.parent[column_rows])
                    + PRODUCT_TO_COLUMN * gather(own_product, columns.product[column_rows]))
    top = _top(column_score, MATCHING_COLUMNS_PER_TABLE * k)
    return tables, [int(r) for r in column_rows[top]]


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the `n` largest values, largest first (ties in position order)."""
    if len(values) > n:
        part = np.argpartition(-values, n - 1)[:n]
        return part[np.lexsort((part, -values[part]))]
    return np.argsort(-values, kind="stable")


def _coverage(sparse: SparseIndex, terms: list[str]) -> np.ndarray:
    """Per document, the idf-weighted share of the terms it holds (each term once)."""
    covered = np.zeros(sparse.size, dtype=np.float32)
    total = 0.0
    for term in terms:
        idf = sparse.idf(term)
        total += idf
        for rows, _ in sparse.postings(term):
            covered[rows] += idf
    if total:
        covered /= total
    covered[~sparse.live] = 0
    return covered


def _computing_words(index: CatalogIndex) -> frozenset[str]:
    words = getattr(index, "_computing_words", None)
    if words is None:
        words = index._computing_words = frozenset(index.tokenizer(_COMPUTING_WORDS))
    return words
