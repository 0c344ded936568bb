"""Import from OpenMetadata: an export folder (the `sample_data` layout) or a live server.

Both read through openmetadata-ingestion's generated entity models, so what we accept is what
OpenMetadata itself accepts. That package is imported here, lazily, and nowhere else: its package
`__init__` wires the whole ingestion framework (profiler metrics, secrets managers, source loaders)
and takes 5-6 s, which an export does not need (see `_models`).

Mapping: each database schema becomes a data product (domain: the `--domain` option, else the
service name), each table a dataset, each test case a quality check with its results, each lineage
edge an OpenLineage JobEvent, users and teams become teams with members. The export carries no clock,
so times derive from its newest `updatedAt` (results: one a day back from it, newest first, as
OpenMetadata's own sample loader dates them); importing the same export twice changes nothing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote_plus

from typing_extensions import (  # pydantic needs this TypedDict before Python 3.12
    Required,
    TypedDict,
)

from meshpilot.errors import ConnectorError, ImportRejectedError, Problem
from meshpilot.mesh import files
from meshpilot.mesh.connectors.base import ImportBatch, apply_batch, read_json
from meshpilot.mesh.model import (
    CheckResult,
    Column,
    Contact,
    DataProduct,
    Dataset,
    OutputPort,
    QualityCheck,
    Team,
    slugify,
)
from meshpilot.mesh.workspace import Workspace

# openmetadata-ingestion's own models trip a pydantic warning on import; it says nothing to our users.
warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

PRODUCER = "https://github.com/meshpilot/meshpilot/connectors/openmetadata"
JOB_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent"
_STATUS = {"Success": "pass", "Failed": "fail", "Aborted": "error", "Queued": None}
_KINDS = {
    "columnValuesToBeNotNull": "not_null", "columnValuesToBeUnique": "unique",
    "columnValuesToBeInSet": "accepted_values", "columnValuesToBeBetween": "range",
    "columnValuesToMatchRegex": "regex", "tableRowCountToBeBetween": "row_count",
}


@dataclass
class _Table:
    fqn: str
    name: str
    service: str
    schema_fqn: str
    schema_description: str | None
    description: str | None
    columns: list[dict[str, Any]]  # as `_columns_adapter` validates them
    primary_key: list[str]
    updated_at_ms: int | None
    row_count: int | None
    owner_team: str | None = None


@dataclass
class _TestCase:
    name: str
    table_fqn: str
    column: str | None
    definition: str
    parameters: dict[str, Any]
    description: str | None
    results: list[tuple[str, str | None, datetime | None]] = field(default_factory=list)  # status, message, time


@dataclass
class _Catalog:
    source: str
    tables: list[_Table] = field(default_factory=list)
    edges: list[tuple[str, str, str | None, list[tuple[list[str], str]]]] = field(default_factory=list)
    tests: list[_TestCase] = field(default_factory=list)
    teams: list[tuple[str, str | None]] = field(default_factory=list)  # name, parent name
    users: list[tuple[str, str | None, list[str]]] = field(default_factory=list)  # display name, email, team names


def _models() -> None:
    """Make openmetadata-ingestion's generated models importable without its framework wiring.

    The generated models and the entity-link parser import nothing of what the package `__init__`
    registers, so the package module is put in place uninitialised (1 s instead of 6-7 s for an
    export import). `_framework()` runs the real `__init__` when the live client, which does use the
    wiring, is needed. A package already imported in full is left as it is.
    """
    if "metadata" in sys.modules:
        return
    spec = importlib.util.find_spec("metadata")
    if spec is None or spec.loader is None:
        raise ConnectorError("The OpenMetadata importer needs openmetadata-ingestion.",
                             hint="Install Meshpilot with the openmetadata extra: uv sync --extra openmetadata")
    package = importlib.util.module_from_spec(spec)
    package._meshpilot_uninitialised = spec  # type: ignore[attr-defined]
    sys.modules["metadata"] = package


def _framework() -> None:
    """openmetadata-ingestion with its package `__init__` run, as its client expects."""
    _models()
    package = sys.modules["metadata"]
    spec = package.__dict__.pop("_meshpilot_uninitialised", None)
    if spec is not None:
        spec.loader.exec_module(package)


def fqn_part(name: str) -> str:
    """OpenMetadata quotes an FQN part that contains a dot."""
    return f'"{name}"' if "." in name else name


# --- the export folder -----------------------------------------------------------------------------


def _export_root(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ImportRejectedError(f"{path} does not exist.", hint="Point the import at an OpenMetadata export folder.")
    if (path / "datasets" / "tables.json").exists():
        return path
    found = sorted(p.parent.parent for p in path.rglob("datasets/tables.json"))
    if not found:
        raise ImportRejectedError(
            f"No OpenMetadata export in {path}: no datasets/tables.json below it.",
            hint="Give the folder of an OpenMetadata export (sample_data layout: datasets/, lineage/, tests/, users/, teams/).")
    return found[0]


@cache
def _columns_adapter() -> Any:
    """Validates a table's columns: the fields the mapping reads, typed as OpenMetadata types them
    (its own DataType and Constraint enumerations), other fields left alone.

    OpenMetadata's generated Column model would check every field, but through its custom base model
    each column costs ~50 us (an after-validator per name re-runs its lazy imports): 16 s of a 10k-table
    import. Ignoring what is not mapped also keeps exports of newer OpenMetadata versions, which add
    column fields, importable.
    """
    _models()
    from metadata.ingestion.models.custom_basemodel_validation import revert_separators
    from pydantic import AfterValidator, StringConstraints, TypeAdapter

    table_module = "metadata.generated.schema.entity.data.table"
    DataType, Constraint = _enumeration(table_module, "DataType"), _enumeration(table_module, "Constraint")  # noqa: N806

    class Tag(TypedDict):
        tagFQN: str

    class ExportColumn(TypedDict, total=False):
        # OpenMetadata stores "::", ">", quotes and line breaks in names as reserved words; its own
        # models decode them on read, and so do we.
        name: Required[Annotated[str, StringConstraints(min_length=1), AfterValidator(revert_separators)]]
        dataType: Required[DataType]
        dataTypeDisplay: str | None
        description: str | None
        constraint: Constraint | None
        tags: list[Tag] | None

    return TypeAdapter(list[ExportColumn])


def _enumeration(module: str, name: str) -> type[Enum]:
    """An enumeration of OpenMetadata's generated models, read from the module's source.

    Importing the module that holds DataType builds its 500 pydantic models (0.6-0.8 s, most of a small
    import). Its enumerations are plain `NAME = 'value'` classes, so they are read from the source without
    running it; a module laid out otherwise is imported.
    """
    spec = importlib.util.find_spec(module)
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))  # type: ignore[union-attr, arg-type]
        body = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
        members = {t.targets[0].id: t.value.value for t in body if isinstance(t, ast.Assign)}  # type: ignore[attr-defined]
        if members and all(isinstance(v, str) for v in members.values()):
            return Enum(name, members, module=module)  # type: ignore[return-value]
    except (OSError, SyntaxError, StopIteration, AttributeError, IndexError, TypeError):
        pass
    return getattr(importlib.import_module(module), name)


def read_export(path: Path) -> _Catalog:
    _models()
    from pydantic import ValidationError

    root = _export_root(path)
    catalog = _Catalog(source=str(root))
    tables_file = root / "datasets" / "tables.json"
    data = read_json(tables_file, "OpenMetadata tables export")
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise ImportRejectedError(f"{tables_file} has no 'tables' list.", hint="Is this an OpenMetadata export?")
    schema_doc = _optional_json(root / "datasets" / "database_schema.json") or {}
    service_doc = _optional_json(root / "datasets" / "service.json") or {}
    columns_adapter = _columns_adapter()
    problems: list[Problem] = []
    for index, raw in enumerate(data["tables"]):
        where = f"{tables_file} (table {index + 1}: {raw.get('name', '?') if isinstance(raw, dict) else '?'})"
        if not isinstance(raw, dict) or not raw.get("name"):
            problems.append(Problem(where, "a table needs a 'name'"))
            continue
        try:
            columns = columns_adapter.validate_python(raw.get("columns") or [])
        except ValidationError as exc:
            problems += [Problem(where, _column_problem(e)) for e in exc.errors()[:5]]
            continue
        schema_ref = raw.get("databaseSchema") or {}
        schema_fqn = schema_ref.get("fullyQualifiedName") or schema_ref.get("name")
        if not schema_fqn:
            schema_fqn = ".".join(p for p in (service_doc.get("serviceName"), (raw.get("database") or {}).get("name"),
                                              schema_doc.get("name")) if p)
        if not schema_fqn:
            problems.append(Problem(where, "no databaseSchema: cannot tell which schema (product) the table is in"))
            continue
        profiles = raw.get("tableProfile") or []
        catalog.tables.append(_Table(
            fqn=f"{schema_fqn}.{fqn_part(raw['name'])}", name=raw["name"], service=schema_fqn.split(".")[0],
            schema_fqn=schema_fqn, schema_description=schema_ref.get("description") or schema_doc.get("description"),
            description=raw.get("description"), columns=columns,
            primary_key=_primary_key(raw.get("tableConstraints")), updated_at_ms=raw.get("updatedAt"),
            row_count=_row_count(profiles),
            owner_team=_owner_team(raw.get("owners") or ([raw["owner"]] if raw.get("owner") else [])),
        ))
    if problems:
        raise ImportRejectedError(f"{root} is not a valid OpenMetadata export, so nothing was imported:", problems=problems)
    catalog.edges = [(e["from"]["fqn"], e["to"]["fqn"], (e.get("edge_meta") or {}).get("fqn"), [])
                     for e in _optional_json(root / "lineage" / "lineage.json") or []
                     if e.get("from", {}).get("type", "table") == "table" and e.get("to", {}).get("type", "table") == "table"]
    catalog.tests = _export_tests(root, catalog)
    teams_doc = _optional_json(root / "teams" / "teams.json") or {}
    catalog.teams = [(t["name"], (t.get("parent") or [None])[0]) for t in teams_doc.get("teams", [])]
    users_doc = _optional_json(root / "users" / "users.json") or {}
    catalog.users = _users(users_doc.get("users", []))
    return catalog


def _column_problem(error: Any) -> str:
    field = ".".join(["columns", *map(str, error["loc"])])
    if error["type"] == "enum":
        # pydantic lists every member: OpenMetadata has 90 data types.
        expected = [v.strip(" '") for v in error["ctx"]["expected"].replace(" or ", ", ").split(", ")]
        shown = ", ".join(expected) if len(expected) <= 6 else f"{', '.join(expected[:6])}, ... {len(expected)} in all"
        return f"{field}: {error['input']!r} is not an OpenMetadata value here (one of {shown})"
    return f"{field}: {error['msg']}"


def _optional_json(path: Path) -> Any:
    return read_json(path, "OpenMetadata export file") if path.exists() else None


def _primary_key(constraints: list[dict[str, Any]] | None) -> list[str]:
    return [c for k in constraints or [] if k.get("constraintType") == "PRIMARY_KEY" for c in k.get("columns", [])]


def _row_count(profiles: list[dict[str, Any]] | dict[str, Any]) -> int | None:
    profiles = [profiles] if isinstance(profiles, dict) else [p for p in profiles if isinstance(p, dict)]
    latest = max(profiles, key=lambda p: str(p.get("timestamp") or p.get("profileDate") or ""), default=None)
    return int(latest["rowCount"]) if latest and latest.get("rowCount") is not None else None


def _owner_team(owners: list[dict[str, Any]]) -> str | None:
    return next((o.get("name") for o in owners if o.get("type") == "team" and o.get("name")), None)


def _users(users: list[dict[str, Any]]) -> list[tuple[str, str | None, list[str]]]:
    if not users:
        return []  # without loading the user models (0.1-0.2 s)
    from metadata.generated.schema.api.teams.createUser import CreateUserRequest

    result = []
    for user in users:
        request = CreateUserRequest(name=user["name"], displayName=user.get("displayName"), email=user["email"])
        teams = user.get("teams") or []
        names = [teams] if isinstance(teams, str) else [t.get("name") if isinstance(t, dict) else t for t in teams]
        result.append((request.displayName or request.name.root, request.email.root, [n for n in names if n]))
    return result


def _entity_link(link: str) -> tuple[str, str | None]:
    """<#E::table::FQN[::columns::COL]> -> (table FQN, column), split by OpenMetadata's own grammar.

    Its `metadata.utils.entity_link` helpers wrap this parser, but importing that module loads the table
    models and the ingestion constants (1.1 s); the generated parser alone loads in 25 ms.
    """
    _models()
    from antlr4 import CommonTokenStream, InputStream, ParseTreeWalker
    from antlr4.error.Errors import ParseCancellationException
    from antlr4.error.ErrorStrategy import BailErrorStrategy
    from metadata.antlr.split_listener import EntityLinkSplitListener
    from metadata.generated.antlr.EntityLinkLexer import EntityLinkLexer
    from metadata.generated.antlr.EntityLinkParser import EntityLinkParser

    lexer = EntityLinkLexer(InputStream(link))
    parser = EntityLinkParser(CommonTokenStream(lexer))
    for recognizer in (lexer, parser):
        recognizer.removeErrorListeners()  # they print to stderr; the error is raised instead
    parser._errHandler = BailErrorStrategy()  # stop at the first error instead of guessing a repair
    splitter = EntityLinkSplitListener()
    try:
        ParseTreeWalker().walk(splitter, parser.entitylink())
    except ParseCancellationException as exc:
        raise ValueError(f"{link!r} is not an OpenMetadata entity link (<#E::table::FQN[::columns::NAME]>)") from exc
    parts = splitter.split()
    if len(parts) == 2:
        return parts[1], None
    if len(parts) == 4 and parts[2] == "columns":
        return parts[1], unquote_plus(parts[3])
    raise ValueError(f"{link!r} links neither a table nor a column")


def _export_tests(root: Path, catalog: _Catalog) -> list[_TestCase]:
    suites = _optional_json(root / "tests" / "testSuites.json") or {}
    results_doc = _optional_json(root / "tests" / "testCaseResults.json") or {}
    reference = _reference_time(catalog)
    tests: dict[tuple[str, str], _TestCase] = {}
    problems: list[Problem] = []
    for suite_number, suite in enumerate(suites.get("tests", []), start=1):
        for case_number, case in enumerate(suite.get("testCases", []), start=1):
            where = f"{root / 'tests' / 'testSuites.json'} (suite {suite_number}, test case {case_number})"
            missing = [k for k in ("name", "entityLink", "testDefinitionName") if not case.get(k)]
            if missing:
                problems.append(Problem(where, f"a test case needs {', '.join(map(repr, missing))}"))
                continue
            try:
                table_fqn, column = _entity_link(case["entityLink"])
            except ValueError as exc:
                problems.append(Problem(where, str(exc)))
                continue
            tests[(table_fqn, f"{column}.{case['name']}" if column else case["name"])] = _TestCase(
                name=case["name"], table_fqn=table_fqn, column=column, definition=case["testDefinitionName"],
                parameters={p["name"]: p.get("value") for p in case.get("parameterValues", [])},
                description=case.get("description"))
    if problems:
        raise ImportRejectedError(f"{root} has test cases that cannot be read, so nothing was imported:",
                                  problems=problems[:20])
    for entry in results_doc.get("testCaseResults", []):
        # OpenMetadata's sample loader attaches results to dim_address unless a tableFqn is given.
        table_fqn = entry.get("tableFqn", "sample_data.ecommerce_db.shopify.dim_address")
        case = tests.get((table_fqn, entry["name"]))
        if case is None:
            continue
        for days, result in enumerate(entry.get("results", [])):
            case.results.append((result["testCaseStatus"], result.get("result"), reference - timedelta(days=days)))
    return list(tests.values())


def _reference_time(catalog: _Catalog) -> datetime:
    newest = max((t.updated_at_ms for t in catalog.tables if t.updated_at_ms), default=0)
    return datetime.fromtimestamp(newest / 1000, tz=UTC).replace(microsecond=0)


# --- a live server ---------------------------------------------------------------------------------


def read_live(host: str, token: str | None, timeout_s: int = 30) -> _Catalog:
    _framework()
    from metadata.generated.schema.entity.data.table import Table
    from metadata.generated.schema.entity.services.connections.metadata.openMetadataConnection import (
        OpenMetadataConnection,
    )
    from metadata.generated.schema.entity.teams.team import Team as OMTeam
    from metadata.generated.schema.entity.teams.user import User
    from metadata.generated.schema.security.client.openMetadataJWTClientConfig import (
        OpenMetadataJWTClientConfig,
    )
    from metadata.generated.schema.tests.testCase import TestCase
    from metadata.ingestion.ometa.ometa_api import OpenMetadata

    if not token:
        raise ConnectorError("A live OpenMetadata import needs a token.",
                             hint="Pass --token or set OPENMETADATA_JWT_TOKEN (a bot's JWT from Settings > Bots).")
    connection = OpenMetadataConnection(
        hostPort=host, authProvider="openmetadata",
        securityConfig=OpenMetadataJWTClientConfig(jwtToken=token),
    )
    try:
        # No retries with 30 s waits: an unreachable host should say so at once.
        om = OpenMetadata(connection, additional_client_config_arguments={"retry": 0, "timeout": timeout_s})
        tables = list(om.list_all_entities(entity=Table, fields=["columns", "tableConstraints", "owners", "profile"]))
        catalog = _Catalog(source=host)
        for table in tables:
            fqn = table.fullyQualifiedName.root
            schema_fqn = fqn.rsplit(".", 1)[0] if not fqn.endswith('"') else fqn[: fqn.rindex('."')]
            schema = table.databaseSchema
            profile = getattr(table, "profile", None)
            catalog.tables.append(_Table(
                fqn=fqn, name=table.name.root, service=fqn.split(".")[0], schema_fqn=schema_fqn,
                schema_description=(schema.description.root if schema and schema.description else None),
                description=table.description.root if table.description else None, columns=_columns_adapter().validate_python(
                    [c.model_dump(mode="json", exclude_none=True) for c in table.columns or []]),
                primary_key=[c for k in table.tableConstraints or [] if k.constraintType.value == "PRIMARY_KEY"
                             for c in k.columns or []],
                updated_at_ms=table.updatedAt.root if table.updatedAt else None,
                row_count=int(profile.rowCount) if profile and profile.rowCount is not None else None,
                owner_team=next((o.name for o in (table.owners.root if table.owners else []) if o.type == "team"), None),
            ))
            lineage = om.get_lineage_by_name(entity=Table, fqn=fqn, up_depth=1, down_depth=0) or {}
            catalog.edges += _live_edges(lineage, fqn)
        now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
        for case in om.list_all_entities(entity=TestCase, fields=["testDefinition"]):
            table_fqn, column = _entity_link(case.entityLink.root)
            results = om.get_test_case_results(case.fullyQualifiedName.root, 0, now_ms) or []
            catalog.tests.append(_TestCase(
                name=case.name.root, table_fqn=table_fqn, column=column,
                definition=case.testDefinition.name or case.testDefinition.fullyQualifiedName or "custom",
                parameters={p.name: p.value for p in case.parameterValues or []},
                description=case.description.root if case.description else None,
                results=[(r.testCaseStatus.value, r.result,
                          datetime.fromtimestamp(r.timestamp.root / 1000, tz=UTC)) for r in results],
            ))
        catalog.teams = [(t.name.root, (t.parents.root[0].name if t.parents and t.parents.root else None))
                         for t in om.list_all_entities(entity=OMTeam, fields=["parents"])]
        catalog.users = [(u.displayName or u.name.root, u.email.root,
                          [t.name for t in (u.teams.root if u.teams else [])])
                         for u in om.list_all_entities(entity=User, fields=["teams"])]
        return catalog
    except ConnectorError:
        raise
    except Exception as exc:  # the client raises requests, pydantic and its own errors alike
        raise ConnectorError(f"Could not read from the OpenMetadata server at {host}: {_reason(exc)}",
                             hint="Check --host (it ends in /api, e.g. http://localhost:8585/api), the token, "
                                  "and that the server is up.") from None


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Connection refused" in str(exc) or "Max retries" in str(exc) or "NewConnectionError" in str(exc):
        return "connection refused (is the server running and the host/port right?)"
    return text[:300]


def _live_edges(lineage: dict[str, Any], fqn: str) -> list[tuple[str, str, str | None, list]]:
    by_id = {n["id"]: n for n in lineage.get("nodes", [])}
    by_id[(lineage.get("entity") or {}).get("id")] = lineage.get("entity") or {}
    edges = []
    for edge in lineage.get("upstreamEdges", []):
        source = by_id.get(edge.get("fromEntity"), {})
        if source.get("type", "table") != "table" or not source.get("fullyQualifiedName"):
            continue
        details = edge.get("lineageDetails") or {}
        pipeline = (details.get("pipeline") or {}).get("fullyQualifiedName")
        columns = [(c.get("fromColumns") or [], c.get("toColumn")) for c in details.get("columnsLineage") or []
                   if c.get("toColumn")]
        edges.append((source["fullyQualifiedName"], fqn, pipeline, columns))
    return edges


# --- into the mesh ---------------------------------------------------------------------------------


def to_batch(catalog: _Catalog, domain: str | None) -> ImportBatch:
    services = sorted({t.service for t in catalog.tables})
    batch = ImportBatch(source=catalog.source, name=f"openmetadata-{slugify('-'.join(services) or 'catalog')}")
    team_ids = _teams(catalog, batch)
    products: dict[str, DataProduct] = {}
    by_fqn: dict[str, tuple[DataProduct, Dataset]] = {}
    for table in sorted(catalog.tables, key=lambda t: t.fqn):
        product = products.get(table.schema_fqn)
        if product is None:
            schema_name = table.schema_fqn.rsplit(".", 1)[-1].strip('"')
            product = products[table.schema_fqn] = DataProduct(
                id=slugify(schema_name), name=schema_name, domain=slugify(domain or table.service), source="openmetadata",
                description=table.schema_description or f"Tables of the schema {table.schema_fqn} in OpenMetadata.",
                tags=["openmetadata"],
            )
        # OpenMetadata owns tables, the mesh owns products: the first owning team found owns the product.
        product.owner = product.owner or team_ids.get(table.owner_team or "")
        dataset = Dataset(
            name=table.name, qualified_name=table.fqn, namespace=f"openmetadata://{table.service}",
            description=table.description, row_count=table.row_count,
            last_updated=datetime.fromtimestamp(table.updated_at_ms / 1000, tz=UTC) if table.updated_at_ms else None,
            columns=[_column(c, table.primary_key) for c in table.columns],
        )
        product.output_ports.append(OutputPort(name=slugify(table.name), kind="table", location=table.fqn, dataset=dataset))
        by_fqn[table.fqn] = (product, dataset)
    for test in catalog.tests:
        _add_test(test, by_fqn, batch)
    batch.events = _edge_events(catalog, by_fqn, batch)
    batch.products = list(products.values())
    return batch


def _column(column: dict[str, Any], primary_key: list[str]) -> Column:
    name = column["name"]
    tags = [t["tagFQN"] for t in column.get("tags") or []]
    pii = next((t for t in tags if t.lower().startswith("pii.") and not t.lower().endswith("nonsensitive")), None)
    constraint = column["constraint"].value if column.get("constraint") else None
    return Column(
        name=name, type=column.get("dataTypeDisplay") or column["dataType"].value,
        description=column.get("description"),
        nullable=constraint not in ("NOT_NULL", "PRIMARY_KEY") and name not in primary_key,
        primary_key=constraint == "PRIMARY_KEY" or name in primary_key, tags=tags, classification=pii,
    )


def _teams(catalog: _Catalog, batch: ImportBatch) -> dict[str, str]:
    teams: dict[str, Team] = {}
    for name, parent in catalog.teams:
        teams[name] = Team(id=slugify(name), name=name, parent=slugify(parent) if parent else None)
    for display, email, team_names in catalog.users:
        for team_name in team_names:
            team = teams.setdefault(team_name, Team(id=slugify(team_name), name=team_name))
            team.members.append(Contact(name=display, email=email))
    batch.teams = list(teams.values())
    return {name: team.id for name, team in teams.items()}


def _add_test(test: _TestCase, by_fqn: dict[str, tuple[DataProduct, Dataset]], batch: ImportBatch) -> None:
    if test.table_fqn not in by_fqn:
        batch.warnings.append(f"test case {test.name} is on {test.table_fqn}, which is not in the export; skipped")
        return
    product, dataset = by_fqn[test.table_fqn]
    params: dict[str, Any] = {"openmetadata_test": test.definition, **test.parameters}
    kind = _KINDS.get(test.definition, "custom")
    p = test.parameters
    if kind in ("range", "row_count"):
        for ours, theirs in (("min", "minValue"), ("max", "maxValue")):
            if p.get(theirs) not in (None, ""):
                params[ours] = float(p[theirs])
    elif kind == "regex":
        params["pattern"] = p.get("regex")
    elif kind == "accepted_values":
        values = p.get("allowedValues")
        params["values"] = json.loads(values) if isinstance(values, str) and values.startswith("[") else values
    check_id = slugify(f"{test.column}.{test.name}" if test.column else test.name)
    if test.column and dataset.column(test.column) is None:
        batch.warnings.append(f"test case {test.name} names column {test.column}, not in {test.table_fqn}; skipped")
        return
    dataset.checks.append(QualityCheck(id=check_id, kind=kind, column=test.column, description=test.description,
                                       params=params))
    for status, message, at in test.results:
        ours = _STATUS.get(status, "error")
        if ours:
            batch.results.append(CheckResult(check_id=check_id, dataset=str(product.dataset_ref(dataset.name)),
                                             status=ours, run_at=at, message=message))


def _edge_events(catalog: _Catalog, by_fqn: dict[str, tuple[DataProduct, Dataset]], batch: ImportBatch) -> list[dict[str, Any]]:
    event_time = _reference_time(catalog).isoformat()
    events = []
    for source, target, pipeline, columns in sorted(catalog.edges, key=str):
        missing = [f for f in (source, target) if f not in by_fqn]
        if missing:
            batch.warnings.append(f"lineage edge {source} -> {target} names tables not in the import: {', '.join(missing)}")

        def ol(fqn: str) -> dict[str, Any]:
            return {"namespace": f"openmetadata://{fqn.split('.')[0]}", "name": fqn}

        output = ol(target)
        if columns:
            output["facets"] = {"columnLineage": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
                "fields": {to.rsplit(".", 1)[-1]: {"inputFields": [
                    {**ol(f.rsplit(".", 1)[0]), "field": f.rsplit(".", 1)[-1]} for f in froms]}
                    for froms, to in columns},
            }}
        events.append({
            "eventTime": event_time, "producer": PRODUCER, "schemaURL": JOB_EVENT_SCHEMA,
            "job": {"namespace": f"openmetadata://{source.split('.')[0]}", "name": pipeline or f"lineage:{target}"},
            "inputs": [ol(source)], "outputs": [output],
        })
    return events


def import_export(workspace: Workspace, path: Path, domain: str | None = None) -> dict[str, Any]:
    with files.collection_paused():
        return apply_batch(workspace, to_batch(read_export(path), domain))


def import_live(workspace: Workspace, host: str, token: str | None, domain: str | None = None) -> dict[str, Any]:
    with files.collection_paused():
        return apply_batch(workspace, to_batch(read_live(host, token), domain))
