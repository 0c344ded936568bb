"""Catalog search and schema linking: find the right product, table and column, with citations.

`search_catalog` ranks products, datasets and columns together (filters apply before ranking);
`link_schema` returns the tables a question needs, their key columns and the joins between them;
`get_product` and `get_dataset` describe one entity with its owners, contract, SLOs, freshness and
neighbours. Every result carries `mesh://` citations.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.model import DataProduct, MeshRef
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace

if TYPE_CHECKING:
    from meshpilot.tools.search_index import CatalogIndex, Document

SEARCH_DIR = "search"
_URI_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")  # what urllib's quote leaves as it is
FILTER_KEYS = ("domain", "owner", "tags", "classification", "kind")
KIND_VALUES = ("product", "dataset", "column")


class Hit(BaseModel):
    ref: str
    kind: str
    name: str
    score: float
    snippet: str
    matched: dict[str, list[str]]
    domain: str
    product: str
    owner: str | None = None
    classification: list[str] = []


class SearchResult(BaseModel):
    query: str
    filters: dict[str, Any]
    hits: list[Hit]
    citations: list[str]
    index: dict[str, Any]


class LinkedColumn(BaseModel):
    ref: str
    name: str
    type: str
    reason: str


class LinkedTable(BaseModel):
    ref: str
    qualified_name: str
    score: float
    role: str  # "match" or "join" (needed only to join the matched tables)
    columns: list[LinkedColumn]


class Join(BaseModel):
    left: str
    right: str


class SchemaLink(BaseModel):
    question: str
    tables: list[LinkedTable]
    joins: list[Join]
    citations: list[str]


# --- documents --------------------------------------------------------------------------------------


def product_documents(product: DataProduct, contract: dict[str, Any] | None = None) -> list[Document]:
    """The searchable documents of one product: itself, its datasets and their columns."""
    from meshpilot.tools.search_index import Document

    contract_text = _contract_text(contract)
    product_ref = str(product.ref)
    owner = product.owner
    docs = [Document(
        ref=product_ref, kind="product", product_ref=product_ref, dataset_ref=None,
        # The product's own words plus the names of everything it holds: evidence rolls up.
        fields={"name": f"{product.id} {product.name}",
                "text": [t for t in (product.description, *product.tags, contract_text.get("")) if t],
                "contents": _contents(product)},
        attributes={"domain": product.domain, "owner": owner, "tags": list(product.tags)},
        shown={"name": product.name, "summary": product.description or "", "owner": owner,
               "classification": _classifications(c for d in product.datasets for c in d.columns)},
    )]
    for port in product.output_ports:
        dataset = port.dataset
        dataset_ref = str(product.dataset_ref(dataset.name))
        docs.append(Document(
            ref=dataset_ref, kind="dataset", product_ref=product_ref, dataset_ref=dataset_ref,
            fields={"name": _names(dataset.name, dataset.qualified_name),
                    "parent": f"{product.id} {product.name}",
                    "text": list(dict.fromkeys(filter(None, [dataset.description, port.description,
                                                             contract_text.get(dataset.name, "")]))),
                    "columns": [c.name for c in dataset.columns]},
            attributes={"tags": list(dataset.tags), "port_kind": port.kind.value},
            shown={"name": dataset.name, "summary": dataset.description or "", "owner": owner,
                   "classification": _classifications(dataset.columns)},
        ))
        has_contract = bool(contract_text)
        for column in dataset.columns:
            name = column.name if _URI_SAFE.fullmatch(column.name) else quote(column.name, safe="")
            text = [column.description] if column.description else []
            if column.classification:
                text.append(column.classification)
            if column.tags:
                text.extend(column.tags)
            if has_contract and contract_text.get(f"{dataset.name}.{column.name}"):
                text.append(contract_text[f"{dataset.name}.{column.name}"])
            summary = " · ".join(filter(None, [column.type, column.classification, column.description]))
            docs.append(Document(f"{dataset_ref}#{name}", "column", product_ref, dataset_ref,
                                 {"name": column.name, "text": text},
                                 {"tags": column.tags, "classification": column.classification},
                                 {"name": column.name, "summary": summary, "owner": owner,
                                  "classification": _classifications([column])}))
    return docs


def _classifications(columns) -> list[str]:
    return sorted({c.classification for c in columns if c.classification})


def _contents(product: DataProduct) -> list[str]:
    return [name for d in product.datasets for name in (d.name, *(c.name for c in d.columns))]


def _names(name: str, qualified: str) -> str:
    last = qualified.rsplit(".", 1)[-1].strip('"')
    return name if last == name else f"{name} {last}"


def _contract_text(contract: dict[str, Any] | None) -> dict[str, str]:
    """Contract prose by what it describes: '' (the product), '<dataset>', '<dataset>.<column>'."""
    if not contract:
        return {}
    description = contract.get("description") or {}
    text = {"": " ".join(str(v) for v in description.values() if isinstance(v, str))
            if isinstance(description, dict) else str(description)}
    for obj in contract.get("schema") or []:
        name = obj.get("name") or ""
        text[name] = " ".join(filter(None, [obj.get("businessName"), obj.get("description")]))
        for prop in obj.get("properties") or []:
            text[f"{name}.{prop.get('name')}"] = " ".join(filter(None, [prop.get("businessName")]))
    return text


# Bump when product_documents changes what it indexes: every product then counts as changed.
DOCUMENTS_VERSION = "8"


def product_hash(product: DataProduct | str, contract: dict[str, Any] | None) -> str:
    """Content hash of a product (its model, or its stored JSON) and its contract."""
    text = product if isinstance(product, str) else product.model_dump_json(exclude_none=True)
    payload = DOCUMENTS_VERSION + text + json.dumps(contract or {}, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


# --- the catalog --------------------------------------------------------------------------------------


class Catalog:
    """A searchable catalog over a set of products (a workspace's, or any list for benchmarks)."""

    def __init__(self, products: list[DataProduct] | Mapping[str, DataProduct], index: CatalogIndex,
                 status: dict[str, Any] | None = None):
        self.products = products if isinstance(products, Mapping) else {str(p.ref): p for p in products}
        self.index = index
        self.status = status or {}
        self._foreign_keys: Mapping[str, list[tuple[str, str, str]]] | None = None
        self._store: MeshStore | None = None

    @classmethod
    def from_products(cls, products: list[DataProduct], contracts: dict[str, dict] | None = None,
                      embedder: Any | None = None) -> Catalog:
        from meshpilot.tools.search_index import CatalogIndex

        contracts = contracts or {}
        index = CatalogIndex(embedder)
        status = index.update((str(p.ref), product_hash(p, contracts.get(str(p.ref))),
                               partial(product_documents, p, contracts.get(str(p.ref)))) for p in products)
        return cls(products, index, status)

    @classmethod
    def open(cls, workspace: Workspace, embedder: Any | None = None) -> Catalog:
        """The workspace's catalog. Its persisted search index is used as it is when it was built from
        the current metadata index; otherwise it is brought up to date one product at a time. Products
        and foreign keys are read from the metadata index when a result needs them."""
        # Imported here: numpy and scipy cost 0.4 s, which the tools that only read the metadata index
        # (get_product, get_dataset) do not pay.
        from meshpilot.tools import embeddings
        from meshpilot.tools.search_index import CatalogIndex

        manifest = workspace.load_manifest()
        embedder = embedder if embedder is not None else embeddings.from_config(workspace, manifest)
        store = MeshStore.open(workspace)
        source = f"{store.fingerprint}:{DOCUMENTS_VERSION}:{getattr(embedder, 'name', 'none')}"
        folder = workspace.state_dir / SEARCH_DIR
        status: dict[str, Any] = {"embeddings": getattr(embedder, "name", "none")}
        index = None
        if (folder / "state.json").exists():
            try:
                index = CatalogIndex.load(folder, embedder)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                status["rebuilt"] = f"the search index was unreadable ({type(exc).__name__}); rebuilt it"
        else:
            status["rebuilt"] = "there was no search index yet; built it"
        if index is None or index.source != source:
            index = index or CatalogIndex(embedder)
            status.update(_bring_up_to_date(index, workspace, store))
            _save_atomically(index, folder, source)
        else:
            status.update({"products_changed": 0, "products_removed": 0, "embedded": 0})
        if manifest.synonyms:
            index.add_synonyms(manifest.synonyms)
        catalog = cls(_StoredProducts(store), index, status)
        catalog._foreign_keys = _StoredForeignKeys(store)
        catalog._store = store
        return catalog

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- search --------------------------------------------------------------------------------------

    def search(self, query: str, domain: str | None = None, owner: str | None = None,
               tags: list[str] | None = None, classification: str | None = None, kind: str | None = None,
               k: int = 10, visible_domains: set[str] | None = None,
               visible_products: set[str] | None = None) -> SearchResult:
        """`visible_domains` (from the access policy) hides everything outside them, before ranking;
        `visible_products` narrows further, on a ranking ten times wider than `k`."""
        if not query or not query.strip():
            raise InvalidArgumentError("The search query is empty.", hint='Say what you are looking for, e.g. "customer email".')
        if not self.index.tokenizer(query):
            raise InvalidArgumentError(f"The query '{query}' has no searchable words (only stop words or symbols).",
                                       hint="Use the names or words you expect in the catalog.")
        if k < 1:
            raise InvalidArgumentError(f"k must be at least 1 (got {k}).")
        filters = {"domain": domain, "owner": owner, "tags": tags or None, "classification": classification,
                   "kind": kind}
        for key, value in filters.items():
            self._check_filter(key, value)
        applied = {k_: v for k_, v in filters.items() if v}
        if visible_domains is not None:
            if domain and domain not in visible_domains:
                raise InvalidArgumentError(f"Your role may not see the domain '{domain}'.",
                                           hint=f"Visible domains: {', '.join(sorted(visible_domains)) or 'none'}.")
            applied["domain"] = [domain] if domain else sorted(visible_domains) or ["(none)"]
        wide = k if visible_products is None else k * 10
        ranked = self.index.score(query, applied, limit=wide)
        candidates = [(float(score), kind_, int(row)) for kind_, (rows, scores) in ranked.items()
                      for row, score in zip(rows[:wide], scores[:wide], strict=True)]
        candidates.sort(key=lambda c: -c[0])
        hits = [self._hit(query, kind_, row, score) for score, kind_, row in candidates[:wide]]
        if visible_products is not None:
            hits = [h for h in hits if f"mesh://{h.domain}/{h.product}" in visible_products]
        hits = hits[:k]
        return SearchResult(query=query, filters={k_: v for k_, v in filters.items() if v}, hits=hits,
                            citations=[h.ref for h in hits], index=self.status)

    def _check_filter(self, key: str, value: Any) -> None:
        if not value:
            return
        known = sorted(KIND_VALUES) if key == "kind" else sorted(self.index.values(key))
        for item in value if isinstance(value, list) else [value]:
            if str(item) not in known:
                close = difflib.get_close_matches(str(item), known, n=1)
                hint = f"Did you mean '{close[0]}'?" if close else f"Known values: {', '.join(known[:30]) or 'none'}."
                raise InvalidArgumentError(f"No {key} '{item}' in this catalog, so the filter would match nothing.",
                                           hint=hint)

    def _hit(self, query: str, kind: str, row: int, score: float) -> Hit:
        doc = self.index.doc(kind, row)
        ref = MeshRef.parse(doc.ref)
        shown = doc.shown
        return Hit(
            ref=doc.ref, kind=kind, name=shown.get("name") or ref.column or ref.dataset or ref.product,
            score=round(score, 4), snippet=_snippet(shown.get("summary") or doc.dense_text()),
            matched=self.index.matched_fields(query, doc), domain=ref.domain, product=ref.product,
            owner=shown.get("owner"), classification=shown.get("classification") or [],
        )

    # --- schema linking ------------------------------------------------------------------------------

    def link_schema(self, question: str, k: int = 5) -> SchemaLink:
        if not question or not self.index.tokenizer(question):
            raise InvalidArgumentError("The question has no searchable words.", hint="Ask a question about the data.")
        from meshpilot.tools.linking import rank_tables

        tables, column_rows = rank_tables(self.index, question, self._neighbours, k)
        chosen = {self.index.doc("dataset", row).ref: score for row, score in tables}
        matching_columns = {self.index.doc("column", row).ref for row in column_rows}
        joins, bridges = self._join_paths(list(chosen))
        _read_ahead(self.products, {str(MeshRef.parse(ref).product_ref()) for ref in [*chosen, *bridges]})
        tables = [self._linked_table(ref, chosen.get(ref, 0.0), "match" if ref in chosen else "join", matching_columns)
                  for ref in [*chosen, *bridges]]
        citations = [t.ref for t in tables] + [c.ref for t in tables for c in t.columns]
        return SchemaLink(question=question, tables=tables, joins=joins, citations=citations)

    def _linked_table(self, ref: str, score: float, role: str, matching: set[str]) -> LinkedTable:
        mesh_ref = MeshRef.parse(ref)
        dataset = self.products[str(mesh_ref.product_ref())].dataset(mesh_ref.dataset)
        columns = []
        for column in dataset.columns:
            column_ref = str(mesh_ref.with_column(column.name))
            reasons = []
            if column.primary_key:
                reasons.append("primary key")
            if column.references:
                reasons.append(f"foreign key to {column.references}")
            if column_ref in matching:
                reasons.append("matches the question")
            if reasons:
                columns.append(LinkedColumn(ref=column_ref, name=column.name, type=column.type, reason="; ".join(reasons)))
        return LinkedTable(ref=ref, qualified_name=dataset.qualified_name, score=round(score, 4), role=role,
                           columns=columns)

    def _neighbours(self, refs: Iterable[str]) -> Mapping[str, list[tuple[str, str, str]]]:
        graph = self.foreign_keys()
        _read_ahead(graph, refs)
        return graph

    def foreign_keys(self) -> Mapping[str, list[tuple[str, str, str]]]:
        """dataset ref -> [(column, other dataset ref, other column)], both directions (from the index when
        the catalog was opened from a workspace)."""
        if self._foreign_keys is None:
            from meshpilot.mesh.store import foreign_keys

            graph: dict[str, list[tuple[str, str, str]]] = {}
            for here, column, there, other in foreign_keys(list(self.products.values())):
                graph.setdefault(here, []).append((column, there, other))
                graph.setdefault(there, []).append((other, here, column))
            self._foreign_keys = graph
        return self._foreign_keys

    def _join_paths(self, tables: list[str], max_hops: int = 2) -> tuple[list[Join], list[str]]:
        """Joins connecting the chosen tables through foreign keys, and the tables only needed to join."""
        graph = self.foreign_keys()
        reached, frontier = set(tables), set(tables)
        for _ in range(max_hops):  # the walks below, read a hop at a time
            _read_ahead(graph, frontier)
            frontier = {other for node in frontier for _, other, _ in graph.get(node, [])} - reached
            reached |= frontier
        joins: dict[tuple[str, str], Join] = {}
        bridges: list[str] = []
        chosen = set(tables)
        for start in tables:
            previous: dict[str, tuple[str, str, str] | None] = {start: None}
            queue = deque([(start, 0)])
            while queue:
                node, depth = queue.popleft()
                if depth == max_hops:
                    continue
                for column, other, other_column in graph.get(node, []):
                    if other in previous:
                        continue
                    previous[other] = (node, column, other_column)
                    queue.append((other, depth + 1))
            for target in chosen - {start}:
                node = target
                while previous.get(node):
                    parent, column, other_column = previous[node]
                    key = tuple(sorted([f"{parent}#{column}", f"{node}#{other_column}"]))
                    joins.setdefault(key, Join(left=f"{parent}#{column}", right=f"{node}#{other_column}"))
                    if node not in chosen and node not in bridges:
                        bridges.append(node)
                    node = parent
        return list(joins.values()), bridges


def _bring_up_to_date(index: CatalogIndex, workspace: Workspace, store: MeshStore) -> dict[str, Any]:
    """Change detection hashes each product's stored JSON (in the engine) and its contract file's bytes;
    only the products that changed are read and turned into documents, each when the index takes it (so
    a full build never holds every product at once)."""
    return index.update(
        (ref, product_hash(digest + _contract_file_text(workspace, contract), None),
         partial(_documents_of, workspace, store, ref))
        for ref, digest, contract in store.product_digests())


def _read_ahead(mapping: Mapping[str, Any], refs: Iterable[str]) -> None:
    """Have a mapping read from the metadata index fetch these keys at once (an in-memory one has them)."""
    read_ahead = getattr(mapping, "read_ahead", None)
    if read_ahead is not None:
        read_ahead(refs)


class _StoredProducts(Mapping[str, DataProduct]):
    """Products by reference, each read from the metadata index when first asked for (a point lookup),
    all at once only when someone walks them all."""

    def __init__(self, store: MeshStore):
        self._store = store
        self._parsed: dict[str, DataProduct] = {}
        self._refs: list[str] | None = None

    def __getitem__(self, ref: str) -> DataProduct:
        if ref not in self._parsed:
            try:
                self._parsed[ref] = DataProduct.model_validate_json(self._store.product_json(ref))
            except NotFoundError:
                raise KeyError(ref) from None
        return self._parsed[ref]

    def read_ahead(self, refs: Iterable[str]) -> None:
        """Read these products in one query, before they are asked for one by one."""
        missing = sorted({ref for ref in refs if ref not in self._parsed})
        if missing:
            for ref, document in self._store.products_json(missing):
                self._parsed[ref] = DataProduct.model_validate_json(document)

    def _all(self) -> list[str]:
        if self._refs is None:
            refs = []
            for ref, document in self._store.products_json():
                if ref not in self._parsed:
                    self._parsed[ref] = DataProduct.model_validate_json(document)
                refs.append(ref)
            self._refs = refs
        return self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class _StoredForeignKeys(Mapping[str, list[tuple[str, str, str]]]):
    """dataset ref -> [(column, other dataset ref, other column)], both directions, read per dataset from
    the keys the index build resolved."""

    def __init__(self, store: MeshStore):
        self._store = store
        self._edges: dict[str, list[tuple[str, str, str]]] = {}

    def __getitem__(self, ref: str) -> list[tuple[str, str, str]]:
        if ref not in self._edges:
            self.read_ahead([ref])
        return self._edges[ref]

    def read_ahead(self, refs: Iterable[str]) -> None:
        """Read the keys of these datasets in one query, before they are asked for one by one."""
        missing = sorted({ref for ref in refs if ref not in self._edges})
        if missing:
            self._edges.update(self._store.foreign_keys_of(missing))

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.foreign_keys())

    def __len__(self) -> int:
        return len(self._store.foreign_keys())


def _contract_file_text(workspace: Workspace, relative: str | None) -> str:
    if not relative:
        return ""
    try:
        return (workspace.root / relative).read_text(encoding="utf-8")
    except OSError:
        return ""


def _documents_of(workspace: Workspace, store: MeshStore, ref: str) -> list[Document]:
    product = DataProduct.model_validate_json(store.product_json(ref))
    return product_documents(product, _read_contract(workspace, product))


def _snippet(text: str, limit: int = 180) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _read_contract(workspace: Workspace, product: DataProduct) -> dict[str, Any] | None:
    if not product.contract:
        return None
    import yaml

    path = workspace.root / product.contract
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # the workspace validator reports it; search just goes without the contract's text


def _save_atomically(index: CatalogIndex, folder: Path, source: str = "") -> None:
    import shutil
    import tempfile

    from meshpilot.tools.search_index import SHARED_DIR

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".search.", dir=folder.parent))
    try:
        kept = index.save(staging, source)
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
        # Shared files of earlier states (a process still reading one keeps its mapping).
        for shared in (folder.parent / SHARED_DIR).glob("*"):
            if shared.name not in kept:
                shared.unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- the tool functions ----------------------------------------------------------------------------------


def search_catalog(query: str, domain: str | None = None, owner: str | None = None, tags: list[str] | None = None,
                   classification: str | None = None, kind: str | None = None, k: int = 10,
                   workspace: Workspace | str | None = None) -> SearchResult:
    """Ranked products, datasets and columns for `query`, each with its mesh:// citation."""
    with Catalog.open(_workspace(workspace)) as catalog:
        return catalog.search(query, domain, owner, tags, classification, kind, k)


def link_schema(question: str, k: int = 5, workspace: Workspace | str | None = None) -> SchemaLink:
    """The tables (key columns, joins) that a question about the data needs."""
    with Catalog.open(_workspace(workspace)) as catalog:
        return catalog.link_schema(question, k)


def get_product(product_id: str, workspace: Workspace | str | None = None) -> dict[str, Any]:
    """A product: schema, owners, contract, SLOs, freshness, checks, incidents, upstream and downstream."""
    ws = _workspace(workspace)
    with MeshStore.open(ws) as store:
        details = store.product_details(product_id)
    product = details["product"]
    if product.get("contract"):
        details["contract"] = _contract_summary(_read_contract(ws, DataProduct.model_validate(product)))
    return details


def get_dataset(urn: str, workspace: Workspace | str | None = None) -> dict[str, Any]:
    """A dataset: columns, owners, SLOs, freshness, latest checks, upstream and downstream datasets."""
    ws = _workspace(workspace)
    ref = MeshRef.parse(urn)
    if ref.dataset is None:
        raise InvalidArgumentError(f"{urn} names a product, not a dataset.",
                                   hint="Write mesh://<domain>/<product>/<dataset>, or use get_product.")
    with MeshStore.open(ws) as store:
        return store.dataset_details(str(ref.dataset_ref()))


def _contract_summary(contract: dict[str, Any] | None) -> dict[str, Any] | None:
    if not contract:
        return None
    return {key: contract.get(key) for key in ("id", "apiVersion", "version", "status", "slaProperties")
            if contract.get(key) is not None}


def _workspace(workspace: Workspace | str | None) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)

