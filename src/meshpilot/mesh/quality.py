"""Evaluating a dataset's quality checks against the warehouse.

Each check kind becomes one SQL query counting the rows that break it (or measuring the table), so a
result records what was observed, not just pass or fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from meshpilot.mesh.model import CheckKind, CheckStatus, Dataset, QualityCheck


def check_sql(dataset: Dataset, check: QualityCheck, as_of: datetime | None = None) -> str:
    """The query measuring `check`: it returns one number, the observed value.

    Freshness is measured at `as_of` (default: now), so a replayed history measures what it saw then.
    """
    table = exp.to_table(dataset.qualified_name)
    column = exp.column(check.column, quoted=True) if check.column else None
    params = check.params
    select = exp.select("count(*)").from_(table)
    match check.kind:
        case CheckKind.NOT_NULL:
            query = select.where(column.is_(exp.null()))
        case CheckKind.UNIQUE:
            query = exp.select("count(*) - count(DISTINCT " + column.sql("duckdb") + ")").from_(table)
        case CheckKind.ACCEPTED_VALUES:
            allowed = [exp.convert(v) for v in params["values"]]
            query = select.where(exp.and_(column.is_(exp.null()).not_(), exp.Not(this=column.isin(*allowed))))
        case CheckKind.RANGE:
            bounds = []
            if "min" in params:
                bounds.append(column < exp.convert(params["min"]))
            if "max" in params:
                bounds.append(column > exp.convert(params["max"]))
            query = select.where(exp.or_(*bounds))
        case CheckKind.REGEX:
            matches = exp.RegexpLike(this=column, expression=exp.convert(params["pattern"]))
            query = select.where(exp.and_(column.is_(exp.null()).not_(), exp.Not(this=matches)))
        case CheckKind.ROW_COUNT:
            query = select
        case CheckKind.FRESHNESS:
            now = f"TIMESTAMPTZ '{as_of.isoformat()}'" if as_of else "now()"
            query = exp.select(f"epoch({now} - max({column.sql('duckdb')})) / 3600.0").from_(table)
        case CheckKind.SQL:
            query = sqlglot.parse_one(params["query"], read="duckdb")
        case _:
            raise ValueError(f"check '{check.id}' of kind {check.kind.value} cannot be evaluated by SQL")
    return query.sql("duckdb")


def judge(check: QualityCheck, observed: float) -> CheckStatus:
    """Whether an observed value passes: row counts and freshness against bounds, others must be 0."""
    params = check.params
    if check.kind is CheckKind.ROW_COUNT:
        ok = params.get("min", 0) <= observed <= params.get("max", float("inf"))
    elif check.kind is CheckKind.FRESHNESS:
        ok = observed <= params["max_age_hours"]
    else:
        ok = observed <= params.get("max_failing_rows", 0)
    return CheckStatus.PASS if ok else CheckStatus.FAIL


def evaluate(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, check: QualityCheck, as_of: datetime | None = None
) -> tuple[CheckStatus, Any, str]:
    sql = check_sql(dataset, check, as_of)
    observed = con.execute(sql).fetchone()[0]
    observed = float(observed) if observed is not None else 0.0
    status = judge(check, observed)
    unit = {"row_count": "rows", "freshness": "hours old"}.get(check.kind.value, "failing rows")
    return status, observed, f"{observed:g} {unit}"
