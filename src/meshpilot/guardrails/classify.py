"""Column classification: the PII type of each column, from its name, description and sampled values.

Sampled values are the strongest evidence: a column is classified as entity X when most of its sampled
non-empty values are, as a whole, detected as X by the Presidio analyzer. Names and descriptions decide
when values cannot (short given names have no context for a name recognizer; empty tables). The result
is written to the product files, the workspace's source of truth, so search, the SQL guard and the
contracts see it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import duckdb

from meshpilot.guardrails import pii
from meshpilot.mesh import files
from meshpilot.mesh.workspace import Workspace

# Column-name and description hints, most specific first.
_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"e[-_ ]?mail", re.I), "EMAIL_ADDRESS"),
    (re.compile(r"phone|mobile|msisdn|\bfax\b|\btel\b|telephone", re.I), "PHONE_NUMBER"),
    (re.compile(r"\bssn\b|social[-_ ]security", re.I), "US_SSN"),
    (re.compile(r"iban", re.I), "IBAN_CODE"),
    (re.compile(r"credit[-_ ]?card|card[-_ ]?number|\bpan\b", re.I), "CREDIT_CARD"),
    (re.compile(r"(?:^|_)ip(?:_|$)|ip[-_ ]?address", re.I), "IP_ADDRESS"),
    (re.compile(r"birth|\bdob\b", re.I), "DATE_OF_BIRTH"),
    (re.compile(r"(?:first|last|given|family|full|middle|maiden|sur)[-_ ]?name|^name$|contact[-_ ]?name", re.I),
     "PERSON"),
    (re.compile(r"street|address|postcode|zip[-_ ]?code|postal|city|town", re.I), "LOCATION"),
]
# Names that look like PII hints but are not ("email_opt_in", "phone_verified", "name" of a product).
_NOT_PII = re.compile(r"(?:opt[-_ ]?in|consent|verified|valid|count|has_|is_|_flag|_at$|_id$|domain)", re.I)


@dataclass(frozen=True)
class Classification:
    dataset: str
    column: str
    current: str | None
    proposed: str | None
    evidence: str

    @property
    def changed(self) -> bool:
        return self.proposed is not None and self.proposed != self.current

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "column": self.column, "current": self.current, "proposed": self.proposed,
                "evidence": self.evidence, "changed": self.changed}


_TEXT_TYPES = re.compile(r"char|text|string|varchar|json|unknown|date|time", re.I)


def classify_column(name: str, description: str | None, samples: list[str], type_: str = "VARCHAR"
                    ) -> tuple[str | None, str]:
    """(PII type or None, the evidence) for one column."""
    values = [v for v in (str(s).strip() for s in samples if s is not None) if v]
    by_values = Counter()
    for value in values:
        for finding in pii.analyze(value):
            # The finding must be most of the value: a comment that mentions a phone number is not a phone column.
            if finding.end - finding.start >= 0.8 * len(value):
                by_values[finding.entity_type] += 1
                break
    if values:
        entity, hits = by_values.most_common(1)[0] if by_values else (None, 0)
        if entity and hits >= max(2, 0.6 * len(values)):
            return entity, f"{hits} of {len(values)} sampled values are {entity}"
    if _NOT_PII.search(name):
        return None, "name says it is a flag, count, key or timestamp"
    if not _TEXT_TYPES.search(type_):
        return None, f"{type_} values cannot hold names, contacts or addresses"
    # A description is read only when there is no data to look at: it mentions PII loosely ("has an
    # e-mail address") far more often than it describes a PII column.
    hints = ((name, "name"),) if values else ((name, "name"), (description or "", "description"))
    for text, source in hints:
        for pattern, entity in _HINTS:
            if pattern.search(text):
                return entity, f"{source} '{text}' suggests {entity}"
    return None, f"no PII in {len(values)} sampled values, name or description"


def classify_workspace(workspace: Workspace, sample_size: int = 50) -> list[Classification]:
    """Propose a classification for every column of every dataset in the workspace."""
    mesh = workspace.load()
    warehouse = workspace.warehouse_path
    con = duckdb.connect(str(warehouse), read_only=True) if warehouse.exists() else None
    proposals = []
    try:
        for product in mesh.products:
            for port in product.output_ports:
                dataset = port.dataset
                if dataset is None:
                    continue
                for column in dataset.columns:
                    samples = _samples(con, dataset.qualified_name, column.name, sample_size) if con else []
                    proposed, evidence = classify_column(column.name, column.description, samples, column.type)
                    proposals.append(Classification(f"{product.ref}/{dataset.name}", column.name, column.classification,
                                                    proposed, evidence))
    finally:
        if con is not None:
            con.close()
    return proposals


def _samples(con, qualified_name: str | None, column: str, size: int) -> list[str]:
    if not qualified_name:
        return []
    table = ".".join(f'"{part}"' for part in qualified_name.split("."))
    try:
        rows = con.execute(f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM {table} '
                           f'WHERE "{column}" IS NOT NULL LIMIT {int(size)}').fetchall()
    except duckdb.Error:
        return []  # not in the warehouse (an imported catalog): names and descriptions decide
    return [r[0] for r in rows]


def write_classifications(workspace: Workspace, proposals: list[Classification]) -> list[str]:
    """Write the changed proposals into the product files (validated, atomic); returns the files changed."""
    wanted = {(p.dataset, p.column): p.proposed for p in proposals if p.changed}
    if not wanted:
        return []
    mesh = workspace.load()
    changes: dict[str, str] = {}
    for path in sorted((workspace.root / "products").glob("*.yaml")):
        relative = f"products/{path.name}"
        doc, _ = files.load_yaml(path, relative)
        data = doc.data if doc is not None else None
        if not isinstance(data, dict):
            continue
        product = mesh.product(data.get("domain"), data.get("id"))
        if product is None:
            continue
        touched = False
        for port in data.get("output_ports") or []:
            dataset = port.get("dataset") or {}
            for column in dataset.get("columns") or []:
                proposed = wanted.get((f"{product.ref}/{dataset.get('name')}", column.get("name")))
                if proposed:
                    column["classification"] = proposed
                    if "pii" not in (column.get("tags") or []):
                        column["tags"] = [*(column.get("tags") or []), "pii"]
                    touched = True
        if touched:
            changes[relative] = files.dump_yaml(data)
    return workspace.apply(changes)
