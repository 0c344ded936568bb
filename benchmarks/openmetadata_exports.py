"""OpenMetadata exports (the sample_data layout `meshpilot import openmetadata` reads) for benchmarks at
real sizes: a synthetic catalog of N tables with lineage, owners and test results, and the Spider
schemas (../shared/data/spider_dev/tables.json) as one service.

Both are written as OpenMetadata writes them, so a benchmark builds its workspace through the real
importer, as a user would."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("customer order invoice payment shipment product inventory warehouse supplier campaign click session "
         "revenue refund return account address email phone region country store channel device subscription plan "
         "churn forecast ledger balance transaction currency price discount coupon rating review ticket agent "
         "employee salary department budget asset contract vendor claim policy premium risk score event metric").split()
TYPES = (("VARCHAR", "varchar"), ("BIGINT", "bigint"), ("DATE", "date"), ("TIMESTAMP", "timestamp"),
         ("DECIMAL", "decimal(18,2)"), ("BOOLEAN", "boolean"), ("DOUBLE", "double"))
TABLES_PER_SCHEMA = 10
SERVICES = 10
TEAMS = 50
UPDATED_AT_MS = 1_764_547_200_000  # 2025-12-01


def _write(root: Path, relative: str, data: object) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def synthetic_export(root: Path, tables: int, seed: int = 7) -> dict:
    """N tables of 15-25 columns in schemas of ten, each schema owned by a team; each table after the
    first reads one or two of the few hundred before it (pipelines in the lineage file); 2% of tables
    have a failing not-null test. Returns what a benchmark needs to ask about it."""
    rng = random.Random(seed)
    written, edges, suites, results, failing = [], [], [], [], []
    for t in range(tables):
        service = f"svc{t % SERVICES}"
        schema = f"{service}.db.schema{t // (TABLES_PER_SCHEMA * SERVICES)}_{t % SERVICES}"
        topic = rng.sample(WORDS, 2)
        name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{t}"
        columns = [{"name": "id", "dataType": "BIGINT", "dataTypeDisplay": "bigint", "constraint": "PRIMARY_KEY",
                    "description": f"Identifies one {topic[0]}.", "ordinalPosition": 1}]
        for c in range(rng.randint(14, 24)):
            data_type, display = rng.choice(TYPES)
            columns.append({
                "name": f"{rng.choice(WORDS)}_{rng.choice(('id', 'name', 'amount', 'date', 'code', 'count'))}_{c}",
                "dataType": data_type, "dataTypeDisplay": display, "ordinalPosition": c + 2,
                "description": f"The {rng.choice(WORDS)} {rng.choice(WORDS)} of the {topic[0]}.",
                "tags": [{"tagFQN": "PII.Sensitive", "source": "Classification", "labelType": "Manual",
                          "state": "Confirmed"}] if rng.random() < 0.01 else []})
        written.append({
            "name": name, "fullyQualifiedName": f"{schema}.{name}", "tableType": "Regular", "version": 0.1,
            "updatedAt": UPDATED_AT_MS, "columns": columns,
            "description": f"{topic[0].capitalize()} {topic[1]} facts: {' '.join(rng.sample(WORDS, 6))}.",
            "databaseSchema": {"fullyQualifiedName": schema, "name": schema.rsplit(".", 1)[-1],
                               "description": f"Data about {topic[0]} and {topic[1]}."},
            "owners": [{"type": "team", "name": f"team{(t // TABLES_PER_SCHEMA) % TEAMS}"}],
        })
        if t:
            for source in sorted({max(0, t - rng.randint(1, 300)) for _ in range(rng.randint(1, 2))}):
                edges.append({"from": {"fqn": written[source]["fullyQualifiedName"], "type": "table"},
                              "to": {"fqn": f"{schema}.{name}", "type": "table"},
                              "edge_meta": {"fqn": f"airflow.load_{name}", "type": "pipeline"}})
        if rng.random() < 0.02 or t == tables // 2:
            case = f"{name}_id_not_null"
            failing.append(case)
            suites.append({"name": case, "description": "No order without an id.",
                           "entityLink": f"<#E::table::{schema}.{name}::columns::id>",
                           "testDefinitionName": "columnValuesToBeNotNull", "parameterValues": []})
            results.append({"name": f"id.{case}", "tableFqn": f"{schema}.{name}", "results": [
                {"testCaseStatus": "Failed", "result": "Found 12 null values."},
                {"testCaseStatus": "Success", "result": "Found 0 null values."}]})
    _write(root, "datasets/tables.json", {"tables": written})
    _write(root, "lineage/lineage.json", edges)
    _write(root, "tests/testSuites.json", {"tests": [{"testSuiteName": "bench", "testCases": suites}]})
    _write(root, "tests/testCaseResults.json", {"testCaseResults": results})
    _write(root, "teams/teams.json", {"teams": [{"name": f"team{i}", "displayName": f"Team {i}"} for i in range(TEAMS)]})
    middle = written[tables // 2]
    return {"tables": tables, "columns": sum(len(t["columns"]) for t in written), "middle_fqn": middle["fullyQualifiedName"],
            "middle_column": middle["columns"][1]["name"], "failing_check": f"{middle['name']}_id_not_null"}


SPIDER_TYPES = {"number": ("NUMERIC", "numeric"), "time": ("TIMESTAMP", "timestamp"),
                "boolean": ("BOOLEAN", "boolean"), "text": ("VARCHAR", "varchar")}


def spider_export(root: Path, tables_json: Path) -> dict:
    """Every Spider schema as an OpenMetadata database schema of the service 'spider' (876 tables)."""
    written = []
    for db in json.loads(tables_json.read_text()):
        schema = f"spider.{db['db_id']}.main"
        keys = set(db["primary_keys"]) | {k for pair in db["primary_keys"] if isinstance(pair, list) for k in pair}
        for index, table in enumerate(db["table_names_original"]):
            columns = []
            for position, ((owner, column), kind) in enumerate(zip(db["column_names_original"], db["column_types"],
                                                                   strict=True)):
                if owner != index:
                    continue
                data_type, display = SPIDER_TYPES.get(kind, ("VARCHAR", "varchar"))
                columns.append({"name": column, "dataType": data_type, "dataTypeDisplay": display,
                                "ordinalPosition": len(columns) + 1,
                                **({"constraint": "PRIMARY_KEY"} if position in keys else {}),
                                "description": db["column_names"][position][1]})
            written.append({"name": table, "fullyQualifiedName": f"{schema}.{table}", "tableType": "Regular",
                            "updatedAt": UPDATED_AT_MS, "columns": columns,
                            "description": f"{db['table_names'][index]} ({db['db_id'].replace('_', ' ')})",
                            "databaseSchema": {"fullyQualifiedName": schema, "name": db["db_id"]}})
    _write(root, "datasets/tables.json", {"tables": written})
    return {"tables": len(written), "columns": sum(len(t["columns"]) for t in written)}


def one_schema_export(source: Path, root: Path, schema_fqn: str, description: str) -> int:
    """The export of one schema of `source` (its tables, the lineage into them, their tests and the same
    teams), with its first table described anew: what a source re-exports after one change there.
    Returns the number of tables."""
    tables = [t for t in json.loads((source / "datasets/tables.json").read_text())["tables"]
              if t["databaseSchema"]["fullyQualifiedName"] == schema_fqn]
    tables[0] = dict(tables[0], description=description)
    names = {t["fullyQualifiedName"] for t in tables}
    edges = [e for e in json.loads((source / "lineage/lineage.json").read_text()) if e["to"]["fqn"] in names]
    suites = json.loads((source / "tests/testSuites.json").read_text())
    for suite in suites["tests"]:
        suite["testCases"] = [c for c in suite["testCases"] if c["entityLink"].split("::")[2] in names]
    results = json.loads((source / "tests/testCaseResults.json").read_text())
    results["testCaseResults"] = [r for r in results["testCaseResults"] if r.get("tableFqn") in names]
    _write(root, "datasets/tables.json", {"tables": tables})
    _write(root, "lineage/lineage.json", edges)
    _write(root, "tests/testSuites.json", suites)
    _write(root, "tests/testCaseResults.json", results)
    _write(root, "teams/teams.json", json.loads((source / "teams/teams.json").read_text()))
    return len(tables)
