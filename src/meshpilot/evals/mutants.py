"""Mutants of valid SQL for the validation suite and benchmark: each reference to a column or a table,
in whatever scope it stands (CTE body, subquery, HAVING, window, quoted), renamed to a near miss. A
validator that checks only some scopes lets the mutants of the others through."""

from __future__ import annotations

import random
from collections.abc import Iterator

import sqlglot
from sqlglot import exp


def near_miss(name: str, rng: random.Random) -> str:
    """A plausible typo: a letter dropped, doubled or two letters swapped."""
    if len(name) < 4:
        return name + "x"
    i = rng.randrange(1, len(name) - 1)
    kind = rng.choice(("drop", "double", "swap"))
    if kind == "drop":
        return name[:i] + name[i + 1:]
    if kind == "double":
        return name[:i] + name[i] + name[i:]
    return name[:i - 1] + name[i] + name[i - 1] + name[i + 1:] if name[i] != name[i - 1] else name[:i] + name[i + 1:]


def every_mutant(sql: str, dialect: str, rng: random.Random) -> Iterator[tuple[str, str, str]]:
    """(what was renamed: 'column' or 'table', the mutated SQL, the original name), one per reference."""
    tree = sqlglot.parse_one(sql, read=dialect)
    references = [(node, "column") for node in tree.find_all(exp.Column) if not isinstance(node.this, exp.Star)]
    references += [(node, "table") for node in tree.find_all(exp.Table) if node.name]
    for position, (node, kind) in enumerate(references):
        renamed = near_miss(node.name, rng)
        if renamed.lower() == node.name.lower():
            continue
        copy = tree.copy()
        target = [n for n in copy.find_all(exp.Column) if not isinstance(n.this, exp.Star)] + \
            [n for n in copy.find_all(exp.Table) if n.name]
        identifier = target[position].this
        target[position].set("this", exp.to_identifier(renamed, quoted=identifier.quoted))
        yield kind, copy.sql(dialect=dialect), node.name
