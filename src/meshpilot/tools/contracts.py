"""Data contracts (ODCS v3): lint, and diff from the consumers' point of view, joined with lineage.

`lint_contract` validates a contract against the ODCS JSON schema of its apiVersion, then checks what
the schema cannot: an owner, SLAs, PII columns without a classification, physical types the engine
does not know. Every finding has its line. `diff_contract` classifies each change between two versions
as ERROR (breaks consumers: a removed or retyped column or table), WARNING (a weaker guarantee: fewer
required columns, a lower availability, a longer latency, a removed quality rule) or INFO (additions,
stronger guarantees, documentation), and, inside a workspace, lists for every ERROR the downstream
products, owners and contracts it breaks.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError, MeshpilotError
from meshpilot.mesh import files

SCHEMAS = {"v3.0.0": "odcs-json-schema-v3.0.0.json", "v3.0.1": "odcs-json-schema-v3.0.1.json",
           "v3.0.2": "odcs-json-schema-v3.0.2.json", "v3.1.0": "odcs-json-schema-v3.1.0.json"}
PII_NAMES = re.compile(r"(e_?mail|phone|mobile|first_?name|last_?name|full_?name|surname|address|street|"
                       r"birth|dob|ssn|social_security|passport|iban|credit_?card|card_number|tax_?id)", re.I)
# SLA properties where a larger value is a stronger promise; for the others (latency, frequency...) smaller is.
LARGER_IS_STRONGER = {"availability", "completeness", "retention", "accuracy", "coverage"}


class Finding(BaseModel):
    severity: str  # error, warning
    message: str
    path: str
    line: int | None = None


class LintResult(BaseModel):
    source: str
    api_version: str | None
    ok: bool
    findings: list[Finding]


class Change(BaseModel):
    severity: str  # ERROR, WARNING, INFO
    path: str
    change: str  # added, removed, updated
    old: Any = None
    new: Any = None
    message: str
    breaks: list[str] = []  # downstream products, owners and contracts (with a workspace)


class DiffResult(BaseModel):
    old: str
    new: str
    breaking: bool
    counts: dict[str, int]
    changes: list[Change]


def _load(source: str | Path) -> files.LocatedDocument:
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path} does not exist.", hint="Give the path of an ODCS contract (.yaml).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"Cannot read {path}: {exc}.") from None
    doc, problems = files.parse_yaml(text, str(path))
    if problems:
        raise MeshpilotError(f"{path} is not a YAML document, so it is not a contract.", problems=problems,
                             hint="An ODCS contract is YAML: apiVersion, kind: DataContract, id, schema...")
    if not isinstance(doc.data, dict):
        raise MeshpilotError(f"{path} is YAML but not a mapping, so it is not a contract.",
                             hint="An ODCS contract starts with apiVersion, kind: DataContract, id...")
    return doc


@lru_cache(maxsize=8)
def _validator(api_version: str) -> Any:
    import jsonschema

    schema = json.loads(package_files("meshpilot.tools").joinpath(f"schemas/{SCHEMAS[api_version]}").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


# --- lint ------------------------------------------------------------------------------------------------


def lint_contract(source: str | Path) -> LintResult:
    doc = _load(source)
    data = doc.data
    findings: list[Finding] = []

    def add(severity: str, path: tuple, message: str) -> None:
        findings.append(Finding(severity=severity, message=message, path=".".join(map(str, path)) or "contract",
                                line=doc.line_of(path)))

    api_version = str(data.get("apiVersion") or "")
    if api_version not in SCHEMAS:
        add("error", ("apiVersion",), f"apiVersion {api_version or '(missing)'} is not ODCS v3 "
                                      f"({', '.join(SCHEMAS)})")
    else:
        errors = _schema_errors(api_version, data)
        newest = list(SCHEMAS)[-1]
        if errors and api_version != newest and not _schema_errors(newest, data):
            # The ODCS examples themselves use v3.1 features under older apiVersions.
            add("warning", ("apiVersion",), f"valid under ODCS {newest} but not under the declared {api_version} "
                                            f"({errors[0][1]}): set apiVersion: {newest}")
        else:
            for path, message in errors:
                add("error", path, f"ODCS {api_version} schema: {message}")
    if not data.get("team"):
        add("warning", ("team",), "no owner: add a team with its members")
    if not data.get("slaProperties"):
        add("warning", ("slaProperties",), "no SLA: consumers cannot tell how fresh or available the data is")
    for i, obj in enumerate(data.get("schema") or []):
        if not isinstance(obj, dict):
            continue
        for j, prop in enumerate(obj.get("properties") or []):
            if not isinstance(prop, dict):
                continue
            name = str(prop.get("name") or "")
            if PII_NAMES.search(name) and not prop.get("classification"):
                add("warning", ("schema", i, "properties", j, "name"),
                    f"'{name}' looks like personal data but has no classification")
            physical = prop.get("physicalType")
            if physical and not _engine_knows(str(physical)):
                add("warning", ("schema", i, "properties", j, "physicalType"),
                    f"physical type '{physical}' is not a type DuckDB knows")
    findings.sort(key=lambda f: (f.severity != "error", f.line or 0))
    return LintResult(source=str(source), api_version=api_version or None,
                      ok=not any(f.severity == "error" for f in findings), findings=findings)


def _schema_errors(api_version: str, data: dict) -> list[tuple[tuple, str]]:
    found = []
    for error in _validator(api_version).iter_errors(_jsonable(data)):
        leaf = error
        while leaf.context:  # the most specific cause, not "not valid under any of the given schemas"
            leaf = max(leaf.context, key=lambda e: (len(e.absolute_path), e.validator == "required"))
        where = ".".join(map(str, leaf.absolute_path))
        found.append((tuple(leaf.absolute_path), (f"{where}: " if where else "") + leaf.message[:240]))
    return sorted(found)


def _engine_knows(type_name: str) -> bool:
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        return exp.DataType.build(type_name, dialect="duckdb").this != exp.DataType.Type.USERDEFINED
    except (ParseError, ValueError):
        return False


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


# --- diff --------------------------------------------------------------------------------------------------


def diff_contract(old: str | Path, new: str | Path, workspace: Any = None) -> DiffResult:
    before, after = _load(old).data, _load(new).data
    changes: list[Change] = []

    def add(severity: str, path: str, change: str, message: str, old_value: Any = None, new_value: Any = None) -> None:
        changes.append(Change(severity=severity, path=path, change=change, old=old_value, new=new_value, message=message))

    if before.get("version") != after.get("version"):
        add("INFO", "version", "updated", "version changed", before.get("version"), after.get("version"))
    old_objects, new_objects = _by_name(before.get("schema")), _by_name(after.get("schema"))
    for name in old_objects.keys() - new_objects.keys():
        add("ERROR", f"schema.{name}", "removed", f"table {name} was removed: its consumers lose it")
    for name in new_objects.keys() - old_objects.keys():
        add("INFO", f"schema.{name}", "added", f"table {name} was added")
    for name in sorted(old_objects.keys() & new_objects.keys()):
        _diff_properties(name, old_objects[name], new_objects[name], add)
    _diff_sla(before.get("slaProperties") or [], after.get("slaProperties") or [], add)
    order = {"ERROR": 0, "WARNING": 1, "INFO": 2}
    changes.sort(key=lambda c: (order[c.severity], c.path))
    if workspace is not None:
        _join_impact(after if after.get("dataProduct") else before, changes, workspace)
    counts = {level: sum(c.severity == level for c in changes) for level in order}
    return DiffResult(old=str(old), new=str(new), breaking=counts["ERROR"] > 0, counts=counts, changes=changes)


def _by_name(items: Any) -> dict[str, dict]:
    return {str(i.get("name")): i for i in items or [] if isinstance(i, dict) and i.get("name")}


def _diff_properties(table: str, old: dict, new: dict, add) -> None:
    before, after = _by_name(old.get("properties")), _by_name(new.get("properties"))
    for name in sorted(before.keys() - after.keys()):
        add("ERROR", f"schema.{table}.properties.{name}", "removed", f"column {table}.{name} was removed")
    for name in sorted(after.keys() - before.keys()):
        severity = "WARNING" if after[name].get("required") else "INFO"
        add(severity, f"schema.{table}.properties.{name}", "added",
            f"column {table}.{name} was added" + (" as required (writers must now fill it)" if severity == "WARNING" else ""))
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        path = f"schema.{table}.properties.{name}"
        for key in ("logicalType", "physicalType"):
            if a.get(key) and b.get(key) and str(a[key]).lower() != str(b[key]).lower():
                add("ERROR", f"{path}.{key}", "updated", f"column {table}.{name} changed type", a[key], b[key])
        if bool(a.get("required")) and not bool(b.get("required")):
            add("WARNING", f"{path}.required", "updated", f"column {table}.{name} may now be null", True, False)
        elif not bool(a.get("required")) and bool(b.get("required")):
            add("INFO", f"{path}.required", "updated", f"column {table}.{name} is now always filled", False, True)
        for key in ("primaryKey", "unique"):
            if a.get(key) and not b.get(key):
                add("WARNING", f"{path}.{key}", "updated", f"column {table}.{name} is no longer {key}", True, False)
        if a.get("classification") != b.get("classification"):
            add("WARNING", f"{path}.classification", "updated", f"column {table}.{name} changed classification",
                a.get("classification"), b.get("classification"))
        old_rules, new_rules = len(a.get("quality") or []), len(b.get("quality") or [])
        if new_rules < old_rules:
            add("WARNING", f"{path}.quality", "removed", f"{old_rules - new_rules} quality rule(s) on {table}.{name} removed")
        elif new_rules > old_rules:
            add("INFO", f"{path}.quality", "added", f"{new_rules - old_rules} quality rule(s) on {table}.{name} added")
        for key in ("description", "businessName"):
            if a.get(key) != b.get(key):
                add("INFO", f"{path}.{key}", "updated", f"{key} of {table}.{name} changed", a.get(key), b.get(key))


def _number(value: Any) -> float | None:
    match = re.match(r"\s*(-?[\d.]+)", str(value)) if value is not None else None
    if not match:
        return None
    number = float(match.group(1))
    unit = str(value)[match.end():].strip().lower()
    scale = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "y": 31_536_000}
    return number * scale.get(unit, 1)


def _diff_sla(old: list, new: list, add) -> None:
    before = {str(p.get("property")): p for p in old if isinstance(p, dict)}
    after = {str(p.get("property")): p for p in new if isinstance(p, dict)}
    for name in sorted(before.keys() - after.keys()):
        add("WARNING", f"slaProperties.{name}", "removed", f"SLA {name} was removed", before[name].get("value"))
    for name in sorted(after.keys() - before.keys()):
        add("INFO", f"slaProperties.{name}", "added", f"SLA {name} was added", None, after[name].get("value"))
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name].get("value"), after[name].get("value")
        if a == b and before[name].get("unit") == after[name].get("unit"):
            continue
        x, y = _number(f"{a}{before[name].get('unit') or ''}"), _number(f"{b}{after[name].get('unit') or ''}")
        if x is None or y is None:
            add("WARNING", f"slaProperties.{name}", "updated", f"SLA {name} changed (cannot tell if weaker)", a, b)
            continue
        weaker = y < x if name in LARGER_IS_STRONGER else y > x
        add("WARNING" if weaker else "INFO", f"slaProperties.{name}", "updated",
            f"SLA {name} {'weakened' if weaker else 'strengthened'}: {a} -> {b}", a, b)


def _join_impact(contract: dict, changes: list[Change], workspace: Any) -> None:
    """For each ERROR on a column or table of a product in the workspace: what it breaks downstream."""
    from meshpilot.errors import NotFoundError
    from meshpilot.tools.lineage import impact

    domain, product = contract.get("domain"), contract.get("dataProduct")
    if not (domain and product):
        return
    for change in changes:
        if change.severity != "ERROR":
            continue
        parts = change.path.split(".")
        table = parts[1]
        column = parts[3] if len(parts) > 3 else None
        kind = "type" if change.change == "updated" else "drop"
        try:
            result = impact(f"mesh://{domain}/{product}/{table}", column=column, change=kind, workspace=workspace)
        except MeshpilotError as exc:
            if isinstance(exc, NotFoundError):
                continue
            raise
        change.breaks = [f"{i.kind} {i.ref}" for i in result.items
                         if i.status == "broken" and i.kind in ("product", "team", "contract")]
