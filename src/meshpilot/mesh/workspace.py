"""The workspace: a folder of human-editable files that is the source of truth for the mesh.

    meshpilot.yaml             marks the folder as a workspace
    teams.yaml                 teams, members, on-call
    products/*.yaml            data products with their output ports, datasets, checks, SLOs
    contracts/*.odcs.yaml      ODCS v3 data contracts
    lineage/*.jsonl            OpenLineage events
    quality/*.jsonl            quality check results
    incidents/*.yaml           incidents with their timelines
    warehouse.duckdb           the output-port tables
    .meshpilot/                derived state (the metadata index), rebuilt when files change

Loading validates every file and every cross-reference and reports all problems at once, each with
its file and line. Changes are applied as a whole: the workspace with the change overlaid is
validated first, then each file is written atomically.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

from meshpilot.errors import (
    InvalidReferenceError,
    InvalidWorkspaceError,
    Problem,
    WorkspaceNotFoundError,
)
from meshpilot.mesh import files
from meshpilot.mesh.lineage import LineageEvent, column_edges, schema_errors
from meshpilot.mesh.model import (
    CheckResult,
    DataProduct,
    Dataset,
    Incident,
    MeshRef,
    Team,
    WorkspaceManifest,
)

if TYPE_CHECKING:  # the ODCS models take 0.4 s to import; only reading contracts needs them
    from open_data_contract_standard.model import OpenDataContractStandard

MANIFEST = "meshpilot.yaml"
ENV_VAR = "MESHPILOT_WORKSPACE"
DEFAULT_DIR = "meshpilot-workspace"


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The workspace folder: the explicit path, else $MESHPILOT_WORKSPACE, else ./meshpilot-workspace."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


@dataclass
class Mesh:
    """Everything a workspace holds, validated."""

    manifest: WorkspaceManifest
    teams: list[Team] = field(default_factory=list)
    products: list[DataProduct] = field(default_factory=list)
    contracts: dict[str, OpenDataContractStandard] = field(default_factory=dict)  # by workspace-relative path
    events: list[LineageEvent] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    product_files: dict[str, str] = field(default_factory=dict)  # product ref -> workspace-relative file

    def product(self, domain: str, product_id: str) -> DataProduct | None:
        return next((p for p in self.products if p.domain == domain and p.id == product_id), None)

    def dataset(self, ref: MeshRef) -> Dataset | None:
        product = self.product(ref.domain, ref.product)
        return product.dataset(ref.dataset) if product and ref.dataset else None


@dataclass
class _PartialMesh(Mesh):
    """Some products in full, the others looked up on demand (from the index)."""

    others: Callable[[str, str], DataProduct | None] | None = None

    def product(self, domain: str, product_id: str) -> DataProduct | None:
        found = super().product(domain, product_id)
        return found if found is not None or self.others is None else self.others(domain, product_id)


_SOURCE_FOLDERS = (("products", ".yaml"), ("contracts", ".yaml"), ("lineage", ".jsonl"), ("quality", ".jsonl"),
                   ("incidents", ".yaml"))


class Workspace:
    def __init__(self, root: Path):
        self.root = root

    # --- opening ------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        root = resolve_path(path)
        if not (root / MANIFEST).is_file():
            what = "is not a Meshpilot workspace" if root.exists() else "does not exist"
            raise WorkspaceNotFoundError(
                f"No workspace at {root}: the folder {what}.",
                hint=f"Create one with `meshpilot demo --workspace {root}` (the demo mesh) or "
                f"`meshpilot init --workspace {root}` (empty), or point --workspace / ${ENV_VAR} at an existing one.",
            )
        return cls(root)

    @classmethod
    def create(cls, path: str | os.PathLike[str] | None, name: str, description: str | None = None) -> Workspace:
        root = resolve_path(path)
        if (root / MANIFEST).exists():
            raise InvalidWorkspaceError(
                f"{root} is already a workspace.", hint="Use it as it is, or choose another --workspace folder."
            )
        if root.exists() and any(root.iterdir()):
            raise InvalidWorkspaceError(
                f"{root} exists and is not empty; refusing to turn it into a workspace.",
                hint="Choose an empty or new folder with --workspace.",
            )
        manifest = WorkspaceManifest(name=name, description=description)
        files.atomic_write_yaml(root / MANIFEST, manifest.model_dump(mode="json", exclude_none=True))
        files.atomic_write_yaml(root / "teams.yaml", {"teams": []})
        return cls(root)

    @property
    def warehouse_path(self) -> Path:
        return self.root / self.load_manifest().warehouse

    @property
    def state_dir(self) -> Path:
        return self.root / ".meshpilot"

    def load_manifest(self) -> WorkspaceManifest:
        doc, problems = files.load_yaml(self.root / MANIFEST, MANIFEST)
        manifest = None
        if doc is not None:
            manifest, problems = doc.validate(WorkspaceManifest)
        if problems:
            raise InvalidWorkspaceError(f"The workspace manifest {self.root / MANIFEST} is invalid.", problems=problems)
        return manifest

    # --- reading ------------------------------------------------------------------------------------

    def source_stamps(self) -> dict[str, tuple[int, int]]:
        """Each file the mesh is loaded from, by workspace-relative path, with its (size, modification
        time): their state decides whether the index is stale. Read with one directory scan per folder,
        since every command asks (a thousand product files cost milliseconds, not a glob's tens)."""
        stamps = {}
        for name in (MANIFEST, "teams.yaml"):
            try:
                stat = os.stat(self.root / name)
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                stamps[name] = (stat.st_size, stat.st_mtime_ns)
        for folder, suffix in _SOURCE_FOLDERS:
            try:
                entries = os.scandir(self.root / folder)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    if not entry.name.endswith(suffix):
                        continue
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    if S_ISREG(stat.st_mode):
                        stamps[f"{folder}/{entry.name}"] = (stat.st_size, stat.st_mtime_ns)
        return dict(sorted(stamps.items()))

    def load(self, overlay: dict[str, str] | None = None, parsed: dict[str, Any] | None = None) -> Mesh:
        """Load and validate everything; `overlay` (relative path -> new text) is read instead of disk.
        `parsed` gives, for some overlaid YAML files, the data their text holds (as the writer dumped
        it), so it is not parsed back."""
        reader = _Reader(self.root, overlay or {}, parsed or {})
        with files.collection_paused():
            mesh = reader.read()
        if reader.problems:
            count = len(reader.problems)
            raise InvalidWorkspaceError(
                f"The workspace {self.root} has {count} problem{'s' if count > 1 else ''}:",
                problems=reader.problems,
                hint="Fix the files named above (each line gives file:line), then run the command again.",
            )
        return mesh

    def load_products(self, relatives: list[str], others: Callable[[str, str], DataProduct | None],
                      team_ids: set[str], overlay: dict[str, str] | None = None,
                      parsed: dict[str, Any] | None = None) -> dict[str, DataProduct] | None:
        """Read and check only these product files (`overlay` and `parsed` as for `load`), judging their
        references with `others` (the products already indexed) and `team_ids`: what an incremental index
        update or import needs. None when any of them has a problem (then a full `load` reports it, with
        the rest of the workspace)."""
        reader = _Reader(self.root, overlay or {}, parsed or {})
        view = _PartialMesh(manifest=WorkspaceManifest(name="(partial)"), others=others,
                            teams=[Team.model_construct(id=t, name=t) for t in team_ids])
        docs, found = {}, {}
        for relative in relatives:
            doc = reader._yaml(relative)
            product = reader._validated(doc, DataProduct)
            if product is None:
                return None
            docs[(product.domain, product.id)] = doc
            view.products.append(product)
            found[relative] = product
        reader._check_products(view, docs)
        for product in view.products:
            if product.contract:
                from open_data_contract_standard.model import OpenDataContractStandard

                contract_doc = reader._yaml(product.contract)
                contract = reader._validated(contract_doc, OpenDataContractStandard)
                if contract is None:
                    return None
                reader._check_contract_columns(product, contract, contract_doc)
        return None if reader.problems else found

    # --- writing ------------------------------------------------------------------------------------

    def apply(self, changes: dict[str, str], parsed: dict[str, Any] | None = None) -> list[str]:
        """Validate the workspace as it would be with `changes`, then write each changed file atomically.

        If anything is invalid nothing is written. Files are replaced one by one, so a crash part-way
        leaves each file whole (old or new); re-running an import completes it. Returns the paths that
        actually changed.
        """
        return self.apply_loaded(changes, parsed)[0]

    def apply_loaded(self, changes: dict[str, str], parsed: dict[str, Any] | None = None) -> tuple[list[str], Mesh]:
        """`apply`, also returning the mesh as validated (what the files now hold), so an importer can
        index it without reading back what it just wrote."""
        for relative in changes:
            _check_relative(relative)
        mesh = self.load(overlay=changes, parsed=parsed)
        return self.write(self.differing(changes)), mesh

    def differing(self, changes: dict[str, str]) -> dict[str, str]:
        """Those of `changes` whose text is not what the file holds now."""
        differ = {}
        for relative, text in changes.items():
            _check_relative(relative)
            target = self.root / relative
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                differ[relative] = text
        return differ

    def write(self, changes: dict[str, str]) -> list[str]:
        """Write each file atomically, without validating (the caller has) or comparing (pass
        `differing(changes)` to write only what changed); returns the paths written."""
        for relative, text in changes.items():
            _check_relative(relative)
            files.atomic_write_text(self.root / relative, text)
        return list(changes)


def _check_relative(relative: str) -> None:
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"workspace paths must be relative and inside the workspace: {relative}")


class _Reader:
    """Reads every file (disk or overlay), collecting problems rather than stopping at the first."""

    def __init__(self, root: Path, overlay: dict[str, str], parsed: dict[str, Any] | None = None):
        self.root = root
        self.overlay = overlay
        self.parsed = parsed or {}
        self.problems: list[Problem] = []
        # When a product file cannot be read, references to it cannot be judged: reporting them all
        # would bury the one real problem under dozens of follow-on ones.
        self.all_products_read = True

    def _paths(self, pattern: str) -> list[str]:
        on_disk = {p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file()}
        overlaid = {rel for rel in self.overlay if Path(rel).match(pattern)}
        return sorted(on_disk | overlaid)

    def _text(self, relative: str) -> str | None:
        if relative in self.overlay:
            return self.overlay[relative]
        try:
            return (self.root / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.problems.append(Problem(relative, "not UTF-8 text"))
        except OSError as exc:
            self.problems.append(Problem(relative, f"cannot read: {exc.strerror}"))
        return None

    def _yaml(self, relative: str) -> files.LocatedDocument | None:
        if relative in self.parsed and relative in self.overlay:
            return files.LocatedDocument(relative, self.parsed[relative], text=self.overlay[relative])
        text = self._text(relative)
        if text is None:
            return None
        doc, problems = files.parse_yaml(text, relative)
        self.problems.extend(problems)
        return doc

    def _validated(self, doc: files.LocatedDocument | None, model: type, path: tuple = (), data: Any = None):
        if doc is None:
            return None
        value, problems = doc.validate(model, path, data)
        self.problems.extend(problems)
        return value

    def read(self) -> Mesh:
        manifest = self._validated(self._yaml(MANIFEST), WorkspaceManifest) or WorkspaceManifest(name="(invalid)")
        mesh = Mesh(manifest=manifest)
        mesh.teams = self._read_teams()
        product_docs = self._read_products(mesh)
        self._read_contracts(mesh, product_docs)
        mesh.events = self._read_events()
        mesh.results = self._read_results(mesh)
        mesh.incidents = self._read_incidents(mesh)
        self._check_products(mesh, product_docs)
        return mesh

    def _read_teams(self) -> list[Team]:
        if "teams.yaml" not in self.overlay and not (self.root / "teams.yaml").exists():
            return []
        doc = self._yaml("teams.yaml")
        if doc is None:
            return []
        if not isinstance(doc.data, dict) or not isinstance(doc.data.get("teams", []), list):
            self.problems.append(doc.problem((), "expected a mapping with a 'teams' list"))
            return []
        teams = []
        for index, item in enumerate(doc.data.get("teams") or []):
            team = self._validated(doc, Team, ("teams", index), item)
            if team:
                teams.append(team)
        self._duplicates(doc, [("teams", i) for i in range(len(teams))], [t.id for t in teams], "team id")
        return teams

    def _duplicates(self, doc: files.LocatedDocument, paths: list[tuple], keys: list[str], label: str) -> None:
        seen: set[str] = set()
        for path, key in zip(paths, keys, strict=True):
            if key in seen:
                self.problems.append(doc.problem(path, f"duplicate {label} '{key}'"))
            seen.add(key)

    def _read_products(self, mesh: Mesh) -> dict[tuple[str, str], files.LocatedDocument]:
        docs: dict[tuple[str, str], files.LocatedDocument] = {}
        for relative in self._paths("products/*.yaml"):
            doc = self._yaml(relative)
            product = self._validated(doc, DataProduct)
            if product is None:
                self.all_products_read = False
                continue
            key = (product.domain, product.id)
            if key in docs:
                self.problems.append(doc.problem(("id",), f"product {product.ref} is also defined in {docs[key].source}"))
                continue
            docs[key] = doc
            mesh.products.append(product)
            mesh.product_files[str(product.ref)] = relative
        return docs

    def _read_contracts(self, mesh: Mesh, product_docs: dict) -> None:
        contract_docs: dict[str, files.LocatedDocument] = {}
        for relative in self._paths("contracts/*.yaml"):
            doc = contract_docs[relative] = self._yaml(relative)
            from open_data_contract_standard.model import OpenDataContractStandard

            contract = self._validated(doc, OpenDataContractStandard)
            if contract is None:
                continue
            if not (contract.apiVersion or "").startswith("v3"):
                self.problems.append(doc.problem(("apiVersion",), f"apiVersion {contract.apiVersion!r} is not ODCS v3 (v3.0.x or v3.1.x)"))
            mesh.contracts[relative] = contract
        for product in mesh.products:
            if product.contract is None:
                continue
            doc = product_docs[(product.domain, product.id)]
            contract = mesh.contracts.get(product.contract)
            if contract is None:
                if product.contract not in self._paths("contracts/*.yaml"):
                    self.problems.append(doc.problem(("contract",), f"contract file {product.contract} does not exist"))
                continue
            self._check_contract_columns(product, contract, contract_docs[product.contract])

    def _check_contract_columns(self, product: DataProduct, contract: OpenDataContractStandard, doc) -> None:
        for i, obj in enumerate(contract.schema_ or []):
            dataset = product.dataset(obj.name or "")
            if dataset is None:
                known = ", ".join(d.name for d in product.datasets) or "none"
                self.problems.append(doc.problem(("schema", i, "name"), f"schema object '{obj.name}' is not a dataset of {product.ref} (its datasets: {known})"))
                continue
            for j, prop in enumerate(obj.properties or []):
                if dataset.column(prop.name or "") is None:
                    self.problems.append(doc.problem(("schema", i, "properties", j, "name"), _unknown_column(prop.name, dataset)))

    def _read_events(self) -> list[LineageEvent]:
        events: list[LineageEvent] = []
        for relative in self._paths("lineage/*.jsonl"):
            text = self._text(relative)
            if text is None:
                continue
            if Path(relative).name.startswith("http-") and text and not text.endswith("\n"):
                # The HTTP endpoint's log: a last line without its newline is a write torn by a crash,
                # an event that was never acknowledged. Skip it rather than fail the whole workspace.
                text = text[: text.rfind("\n") + 1]
            for number, raw in enumerate(text.splitlines(), start=1):
                if raw.strip():
                    event, problems = parse_event_line(raw, relative, number)
                    self.problems.extend(problems)
                    if event:
                        events.append(event)
        return events

    def _read_results(self, mesh: Mesh) -> list[CheckResult]:
        results: list[CheckResult] = []
        checks = {
            (str(p.dataset_ref(d.name)), c.id) for p in mesh.products for d in p.datasets for c in d.checks
        }
        for relative in self._paths("quality/*.jsonl"):
            text = self._text(relative)
            if text is None:
                continue
            for number, raw in enumerate(text.splitlines(), start=1):
                if not raw.strip():
                    continue
                doc, problems = files.parse_json_line(raw, relative, number)
                self.problems.extend(problems)
                result = self._validated(doc, CheckResult)
                if result is None:
                    continue
                if (result.dataset, result.check_id) not in checks:
                    if not self.all_products_read:
                        continue
                    self.problems.append(Problem(relative, f"result for unknown check '{result.check_id}' on {result.dataset}", number))
                    continue
                results.append(result)
        return results

    def _read_incidents(self, mesh: Mesh) -> list[Incident]:
        incidents: list[Incident] = []
        seen: dict[str, str] = {}
        for relative in self._paths("incidents/*.yaml"):
            doc = self._yaml(relative)
            incident = self._validated(doc, Incident)
            if incident is None:
                continue
            if incident.id in seen:
                self.problems.append(doc.problem(("id",), f"incident {incident.id} is also defined in {seen[incident.id]}"))
                continue
            seen[incident.id] = relative
            for key in ("products", "datasets"):
                for index, text in enumerate(getattr(incident, key)):
                    problem = self._check_ref(mesh, text, want_dataset=key == "datasets")
                    if problem:
                        self.problems.append(doc.problem((key, index), problem))
            incidents.append(incident)
        return incidents

    def _check_ref(self, mesh: Mesh, text: str, want_dataset: bool) -> str | None:
        try:
            ref = MeshRef.parse(text)
        except InvalidReferenceError as exc:
            return exc.message
        product = mesh.product(ref.domain, ref.product)
        if product is None and not self.all_products_read:
            return None
        if product is None:
            return f"no product {ref.product_ref()} in this workspace"
        if want_dataset and ref.dataset is None:
            return f"{text} names a product, not a dataset"
        if ref.dataset is not None:
            dataset = product.dataset(ref.dataset)
            if dataset is None:
                return f"product {product.ref} has no dataset '{ref.dataset}'"
            if ref.column is not None and dataset.column(ref.column) is None:
                return _unknown_column(ref.column, dataset)
        return None

    def _check_products(self, mesh: Mesh, product_docs: dict) -> None:
        team_ids = {t.id for t in mesh.teams}
        for product in mesh.products:
            doc = product_docs[(product.domain, product.id)]
            if product.owner and product.owner not in team_ids:
                self.problems.append(doc.problem(("owner",), f"owner team '{product.owner}' is not defined in teams.yaml"))
            for index, text in enumerate(product.inputs):
                problem = self._check_ref(mesh, text, want_dataset=False)
                if problem:
                    self.problems.append(doc.problem(("inputs", index), problem))
            for index, slo in enumerate(product.slos):
                dataset = product.dataset(slo.dataset) if slo.dataset else None
                if slo.dataset and dataset is None:
                    self.problems.append(doc.problem(("slos", index, "dataset"), f"no dataset '{slo.dataset}' in this product"))
                elif slo.column and dataset and dataset.column(slo.column) is None:
                    self.problems.append(doc.problem(("slos", index, "column"), _unknown_column(slo.column, dataset)))
            for p_index, port in enumerate(product.output_ports):
                self._check_dataset(mesh, product, port.dataset, doc, ("output_ports", p_index, "dataset"))

    def _check_dataset(self, mesh: Mesh, product: DataProduct, dataset: Dataset, doc, path: tuple) -> None:
        for index, check in enumerate(dataset.checks):
            if check.column and dataset.column(check.column) is None:
                self.problems.append(doc.problem((*path, "checks", index, "column"), _unknown_column(check.column, dataset)))
        for index, column in enumerate(dataset.columns):
            if not column.references:
                continue
            problem = self._check_foreign_key(mesh, product, column.references)
            if problem:
                self.problems.append(doc.problem((*path, "columns", index, "references"), problem))

    def _check_foreign_key(self, mesh: Mesh, product: DataProduct, target: str) -> str | None:
        if target.startswith("mesh://"):
            problem = self._check_ref(mesh, target, want_dataset=True)
            if problem is None and MeshRef.parse(target).column is None:
                problem = f"{target} names a dataset; a foreign key must name a column (…#column)"
            return problem
        dataset_name, _, column_name = target.rpartition(".")
        dataset = product.dataset(dataset_name)
        if dataset is None:
            return f"foreign key '{target}': no dataset '{dataset_name}' in {product.ref} (write <dataset>.<column> or a mesh:// column)"
        if dataset.column(column_name) is None:
            return f"foreign key '{target}': {_unknown_column(column_name, dataset)}"
        return None


def _unknown_column(name: str | None, dataset: Dataset) -> str:
    names = [c.name for c in dataset.columns]
    close = difflib.get_close_matches(name or "", names, n=1)
    suggestion = f"; did you mean '{close[0]}'?" if close else f" (its columns: {', '.join(names) or 'none'})"
    return f"no column '{name}' in dataset '{dataset.name}'{suggestion}"


def parse_event_line(raw: str, source: str, line: int) -> tuple[LineageEvent | None, list[Problem]]:
    doc, problems = files.parse_json_line(raw, source, line)
    if doc is None:
        return None, problems
    return validate_event(doc)


def validate_event(doc: files.LocatedDocument) -> tuple[LineageEvent | None, list[Problem]]:
    event, problems = doc.validate(LineageEvent)
    if event is None:
        return None, problems
    errors = schema_errors(doc.data, event.kind)
    if errors:
        return None, [doc.problem(path, message) for path, message in errors]
    try:
        column_edges(event)
    except (KeyError, TypeError, AttributeError) as exc:
        return None, [doc.problem((), f"malformed columnLineage facet: an input field lacks or mistypes {exc}")]
    return event, []

