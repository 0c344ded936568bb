"""The catalog as SQL sees it: tables with their columns, PII classes and mesh:// references, and the
protocol through which the guardrails say what a caller may read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from meshpilot.mesh.model import DataProduct


@dataclass
class Table:
    name: str  # as written in SQL: 'commerce.orders'
    columns: dict[str, str]  # lower-cased name -> name as declared
    ref: str | None = None  # the mesh:// dataset reference, for citations
    column_refs: dict[str, str] = field(default_factory=dict)  # lower-cased name -> mesh:// column
    classifications: dict[str, str] = field(default_factory=dict)  # lower-cased name -> PII type


class SqlSchema:
    """Tables by name; a table is found by its qualified name or, when unambiguous, its last part."""

    def __init__(self, tables: Iterable[Table]):
        self._tables = list(tables)
        self._relation_sets: dict[object, object] = {}
        self._by_name: dict[str, Table | None] = {}
        for table in self._tables:
            full = table.name.lower()
            self._by_name[full] = table
            short = full.rsplit(".", 1)[-1]
            if short != full:
                # Two schemas with the same table name: the short name is ambiguous and must be qualified.
                self._by_name[short] = None if short in self._by_name and self._by_name[short] is not table else table

    @property
    def tables(self) -> list[Table]:
        return self._tables

    @classmethod
    def from_products(cls, products: Iterable[DataProduct]) -> SqlSchema:
        tables = []
        for product in products:
            for dataset in product.datasets:
                ref = product.dataset_ref(dataset.name)
                tables.append(Table(
                    name=dataset.qualified_name, ref=str(ref),
                    columns={c.name.lower(): c.name for c in dataset.columns},
                    column_refs={c.name.lower(): str(ref.with_column(c.name)) for c in dataset.columns},
                    classifications={c.name.lower(): c.classification for c in dataset.columns if c.classification},
                ))
        return cls(tables)

    def find(self, name: str) -> Table | None:
        return self._by_name.get(name.lower())

    def is_ambiguous(self, name: str) -> bool:
        return name.lower() in self._by_name and self._by_name[name.lower()] is None

    def named(self, short: str) -> list[str]:
        """The qualified names whose last part is `short`."""
        return [t.name for t in self.tables if t.name.lower().endswith("." + short.lower())]

    def names(self) -> list[str]:
        return [t.name for t in self.tables]

    def similar_names(self, name: str) -> list[str]:
        """Names (qualified, and their last parts) to suggest for a table name that is not in the catalog."""
        return self.names() + [n.rsplit(".", 1)[-1] for n in self.names()]

    def relation_set(self, caller: AccessPolicy):
        """What the engine lets `caller` read (tools/sql_engines.RelationSet), computed once per caller."""
        from meshpilot.tools.sql_engines import RelationSet

        key = getattr(caller, "cache_key", None) or id(caller)
        if key not in self._relation_sets:
            self._relation_sets[key] = RelationSet.for_caller(self.tables, caller)
        return self._relation_sets[key]


class AccessPolicy(Protocol):
    """What a caller may read; the guardrails fill it in (guardrails/policy.py, SqlGuard)."""

    def check_table(self, table: Table) -> str | None:
        """A reason to refuse the table, or None."""

    def check_column(self, table: Table, column: str) -> str | None:
        """A reason to refuse the column, or None."""

    def treatment(self, table: Table, column: str) -> str:
        """How the engine shows the column to this caller: allow, mask or refuse."""

    def pending_approval(self, table: Table, column: str) -> bool:
        """Whether reading the column in the clear waits for a human's approval."""


def treatment_of(caller: AccessPolicy, table: Table, column: str) -> str:
    """allow, mask or refuse; a policy without `treatment` refuses what it refuses and allows the rest."""
    treatment = getattr(caller, "treatment", None)
    if treatment is not None:
        return treatment(table, column)
    return "refuse" if caller.check_column(table, column) else "allow"


class IndexedSqlSchema(SqlSchema):
    """The tables of a metadata index (mesh/store.py), each read when a query names it: validating a
    query costs the same at ten tables as at a hundred thousand. Walking `tables` reads them all."""

    _TABLES = """SELECT d.qualified_name, d.ref, list(c.name ORDER BY c.position), list(c.ref ORDER BY c.position),
                        list(c.classification ORDER BY c.position)
                 FROM datasets d LEFT JOIN columns c ON c.dataset_ref = d.ref
                 WHERE {where} GROUP BY d.qualified_name, d.ref ORDER BY d.ref"""

    def __init__(self, connection) -> None:  # a DuckDB cursor over the index
        self._con = connection
        self._relation_sets = {}
        self._by_name = {}
        self._ambiguous: set[str] = set()
        self._all: list[Table] | None = None

    @property
    def tables(self) -> list[Table]:
        if self._all is None:
            self._all = self._read("true", [])
        return self._all

    def _read(self, where: str, params: list) -> list[Table]:
        tables = []
        for name, ref, columns, refs, classes in self._con.execute(self._TABLES.format(where=where), params).fetchall():
            pairs = [(c, r, k) for c, r, k in zip(columns, refs, classes, strict=True) if c is not None]
            tables.append(Table(name=name, ref=ref, columns={c.lower(): c for c, _, _ in pairs},
                                column_refs={c.lower(): r for c, r, _ in pairs},
                                classifications={c.lower(): k for c, _, k in pairs if k}))
        return tables

    def find(self, name: str) -> Table | None:
        key = name.lower()
        if key not in self._by_name:
            # Datasets are few next to columns: find the refs by name first, then read only their columns.
            refs = [ref for ref, qualified in self._con.execute(
                "SELECT ref, lower(qualified_name) FROM datasets WHERE lower(qualified_name) = $key "
                "OR ends_with(lower(qualified_name), '.' || $key)", {"key": key}).fetchall()
                if qualified == key or qualified.rsplit(".", 1)[-1] == key]
            found = {t.name.lower(): t for t in self._read("list_contains($refs, d.ref)", {"refs": refs})} if refs else {}
            if key in found:
                self._by_name[key] = found[key]
            else:
                self._by_name[key] = next(iter(found.values())) if len(found) == 1 else None
                if len(found) > 1:
                    self._ambiguous.add(key)
        return self._by_name[key]

    def is_ambiguous(self, name: str) -> bool:
        self.find(name)
        return name.lower() in self._ambiguous

    def named(self, short: str) -> list[str]:
        key = short.lower()
        return [qualified for (qualified,) in self._con.execute(
            "SELECT qualified_name FROM datasets WHERE ends_with(lower(qualified_name), '.' || $key) ORDER BY ALL",
            {"key": key}).fetchall()]

    def names(self) -> list[str]:
        return [name for (name,) in self._con.execute("SELECT qualified_name FROM datasets ORDER BY ref").fetchall()]

    def similar_names(self, name: str) -> list[str]:
        # Ranked in the engine: difflib over 100k names took seconds; the caller picks among these.
        rows = self._con.execute(
            """WITH names AS (SELECT qualified_name AS n FROM datasets
                              UNION SELECT split_part(qualified_name, '.', -1) FROM datasets)
               SELECT n FROM names ORDER BY jaro_winkler_similarity(lower(n), lower($name)) DESC, n LIMIT 20""",
            {"name": name}).fetchall()
        return [n for (n,) in rows]
