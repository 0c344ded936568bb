"""The catalog search index: structure-aware BM25 fused with dense vectors, updated incrementally.

Documents are products, datasets and columns. Text is split the way schema names are written
(snake_case, camelCase, digits), stemmed (Snowball) and weighted by field. The sparse side is BM25
over a term-document matrix kept in segments, so changing one product deletes its rows and appends a
small segment instead of rebuilding everything; document frequencies are kept globally, so scores do
not depend on how the segments fall. The dense side embeds each dataset and product once per distinct
text (vectors are cached by content hash: unchanged entries are never re-embedded) into a FAISS
inner-product index; the two rankings are fused by reciprocal rank fusion.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or that the their there these "
    "this those to was were what when where which who whom whose why will with we our you your me my all any each "
    "list show give find tell get return display please many much".split()
)

FIELD_WEIGHTS = {"name": 3, "parent": 1, "text": 1}
K1, B = 1.2, 0.75


class Tokenizer:
    """Words of names and prose: snake_case and camelCase split, lower-cased, stop words dropped, stemmed."""

    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord
        self._cache: dict[str, str] = {}

    def words(self, text: str) -> list[str]:
        return [w.lower() for w in _WORD.findall(text or "")]

    def __call__(self, text: str) -> list[str]:
        out = []
        for word in self.words(text):
            if word in _STOPWORDS:
                continue
            stem = self._cache.get(word)
            if stem is None:
                stem = self._cache[word] = self._stem(word)
            out.append(stem)
        return out


@dataclass
class Document:
    """One searchable entity. `fields` maps a field name (name, parent, text) to its text."""

    ref: str
    kind: str  # product, dataset, column
    product_ref: str
    dataset_ref: str | None
    fields: dict[str, str]
    attributes: dict[str, Any] = field(default_factory=dict)  # domain, owner, tags, classification, port_kind

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.kind, self.fields], sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()

    def dense_text(self) -> str:
        return " ".join(v for v in self.fields.values() if v)


class SparseIndex:
    """BM25 over segments of a (documents x terms) matrix, with tombstones for deleted rows."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.segments: list[sp.csc_matrix] = []
        self.offsets: list[int] = []  # first row of each segment
        self.doc_len = np.zeros(0, dtype=np.float32)
        self.live = np.zeros(0, dtype=bool)
        self.df = np.zeros(0, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.live)

    def add(self, token_lists: Sequence[dict[str, float]]) -> range:
        """Append documents (term -> weighted frequency); returns their row numbers."""
        first = self.size
        rows, cols, vals = [], [], []
        for row, counts in enumerate(token_lists):
            for term, tf in counts.items():
                col = self.vocab.get(term)
                if col is None:
                    col = self.vocab[term] = len(self.vocab)
                rows.append(row)
                cols.append(col)
                vals.append(tf)
        n_terms = len(self.vocab)
        matrix = sp.csc_matrix((np.asarray(vals, dtype=np.float32), (np.asarray(rows, dtype=np.int64),
                                np.asarray(cols, dtype=np.int64))), shape=(len(token_lists), n_terms))
        self.segments.append(matrix)
        self.offsets.append(first)
        self.doc_len = np.concatenate([self.doc_len, np.asarray(matrix.sum(axis=1)).ravel().astype(np.float32)])
        self.live = np.concatenate([self.live, np.ones(len(token_lists), dtype=bool)])
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=n_terms) if cols else np.zeros(n_terms, np.int64)
        self.df = np.concatenate([self.df, np.zeros(n_terms - len(self.df), dtype=np.int64)]) + df
        if len(self.segments) > 16:
            self.compact()
        return range(first, self.size)

    def delete(self, rows: Iterable[int]) -> None:
        rows = np.asarray([r for r in rows if self.live[r]], dtype=np.int64)
        if not len(rows):
            return
        self.live[rows] = False
        for matrix, offset in zip(self.segments, self.offsets, strict=True):
            inside = rows[(rows >= offset) & (rows < offset + matrix.shape[0])] - offset
            if len(inside):
                terms = matrix.tocsr()[inside].indices
                self.df[: matrix.shape[1]] -= np.bincount(terms, minlength=matrix.shape[1])

    def compact(self) -> None:
        """Merge segments into one (rows keep their numbers; deleted rows stay as empty tombstones)."""
        if len(self.segments) <= 1:
            return
        width = len(self.vocab)
        merged = sp.vstack([_widen(m, width) for m in self.segments], format="csr")
        dead = np.flatnonzero(~self.live)
        if len(dead):
            merged = merged.tolil()
            merged.rows[dead] = [[] for _ in dead]
            merged.data[dead] = [[] for _ in dead]
            merged = merged.tocsr()
        self.segments, self.offsets = [merged.tocsc()], [0]

    def scores(self, terms: Sequence[str], mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25 scores) of the live documents matching any term, restricted to `mask`."""
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        live_count = max(int(self.live.sum()), 1)
        avgdl = float(self.doc_len[self.live].mean()) if self.live.any() else 1.0
        rows_parts, score_parts = [], []
        for term_id in ids:
            df = self.df[term_id]
            if df <= 0:
                continue
            idf = np.log1p((live_count - df + 0.5) / (df + 0.5))
            for matrix, offset in zip(self.segments, self.offsets, strict=True):
                if term_id >= matrix.shape[1]:
                    continue
                start, end = matrix.indptr[term_id], matrix.indptr[term_id + 1]
                if start == end:
                    continue
                rows = matrix.indices[start:end].astype(np.int64) + offset
                tf = matrix.data[start:end]
                norm = K1 * (1 - B + B * self.doc_len[rows] / avgdl)
                rows_parts.append(rows)
                score_parts.append(idf * tf * (K1 + 1) / (tf + norm))
        if not rows_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = np.concatenate(rows_parts)
        contributions = np.concatenate(score_parts).astype(np.float32)
        unique, inverse = np.unique(rows, return_inverse=True)
        totals = np.bincount(inverse, weights=contributions).astype(np.float32)
        keep = self.live[unique] if mask is None else self.live[unique] & mask[unique]
        return unique[keep], totals[keep]

    # persistence: plain arrays and JSON, never pickle (a workspace may come from someone else)
    def save(self, folder: Path) -> None:
        self.compact()
        matrix = self.segments[0] if self.segments else sp.csc_matrix((0, len(self.vocab)), dtype=np.float32)
        sp.save_npz(folder / "terms.npz", _widen(matrix, len(self.vocab)), compressed=False)
        np.save(folder / "live.npy", self.live)
        (folder / "vocab.json").write_text(json.dumps(list(self.vocab)))

    @classmethod
    def load(cls, folder: Path) -> SparseIndex:
        index = cls()
        index.vocab = {t: i for i, t in enumerate(json.loads((folder / "vocab.json").read_text()))}
        matrix = sp.load_npz(folder / "terms.npz").tocsc().astype(np.float32)
        index.live = np.load(folder / "live.npy", allow_pickle=False)
        index.segments, index.offsets = [matrix], [0]
        index.doc_len = np.asarray(matrix.sum(axis=1)).ravel().astype(np.float32)
        index.df = np.bincount(matrix.tocsr()[np.flatnonzero(index.live)].indices, minlength=len(index.vocab))
        return index


def _widen(matrix: sp.spmatrix, width: int) -> sp.spmatrix:
    if matrix.shape[1] == width:
        return matrix
    matrix = matrix.tocsr()
    return sp.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width))


def term_counts(tokenizer: Tokenizer, doc: Document) -> dict[str, float]:
    counts: dict[str, float] = {}
    for field_name, text in doc.fields.items():
        weight = FIELD_WEIGHTS.get(field_name, 1)
        for token in tokenizer(text):
            counts[token] = counts.get(token, 0.0) + weight
    return counts


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank + 1)
    return fused


# --- the catalog index: three kinds of documents, linked child to parent --------------------------

KINDS = ("product", "dataset", "column")
# How much a parent's or a child's match adds to a document's own (each normalised to [0, 1]).
COLUMN_TO_DATASET = 0.5
PRODUCT_TO_DATASET = 1.0
DATASET_TO_COLUMN = 0.5
PRODUCT_TO_COLUMN = 0.25
DATASET_TO_PRODUCT = 0.5
DENSE_WEIGHT = 0.5
DENSE_CANDIDATES = 200


class _Kind:
    """The documents of one kind: their sparse index, parent links and filter postings."""

    def __init__(self) -> None:
        self.sparse = SparseIndex()
        self.docs: list[Document | None] = []
        self.parent = np.zeros(0, dtype=np.int64)  # row of the parent document (dataset or product), -1 if none
        self.product = np.zeros(0, dtype=np.int64)  # row of the owning product document
        self.postings: dict[tuple[str, str], list[int]] = {}

    def mask(self, key: tuple[str, str]) -> np.ndarray:
        mask = np.zeros(self.sparse.size, dtype=bool)
        mask[self.postings.get(key, [])] = True
        return mask


class CatalogIndex:
    """Products, datasets and columns, searchable together, updated one product at a time."""

    def __init__(self, embedder: Any | None = None) -> None:
        self.tokenizer = Tokenizer()
        self.kinds = {kind: _Kind() for kind in KINDS}
        self.rows_of_product: dict[str, dict[str, list[int]]] = {}
        self.product_hashes: dict[str, str] = {}
        self.embedder = embedder
        self.vector_cache: dict[str, np.ndarray] = {}  # content hash -> unit vector
        self._faiss: dict[str, Any] = {}

    # --- building ----------------------------------------------------------------------------------

    def update(self, entries: Iterable[tuple[str, str, list[Document]]]) -> dict[str, int]:
        """Make the index hold exactly `entries`: (product ref, content hash, its documents).

        Products whose hash is unchanged are left alone; changed ones are replaced; missing ones removed.
        """
        entries = list(entries)
        wanted = {ref for ref, _, _ in entries}
        removed = [ref for ref in self.rows_of_product if ref not in wanted]
        changed = [(ref, digest, docs) for ref, digest, docs in entries if self.product_hashes.get(ref) != digest]
        for ref in removed + [ref for ref, _, _ in changed if ref in self.rows_of_product]:
            self._remove(ref)
        if changed:
            self._add([(ref, digest, docs) for ref, digest, docs in changed])
        embedded = self._embed_missing() if changed else 0
        return {"products_changed": len(changed), "products_removed": len(removed), "embedded": embedded}

    def _remove(self, product_ref: str) -> None:
        for kind, rows in self.rows_of_product.pop(product_ref).items():
            index = self.kinds[kind]
            index.sparse.delete(rows)
            for row in rows:
                index.docs[row] = None
        self.product_hashes.pop(product_ref, None)
        self._faiss.clear()

    def _add(self, entries: list[tuple[str, str, list[Document]]]) -> None:
        by_kind: dict[str, list[Document]] = {kind: [] for kind in KINDS}
        for _, _, docs in entries:
            for doc in docs:
                by_kind[doc.kind].append(doc)
        placed: dict[str, int] = {}
        for kind in KINDS:  # parents before children, so children can point at their parents' rows
            index = self.kinds[kind]
            docs = by_kind[kind]
            rows = index.sparse.add([term_counts(self.tokenizer, d) for d in docs])
            index.docs.extend(docs)
            parents, products = [], []
            for row, doc in zip(rows, docs, strict=True):
                placed[doc.ref] = row
                parent = doc.dataset_ref if kind == "column" else doc.product_ref if kind == "dataset" else None
                parents.append(placed.get(parent, -1) if parent else -1)
                products.append(placed.get(doc.product_ref, -1))
                for key, value in doc.attributes.items():
                    for item in value if isinstance(value, list | tuple | set) else [value]:
                        if item is not None:
                            index.postings.setdefault((key, str(item)), []).append(row)
            index.parent = np.concatenate([index.parent, np.asarray(parents, dtype=np.int64)])
            index.product = np.concatenate([index.product, np.asarray(products, dtype=np.int64)])
        for ref, digest, docs in entries:
            self.product_hashes[ref] = digest
            rows_by_kind: dict[str, list[int]] = {kind: [] for kind in KINDS}
            for doc in docs:
                rows_by_kind[doc.kind].append(placed[doc.ref])
            self.rows_of_product[ref] = rows_by_kind
        self._faiss.clear()

    def _embed_missing(self) -> int:
        """Embed products and datasets whose text was never embedded; vectors are cached by content hash."""
        if self.embedder is None:
            return 0
        todo: dict[str, str] = {}
        for kind in ("product", "dataset"):
            for doc in self.kinds[kind].docs:
                if doc is not None and doc.content_hash not in self.vector_cache:
                    todo[doc.content_hash] = doc.dense_text()
        if todo:
            vectors = self.embedder.embed(list(todo.values()))
            self.vector_cache.update(zip(todo, vectors, strict=True))
        return len(todo)

    # --- querying ----------------------------------------------------------------------------------

    def values(self, key: str) -> set[str]:
        return {value for kind in self.kinds.values() for (k, value), rows in kind.postings.items()
                if k == key and any(kind.docs[r] is not None for r in rows)}

    def score(self, query: str, filters: dict[str, Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per kind, (rows, final scores) of the documents that pass the filters, highest first."""
        terms = self.tokenizer(query)
        own: dict[str, np.ndarray] = {}
        for kind, index in self.kinds.items():
            rows, values = index.sparse.scores(terms)
            dense = np.zeros(index.sparse.size, dtype=np.float32)
            if len(values):
                dense[rows] = values / values.max()
            own[kind] = dense
        self._add_dense(query, own)
        p, d, c = (self.kinds[k] for k in KINDS)
        column_best = np.zeros(d.sparse.size, dtype=np.float32)
        hit = np.flatnonzero(own["column"] > 0)
        valid = hit[c.parent[hit] >= 0]
        np.maximum.at(column_best, c.parent[valid], own["column"][valid])
        dataset = own["dataset"] + COLUMN_TO_DATASET * column_best
        has_product = d.product >= 0
        dataset[has_product] += PRODUCT_TO_DATASET * own["product"][d.product[has_product]]
        column = own["column"].copy()
        has_dataset = c.parent >= 0
        column[has_dataset] += DATASET_TO_COLUMN * own["dataset"][c.parent[has_dataset]]
        has_product = c.product >= 0
        column[has_product] += PRODUCT_TO_COLUMN * own["product"][c.product[has_product]]
        product = own["product"].copy()
        dataset_best = np.zeros(p.sparse.size, dtype=np.float32)
        valid = np.flatnonzero((dataset > 0) & (d.parent >= 0))
        np.maximum.at(dataset_best, d.parent[valid], own["dataset"][valid] + COLUMN_TO_DATASET * column_best[valid])
        product += DATASET_TO_PRODUCT * dataset_best
        # A document is a hit on its own words or its children's, never on its parent's alone.
        evidence = {"product": own["product"] + dataset_best, "dataset": own["dataset"] + column_best,
                    "column": own["column"]}
        result = {}
        for kind, scores in (("product", product), ("dataset", dataset), ("column", column)):
            index = self.kinds[kind]
            mask = index.sparse.live & (evidence[kind] > 0)
            for key, wanted in (filters or {}).items():
                if wanted is None:
                    continue
                allowed = np.zeros(index.sparse.size, dtype=bool)
                for value in wanted if isinstance(wanted, list | tuple | set) else [wanted]:
                    allowed |= index.mask((key, str(value)))
                mask &= allowed
            rows = np.flatnonzero(mask)
            order = np.argsort(-scores[rows], kind="stable")
            result[kind] = (rows[order], scores[rows][order])
        return result

    def _add_dense(self, query: str, own: dict[str, np.ndarray]) -> None:
        if self.embedder is None:
            return
        import faiss

        query_vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)
        for kind in ("product", "dataset"):
            index = self.kinds[kind]
            if kind not in self._faiss:
                rows = [r for r, doc in enumerate(index.docs) if doc is not None]
                flat = faiss.IndexFlatIP(query_vector.shape[1])
                if rows:
                    flat.add(np.stack([self.vector_cache[index.docs[r].content_hash] for r in rows]).astype(np.float32))
                self._faiss[kind] = (flat, np.asarray(rows, dtype=np.int64))
            flat, rows = self._faiss[kind]
            if not len(rows):
                continue
            similarity, positions = flat.search(query_vector, min(DENSE_CANDIDATES, len(rows)))
            found = positions[0] >= 0
            own[kind][rows[positions[0][found]]] += DENSE_WEIGHT * np.clip(similarity[0][found], 0, None)

    def doc(self, kind: str, row: int) -> Document:
        return self.kinds[kind].docs[row]

    def matched_fields(self, query: str, doc: Document) -> dict[str, list[str]]:
        """Which words of the query each field of `doc` matched (as the user wrote them)."""
        wanted = {}
        for word in self.tokenizer.words(query):
            stems = self.tokenizer(word)
            if stems:
                wanted.setdefault(stems[0], word)
        matched = {}
        for name, text in doc.fields.items():
            hits = sorted({wanted[t] for t in self.tokenizer(text) if t in wanted})
            if hits:
                matched[name] = hits
        return matched

    # --- persistence -------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for kind, index in self.kinds.items():
            (folder / kind).mkdir(exist_ok=True)
            index.sparse.save(folder / kind)
            np.save(folder / kind / "parent.npy", index.parent)
            np.save(folder / kind / "product.npy", index.product)
            with (folder / kind / "docs.jsonl").open("w", encoding="utf-8") as handle:
                for doc in index.docs:
                    handle.write(json.dumps(None if doc is None else [doc.ref, doc.kind, doc.product_ref,
                                            doc.dataset_ref, doc.fields, doc.attributes]) + "\n")
        hashes = sorted(self.vector_cache)
        np.save(folder / "vectors.npy", np.stack([self.vector_cache[h] for h in hashes]).astype(np.float32)
                if hashes else np.zeros((0, 0), dtype=np.float32))
        (folder / "state.json").write_text(json.dumps({
            "products": self.product_hashes, "rows": self.rows_of_product, "vector_hashes": hashes,
            "embedder": getattr(self.embedder, "name", None),
        }))

    @classmethod
    def load(cls, folder: Path, embedder: Any | None = None) -> CatalogIndex:
        index = cls(embedder)
        state = json.loads((folder / "state.json").read_text())
        for kind, part in index.kinds.items():
            part.sparse = SparseIndex.load(folder / kind)
            part.parent = np.load(folder / kind / "parent.npy", allow_pickle=False)
            part.product = np.load(folder / kind / "product.npy", allow_pickle=False)
            for row, line in enumerate((folder / kind / "docs.jsonl").read_text(encoding="utf-8").splitlines()):
                item = json.loads(line)
                doc = None if item is None else Document(*item)
                part.docs.append(doc)
                for key, value in (doc.attributes if doc else {}).items():
                    for v in value if isinstance(value, list) else [value]:
                        if v is not None:
                            part.postings.setdefault((key, str(v)), []).append(row)
        index.product_hashes = state["products"]
        index.rows_of_product = state["rows"]
        # Vectors are reused only for the same embedder: another model's vectors mean nothing here.
        if embedder is not None and state.get("embedder") == getattr(embedder, "name", None):
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            index.vector_cache = dict(zip(state["vector_hashes"], vectors, strict=True))
        index._embed_missing()
        return index
