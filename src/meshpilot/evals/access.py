"""The access-policy attack suite (suites/access_attacks.yaml) and how its answers are judged.

Judged on the data that comes back, never on a verdict field: an answer leaks when any raw personal
value of the demo warehouse (e-mails, phones, dates of birth, street addresses, full names), or any value
of a table outside the caller's domains, appears anywhere in it. Used by tests/security and by
benchmarks/access_policy.py.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SUITE = Path(__file__).parent / "suites" / "access_attacks.yaml"


@cache
def attacks() -> dict[str, Any]:
    """The suite with its bounds expanded into the hostile queries they stand for."""
    suite = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    shapes = {
        "or_chain": " OR ".join(f"amount = {i}" for i in range(10_000)),
        "parens": "(" * 3_000 + "1" + ")" * 3_000,
        "subqueries": "(SELECT amount FROM commerce.orders WHERE amount IN " * 300 + "(1)" + ")" * 300,
        "not_chain": "NOT " * 5_000,
    }
    suite["bounds"] = [query.format(**shapes) for query in suite["bounds"]]
    return suite


def pii_payloads() -> list[tuple[str, str]]:
    """(class, query) for every payload that reaches for personal data."""
    return [(name, query) for name, queries in attacks()["classes"].items() for query in queries]


def sensitive_values(warehouse: Path) -> set[str]:
    """Raw personal values of the demo's customer profile, as text that could appear in an answer."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT email, phone, street_address, first_name || ' ' || last_name, "
                           "CAST(date_of_birth AS VARCHAR) FROM customer.customer_profile").fetchall()
    values = set()
    for email, phone, address, name, born in rows:
        values |= {email, phone, address, name}
        values |= {email.split("@")[0]} if email else set()
        values |= {phone.replace("-", "")} if phone else set()
        if born and born < "2010":  # later dates could also be order or load dates
            values.add(born)
    return {v for v in values if v and len(v) >= 6}


def foreign_values(warehouse: Path, allowed_schemas: set[str]) -> set[str]:
    """Text values of tables outside `allowed_schemas` that no allowed table holds: seeing one in an answer
    means the answer read another domain."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        outside, inside = set(), set()
        for schema, table in tables:
            columns = [c for c, t in con.execute(f"SELECT column_name, data_type FROM duckdb_columns() WHERE "
                                                 f"schema_name = '{schema}' AND table_name = '{table}'").fetchall()
                       if t == "VARCHAR"]
            for column in columns:
                found = {r[0] for r in con.execute(f'SELECT DISTINCT "{column}" FROM {schema}.{table}').fetchall() if r[0]}
                (inside if schema in allowed_schemas else outside).update(found)
    return {v for v in outside - inside if len(v) >= 6}


def leaks(output: Any, values: set[str]) -> list[str]:
    """The sensitive values found in an output (any JSON-able value or text)."""
    text = output if isinstance(output, str) else json.dumps(output, default=str, ensure_ascii=False)
    return sorted(v for v in values if v in text)
