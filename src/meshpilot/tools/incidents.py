"""Incident triage: what broke, how bad, why, who to call. Deterministic: every claim is a fact from the
workspace (check results, OpenLineage runs and schema facets, lineage, the catalog, incident history).

`Triage.open(workspace)` loads the facts once (a server keeps it); `triage(ref)` takes an incident id, a
check id, a dataset (mesh:// or qualified name) or the text of an alert, and returns:
- the failing check with its history (first failure of the current streak, consecutive failures);
- root-cause candidates upstream, ranked by kind x timing x distance, each with its evidence: failed
  runs, late runs, schema changes, failing upstream checks, and, when the checked column is copied
  unchanged from a source, the source itself (with the onset of the bad rows found in the data);
- the blast radius (downstream datasets, products, consumers, SLOs at risk, contracts);
- owners and on-call, similar past incidents (BM25 over incident history), a severity SEV1..SEV4 with
  its reasons, and next steps.
`update_incident` appends to an incident's timeline (status, assignee, note); history is never rewritten.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from pydantic import BaseModel

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh import files
from meshpilot.mesh.model import Incident, IncidentEvent, IncidentStatus, MeshRef
from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.lineage_graph import BatchLookup, LineageGraph

# How much each kind of evidence explains a failure on its own.
KIND_WEIGHT = {"failed_run": 0.95, "schema_change": 0.9, "upstream_check": 0.8, "late_run": 0.75,
               "source_data": 0.7, "transformation": 0.45}
LATE_HOURS = 3.0  # a run this much later than its usual start is late
SEVERITY_RANK = {"critical": 4, "error": 3, "warning": 2, "info": 1}


class Candidate(BaseModel):
    kind: str
    ref: str  # the dataset, job or check it points at
    score: float
    hops: int
    summary: str
    evidence: list[str]


class TriageReport(BaseModel):
    subject: str  # what was triaged, as resolved
    incident: dict[str, Any] | None
    check: dict[str, Any] | None
    dataset: str
    column: str | None
    first_failure: datetime | None
    failing_since: int  # consecutive failures
    candidates: list[Candidate]
    blast_radius: dict[str, Any]
    owners: list[dict[str, Any]]
    similar_incidents: list[dict[str, Any]]
    severity: str
    severity_reasons: list[str]
    next_steps: list[str]
    citations: list[str]


@dataclass
class _Run:
    job: str
    started: datetime
    ended: datetime
    state: str
    error: str | None


@dataclass
class Triage:
    workspace: Workspace
    graph: LineageGraph
    runs: dict[str, list[_Run]] = field(default_factory=dict)  # job -> runs, oldest first
    writers: dict[str, set[str]] = field(default_factory=dict)  # dataset key -> jobs writing it
    schema_changes: dict[str, list[tuple[datetime, str, str]]] = field(default_factory=dict)  # key -> (when, job, what)
    results: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # (dataset ref, check) -> results
    failing: dict[str, list[tuple[str, list[dict[str, Any]]]]] = field(default_factory=dict)  # ref -> failing checks
    usual_start: dict[str, float] = field(default_factory=dict)  # job -> median start hour
    qualified: dict[str, str] = field(default_factory=dict)  # lower-cased qualified name -> dataset ref
    check_ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # check id -> (dataset ref, check id)
    checks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # ref -> owner, contract, consumers, slos
    dataset_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref -> datasets row

    @classmethod
    def open(cls, workspace: Workspace) -> Triage:
        with MeshStore.open(workspace) as store:
            triage = cls(workspace, LineageGraph.from_store(store))
            triage._load(store)
        return triage

    def _load(self, store: MeshStore) -> None:
        con = store.con
        for job, started, ended, state, error in con.execute(
                "SELECT job, started_at, ended_at, state, error FROM runs ORDER BY started_at").fetchall():
            self.runs.setdefault(job, []).append(_Run(job, started, ended, state, error))
        self.usual_start = {job: statistics.median(r.started.hour + r.started.minute / 60 for r in runs)
                            for job, runs in self.runs.items() if len(runs) >= 4}  # too few runs: no usual time
        for s_ns, s_name, t_ns, t_name, job in con.execute("SELECT * FROM dataset_edges").fetchall():
            self.writers.setdefault(f"{t_ns}/{t_name}", set()).add(job)
        # A schema change is a field added, removed or retyped between two events (found by the index build).
        for namespace, name, event_time, job, change in con.execute(
                "SELECT namespace, name, event_time, job, change FROM schema_versions WHERE change IS NOT NULL "
                "ORDER BY event_time").fetchall():
            self.schema_changes.setdefault(f"{namespace}/{name}", []).append((event_time, job, change))
        for row in store._rows("SELECT dataset_ref, check_id, status, run_at, observed, message FROM check_results "
                               "ORDER BY run_at"):
            self.results.setdefault((row["dataset_ref"], row["check_id"]), []).append(row)
        for (dataset, check_id), rows in self.results.items():
            if rows[-1]["status"] in ("fail", "error"):
                self.failing.setdefault(dataset, []).append((check_id, rows))
        for row in store._rows("SELECT * FROM checks"):
            self.checks[(row["dataset_ref"], row["id"])] = row
        self.incidents = store._rows("SELECT id, title, status, severity, opened_at, resolved_at, products, datasets, "
                                     "check_id, assignee, summary, root_cause FROM incidents ORDER BY opened_at")
        for team in store._rows("SELECT * FROM teams"):
            team["members"] = store._rows("SELECT name, email, role FROM team_members WHERE team_id = ?", [team["id"]])
            self.teams[team["id"]] = team
        # Product documents are large and a triage reads a few fields of those it reaches: read them then,
        # in one batch, and only those fields.
        self.products = BatchLookup(partial(_product_fields, store.cursor()), missing={})
        for row in store._rows("SELECT * FROM datasets"):
            self.dataset_rows[row["ref"]] = row
            if row["qualified_name"]:
                self.qualified[row["qualified_name"].lower()] = row["ref"]
        self.check_ids = {}
        for key in self.checks:
            self.check_ids.setdefault(key[1], key)

    # --- resolving what to triage ---------------------------------------------------------------------------

    def _resolve(self, ref: str) -> tuple[str, dict[str, Any] | None, tuple[str, str] | None, str | None]:
        """(dataset ref, incident, (dataset, check) key, column) for an incident, check, dataset or alert text."""
        text = ref.strip()
        if not text:
            raise InvalidArgumentError("Say what to triage: an incident id, a check, a dataset or an alert's text.")
        incident = next((i for i in self.incidents if i["id"].lower() == text.lower()), None)
        if incident is None and (match := re.search(r"\bINC-\d+\b", text, re.I)):
            incident = next((i for i in self.incidents if i["id"].lower() == match.group(0).lower()), None)
            if incident is None:
                raise NotFoundError(f"No incident {match.group(0)}.",
                                    hint=f"Incidents: {', '.join(i['id'] for i in self.incidents) or 'none'}.")
        if incident is not None:
            dataset = (incident["datasets"] or [None])[0]
            key = next((k for k in self.checks if k[1] == incident["check_id"] and (dataset is None or k[0] == dataset)), None)
            if key is not None:
                dataset = key[0]
            if dataset is None:
                raise InvalidArgumentError(f"Incident {incident['id']} names no dataset or check to start from.")
            return dataset, incident, key, self.checks.get(key, {}).get("column_name") if key else None
        # Check ids and table names are looked up word by word (an alert names them among other words).
        words = re.findall(r"[\w.-]+", text)
        for word in sorted(words, key=len, reverse=True):
            key = self.check_ids.get(word.strip(".-"))
            if key is not None:
                return key[0], None, key, self.checks[key].get("column_name")
        if match := re.search(r"mesh://[\w.-]+/[\w.-]+/[\w.-]+(?:#\w+)?", text):
            parsed = MeshRef.parse(match.group(0))
            dataset = str(parsed.dataset_ref())
            if dataset not in self.dataset_rows:
                raise NotFoundError(f"No dataset {dataset} in this workspace.")
            return dataset, None, self._failing_check(dataset), parsed.column
        for word in sorted(words, key=len, reverse=True):
            lowered = word.strip(".-").lower()
            for candidate, column in ((lowered, None), (lowered.rsplit(".", 1)[0], lowered.rsplit(".", 1)[-1])):
                dataset_ref = self.qualified.get(candidate)
                if dataset_ref is not None:
                    return dataset_ref, None, self._failing_check(dataset_ref), column
        raise NotFoundError(f"Nothing in this workspace matches '{text[:80]}'.",
                            hint="Give an incident id (INC-0003), a check id, a mesh:// dataset or a qualified table name.")

    def _failing_check(self, dataset: str) -> tuple[str, str] | None:
        failing = [(rows[-1]["run_at"], (dataset, check_id)) for check_id, rows in self.failing.get(dataset, ())]
        return max(failing)[1] if failing else None

    # --- triage ------------------------------------------------------------------------------------------------

    def triage(self, ref: str) -> TriageReport:
        dataset, incident, check_key, column = self._resolve(ref)
        history = self.results.get(check_key, []) if check_key else []
        first_failure, streak = _streak(history)
        if first_failure is None and incident is not None:
            first_failure = incident["opened_at"]
        key = self.graph.dataset_key.get(dataset)
        if key is None:
            raise NotFoundError(f"{dataset} is not in the lineage of this workspace.")
        candidates = self._candidates(key, dataset, column, first_failure)
        blast = self._blast_radius(key)
        product_ref = self.dataset_rows.get(dataset, {}).get("product_ref")
        owners = self._owners([product_ref, *blast["products"]])
        similar = self._similar(incident, dataset, check_key)
        check = dict(self.checks[check_key]) if check_key else None
        if check:
            check["latest"] = history[-1] if history else None
            check["history"] = [{"run_at": r["run_at"], "status": r["status"], "message": r["message"]} for r in history[-10:]]
        severity, reasons = _severity(check, streak, blast, candidates)
        citations = [dataset, *(c.ref for c in candidates if c.ref.startswith("mesh://")), *blast["products"]]
        return TriageReport(
            subject=incident["id"] if incident else (check_key[1] if check_key else dataset), incident=incident,
            check=check, dataset=dataset, column=column, first_failure=first_failure, failing_since=streak,
            candidates=candidates, blast_radius=blast, owners=owners, similar_incidents=similar, severity=severity,
            severity_reasons=reasons, next_steps=_next_steps(candidates, owners, blast),
            citations=list(dict.fromkeys(citations)))

    def _candidates(self, key: str, dataset: str, column: str | None, since: datetime | None) -> list[Candidate]:
        found: dict[tuple[str, str], Candidate] = {}

        def add(kind: str, ref: str, hops: int, when: datetime | None, summary: str, evidence: list[str]) -> None:
            score = KIND_WEIGHT[kind] * _timing(when, since) / (1 + 0.15 * max(0, hops - 1))
            current = found.get((kind, ref))
            if current is None or score > current.score:
                found[(kind, ref)] = Candidate(kind=kind, ref=ref, score=round(score, 3), hops=hops, summary=summary,
                                               evidence=evidence)

        upstream = self._upstream_datasets(key)
        self.graph.mesh_ref.prefetch([key, *upstream])
        for up_key, hops in [(key, 0), *upstream.items()]:
            label = self.graph.label(up_key)
            for job in self.writers.get(up_key, ()):
                runs = self.runs.get(job, [])
                for run in _window(runs, since):
                    if run.state == "FAIL":
                        add("failed_run", label, hops, run.started, f"run of {job} failed",
                            [f"{job} {run.state} at {run.started:%Y-%m-%d %H:%M}" + (f": {run.error}" if run.error else "")])
                late = _late(runs, since, self.usual_start.get(job))
                if late:
                    add("late_run", label, hops, late[0].started, f"{job} ran late",
                        [f"{job} started {late[0].started:%Y-%m-%d %H:%M}, {late[1]:.1f} h after its usual time"])
            for when, job, what in self.schema_changes.get(up_key, []):
                if since is None or when <= since + timedelta(hours=1):
                    add("schema_change", label, hops, when, f"schema of {label} changed", [f"{when:%Y-%m-%d %H:%M} ({job}): {what}"])
            if hops:
                ref = self.graph.mesh_ref.get(up_key)
                for check_id, rows in self.failing.get(ref, ()):
                        first, count = _streak(rows)
                        add("upstream_check", ref, hops, first, f"check {check_id} fails upstream",
                            [f"{check_id} {rows[-1]['status']} since {first:%Y-%m-%d %H:%M} ({count} runs): {rows[-1]['message']}"])
        if column:
            self._column_sources(key, dataset, column, since, add)
        return sorted(found.values(), key=lambda c: (-c.score, c.hops, c.ref))[:8]

    def _dataset_walk(self, key: str, downstream: bool, depth: int | None = None) -> dict[str, int]:
        """Every dataset the lineage reaches from this one as a whole (its readers' and writers' jobs, with
        or without column lineage), with how many hops away: one walk over the graph in memory."""
        arrays = self.graph.arrays()
        start = arrays.find_dataset(*self.graph.parts(key))
        if start is None:
            return {}
        distance = arrays.distances(arrays.down if downstream else arrays.up, start, depth)
        reached = np.flatnonzero(np.isfinite(distance) & (np.arange(arrays.n) >= arrays.c)
                                 & (np.arange(arrays.n) < arrays.c + arrays.d))
        found = {}
        for node in reached.tolist():
            if node != start:
                namespace, name, _ = arrays.names(node)
                found[self.graph.key(namespace, name)] = int(distance[node])
        return found

    def _upstream_datasets(self, key: str) -> dict[str, int]:
        return self._dataset_walk(key, downstream=False, depth=12)

    def _column_sources(self, key: str, dataset: str, column: str, since: datetime | None, add) -> None:
        """Follow the checked column upstream: copied unchanged (IDENTITY) from a source means the values
        arrived bad; a transformation on the way is a candidate of its own."""
        node, hops, path = (key, column), 0, []
        while True:
            edges = [e for e in self.graph.up.get(node, []) if e.kind == "DIRECT"]
            if len(edges) != 1:
                break
            edge = edges[0]
            hops += 1
            path.append(f"{self.graph.label(*edge.source)} -[{edge.subtype} by {edge.job}]-> {self.graph.label(*node)}")
            if edge.subtype != "IDENTITY":
                add("transformation", self.graph.label(edge.source[0]), hops, None,
                    f"{edge.job} derives {column} ({edge.subtype.lower()})", path[::-1])
                return
            node = edge.source
        if hops:
            source = self.graph.label(node[0], node[1])
            evidence = [*path[::-1], "every step copies the values unchanged, and the jobs on the way completed"]
            onset = self._onset(dataset, column)
            if onset:
                evidence.append(onset)
            add("source_data", source, hops, since, f"the source {source} delivers the bad values", evidence)

    def _onset(self, dataset: str, column: str) -> str | None:
        """When the nulls began, from a date column of the checked table (the rows tell when the source changed)."""
        import duckdb

        row = self.dataset_rows.get(dataset) or {}
        table = row.get("qualified_name")
        warehouse = self.workspace.warehouse_path
        if not table or not warehouse.exists():
            return None
        try:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                dates = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall() if c[1] in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
                         and c[0] != column and not c[0].startswith("loaded")]
                for date_column in dates:
                    first_bad, last_good, bad = con.execute(
                        f'SELECT min("{date_column}") FILTER (WHERE "{column}" IS NULL), '
                        f'max("{date_column}") FILTER (WHERE "{column}" IS NOT NULL), count(*) FILTER (WHERE "{column}" IS NULL) '
                        f"FROM {table}").fetchone()
                    if bad and first_bad is not None and last_good is not None and first_bad > last_good:
                        return (f"all {bad} rows with a null {column} have {date_column} >= {first_bad}, and none before: "
                                f"the change happened at the source around {first_bad}")
        except duckdb.Error:
            return None
        return None

    def _blast_radius(self, key: str) -> dict[str, Any]:
        seen = {key, *self._dataset_walk(key, downstream=True)}
        self.graph.mesh_ref.prefetch(seen)
        datasets = sorted(r for k in seen - {key} if (r := self.graph.mesh_ref.get(k)))
        products = sorted({str(MeshRef.parse(r).product_ref()) for r in datasets})
        consumers, slos, contracts = [], [], []
        own = [str(MeshRef.parse(self.graph.mesh_ref[key]).product_ref())] if key in self.graph.mesh_ref else []
        self.products.prefetch([*own, *products])
        for ref in own:
            consumers += [f"{c['name']} ({ref})" for c in self.products.get(ref, {}).get("consumers", [])
                          if not c["name"].startswith("mesh://")]
        for ref in products:
            document = self.products.get(ref, {})
            consumers += [f"{c['name']} ({ref})" for c in document.get("consumers", []) if not c["name"].startswith("mesh://")]
            slos += [f"{s['kind']} {s['target']} ({ref})" for s in document.get("slos", [])]
            if document.get("contract"):
                contracts.append(document["contract"])
        return {"datasets": datasets, "products": products, "consumers": sorted(set(consumers)), "slos_at_risk": slos,
                "contracts": contracts}

    def _owners(self, product_refs: list[str | None]) -> list[dict[str, Any]]:
        owners, seen = [], set()
        self.products.prefetch(ref or "" for ref in product_refs)
        for ref in product_refs:
            document = self.products.get(ref or "")
            team = self.teams.get(document.get("owner")) if document else None
            if not team or team["id"] in seen:
                continue
            seen.add(team["id"])
            owners.append({"team": team["id"], "name": team.get("name"), "product": ref, "oncall": team.get("oncall"),
                           "slack_channel": team.get("slack_channel"), "members": team.get("members", []),
                           "role": "owner of the failing product" if not owners else "downstream owner"})
        return owners

    def _similar(self, incident: dict[str, Any] | None, dataset: str, check_key: tuple[str, str] | None) -> list[dict[str, Any]]:
        from meshpilot.tools.tokens import Tokenizer

        past = [i for i in self.incidents if not incident or i["id"] != incident["id"]]
        if not past:
            return []
        tokenize = Tokenizer()
        query = set(tokenize(" ".join(filter(None, [incident and incident["title"], incident and incident["summary"],
                                                     check_key and check_key[1].replace("_", " "), dataset]))))
        if not query:
            return []
        documents = [set(tokenize(" ".join(filter(None, [i["title"], i["summary"], i["root_cause"]])))) for i in past]
        df = defaultdict(int)
        for words in documents:
            for word in words:
                df[word] += 1
        scored = []
        for item, words in zip(past, documents, strict=True):
            score = sum(1.0 / df[w] for w in query & words)
            score += 2.0 if dataset in (item["datasets"] or []) else 0.0
            score += 2.0 if check_key and item["check_id"] == check_key[1] else 0.0
            if score > 0:
                scored.append((score, item))
        scored.sort(key=lambda s: -s[0])
        return [{"id": i["id"], "title": i["title"], "status": i["status"], "root_cause": i["root_cause"],
                 "score": round(s, 2)} for s, i in scored[:3]]


def _product_fields(con: Any, refs: list[str]) -> dict[str, dict[str, Any]]:
    """Owner, contract, consumers and SLOs of these products."""
    rows = con.execute("SELECT ref, owner, contract, consumers, slos FROM products WHERE list_contains($refs, ref)",
                       {"refs": refs}).fetchall()
    return {ref: {"owner": owner, "contract": contract, "consumers": json.loads(consumers or "[]"),
                  "slos": json.loads(slos or "[]")} for ref, owner, contract, consumers, slos in rows}


def _streak(rows: list[dict[str, Any]]) -> tuple[datetime | None, int]:
    """When the current run of failures began, and how many results it has."""
    first, count = None, 0
    for row in reversed(rows):
        if row["status"] not in ("fail", "error"):
            break
        first, count = row["run_at"], count + 1
    return first, count


def _timing(when: datetime | None, since: datetime | None) -> float:
    """How well an event's time explains a failure that began at `since`."""
    if when is None or since is None:
        return 0.8
    lead = (since - when).total_seconds() / 3600
    if -1 <= lead <= 36:
        return 1.0
    if 36 < lead <= 24 * 7:
        return 0.5
    return 0.15


def _window(runs: list[_Run], since: datetime | None) -> list[_Run]:
    if since is None:
        return runs[-3:]
    return [r for r in runs if since - timedelta(days=7) <= r.started <= since + timedelta(hours=1)]


def _late(runs: list[_Run], since: datetime | None, usual: float | None) -> tuple[_Run, float] | None:
    """The latest run before the failure that started LATE_HOURS after its usual time of day."""
    if usual is None:
        return None
    for run in reversed(_window(runs, since)):
        delay = run.started.hour + run.started.minute / 60 - usual
        if delay >= LATE_HOURS:
            return run, delay
    return None


def _severity(check: dict[str, Any] | None, streak: int, blast: dict[str, Any], candidates: list[Candidate]
              ) -> tuple[str, list[str]]:
    """Likelihood (is it really broken?) x impact (who is affected) -> SEV1 (worst) .. SEV4."""
    reasons = []
    likelihood = 1
    if check:
        rank = SEVERITY_RANK.get(check.get("severity") or "error", 3)
        likelihood = 3 if streak >= 2 and rank >= 3 else 2 if streak >= 1 else 1
        reasons.append(f"check {check['id']} ({check.get('severity') or 'error'}) has failed {streak} time(s) in a row")
    elif candidates:
        likelihood = 2 if candidates[0].score >= 0.6 else 1
        reasons.append(f"strongest cause: {candidates[0].summary} (score {candidates[0].score})")
    products, consumers = len(blast["products"]), len(blast["consumers"])
    impact = 3 if products >= 3 or consumers >= 5 else 2 if products or consumers else 1
    reasons.append(f"{products} downstream product(s), {consumers} external consumer(s), "
                   f"{len(blast['slos_at_risk'])} SLO(s) at risk")
    level = likelihood * impact
    severity = "SEV1" if level >= 9 else "SEV2" if level >= 6 else "SEV3" if level >= 3 else "SEV4"
    reasons.append(f"likelihood {likelihood}/3 x impact {impact}/3 = {level}")
    return severity, reasons


def _next_steps(candidates: list[Candidate], owners: list[dict[str, Any]], blast: dict[str, Any]) -> list[str]:
    steps = []
    if candidates:
        top = candidates[0]
        steps.append({
            "failed_run": f"Open the failed run's error and fix or re-run it: {top.ref}.",
            "schema_change": f"Confirm the schema change of {top.ref} with its owner; revert it or adapt the job, then backfill.",
            "upstream_check": f"Follow the upstream failure first: {top.ref}.",
            "late_run": f"Check why {top.ref} ran late and re-run the dependent jobs once it lands.",
            "source_data": f"Ask the owner of the source {top.ref} what changed (release, form, export), then backfill.",
            "transformation": f"Review the transformation that derives the column: {top.ref}.",
        }[top.kind])
    if owners:
        first = owners[0]
        steps.append(f"Page {first.get('oncall') or first['team']} ({first['team']}"
                     + (f", {first['slack_channel']}" if first.get("slack_channel") else "") + ").")
    if blast["products"]:
        steps.append("Tell the downstream owners: " + ", ".join(blast["products"]) + ".")
    return steps


# --- an optional summary by a model, checked against the facts ------------------------------------------------

_CLAIM = re.compile(r"mesh://[\w./#-]+|\bINC-\d+\b|\bSEV[1-4]\b|\b[a-z][\w-]*\.[a-z][\w.]*\b|\b\d+(?:\.\d+)?\b")


def summarize(report: TriageReport, model: Any) -> dict[str, Any]:
    """A summary written by `model` through the governed prompt `triage_summary`, from the report's facts only.
    Every reference, id, severity and number in it must appear in the facts: sentences with a claim the
    facts do not hold are dropped and listed as unsupported."""
    from meshpilot.prompts import registry

    prompt = registry.load("triage_summary")
    facts = report.model_dump_json(exclude={"check": {"history"}})
    reply = model.invoke(prompt.render(facts=facts))
    text = reply.content if isinstance(reply.content, str) else str(reply.content)
    kept, unsupported = [], []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        claims = [c.rstrip(".") for c in _CLAIM.findall(sentence)]
        missing = [c for c in claims if c not in facts]
        if missing:
            unsupported.append({"sentence": sentence, "not_in_facts": missing})
        elif sentence:
            kept.append(sentence)
    return {"summary": " ".join(kept), "unsupported": unsupported, "prompt": prompt.ref}


# --- incidents: list and update ---------------------------------------------------------------------------------


def list_incidents(workspace: Workspace, status: str = "all", product: str | None = None) -> list[dict[str, Any]]:
    if status not in ("all", *[s.value for s in IncidentStatus], "unresolved"):
        raise InvalidArgumentError(f"Unknown incident status '{status}'.",
                                   hint="Use all, unresolved, " + ", ".join(s.value for s in IncidentStatus) + ".")
    with MeshStore.open(workspace) as store:
        rows = store._rows("SELECT id, title, status, severity, opened_at, resolved_at, products, assignee FROM incidents "
                           "ORDER BY opened_at DESC")
    return [r for r in rows if (status == "all" or r["status"] == status or (status == "unresolved" and r["status"] != "resolved"))
            and (product is None or product in (r["products"] or []))]


def update_incident(workspace: Workspace, incident_id: str, actor: str, status: str | None = None,
                    assignee: str | None = None, note: str | None = None,
                    visible: Callable[[str], None] | None = None) -> Incident:
    """Append to an incident's timeline and set its status/assignee; the file is rewritten atomically with
    the whole earlier history kept. `visible` is called with each of the incident's products
    before anything is written, and raises to refuse (the access policy: the caller must see them)."""
    if status is None and assignee is None and not note:
        raise InvalidArgumentError("Nothing to update: give a status, an assignee or a note.")
    path = workspace.root / "incidents" / f"{incident_id}.yaml"
    if not re.fullmatch(r"[\w.-]+", incident_id) or not path.exists():
        raise NotFoundError(f"No incident {incident_id}.")
    doc, problems = files.load_yaml(path, f"incidents/{incident_id}.yaml")
    if problems:
        raise InvalidArgumentError(f"incidents/{incident_id}.yaml is invalid; fix it first.", problems=problems)
    incident = Incident.model_validate(doc.data)
    for product in incident.products if visible is not None else []:
        visible(product)
    now = datetime.now(UTC).replace(microsecond=0)
    if status is not None:
        try:
            new_status = IncidentStatus(status)
        except ValueError:
            raise InvalidArgumentError(f"Unknown incident status '{status}'.",
                                       hint="Use " + ", ".join(s.value for s in IncidentStatus) + ".") from None
        incident.timeline.append(IncidentEvent(at=now, actor=actor, action="resolved" if new_status == IncidentStatus.RESOLVED
                                               else "status", note=note if note else new_status.value))
        incident.status = new_status
        incident.resolved_at = now if new_status == IncidentStatus.RESOLVED else None
        note = None
    if assignee is not None:
        incident.assignee = assignee
        incident.timeline.append(IncidentEvent(at=now, actor=actor, action="assigned", note=assignee))
    if note:
        incident.timeline.append(IncidentEvent(at=now, actor=actor, action="note", note=note))
    workspace.apply({f"incidents/{incident_id}.yaml": files.dump_yaml(incident.model_dump(mode="json", exclude_defaults=True))})
    return incident
