"""The domain model of a data mesh, as pydantic v2 models.

These are the shapes of the workspace's YAML files (extra fields are refused, so a misspelt key is
reported rather than silently ignored) and of what tools return. `MeshRef` is the stable identifier
every answer cites: `mesh://<domain>/<product>[/<dataset>[#<column>]]`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meshpilot.errors import InvalidReferenceError

SCHEME = "mesh://"
# What quote() leaves as it is with safe='': most names, which then skip quote() (a catalog of 200k
# columns formats a reference per column).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _encoded(part: str) -> str:
    return part if _UNRESERVED.fullmatch(part) else quote(part, safe="")


def column_ref_text(dataset_ref_text: str, column: str) -> str:
    """`str(MeshRef.parse(dataset_ref_text).with_column(column))`, without building a reference: an index
    build writes one per column."""
    return f"{dataset_ref_text}#{_encoded(column)}"

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Slug = Annotated[str, Field(pattern=NAME_PATTERN, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- identifiers -----------------------------------------------------------------------------------


class MeshRef(BaseModel):
    """`mesh://<domain>/<product>[/<dataset>[#<column>]]`, segments percent-encoded.

    Dataset and column names come from foreign catalogs and may hold '/', '#' or spaces, so every
    segment is percent-encoded; domain and product ids are slugs.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    product: str
    dataset: str | None = None
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> MeshRef:
        if not text.startswith(SCHEME):
            raise InvalidReferenceError(
                f"'{text}' is not a mesh reference",
                hint="Write it as mesh://<domain>/<product>[/<dataset>[#<column>]].",
            )
        body = text[len(SCHEME) :]
        body, _, column = body.partition("#")
        parts = body.split("/")
        has_column = "#" in text
        if len(parts) not in (2, 3) or not all(parts) or (has_column and (len(parts) != 3 or not column)):
            raise InvalidReferenceError(
                f"'{text}' is not a valid mesh reference",
                hint="Write it as mesh://<domain>/<product>[/<dataset>[#<column>]] (percent-encode '/' and '#' in names).",
            )
        return cls(
            domain=unquote(parts[0]),
            product=unquote(parts[1]),
            dataset=unquote(parts[2]) if len(parts) == 3 else None,
            column=unquote(column) if column else None,
        )

    def __str__(self) -> str:
        text = f"{SCHEME}{_encoded(self.domain)}/{_encoded(self.product)}"
        if self.dataset is not None:
            text += f"/{_encoded(self.dataset)}"
            if self.column is not None:
                text += f"#{_encoded(self.column)}"
        return text

    def product_ref(self) -> MeshRef:
        return MeshRef(domain=self.domain, product=self.product)

    def dataset_ref(self) -> MeshRef:
        return MeshRef(domain=self.domain, product=self.product, dataset=self.dataset)

    def with_column(self, column: str) -> MeshRef:
        return MeshRef(domain=self.domain, product=self.product, dataset=self.dataset, column=column)


# --- people ------------------------------------------------------------------------------------------


class Contact(Strict):
    name: str
    email: str | None = None
    role: str | None = None
    slack: str | None = None


class Team(Strict):
    id: Slug
    name: str
    domain: str | None = None
    description: str | None = None
    members: list[Contact] = Field(default_factory=list)
    slack_channel: str | None = None
    oncall: str | None = Field(None, description="Who to page: a contact's email or a rota name.")
    parent: str | None = None


# --- datasets ----------------------------------------------------------------------------------------


class Column(Strict):
    name: str
    type: str = "UNKNOWN"
    description: str | None = None
    nullable: bool = True
    primary_key: bool = False
    references: str | None = Field(
        None, description="Foreign key target as '<dataset>.<column>' in the same product, or a mesh:// column."
    )
    tags: list[str] = Field(default_factory=list)
    classification: str | None = Field(
        None, description="PII type (EMAIL_ADDRESS, PHONE_NUMBER, PERSON, LOCATION, DATE_OF_BIRTH...) or a sensitivity."
    )


class CheckKind(StrEnum):
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    ACCEPTED_VALUES = "accepted_values"
    RANGE = "range"
    REGEX = "regex"
    ROW_COUNT = "row_count"
    FRESHNESS = "freshness"
    SQL = "sql"
    CUSTOM = "custom"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class QualityCheck(Strict):
    id: Slug
    kind: CheckKind
    column: str | None = None
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = Severity.ERROR
    schedule: str | None = None


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"


class CheckResult(Strict):
    check_id: str
    dataset: str = Field(description="The mesh:// reference of the checked dataset.")
    status: CheckStatus
    run_at: datetime | None = None
    observed: Any = None
    message: str | None = None

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_ref(cls, value: str) -> str:
        ref = MeshRef.parse(value)
        if ref.dataset is None or ref.column is not None:
            raise ValueError(f"'{value}' must name a dataset: mesh://<domain>/<product>/<dataset>")
        return value


class Dataset(Strict):
    name: str
    qualified_name: str = Field(description="Name in its engine, e.g. 'commerce.orders' in the DuckDB warehouse.")
    namespace: str | None = Field(None, description="OpenLineage namespace of the dataset, when known.")
    description: str | None = None
    columns: list[Column] = Field(default_factory=list)
    row_count: int | None = None
    last_updated: datetime | None = Field(None, description="Freshness: when the data last changed.")
    tags: list[str] = Field(default_factory=list)
    checks: list[QualityCheck] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Dataset:
        for label, names in (("column", [c.name for c in self.columns]), ("check", [c.id for c in self.checks])):
            if len(set(names)) == len(names):
                continue
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {label} names in dataset '{self.name}': {', '.join(duplicates)}")
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


class PortKind(StrEnum):
    TABLE = "table"
    VIEW = "view"
    FILE = "file"
    STREAM = "stream"
    API = "api"


class OutputPort(Strict):
    name: Slug
    kind: PortKind = PortKind.TABLE
    location: str = Field(description="Where consumers read it: a warehouse table, a path, a topic, a URL.")
    description: str | None = None
    dataset: Dataset


# --- products ---------------------------------------------------------------------------------------


class SLOKind(StrEnum):
    FRESHNESS = "freshness"
    COMPLETENESS = "completeness"
    AVAILABILITY = "availability"


class SLO(Strict):
    kind: SLOKind
    target: float | timedelta = Field(
        description="Freshness: the maximum age (ISO 8601 duration such as PT24H); others: a ratio in [0, 1]."
    )
    dataset: str | None = Field(None, description="The dataset it applies to; all of the product's when absent.")
    column: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _target_fits_kind(self) -> SLO:
        if self.kind is SLOKind.FRESHNESS and not isinstance(self.target, timedelta):
            raise ValueError("a freshness SLO's target is a duration such as PT24H")
        if self.kind is not SLOKind.FRESHNESS and not (isinstance(self.target, float) and 0 <= self.target <= 1):
            raise ValueError(f"a {self.kind.value} SLO's target is a ratio between 0 and 1, such as 0.99")
        return self


class ProductStatus(StrEnum):
    PROPOSED = "proposed"
    DRAFT = "draft"
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class Consumer(Strict):
    name: str = Field(description="A consuming team, application, or mesh:// product reference.")
    kind: str = "team"
    purpose: str | None = None
    contact: str | None = None


class DataProduct(Strict):
    id: Slug
    name: str
    domain: Slug
    owner: str | None = Field(None, description="The id of the owning team (teams.yaml).")
    contacts: list[Contact] = Field(default_factory=list)
    description: str | None = None
    status: ProductStatus = ProductStatus.ACTIVE
    version: str = "0.1.0"
    tags: list[str] = Field(default_factory=list)
    consumers: list[Consumer] = Field(default_factory=list)
    inputs: list[str] = Field([], description="mesh:// references of upstream products.")
    output_ports: list[OutputPort] = Field(default_factory=list)
    slos: list[SLO] = Field(default_factory=list)
    contract: str | None = Field(None, description="Path of its ODCS contract, relative to the workspace.")
    source: str | None = Field(None, description="Where it was imported from (openmetadata, dbt...), if imported.")

    @model_validator(mode="after")
    def _datasets_are_unique(self) -> DataProduct:
        names = [p.dataset.name for p in self.output_ports]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two output ports expose the same dataset name: {', '.join(duplicates)}")
        return self

    @property
    def ref(self) -> MeshRef:
        return MeshRef(domain=self.domain, product=self.id)

    @property
    def datasets(self) -> list[Dataset]:
        return [port.dataset for port in self.output_ports]

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)

    def dataset_ref(self, name: str) -> MeshRef:
        return MeshRef(domain=self.domain, product=self.id, dataset=name)

    def resolve_reference(self, target: str) -> MeshRef | None:
        """The column a foreign key names: a mesh:// column, or `<dataset>.<column>` of this product."""
        if target.startswith("mesh://"):
            ref = MeshRef.parse(target)
            return ref if ref.column else None
        dataset, _, column = target.rpartition(".")
        return self.dataset_ref(dataset).with_column(column) if dataset else None


# --- incidents --------------------------------------------------------------------------------------


class IncidentStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class IncidentSeverity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class IncidentEvent(Strict):
    at: datetime
    actor: str
    action: str = Field(description="opened, status, assigned, note, resolved...")
    note: str | None = None


class Incident(Strict):
    id: Slug
    title: str
    status: IncidentStatus = IncidentStatus.OPEN
    severity: IncidentSeverity = IncidentSeverity.SEV3
    opened_at: datetime
    resolved_at: datetime | None = None
    products: list[str] = Field([], description="mesh:// references of the affected products.")
    datasets: list[str] = Field([], description="mesh:// references of the affected datasets.")
    check_id: str | None = None
    assignee: str | None = None
    summary: str | None = None
    root_cause: str | None = None
    timeline: list[IncidentEvent] = Field(default_factory=list)


class McpSettings(Strict):
    allow_tools: list[str] | None = Field(None, description="Only these tools are served over MCP (default: all).")
    deny_tools: list[str] = Field([], description="These tools are never served over MCP.")


class SqlSettings(Strict):
    max_result_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest query result returned, in bytes.")
    max_tokens: int = Field(5_000, ge=100, le=50_000, description="Longest query validated, in SQL tokens.")
    max_depth: int = Field(24, ge=4, le=32, description="Deepest nesting of brackets and CASE accepted.")


class WorkspaceManifest(Strict):
    """`meshpilot.yaml`: marks a folder as a workspace."""

    name: str
    layout_version: int = 1
    description: str | None = None
    warehouse: str = "warehouse.duckdb"
    embeddings: str | None = Field(
        None, description="Dense retrieval for catalog search: none (default), hashing, litellm:<model>, "
                          "or sentence-transformers[:<model path>]. MESHPILOT_EMBEDDINGS overrides it.")
    model: dict[str, Any] | None = Field(
        None, description="The copilot's model: {name: <litellm model>, timeout, retries, max_tokens, temperature, "
                          "...LiteLLM options}. MESHPILOT_MODEL overrides the name; none means the offline model.")
    allowed_link_hosts: list[str] = Field(
        [], description="Hosts answers may link to or load images from; links elsewhere are removed.")
    mcp: McpSettings = McpSettings()
    sql: SqlSettings = SqlSettings()
    synonyms: list[Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                             Field(min_length=2, max_length=50)]] = Field(
        [], max_length=10_000, description="The mesh's own synonym groups for search and schema linking, next "
                                           "to the built-in ones: [[sku, article number], [churn, attrition]].")


_LOGICAL_TYPES = {"VARCHAR": "string", "DATE": "date", "TIMESTAMPTZ": "timestamp", "BOOLEAN": "boolean",
                  "INTEGER": "integer", "BIGINT": "integer", "DOUBLE": "number"}


def logical_type(physical: str) -> str:
    """The ODCS logicalType of a DuckDB column type."""
    return "number" if physical.startswith("DECIMAL") else _LOGICAL_TYPES.get(physical, "string")


def slugify(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text.strip()).strip("-.").lower()
    return slug or "unnamed"
