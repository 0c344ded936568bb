"""Offline SQL: simple questions over one table answered without a model.

Covers counting, listing, one aggregate (sum, average, max, min), top-N, grouping by one column, and
filters on values found in the table's own columns (status, channel, city...), on booleans named in the
question, and on relative dates ("last month", "this year", "in 2025"). The table comes from schema
linking, re-ranked by how much of the question each candidate table can express. Anything else (joins,
ratios, comparisons between groups) is left to a model: `write` returns None with the reason.
The SQL is built as a sqlglot tree, so values from the question are quoted by sqlglot, never pasted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from meshpilot.mesh.model import Column, Dataset
from meshpilot.tools.tokens import Tokenizer

NUMERIC = ("INT", "DECIMAL", "DOUBLE", "FLOAT", "REAL", "NUMERIC", "BIGINT", "HUGEINT", "SMALLINT")
DATES = ("DATE", "TIMESTAMP")
_AGGREGATES = [
    (re.compile(r"\b(average|avg|mean)\b"), "AVG"),
    (re.compile(r"\b(total|sum)\b"), "SUM"),
    (re.compile(r"\b(maximum|max|highest|largest|biggest)\b"), "MAX"),
    (re.compile(r"\b(minimum|min|lowest|smallest)\b"), "MIN"),
]
_COUNT = re.compile(r"\b(how many|number of|count)\b")
_TOP = re.compile(r"\b(?:top|first)\s+(\d+)\b|\b(\d+)\s+(?:highest|largest|biggest|best|most)\b")
# "last 30 days" is a time window, not the bottom 30 rows.
_BOTTOM = re.compile(r"\b(?:bottom|last)\s+(\d+)\b(?!\s+(?:days?|weeks?|months?|years?|hours?)\b)"
                     r"|\b(\d+)\s+(?:lowest|smallest|worst|least)\b")
_MOST = re.compile(r"\bwhich (\w+) (?:has|have|had) the (most|fewest|least)\b")
_GROUP = re.compile(r"\b(?:by|per|for each|each|across)\s+([a-z_ ]+?)(?:\s+(?:in|for|with|where|last|this|during)\b|[?.,]|$)")
_LIST = re.compile(r"^\s*(list|show|give|display|which|what are)\b")
_YEAR = re.compile(r"\bin (\d{4})\b")
_LAST_DAYS = re.compile(r"\b(?:last|past) (\d+) days\b")
_NEGATION = re.compile(r"\b(not|never|without|no|except|excluding|other than)\b|n't\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\w)")
_TECHNICAL = {"loaded_at", "computed_at", "updated_at", "created_at"}
_NEEDS_A_MODEL = re.compile(r"\b(ratio|percent|percentage|share of|rate of|compare|compared|versus|vs|difference|"
                            r"growth|trend|correlat\w*|median|per cent|both|either)\b")


def _takes_negation(filters: list[tuple[exp.Expression, str]]) -> bool:
    """Whether a filter says "not": an inequality, or a boolean column that must be false."""
    return any(isinstance(condition, exp.NEQ) or (isinstance(condition, exp.EQ) and isinstance(
        condition.expression, exp.Boolean) and not condition.expression.this) for condition, _ in filters)


# Words of a query's shape, not of its content: what to compute, how many, over which time window.
_SHAPE = ("how many much number count counts total totals sum average averages avg mean maximum max highest largest "
          "biggest minimum min lowest smallest most fewest least top bottom first last past list display return "
          "every per each record records row rows entry entries value values result results day days week weeks "
          "month months year years today current previous ago since during overall altogether "
          # auxiliaries the tokenizer keeps: they carry no content
          "did done been being get got can could would should shall may might must us")


def _shape_words(tokenize: Callable[[str], list[str]]) -> set[str]:
    return set(tokenize(_SHAPE))


@dataclass
class Draft:
    sql: str
    table: str
    explanation: str


@dataclass
class Refusal:
    reason: str


class OfflineSqlWriter:
    """`values(table, column)` gives a low-cardinality text column's distinct values (or None)."""

    def __init__(self, values: Callable[[Dataset, Column], list[str] | None]):
        self.values = values
        self.tokenize = Tokenizer()

    def write(self, question: str, candidates: list[Dataset]) -> Draft | Refusal:
        if not candidates:
            return Refusal("no table in the catalog matches the question")
        text = question.lower().strip()
        hard = _NEEDS_A_MODEL.search(text)
        if hard:
            return Refusal(f"'{hard.group(0)}' asks for more than one count, aggregate or list")
        best = max(candidates, key=lambda d: self._fit(text, d) - candidates.index(d) * 0.5)
        return self._write(text, best)

    def _stems(self, text: str) -> set[str]:
        """The question's stems, plus each pair of neighbours joined ("signed up" also gives "signup")."""
        tokens = self.tokenize(text)
        joined = {self.tokenize(a + b)[0] for a, b in zip(tokens, tokens[1:], strict=False) if self.tokenize(a + b)}
        return set(tokens) | joined | {a + b for a, b in zip(tokens, tokens[1:], strict=False)}

    def _fit(self, text: str, dataset: Dataset) -> float:
        """How much of the question a table can express: matched values, columns and its own name."""
        stems = self._stems(text)
        score = len(stems & set(self.tokenize(dataset.name))) * 2.0
        score += sum(1 for c in dataset.columns if set(self.tokenize(c.name)) & stems and c.name not in _TECHNICAL)
        score += 3.0 * len(self._value_filters(text, dataset))
        return score

    def _write(self, text: str, dataset: Dataset) -> Draft | Refusal:
        table = exp.to_table(dataset.qualified_name)
        filters = self._value_filters(text, dataset) + self._boolean_filters(text, dataset)
        date_filter = self._date_filter(text, dataset)
        if date_filter is not None:
            filters.append(date_filter)
        group = self._group_column(text, dataset)
        aggregate = next((fn for pattern, fn in _AGGREGATES if pattern.search(text)), None)
        metric = self._metric(text, dataset) if aggregate or _TOP.search(text) or _BOTTOM.search(text) else None
        most = _MOST.search(text)
        if most:
            group = self._column_named(most.group(1), dataset) or group
        query = exp.select().from_(table)
        explanation = [f"table {dataset.qualified_name}"]
        top, bottom = _TOP.search(text), _BOTTOM.search(text)
        unmapped = self._unmapped(text, filters, [top, bottom, _LAST_DAYS.search(text), _YEAR.search(text)])
        if unmapped:
            return Refusal(unmapped)
        if most and group is not None:
            query = query.select(exp.column(group.name), exp.alias_(exp.Count(this=exp.Star()), "n")).group_by(
                exp.column(group.name)).order_by(exp.Ordered(this=exp.column("n"), desc=most.group(2) == "most")).limit(1)
            explanation.append(f"the {group.name} with the {most.group(2)} rows")
        elif (top or bottom) and metric is not None:
            n = int(next(g for g in (top or bottom).groups() if g))
            label = self._label(dataset)
            columns = [exp.column(c.name) for c in (label, metric) if c is not None]
            query = query.select(*columns).order_by(exp.Ordered(this=exp.column(metric.name), desc=bool(top))).limit(n)
            explanation.append(f"{'top' if top else 'bottom'} {n} by {metric.name}")
        elif aggregate and metric is not None:
            value = exp.alias_(exp.func(aggregate, exp.column(metric.name)), f"{aggregate.lower()}_{metric.name}")
            query = self._grouped(query, group, value)
            explanation.append(f"{aggregate.lower()} of {metric.name}" + (f" per {group.name}" if group else ""))
        elif _COUNT.search(text) or group is not None:
            query = self._grouped(query, group, exp.alias_(exp.Count(this=exp.Star()), "n"))
            explanation.append("row count" + (f" per {group.name}" if group else ""))
        elif _LIST.search(text):
            # The columns the question names, else all of them.
            stems = self._stems(text)
            filtered = {c.name.lower() for condition, _ in filters for c in condition.find_all(exp.Column)}
            named = [c for c in dataset.columns if c.name not in _TECHNICAL and self.tokenize(c.name)
                     and set(self.tokenize(c.name)) <= stems and c.name.lower() not in filtered]
            query = query.select(*[exp.column(c.name) for c in named]) if named else query.select(exp.Star())
            explanation.append("the matching rows" + (f": {', '.join(c.name for c in named)}" if named else ""))
        else:
            return Refusal("the question is not a count, list, aggregate or top-N over one table")
        for condition, description in filters:
            query = query.where(condition)
            explanation.append(description)
        leftover = self._unaccounted(text, dataset, query, _takes_negation(filters))
        if leftover:
            return Refusal(f"{', '.join(repr(w) for w in leftover[:3])} in the question {'is' if len(leftover) == 1 else 'are'} "
                           f"not in the query I could write over {dataset.qualified_name}")
        return Draft(sql=query.sql(dialect="duckdb"), table=dataset.qualified_name, explanation="; ".join(explanation))

    def _unaccounted(self, text: str, dataset: Dataset, query: exp.Select, negated: bool) -> list[str]:
        """The question's words that neither the query nor its table account for: a query that leaves out
        part of the question answers another question ("airlines in the USA" is not every airline).
        Accounted for: the table's name and key columns (what its rows are), the columns and values the
        query uses, words of the query's shape (how many, total, top, list...) and of its time window."""
        used = {c.name.lower() for c in query.find_all(exp.Column)}
        values = " ".join(str(v.this) for v in query.find_all(exp.Literal) if v.is_string)
        known = set(self.tokenize(f"{dataset.name} {values} {' '.join(used)}"))
        for column in dataset.columns:
            if column.primary_key or column.references or column.name.lower().endswith("_id"):
                known |= set(self.tokenize(column.name))
        known |= _shape_words(self.tokenize)
        if negated:
            known |= set(self.tokenize("not never without no except excluding other than"))  # a filter took it
        # A plural the stemmer keeps ("pcs" of the table "pc") names the same thing.
        text = re.sub(r"n't\b", " not", re.sub(r"\d+(?:\.\d+)?", " ", text))  # "weren't": "were not"
        words = [w for w in self.tokenize(text)
                 if w not in known and not (w.endswith("s") and w[:-1] in known)]
        return list(dict.fromkeys(words))


    @staticmethod
    def _unmapped(text: str, filters: list[tuple[exp.Expression, str]], used: list[re.Match | None]) -> str | None:
        """What the question says that the query would leave out: a negation no filter takes, a number that
        is no limit, day count or year (a comparison, a value). Answering without it would be wrong, not
        partial: "not made by B" is not "made by B", "speed greater than 1.7" is not every speed."""
        negation = _NEGATION.search(text)
        if negation and not _takes_negation(filters):
            return f"'{negation.group(0)}' negates something I cannot map to a filter"
        taken = {g for m in used if m is not None for g in m.groups() if g}
        numbers = [n for n in _NUMBER.findall(text) if n not in taken]
        if numbers:
            return f"'{numbers[0]}' is a comparison or value I cannot map to a filter"
        return None

    @staticmethod
    def _grouped(query: exp.Select, group: Column | None, value: exp.Expression) -> exp.Select:
        if group is None:
            return query.select(value)
        return query.select(exp.column(group.name), value).group_by(exp.column(group.name)).order_by(exp.column(group.name))

    # --- pieces of the question ----------------------------------------------------------------------

    def _value_filters(self, text: str, dataset: Dataset) -> list[tuple[exp.Expression, str]]:
        """Filters on values of the table named in the question; a negation shortly before the value
        ("not made by maker B", "orders that aren't cancelled") makes it an inequality."""
        found = []
        for column in dataset.columns:
            if column.type.upper() not in ("VARCHAR", "TEXT", "STRING") or column.primary_key or column.references:
                continue
            for value in self.values(dataset, column) or []:
                if not value:
                    continue
                wanted = re.escape(value.lower())
                if len(value) < 2 or not self.tokenize(value):
                    # A one-letter or stop-word value ("A") would match an article: only when quoted, or
                    # right after its column's name ("maker B").
                    named = re.escape(column.name.lower().replace("_", " "))
                    match = re.search(rf"""['"]{wanted}['"]|\b{named}\s+{wanted}\b""", text)
                else:
                    match = re.search(rf"\b{wanted}\b", text)
                if match:
                    before = text[max(0, match.start() - 40):match.start()].split()[-5:]
                    negated = bool(_NEGATION.search(" ".join(before)))
                    condition = exp.column(column.name).neq(exp.convert(value)) if negated else \
                        exp.column(column.name).eq(exp.convert(value))
                    found.append((condition, f"{column.name} {'<>' if negated else '='} '{value}'"))
                    break
        return found

    def _boolean_filters(self, text: str, dataset: Dataset) -> list[tuple[exp.Expression, str]]:
        found = []
        stems = set(self.tokenize(text))
        for column in dataset.columns:
            if column.type.upper() == "BOOLEAN":
                words = set(self.tokenize(column.name))
                if words and len(words & stems) >= max(1, len(words) - 1):
                    truth = not _NEGATION.search(text)
                    found.append((exp.column(column.name).eq(exp.convert(truth)), f"{column.name} is {truth}"))
        return found

    def _date_filter(self, text: str, dataset: Dataset) -> tuple[exp.Expression, str] | None:
        dates = [c for c in dataset.columns if c.type.upper().startswith(DATES) and c.name not in _TECHNICAL]
        if not dates:
            return None
        stems = self._stems(text)
        column = max(dates, key=lambda c: len(set(self.tokenize(c.name)) & stems))
        col = exp.column(column.name)
        month = exp.func("date_trunc", exp.convert("month"), exp.CurrentDate())
        year = exp.func("date_trunc", exp.convert("year"), exp.CurrentDate())
        interval = lambda n, unit: exp.Interval(this=exp.convert(str(n)), unit=exp.var(unit))  # noqa: E731
        if "last month" in text:
            return (exp.and_(col >= exp.Sub(this=month, expression=interval(1, "MONTH")), col < month),
                    f"{column.name} in the previous calendar month")
        if "this month" in text:
            return col >= month, f"{column.name} in the current month"
        if "last year" in text:
            return (exp.and_(col >= exp.Sub(this=year, expression=interval(1, "YEAR")), col < year),
                    f"{column.name} in the previous calendar year")
        if "this year" in text:
            return col >= year, f"{column.name} in the current year"
        days = _LAST_DAYS.search(text)
        if days:
            return (col >= exp.Sub(this=exp.CurrentDate(), expression=interval(int(days.group(1)), "DAY")),
                    f"{column.name} in the last {days.group(1)} days")
        year_match = _YEAR.search(text)
        if year_match:
            return (exp.func("year", col).eq(exp.convert(int(year_match.group(1)))),
                    f"{column.name} in {year_match.group(1)}")
        return None

    def _group_column(self, text: str, dataset: Dataset) -> Column | None:
        match = _GROUP.search(text)
        if not match:
            return None
        # "per order" over the orders table means per row: nothing to group by.
        if set(self.tokenize(match.group(1))) <= set(self.tokenize(dataset.name)):
            return None
        return self._column_named(match.group(1), dataset)

    def _column_named(self, words: str, dataset: Dataset) -> Column | None:
        tokens = self.tokenize(words)
        wanted, head = set(tokens), (tokens[-1] if tokens else None)
        # The head noun ("segment" in "customer segment") weighs more than its modifiers.
        scored = [(len(wanted & set(self.tokenize(c.name))) + 0.5 * (head in self.tokenize(c.name)), -len(c.name), c)
                  for c in dataset.columns if c.name not in _TECHNICAL]
        best = max(scored, key=lambda s: (s[0], s[1]), default=None)
        return best[2] if best and best[0] > 0 else None

    def _metric(self, text: str, dataset: Dataset) -> Column | None:
        numeric = [c for c in dataset.columns if c.type.upper().startswith(NUMERIC) and not c.primary_key]
        stems = set(self.tokenize(text))
        scored = [(len(stems & set(self.tokenize(f"{c.name} {c.description or ''}"))),
                   len(stems & set(self.tokenize(c.name))), c) for c in numeric]
        best = max(scored, key=lambda s: (s[1], s[0]), default=None)
        return best[2] if best and (best[0] or best[1]) else None

    @staticmethod
    def _label(dataset: Dataset) -> Column | None:
        names = [c for c in dataset.columns if c.name.endswith("_name") or c.name == "name"]
        keys = [c for c in dataset.columns if c.primary_key]
        return (names or keys or [None])[0]
