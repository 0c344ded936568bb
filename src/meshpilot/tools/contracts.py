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
    return files.json_schema_errors(_validator(api_version), _jsonable(data))


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
            # Mesh entities are listed before datasets and columns: the first few hundred hold all of them.
            result = impact(f"mesh://{domain}/{product}/{table}", column=column, change=kind, workspace=workspace,
                            limit=500)
        except MeshpilotError as exc:
            if isinstance(exc, NotFoundError):
                continue
            raise
        change.breaks = [f"{i.kind} {i.ref}" for i in result.items
                         if i.status == "broken" and i.kind in ("product", "team", "contract")]


# --- draft -----------------------------------------------------------------------------------------------

_EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_PHONE = r"^\+?[0-9][0-9 ().-]{6,}$"
VALUE_SET_LIMIT = 10


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def profile_dataset(engine: Any, qualified_name: str, columns: list[Any]) -> dict[str, dict[str, Any]]:
    """Per column: rows, nulls, distinct values, min/max, value set (low cardinality), e-mail/phone share."""
    table = ".".join(_quote(p) for p in qualified_name.split("."))
    profile: dict[str, dict[str, Any]] = {}
    for column in columns:
        c = _quote(column.name)
        text = column.type.upper().startswith(("VARCHAR", "TEXT", "STRING"))
        ordered = not column.type.upper().startswith(("BOOLEAN", "STRUCT", "MAP", "LIST"))
        query = (f"SELECT count(*), count(*) - count({c}), approx_count_distinct({c})"
                 + (f", min({c})::VARCHAR, max({c})::VARCHAR" if ordered else ", NULL, NULL")
                 + (f", avg(CASE WHEN regexp_matches({c}, '{_EMAIL}') THEN 1.0 ELSE 0 END),"
                    f" avg(CASE WHEN regexp_matches({c}, '{_PHONE}') THEN 1.0 ELSE 0 END)" if text else ", 0, 0")
                 + f" FROM {table}")
        _, rows = engine.execute(query, timeout_s=30)
        total, nulls, distinct, low, high, emails, phones = rows[0]
        entry = {"rows": total, "nulls": nulls, "distinct": distinct, "min": low, "max": high,
                 "email_share": float(emails or 0), "phone_share": float(phones or 0)}
        if text and distinct is not None and distinct <= VALUE_SET_LIMIT:
            _, values = engine.execute(f"SELECT DISTINCT {c} FROM {table} WHERE {c} IS NOT NULL ORDER BY 1 LIMIT 11", 30)
            entry["values"] = [v[0] for v in values]
        if distinct is not None and total and distinct >= total - nulls and nulls == 0:
            _, dupes = engine.execute(f"SELECT count(*) - count(DISTINCT {c}) FROM {table}", 30)
            entry["unique"] = dupes[0][0] == 0
        profile[column.name] = entry
    return profile


def classify(column: Any, stats: dict[str, Any]) -> str | None:
    """A PII type from the catalog, the column's values, or its name."""
    if column.classification:
        return column.classification
    if stats.get("email_share", 0) >= 0.9:
        return "EMAIL_ADDRESS"
    if stats.get("phone_share", 0) >= 0.9 and not column.name.endswith("_id"):
        return "PHONE_NUMBER"
    name = column.name.lower()
    for pattern, kind in ((r"e_?mail", "EMAIL_ADDRESS"), (r"phone|mobile", "PHONE_NUMBER"),
                          (r"first_?name|last_?name|full_?name|surname", "PERSON"),
                          (r"address|street|city|zip|postcode", "LOCATION"), (r"birth|dob", "DATE_OF_BIRTH")):
        if re.search(pattern, name):
            return kind
    return None


def describe_with_model(contract: dict[str, Any], model: Any) -> list[str]:
    """Fill missing column descriptions through the governed prompt. The model's answer can only set
    descriptions of columns that exist: unknown names are ignored, so it never adds or renames a column."""
    from meshpilot.prompts import registry

    prompt = registry.load("contract_describe")
    ignored: list[str] = []
    for obj in contract.get("schema") or []:
        missing = [p for p in obj.get("properties") or [] if not p.get("description")]
        if not missing:
            continue
        lines = "\n".join(f"- {p['name']} ({p.get('physicalType') or p.get('logicalType')}"
                          + (f", {p['classification']}" if p.get("classification") else "") + ")" for p in missing)
        reply = model.invoke(prompt.render(table=obj.get("name"), table_description=obj.get("description") or "",
                                           columns=lines))
        text = str(getattr(reply, "content", reply))
        match = re.search(r"\{.*\}", text, re.DOTALL)
        try:
            answer = json.loads(match.group(0)) if match else {}
        except json.JSONDecodeError:
            answer = {}
        by_name = {p["name"]: p for p in missing}
        for name, description in answer.items() if isinstance(answer, dict) else []:
            if name in by_name and isinstance(description, str) and description.strip():
                by_name[name]["description"] = description.strip()[:500]
            else:
                ignored.append(str(name))
    contract.setdefault("customProperties", []).append({"property": "descriptionsBy", "value": prompt.ref})
    return ignored


def draft_contract(target: str, workspace: Any, model: Any | None = None) -> dict[str, Any]:
    """An ODCS v3.1.0 contract for a product (id, domain/id or mesh:// ref) or one of its datasets, from the
    catalog (owners, domain, descriptions) and a profile of the data (types, nulls, uniqueness, ranges,
    value sets, PII, freshness)."""
    from datetime import UTC, datetime

    from meshpilot.mesh.model import MeshRef, logical_type
    from meshpilot.mesh.store import MeshStore
    from meshpilot.tools.sql import DuckDBEngine

    with MeshStore.open(workspace) as store:
        product = store.product(str(MeshRef.parse(target).product_ref()) if target.startswith("mesh://") else target)
        team = store.product_details(str(product.ref))["owner_team"]
    wanted = MeshRef.parse(target).dataset if target.startswith("mesh://") else None
    datasets = [d for d in product.datasets if wanted in (None, d.name)]
    if wanted and not datasets:
        raise InvalidArgumentError(f"{product.ref} has no dataset '{wanted}'.")
    engine = DuckDBEngine(workspace.warehouse_path)
    schema, latency_hours = [], None
    for dataset in datasets:
        try:
            stats = profile_dataset(engine, dataset.qualified_name, dataset.columns)
        except MeshpilotError:
            stats = {}  # not in the warehouse (an imported dataset): the catalog alone drafts it
        properties = []
        for column in dataset.columns:
            s = stats.get(column.name, {})
            prop: dict[str, Any] = {"name": column.name, "logicalType": logical_type(column.type.upper()),
                                    "physicalType": column.type}
            if column.description:
                prop["description"] = column.description
            if s and s["nulls"] == 0 and s["rows"]:
                prop["required"] = True
            if s.get("unique"):
                prop["unique"] = True
            if column.primary_key:
                prop["primaryKey"] = True
            kind = classify(column, s)
            if kind:
                prop["classification"] = kind
                prop["tags"] = ["pii"]
            rules = []
            if s and s["nulls"] == 0 and s["rows"]:
                rules.append({"type": "library", "metric": "nullValues", "mustBe": 0, "dimension": "completeness",
                              "description": f"observed: no nulls in {s['rows']} rows"})
            elif s and s["rows"]:
                share = s["nulls"] / s["rows"]
                rules.append({"type": "library", "metric": "nullValues", "unit": "percent", "dimension": "completeness",
                              "mustBeLessOrEqualTo": round(min(100.0, share * 100 * 1.5 + 0.5), 2),
                              "description": f"observed: {share:.2%} nulls"})
            if s.get("unique"):
                rules.append({"type": "library", "metric": "duplicateValues", "mustBe": 0, "dimension": "uniqueness"})
            if s.get("values"):
                rules.append({"type": "library", "metric": "invalidValues", "mustBe": 0, "dimension": "conformity",
                              "arguments": {"validValues": s["values"]}})
            if kind == "EMAIL_ADDRESS" and s:
                rules.append({"type": "library", "metric": "invalidValues", "mustBe": 0, "dimension": "conformity",
                              "arguments": {"pattern": _EMAIL}})
            low = _number(s.get("min")) if logical_type(column.type.upper()) in ("number", "integer") else None
            if low is not None and low >= 0:
                rules.append({"type": "sql", "mustBe": 0, "dimension": "accuracy", "description": "never negative",
                              "query": f"SELECT count(*) FROM ${{object}} WHERE {_quote(column.name)} < 0"})
            if rules:
                prop["quality"] = rules
            if column.type.upper().startswith("TIMESTAMP") and s.get("max"):
                age = datetime.now(tz=UTC) - datetime.fromisoformat(str(s["max"]).replace(" ", "T"))
                latency_hours = max(latency_hours or 0, age.total_seconds() / 3600)
            properties.append(prop)
        obj: dict[str, Any] = {"name": dataset.name, "physicalName": dataset.qualified_name, "physicalType": "table",
                               "logicalType": "object", "properties": properties}
        if dataset.description:
            obj["description"] = dataset.description
        rows = next(iter(stats.values()), {}).get("rows") if stats else None
        if rows:
            obj["quality"] = [{"type": "library", "metric": "rowCount", "mustBeGreaterThan": 0,
                               "dimension": "completeness", "description": f"observed: {rows} rows"}]
        schema.append(obj)
    contract: dict[str, Any] = {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": f"{product.domain}-{product.id}",
        "name": product.name, "version": product.version, "status": "draft", "domain": product.domain,
        "dataProduct": product.id, "schema": schema,
    }
    if product.description:
        contract["description"] = {"purpose": product.description}
    if team:
        contract["team"] = {"name": team["name"], "members": [
            {"username": m["email"] or m["name"], "name": m["name"], "role": m["role"]} for m in team["members"]]}
    sla = [{"property": s_.kind.value if s_.kind.value != "freshness" else "latency",
            "value": (int(s_.target.total_seconds() // 3600) if hasattr(s_.target, "total_seconds") else s_.target),
            "unit": "h" if hasattr(s_.target, "total_seconds") else "ratio"} for s_ in product.slos]
    if not sla and latency_hours is not None:
        sla.append({"property": "latency", "value": max(1, int(latency_hours) + 1), "unit": "h",
                    "description": "observed age of the newest row, rounded up"})
    if sla:
        contract["slaProperties"] = sla
    if model is not None:
        describe_with_model(contract, model)
    return contract


# --- test ------------------------------------------------------------------------------------------------


class RuleResult(BaseModel):
    object: str
    property: str | None
    rule: str
    status: str  # pass, fail, error, skipped
    observed: Any = None
    expected: str | None = None
    message: str | None = None
    failing_rows: list[dict[str, Any]] = []


class ContractTest(BaseModel):
    source: str
    ok: bool
    counts: dict[str, int]
    results: list[RuleResult]


_BOUNDS = {"mustBe": lambda v, x: v == x, "mustNotBe": lambda v, x: v != x, "mustBeGreaterThan": lambda v, x: v > x,
           "mustBeGreaterOrEqualTo": lambda v, x: v >= x, "mustBeLessThan": lambda v, x: v < x,
           "mustBeLessOrEqualTo": lambda v, x: v <= x,
           "mustBeBetween": lambda v, x: x[0] <= v <= x[1], "mustNotBeBetween": lambda v, x: not x[0] <= v <= x[1]}


def _judge(rule: dict, observed: float) -> tuple[bool, str] | None:
    for key, check in _BOUNDS.items():
        if key in rule:
            return check(observed, rule[key]), f"{key} {rule[key]}"
    return None


def test_contract(source: str | Path, workspace: Any, engine: Any = None, sample_rows: int = 3) -> ContractTest:
    """Run a contract's schema and quality rules on the data; failing rows come with PII masked."""
    from meshpilot.tools.sql import DuckDBEngine, run_validated, workspace_schema

    data = _load(source).data
    engine = engine or DuckDBEngine(workspace.warehouse_path)
    sql_schema = workspace_schema(workspace)
    results: list[RuleResult] = []
    for obj in data.get("schema") or []:
        name = obj.get("physicalName") or obj.get("name")
        table = ".".join(_quote(p) for p in str(name).split("."))
        pii = {p["name"] for p in obj.get("properties") or [] if p.get("classification")}
        try:
            columns, _ = engine.execute(f"SELECT * FROM {table} LIMIT 0", timeout_s=10)
        except MeshpilotError as exc:
            results.append(RuleResult(object=name, property=None, rule="exists", status="error", message=exc.message))
            continue
        total = engine.execute(f"SELECT count(*) FROM {table}", 30)[1][0][0]

        probe = _Probe(engine, table, pii, sample_rows)

        for rule in obj.get("quality") or []:
            results.append(_table_rule(rule, name, table, total, sql_schema, engine, run_validated))
        for prop in obj.get("properties") or []:
            column = prop.get("name")
            if column not in columns:
                results.append(RuleResult(object=name, property=column, rule="exists", status="fail",
                                          message=f"column {column} is not in {name}"))
                continue
            c = _quote(column)
            if prop.get("required"):
                nulls = engine.execute(f"SELECT count(*) FROM {table} WHERE {c} IS NULL", 30)[1][0][0]
                results.append(RuleResult(object=name, property=column, rule="required", status="pass" if nulls == 0 else "fail",
                                          observed=nulls, expected="0 nulls",
                                          failing_rows=probe.sample(f"{c} IS NULL") if nulls else []))
            for rule in prop.get("quality") or []:
                results.append(_column_rule(rule, name, table, column, total, probe))
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error", "skipped")}
    return ContractTest(source=str(source), ok=counts["fail"] == 0 and counts["error"] == 0, counts=counts,
                        results=results)


def _mask(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    return text[:1] + "***" if text else text


class _Probe:
    """Counts and samples the rows of one table that break a rule; PII in samples is masked."""

    def __init__(self, engine: Any, table: str, pii: set[str], sample_rows: int):
        self.engine, self.table, self.pii, self.sample_rows = engine, table, pii, sample_rows

    def count(self, where: str) -> int:
        return self.engine.execute(f"SELECT count(*) FROM {self.table} WHERE {where}", 30)[1][0][0]

    def sample(self, where: str) -> list[dict[str, Any]]:
        cols, rows = self.engine.execute(f"SELECT * FROM {self.table} WHERE {where} LIMIT {self.sample_rows}", 30)
        return [{c: (_mask(v) if c in self.pii else v) for c, v in zip(cols, row, strict=True)} for row in rows]


def _column_rule(rule: dict, name: str, table: str, column: str, total: int, probe: _Probe) -> RuleResult:
    c = _quote(column)
    metric = str(rule.get("metric") or rule.get("rule") or rule.get("type"))
    args = rule.get("arguments") or {}
    violation = None
    if metric in ("nullValues", "missingValues", "nullCheck"):
        violation = f"{c} IS NULL"
    elif metric == "invalidValues" and args.get("validValues") is not None:
        values = ", ".join("'" + str(v).replace("'", "''") + "'" for v in args["validValues"] if v is not None)
        violation = f"{c} IS NOT NULL AND {c}::VARCHAR NOT IN ({values})" if values else None
    elif metric == "invalidValues" and args.get("pattern"):
        pattern = str(args["pattern"]).replace("'", "''")
        violation = f"{c} IS NOT NULL AND NOT regexp_matches({c}::VARCHAR, '{pattern}')"
    elif metric in ("duplicateValues", "uniqueCheck"):
        violation = f"{c} IN (SELECT {c} FROM {table} GROUP BY {c} HAVING count(*) > 1)"
    if violation is None:
        return RuleResult(object=name, property=column, rule=metric, status="skipped",
                          message="this rule type is not run by Meshpilot (custom or engine-specific)")
    count = probe.count(violation)
    observed = round(100.0 * count / total, 4) if rule.get("unit") == "percent" and total else count
    passed, expected = _judge(rule, observed) or (observed == 0, "mustBe 0")
    return RuleResult(object=name, property=column, rule=metric, status="pass" if passed else "fail",
                      observed=observed, expected=expected, failing_rows=[] if passed else probe.sample(violation))


def _table_rule(rule: dict, name: str, table: str, total: int, sql_schema, engine, run_validated) -> RuleResult:
    metric = rule.get("metric") or rule.get("rule") or rule.get("type")
    if metric == "rowCount":
        verdict = _judge(rule, total) or (total > 0, "mustBeGreaterThan 0")
        return RuleResult(object=name, property=None, rule="rowCount", status="pass" if verdict[0] else "fail",
                          observed=total, expected=verdict[1])
    if rule.get("type") == "sql" and rule.get("query"):
        query = str(rule["query"]).replace("${object}", name).replace("{object}", name)
        try:
            result = run_validated(query, sql_schema, engine, "duckdb", 10, 30)
        except MeshpilotError as exc:
            return RuleResult(object=name, property=None, rule="sql", status="error",
                              message=str(exc.problems[0]) if exc.problems else exc.message)
        observed = result.rows[0][0] if result.rows and result.rows[0] else None
        verdict = _judge(rule, observed) if observed is not None else None
        return RuleResult(object=name, property=None, rule="sql", status="pass" if verdict and verdict[0] else "fail",
                          observed=observed, expected=verdict[1] if verdict else None)
    return RuleResult(object=name, property=None, rule=str(metric), status="skipped",
                      message="this rule type is not run by Meshpilot (custom or engine-specific)")
