"""The catalog search index: structure-aware BM25 fused with dense vectors, updated incrementally.

Documents are products, datasets and columns. Text is split the way schema names are written
(snake_case, camelCase, digits), stemmed (Snowball) and weighted by field. The sparse side is BM25
over a term-document matrix kept in segments, so changing one product deletes its rows and appends a
small segment instead of rebuilding everything; document frequencies are kept across segments (a
deleted row counts until the next merge, as in Lucene). The dense side embeds each dataset and product once per distinct
text (vectors are cached by content hash: unchanged entries are never re-embedded) into a FAISS
inner-product index; a document's cosine similarity (weighted) is added to its BM25 score.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from meshpilot.mesh import files
from meshpilot.mesh.files import collection_paused
from meshpilot.tools.thesaurus import (
    Query,
    Thesaurus,
    default_thesaurus,
)
from meshpilot.tools.tokens import Tokenizer

NAME_WEIGHT = 3  # a word in a name counts three times a word in a description
K1, B = 1.2, 0.75


@dataclass(slots=True)
class Document:
    """One searchable entity. `fields` maps a field name (name, parent, text) to its text, or to a list
    of texts (a dataset's text lists its columns' names and descriptions as they are)."""

    ref: str
    kind: str  # product, dataset, column
    product_ref: str
    dataset_ref: str | None
    fields: dict[str, str | list[str]]
    attributes: dict[str, Any] = field(default_factory=dict)  # domain, owner, tags, classification, port_kind
    # What a hit shows (name, summary, owner, classifications), so showing one never reads the catalog.
    shown: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.kind, self.fields], sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()

    def texts(self, field_name: str) -> list[str]:
        value = self.fields.get(field_name) or []
        return [value] if isinstance(value, str) else value

    def dense_text(self) -> str:
        return " ".join(t for name in self.fields for t in self.texts(name) if t)


def _save_arrays(folder: Path, name: str, arrays: dict[str, np.ndarray], durable: bool = False, **meta: Any) -> None:
    """`arrays` one after another in `name`.bin (each aligned to 64 bytes), their layout and `meta` in
    `name`.json. Loading maps the file once: np.load maps each .npy file on its own, about a tenth of a
    millisecond each, and a search opened a hundred of them."""
    layout, position = {}, 0
    # A shared (durable) file is never written over: states that read it may be open.
    with (folder / f"{name}.bin").open("xb" if durable else "wb") as handle:
        for key, values in arrays.items():
            values = np.ascontiguousarray(values)
            padding = -position % 64
            handle.write(b"\0" * padding)
            position += padding
            layout[key] = [values.dtype.str, list(values.shape), position]
            if values.nbytes:
                handle.write(memoryview(values.reshape(-1)).cast("B"))  # no copy of a large array
            position += values.nbytes
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    (folder / f"{name}.json").write_text(json.dumps({"arrays": layout, **meta}))


def _load_arrays(folder: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays `_save_arrays` wrote (read-only, memory-mapped) and its `meta`."""
    import mmap

    meta = json.loads((folder / f"{name}.json").read_text())
    with (folder / f"{name}.bin").open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    arrays = {}
    for key, (dtype, shape, offset) in meta.pop("arrays").items():
        count = int(np.prod(shape))
        if offset + count * np.dtype(dtype).itemsize > size:
            raise ValueError(f"{folder / name}.bin is shorter than its layout says")
        arrays[key] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape) if count \
            else np.zeros(shape, dtype=dtype)
    return arrays, meta


class SparseIndex:
    """BM25 over segments of a (documents x terms) matrix, with tombstones for deleted rows."""

    def __init__(self, vocab: dict[str, int] | None = None) -> None:
        # Term ids may be shared between indexes, so one kind's rows can be summed into another's.
        self.vocab: dict[str, int] = {} if vocab is None else vocab
        self.segments: list[sp.csc_matrix] = []
        self.offsets: list[int] = []  # first row of each segment
        self.saved: list[str | None] = []  # each segment's name among the shared files, once saved
        self.doc_len = np.zeros(0, dtype=np.float32)
        self.live = np.zeros(0, dtype=bool)
        self.df = np.zeros(0, dtype=np.int64)
        self._stats: tuple[int, float] | None = None  # live document count and mean length

    @property
    def size(self) -> int:
        return len(self.live)

    def matrix_of(self, docs: Sequence[list[tuple[list[str], float]]]) -> sp.csr_matrix:
        """A (docs x terms) matrix of weighted term frequencies; each doc is a list of (tokens, weight) runs.

        Everything per token happens in C (chain, map, numpy, scipy's summing of duplicate entries);
        Python only loops over runs.
        """
        vocab = self.vocab
        flat: list[str] = []
        run_rows, run_lengths, run_weights = [], [], []
        for row, runs in enumerate(docs):
            for tokens, weight in runs:
                if tokens:
                    flat.extend(tokens)
                    run_rows.append(row)
                    run_lengths.append(len(tokens))
                    run_weights.append(weight)
        for term in set(flat):
            if term not in vocab:
                vocab[term] = len(vocab)
        cols = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.asarray(run_rows, dtype=np.int64), run_lengths)
        vals = np.repeat(np.asarray(run_weights, dtype=np.float32), run_lengths)
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)))
        matrix.sum_duplicates()
        return matrix

    def add(self, docs: Sequence[list[tuple[list[str], float]]]) -> range:
        return self.add_matrix(self.matrix_of(docs))

    def add_matrix(self, matrix: sp.spmatrix) -> range:
        """Append documents given as rows of term frequencies; returns their row numbers."""
        first = self.size
        n_terms = len(self.vocab)
        matrix = _widen(matrix, n_terms).tocsc().astype(np.float32)
        matrix.sum_duplicates()
        self.segments.append(matrix)
        self.offsets.append(first)
        self.saved.append(None)
        self.doc_len = np.concatenate([self.doc_len, np.asarray(matrix.sum(axis=1)).ravel().astype(np.float32)])
        self.live = np.concatenate([self.live, np.ones(matrix.shape[0], dtype=bool)])
        self.df = np.concatenate([self.df, np.zeros(n_terms - len(self.df), dtype=np.int64)]) + np.diff(matrix.indptr)
        self._stats = None
        if len(self.segments) > 16:
            self.compact()
        return range(first, self.size)

    def delete(self, rows: Iterable[int]) -> None:
        """Tombstone rows, and take their terms out of the document frequencies, so that scores are those
        of an index built without them (each row's terms are found with one pass over its segment's
        postings: a segment is never rewritten for a delete)."""
        rows = np.asarray(list(rows), dtype=np.int64)
        if not len(rows):
            return
        rows = np.unique(rows[self.live[rows]])
        self.live = np.array(self.live)  # loaded memory-mapped, read-only
        self.live[rows] = False
        self.df = np.array(self.df)
        for matrix, offset in zip(self.segments, self.offsets, strict=True):
            local = rows[(rows >= offset) & (rows < offset + matrix.shape[0])] - offset
            if not len(local):
                continue
            dead = np.zeros(matrix.shape[0], dtype=bool)
            dead[local] = True
            terms = np.searchsorted(matrix.indptr, np.flatnonzero(dead[matrix.indices]), side="right") - 1
            self.df[:matrix.shape[1]] -= np.bincount(terms, minlength=matrix.shape[1])
        self._stats = None

    def compact(self) -> None:
        """Merge segments into one (rows keep their numbers; deleted rows stay as empty tombstones)."""
        if len(self.segments) <= 1 and self.live.all():
            return
        width = len(self.vocab)
        merged = sp.vstack([_widen(m, width) for m in self.segments], format="csr")
        if not self.live.all():
            merged = sp.diags(self.live.astype(np.float32)) @ merged  # empties the tombstoned rows
            merged.eliminate_zeros()
        self.segments, self.offsets, self.saved = [merged.tocsc()], [0], [None]
        self.df = np.diff(self.segments[0].indptr).astype(np.int64)

    def _live_stats(self) -> tuple[int, float]:
        if self._stats is None:
            count = int(self.live.sum())
            self._stats = (max(count, 1), float(self.doc_len[self.live].mean()) if count else 1.0)
        return self._stats

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency of a term (0 for a term no live document has)."""
        term_id = self.vocab.get(term)
        df = self.df[term_id] if term_id is not None and term_id < len(self.df) else 0
        return float(np.log1p((self._live_stats()[0] - df + 0.5) / (df + 0.5))) if df > 0 else 0.0

    def postings(self, term: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, term frequencies) of the documents holding a term, a segment at a time (tombstoned
        rows included: they are empty after a merge, and callers mask with `live`)."""
        term_id = self.vocab.get(term)
        if term_id is None:
            return
        for matrix, offset in zip(self.segments, self.offsets, strict=True):
            if term_id >= matrix.shape[1]:
                continue
            start, end = matrix.indptr[term_id], matrix.indptr[term_id + 1]
            if start < end:
                yield matrix.indices[start:end].astype(np.int64) + offset, matrix.data[start:end]

    def scores(self, terms: Sequence[str] | Query) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25 scores) of the live documents matching any term. A Query's synonyms are weighted
        down and stand in for their word: a document gets the best of the word and its synonyms, not their
        sum, so one that says both is not counted twice."""
        _, avgdl = self._live_stats()
        query = terms if isinstance(terms, Query) else Query(list(terms), [1.0] * len(terms), [None] * len(terms))
        groups: dict[str, list[tuple[bool, np.ndarray, np.ndarray]]] = {}
        for term, weight, source in zip(query.terms, query.weights, query.stands_for, strict=True):
            idf = self.idf(term)
            if source is not None and (source_idf := self.idf(source)):
                idf = min(idf, source_idf)
            idf *= weight
            if not idf:
                continue
            for rows, tf in self.postings(term):
                norm = K1 * (1 - B + B * self.doc_len[rows] / avgdl)
                groups.setdefault(source or term, []).append(
                    (source is not None, rows, idf * tf * (K1 + 1) / (tf + norm)))
        if not groups:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        totals = np.zeros(self.size, dtype=np.float32)
        best: np.ndarray | None = None
        for parts in groups.values():
            if not any(synonym for synonym, _, _ in parts):
                for _, rows, contributions in parts:
                    totals[rows] += contributions  # a term's postings in a segment hold each row once
                continue
            best = np.zeros(self.size, dtype=np.float32) if best is None else best
            for synonym, rows, contributions in sorted(parts, key=lambda part: part[0]):  # the word first
                best[rows] = np.maximum(best[rows], contributions) if synonym else best[rows] + contributions
            touched = np.unique(np.concatenate([rows for _, rows, _ in parts]))
            totals[touched] += best[touched]
            best[touched] = 0
        keep = (totals > 0) & self.live
        unique = np.flatnonzero(keep)
        return unique, totals[unique]

    # persistence: plain arrays and JSON, never pickle (a workspace may come from someone else). The
    # arrays are memory-mapped when loaded: a query reads the postings of its own terms only, so opening
    # the index costs the same at a hundred datasets as at a hundred thousand. Segments are files shared
    # by the states of the index, written once: a state that adds one product's rows writes one small
    # segment, not the whole matrix again. They are merged when there are many or many rows are deleted.
    MAX_SEGMENTS = 8

    def save(self, folder: Path, name: str) -> set[str]:
        """The index in `folder`, its segments in the shared files beside it (new ones named from
        `name`); returns the names of the shared files it reads."""
        import secrets

        shared = folder.parent.parent / SHARED_DIR
        if len(self.segments) > self.MAX_SEGMENTS or (self.size and self.live.sum() < 0.75 * self.size):
            self.compact()
        listed, used = [], set()
        for position, (matrix, offset) in enumerate(zip(self.segments, self.offsets, strict=True)):
            segment = self.saved[position]
            if segment is None:
                segment = f"{name}-terms-{secrets.token_hex(6)}"
                shared.mkdir(parents=True, exist_ok=True)
                matrix = sp.csc_matrix(matrix)
                _save_arrays(shared, segment, {"indptr": matrix.indptr, "indices": matrix.indices,
                                               "data": matrix.data.astype(np.float32)}, durable=True,
                             shape=list(matrix.shape))
                self.saved[position] = segment
            listed.append({"name": segment, "offset": offset})
            used |= {f"{segment}.bin", f"{segment}.json"}
        _save_arrays(folder, "terms", {"doc_len": self.doc_len.astype(np.float32),
                                       "df": np.asarray(self.df, dtype=np.int64), "live": self.live},
                     segments=listed)
        # Apart: the kinds share one vocabulary, read once per load (it is the largest part of the state).
        (folder / "vocab.json").write_text(json.dumps(list(self.vocab)))
        return used

    @classmethod
    def load(cls, folder: Path, vocab: dict[str, int] | None = None) -> SparseIndex:
        index = cls(vocab)
        arrays, meta = _load_arrays(folder, "terms")
        if not index.vocab:
            terms = json.loads((folder / "vocab.json").read_text())
            index.vocab.update(zip(terms, range(len(terms))))
        shared = folder.parent.parent / SHARED_DIR
        for segment in meta["segments"]:
            matrix, layout = _load_arrays(shared, segment["name"])
            index.segments.append(sp.csc_matrix((matrix["data"], matrix["indices"], matrix["indptr"]),
                                                shape=tuple(layout["shape"]), copy=False))
            index.offsets.append(int(segment["offset"]))
            index.saved.append(segment["name"])
        index.doc_len, index.df, index.live = arrays["doc_len"], arrays["df"], arrays["live"]
        return index


def _widen(matrix: sp.spmatrix, width: int) -> sp.spmatrix:
    if matrix.shape[1] == width:
        return matrix
    matrix = matrix.tocsr()
    return sp.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width))


def gather(values: np.ndarray, rows: np.ndarray, fill: Any = 0) -> np.ndarray:
    """values[rows], with `fill` where a row is -1 (no parent)."""
    return np.where(rows >= 0, values[np.maximum(rows, 0)], fill)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


# Fields listing the names of a document's children: for people and dense models only, since their
# words reach the sparse index by summing the children's own rows.
AGGREGATED_FIELDS = frozenset({"columns", "contents"})


def field_runs(tokenizer: Tokenizer, doc: Document) -> tuple[list[tuple[list[str], float]], list[tuple[list[str], float]]]:
    """The token runs of the doc's name field, and of its other searchable fields (weight 1 each)."""
    cache = tokenizer._texts or {}
    name_runs, other_runs = [], []
    for name, value in doc.fields.items():
        if name in AGGREGATED_FIELDS:
            continue
        runs = name_runs if name == "name" else other_runs
        for text in (value,) if isinstance(value, str) else value:
            tokens = cache.get(text)  # the hot path of a build: most texts recur
            runs.append((tokens if tokens is not None else tokenizer(text), 1.0))
    return name_runs, other_runs


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
ADD_BATCH = 500  # products indexed together (a product's documents always go in one batch)


# Beside a saved index's folder: files its states share, only ever appended to (documents).
SHARED_DIR = "search-shared"
# A shared file is written anew when it is over twice what its live rows need, plus this much.
SHARED_SLACK = 1 << 20


class _Documents:
    """Documents by row, kept as their JSON bytes until a row is asked for: those loaded from disk in a
    memory-mapped file (a search shows ten hits, and reading 200,000 documents at every process start
    cost seconds), those added since in a temporary file (an index build of 2M columns would otherwise
    hold 800 MB of them).

    Saved, the rows' bytes are in a file shared by the states of the index, where each state notes the
    span of each of its rows: a state made by changing some products appends their rows to the file of
    the state it came from (one changed product at 10k datasets wrote 80 MB of column documents again).
    The file is written anew when most of it is rows no state needs any more."""

    def __init__(self, stored: Any = None, spans: np.ndarray | None = None, file: Path | None = None) -> None:
        self._stored = stored  # the shared file's bytes (memory-mapped)
        self._spans = spans if spans is not None else np.zeros((0, 2), dtype=np.int64)  # (start, end) per row
        self._file = file
        self._stored_rows = len(self._spans)
        self._spool: Any = None  # rows after the stored ones, encoded, one after another
        self._spooled: list[int] = [0]  # where each spooled row starts, and the end
        self._removed: set[int] = set()
        self._parsed: dict[int, Document] = {}

    @classmethod
    def open(cls, folder: Path) -> _Documents:
        import mmap

        arrays, meta = _load_arrays(folder, "docs")
        spans = arrays["spans"]
        file = folder.parent.parent / SHARED_DIR / meta["file"]
        with file.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if len(spans) and int(spans[:, 1].max()) > size:
                raise ValueError(f"{file} is shorter than the search index expects")
            stored = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return cls(stored, spans, file)

    def __len__(self) -> int:
        return self._stored_rows + len(self._spooled) - 1

    def _raw(self, row: int) -> bytes:
        if row < self._stored_rows:
            start, end = int(self._spans[row, 0]), int(self._spans[row, 1])
            return self._stored[start:end] if end > start else b"null"
        start, end = self._spooled[row - self._stored_rows], self._spooled[row - self._stored_rows + 1]
        self._spool.seek(start)
        return self._spool.read(end - start)

    def __getitem__(self, row: int) -> Document | None:
        if not 0 <= row < len(self):
            raise IndexError(row)
        if row in self._removed:
            return None
        if row not in self._parsed:
            item = json.loads(self._raw(row))
            if item is None:
                return None
            self._parsed[row] = Document(*item)
        return self._parsed[row]

    def remove(self, row: int) -> None:
        self._removed.add(row)
        self._parsed.pop(row, None)

    def __iter__(self) -> Iterator[Document | None]:
        return (self[row] for row in range(len(self)))

    def extend(self, docs: Iterable[Document]) -> None:
        if self._spool is None:
            import tempfile

            self._spool = tempfile.TemporaryFile()
        self._spool.seek(0, os.SEEK_END)
        end = self._spooled[-1]
        for doc in docs:
            raw = json.dumps([doc.ref, doc.kind, doc.product_ref, doc.dataset_ref, doc.fields, doc.attributes,
                              doc.shown]).encode()
            self._spool.write(raw)
            end += len(raw)
            self._spooled.append(end)

    def save(self, folder: Path, name: str) -> str:
        """The rows' spans in `folder`, their bytes in the shared file (appended to it, or written anew
        under a fresh name starting with `name`); returns the shared file's name."""
        shared = folder.parent.parent / SHARED_DIR
        spans = np.array(self._spans, dtype=np.int64).reshape(-1, 2)
        spans[sorted(r for r in self._removed if r < self._stored_rows)] = 0
        spooled = np.asarray(self._spooled, dtype=np.int64)
        live_stored = int((spans[:, 1] - spans[:, 0]).sum())
        appended = int(spooled[-1])
        if self._file is not None and self._file.exists() and \
                os.path.getsize(self._file) <= 2 * (live_stored + appended) + SHARED_SLACK:
            file = self._file
            start = files.append_shared(file, self._spooled_chunks())
        else:
            import secrets

            file = shared / f"{name}-{secrets.token_hex(6)}.bin"
            spans = self._rewritten(file, spans)
            start = files.append_shared(file, self._spooled_chunks())
        added = np.stack([spooled[:-1], spooled[1:]], axis=1) + start
        removed = [r - self._stored_rows for r in self._removed if r >= self._stored_rows]
        added[removed] = 0
        _save_arrays(folder, "docs", {"spans": np.concatenate([spans, added]) if len(added) else spans}, file=file.name)
        return file.name

    def _rewritten(self, file: Path, spans: np.ndarray) -> np.ndarray:
        """The live stored rows copied into a new file, in runs of rows that lie one after another;
        returns their spans there."""
        shared = np.zeros_like(spans)
        file.parent.mkdir(parents=True, exist_ok=True)
        live = spans[:, 1] > spans[:, 0]
        rows = np.flatnonzero(live)
        # A run is live rows whose bytes follow one another; it breaks at a dead row or a jump.
        breaks = np.flatnonzero((np.diff(rows) != 1) | (spans[rows[1:], 0] != spans[rows[:-1], 1])) + 1 \
            if len(rows) else np.zeros(0, dtype=np.int64)
        with file.open("xb") as handle:
            position = 0
            for run in np.split(rows, breaks) if len(rows) else []:
                start, end = int(spans[run[0], 0]), int(spans[run[-1], 1])
                handle.write(self._stored[start:end])
                shared[run] = spans[run] - start + position
                position += end - start
            handle.flush()
            os.fsync(handle.fileno())
        return shared

    def _spooled_chunks(self) -> Iterator[bytes]:
        if self._spool is None:
            return
        self._spool.seek(0)
        remaining = self._spooled[-1]
        while remaining:
            chunk = self._spool.read(min(remaining, 1 << 24))
            yield chunk
            remaining -= len(chunk)


class _Kind:
    """The documents of one kind: their sparse index, parent links and filter postings."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.sparse = SparseIndex(vocab)
        self.docs = _Documents()
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
        self._thesaurus: Thesaurus | None = None
        self.vocab: dict[str, int] = {}
        self.kinds = {kind: _Kind(self.vocab) for kind in KINDS}
        self.rows_of_product: dict[str, dict[str, list[int]]] = {}
        self.product_hashes: dict[str, str] = {}
        self.embedder = embedder
        self.vector_cache: dict[str, np.ndarray] = {}  # content hash -> unit vector
        self._values: dict[str, set[str]] = {}
        self._faiss: dict[str, Any] = {}
        self.source = ""
        self._products_state: Path | None = None

    @property
    def thesaurus(self) -> Thesaurus:
        if self._thesaurus is None:
            self._thesaurus = default_thesaurus()
        return self._thesaurus

    def add_synonyms(self, groups: list[list[str]]) -> None:
        """A workspace's own synonym groups, next to the general ones."""
        self._thesaurus = default_thesaurus().extended(groups)

    # --- building ----------------------------------------------------------------------------------

    def update(self, entries: Iterable[tuple[str, str, Callable[[], list[Document]] | None]]) -> dict[str, int]:
        """Make the index hold exactly `entries`: (product ref, content hash, a function making its documents).

        Products whose hash is unchanged are left alone (their documents are never even built); changed
        ones are replaced; missing ones removed.
        """
        entries = list(entries)
        self._load_products_state()
        wanted = {ref for ref, _, _ in entries}
        removed = [ref for ref in self.rows_of_product if ref not in wanted]
        changed = [(ref, digest, make) for ref, digest, make in entries if self.product_hashes.get(ref) != digest]
        for ref in removed + [ref for ref, _, _ in changed if ref in self.rows_of_product]:
            self._remove(ref)
        # In batches: a batch's documents, token runs and matrices are dropped once it is added, so a
        # full build of 100k datasets holds one batch of them at a time, not 2M column documents.
        for start in range(0, len(changed), ADD_BATCH):
            with collection_paused(), self.tokenizer.batch():
                self._add([(ref, digest, make()) for ref, digest, make in changed[start:start + ADD_BATCH]])
        embedded = self._embed_missing() if changed or self.embedder is not None else 0
        return {"products_changed": len(changed), "products_removed": len(removed), "embedded": embedded}

    def _remove(self, product_ref: str) -> None:
        for kind, rows in self.rows_of_product.pop(product_ref).items():
            index = self.kinds[kind]
            index.sparse.delete(rows)
            for row in rows:
                index.docs.remove(row)
        self.product_hashes.pop(product_ref, None)
        self._faiss.clear()
        self._values.clear()

    def _add(self, entries: list[tuple[str, str, list[Document]]]) -> None:
        """Index new documents. A dataset's words are its own plus its columns' (names and text), a
        product's its own plus the names of its datasets and columns: summed as sparse rows, so each
        text is tokenized once however many levels it counts at."""
        by_kind: dict[str, list[Document]] = {kind: [] for kind in KINDS}
        for _, _, docs in entries:
            for doc in docs:
                by_kind[doc.kind].append(doc)
        placed: dict[str, int] = {}
        for kind in KINDS:
            start = self.kinds[kind].sparse.size
            placed.update((doc.ref, start + i) for i, doc in enumerate(by_kind[kind]))
        names, others = {}, {}
        for kind in KINDS:
            sparse = self.kinds[kind].sparse
            runs = [field_runs(self.tokenizer, d) for d in by_kind[kind]]
            names[kind] = sparse.matrix_of([name_runs for name_runs, _ in runs])
            others[kind] = sparse.matrix_of([other_runs for _, other_runs in runs])
        width = len(self.vocab)
        names = {k: _widen(m, width) for k, m in names.items()}
        others = {k: _widen(m, width) for k, m in others.items()}
        column_to_dataset = self._membership(by_kind["column"], by_kind["dataset"], lambda d: d.dataset_ref)
        dataset_to_product = self._membership(by_kind["dataset"], by_kind["product"], lambda d: d.product_ref)
        column_words = names["column"] + others["column"]
        matrices = {
            "column": NAME_WEIGHT * names["column"] + others["column"],
            "dataset": NAME_WEIGHT * names["dataset"] + others["dataset"] + column_to_dataset @ column_words,
            "product": NAME_WEIGHT * names["product"] + others["product"]
            + dataset_to_product @ (names["dataset"] + column_to_dataset @ names["column"]),
        }
        for kind in KINDS:
            index = self.kinds[kind]
            docs = by_kind[kind]
            rows = index.sparse.add_matrix(matrices[kind])
            index.docs.extend(docs)
            parent_of = (lambda d: d.dataset_ref) if kind == "column" else (lambda d: d.product_ref)
            index.parent = np.concatenate([index.parent, np.fromiter(
                (placed.get(parent_of(d), -1) if kind != "product" else -1 for d in docs), dtype=np.int64, count=len(docs))])
            index.product = np.concatenate([index.product, np.fromiter(
                (placed.get(d.product_ref, -1) for d in docs), dtype=np.int64, count=len(docs))])
            for row, doc in zip(rows, docs, strict=True):
                for key, value in doc.attributes.items():
                    for item in value if isinstance(value, list | tuple | set) else [value]:
                        if item is not None:
                            posted = index.postings.setdefault((key, str(item)), [])
                            if not isinstance(posted, list):  # loaded as an array
                                posted = index.postings[(key, str(item))] = posted.tolist()
                            posted.append(row)
        for ref, digest, docs in entries:
            self.product_hashes[ref] = digest
            rows_by_kind: dict[str, list[int]] = {kind: [] for kind in KINDS}
            for doc in docs:
                rows_by_kind[doc.kind].append(placed[doc.ref])
            self.rows_of_product[ref] = rows_by_kind
        self._faiss.clear()
        self._values.clear()

    @staticmethod
    def _membership(children: list[Document], parents: list[Document], parent_of) -> sp.csr_matrix:
        """A (parents x children) 0/1 matrix: which child belongs to which parent, within one batch."""
        position = {doc.ref: i for i, doc in enumerate(parents)}
        pairs = [(position[parent_of(c)], j) for j, c in enumerate(children) if parent_of(c) in position]
        rows = np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs))
        cols = np.fromiter((c for _, c in pairs), dtype=np.int64, count=len(pairs))
        return sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=(len(parents), len(children)))

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
        """The values an attribute takes on live documents (what a filter on it can match)."""
        if key not in self._values:
            self._values[key] = {value for kind in self.kinds.values() for (k, value), rows in kind.postings.items()
                                 if k == key and kind.sparse.live[rows].any()}
        return self._values[key]

    def score(self, query: str, filters: dict[str, Any] | None = None,
              limit: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per kind, the (rows, final scores) of the best `limit` documents that pass the filters, best first.

        Products and datasets are scored as whole arrays; columns, by far the most numerous, only where
        the query matched them, so a query's cost follows its matches, not the catalog's size.
        """
        terms = self.thesaurus.expand(self.tokenizer(query))
        p, d, c = (self.kinds[k] for k in KINDS)
        own = {kind: self._own_scores(self.kinds[kind], terms) for kind in ("product", "dataset")}
        self._add_dense(query, own)
        column_rows, column_own = c.sparse.scores(terms)
        if len(column_own):
            column_own = column_own / column_own.max()
        column_parent = c.parent[column_rows]
        column_product = c.product[column_rows]

        column_best = np.zeros(d.sparse.size, dtype=np.float32)
        np.maximum.at(column_best, column_parent[column_parent >= 0], column_own[column_parent >= 0])
        dataset_evidence = own["dataset"] + COLUMN_TO_DATASET * column_best
        dataset = dataset_evidence + PRODUCT_TO_DATASET * gather(own["product"], d.product)
        dataset_best = np.zeros(p.sparse.size, dtype=np.float32)
        with_product = (dataset_evidence > 0) & (d.parent >= 0)
        np.maximum.at(dataset_best, d.parent[with_product], dataset_evidence[with_product])
        product_evidence = own["product"] + dataset_best
        product = own["product"] + DATASET_TO_PRODUCT * dataset_best
        column = (column_own + DATASET_TO_COLUMN * gather(own["dataset"], column_parent)
                  + PRODUCT_TO_COLUMN * gather(own["product"], column_product))

        allowed = [self._allowed(key, wanted) for key, wanted in (filters or {}).items() if wanted and key != "kind"]
        kinds_wanted = _as_list(filters["kind"]) if filters and filters.get("kind") else list(KINDS)
        result = {}
        # A document is a hit on its own words or its children's, never on its parent's alone.
        for kind, rows, scores in (("product", np.flatnonzero(product_evidence > 0), product),
                                   ("dataset", np.flatnonzero(dataset_evidence > 0), dataset),
                                   ("column", column_rows, column)):
            if kind not in kinds_wanted:
                continue
            positions = np.arange(len(rows)) if kind == "column" else rows
            keep = self.kinds[kind].sparse.live[rows]
            for masks in allowed:
                keep &= masks[kind](rows)
            rows, values = rows[keep], scores[positions[keep]]
            if limit is not None and len(rows) > limit:
                top = np.argpartition(-values, limit - 1)[:limit]
                rows, values = rows[top], values[top]
            order = np.argsort(-values, kind="stable")
            result[kind] = (rows[order], values[order])
        return result

    def _own_scores(self, index: _Kind, terms: Sequence[str] | Query) -> np.ndarray:
        rows, values = index.sparse.scores(terms)
        dense = np.zeros(index.sparse.size, dtype=np.float32)
        if len(values):
            dense[rows] = values / values.max()
        return dense

    def _allowed(self, key: str, wanted: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Per kind, a test of which rows a filter lets through. Domain, owner and tags hold for a
        product's datasets and columns too; a classification holds for the datasets and products that
        contain such a column."""
        p, d, c = (self.kinds[k] for k in KINDS)
        own = {}
        for kind, index in self.kinds.items():
            own[kind] = np.zeros(index.sparse.size, dtype=bool)
            for value in _as_list(wanted):
                own[kind] |= index.mask((key, str(value)))
        if key == "classification":
            dataset = own["dataset"].copy()
            hits = np.flatnonzero(own["column"] & (c.parent >= 0))
            dataset[c.parent[hits]] = True
            product = own["product"].copy()
            hits = np.flatnonzero(dataset & (d.parent >= 0))
            product[d.parent[hits]] = True
            return {"product": product.__getitem__, "dataset": dataset.__getitem__, "column": own["column"].__getitem__}
        product = own["product"]
        dataset = own["dataset"] | gather(product, d.product, fill=False)

        def column(rows: np.ndarray) -> np.ndarray:
            return own["column"][rows] | gather(dataset, c.parent[rows], fill=False) | gather(
                product, c.product[rows], fill=False)

        return {"product": product.__getitem__, "dataset": dataset.__getitem__, "column": column}

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
        for name in doc.fields:
            hits = sorted({wanted[t] for text in doc.texts(name) for t in self.tokenizer(text) if t in wanted})
            if hits:
                matched[name] = hits
        return matched

    # --- persistence -------------------------------------------------------------------------------

    def save(self, folder: Path, source: str = "") -> set[str]:
        """`source` names what the index was built from (the metadata index's fingerprint): a reader
        finding the same one uses the index as it is, with no change detection at all. Returns the names
        of the files in SHARED_DIR (beside `folder`) that the saved index reads."""
        folder.mkdir(parents=True, exist_ok=True)
        self._load_products_state()
        shared: set[str] = set()
        for kind, index in self.kinds.items():
            (folder / kind).mkdir(exist_ok=True)
            shared.add(index.docs.save(folder / kind, kind))
            shared |= index.sparse.save(folder / kind, kind)
            # Filter postings as arrays, so loading never reads the documents themselves.
            keys = list(index.postings)
            rows = [np.asarray(index.postings[key], dtype=np.int64) for key in keys]
            _save_arrays(folder / kind, "links", {
                "parent": np.asarray(index.parent, dtype=np.int64), "product": np.asarray(index.product, dtype=np.int64),
                "postings_rows": np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                "postings_offsets": np.cumsum([0] + [len(r) for r in rows]).astype(np.int64),
            }, postings_keys=[list(key) for key in keys])
        hashes = sorted(self.vector_cache)
        np.save(folder / "vectors.npy", np.stack([self.vector_cache[h] for h in hashes]).astype(np.float32)
                if hashes else np.zeros((0, 0), dtype=np.float32))
        (folder / "products.json").write_text(json.dumps({"products": self.product_hashes, "rows": self.rows_of_product}))
        (folder / "state.json").write_text(json.dumps({
            "source": source, "vector_hashes": hashes, "embedder": getattr(self.embedder, "name", None),
        }))
        self.source = source
        return shared

    @classmethod
    def load(cls, folder: Path, embedder: Any | None = None) -> CatalogIndex:
        index = cls(embedder)
        state = json.loads((folder / "state.json").read_text())
        for kind, part in index.kinds.items():
            part.sparse = SparseIndex.load(folder / kind, index.vocab)
            part.docs = _Documents.open(folder / kind)
            arrays, meta = _load_arrays(folder / kind, "links")
            part.parent, part.product = arrays["parent"], arrays["product"]
            keys, rows, offsets = meta["postings_keys"], arrays["postings_rows"], arrays["postings_offsets"]
            part.postings = {(key, value): rows[offsets[i]:offsets[i + 1]] for i, (key, value) in enumerate(keys)}
        index.source = state.get("source", "")
        index._products_state = folder / "products.json"
        # Vectors are reused only for the same embedder: another model's vectors mean nothing here.
        if embedder is not None and state.get("embedder") == getattr(embedder, "name", None):
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            index.vector_cache = dict(zip(state["vector_hashes"], vectors, strict=True))
        return index

    def _load_products_state(self) -> None:
        """Which rows belong to which product, and its content hash: read only to change the index."""
        if self._products_state is not None:
            state = json.loads(self._products_state.read_text())
            self.product_hashes, self.rows_of_product = state["products"], state["rows"]
            self._products_state = None
