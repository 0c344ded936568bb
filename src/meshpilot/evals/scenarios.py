"""Triage scenarios with a planted root cause, on a copy of the demo mesh: the day after the demo's AS_OF an
upstream job's schema changes, or it runs late, or an upstream check fails; then a downstream check fails.
The triage suite expects the planted cause ranked first.

Each scenario is also played with distractors: anomalies that do not explain the failure, as a real day
has them: another upstream's schema change or failing check after the failure began, a late run of another
upstream a week before, an on-time run that changed nothing, a failure on a dataset that is not upstream.
The planted cause must still come first."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from meshpilot.mesh.workspace import Workspace

DAY = "2026-11-02"
WEEK_BEFORE = "2026-10-27"  # within the demo's history, five days before DAY
O, R, P = "mesh://commerce/orders/orders", "mesh://commerce/returns/returns", "mesh://customer/customer-profile/customer_profile"
C, M = "mesh://customer/customer-lifetime-value/customer_lifetime_value", "mesh://marketing/campaign-performance/campaign_performance"
JOBS = {O: "commerce.ingest_orders", R: "commerce.ingest_returns", P: "customer.ingest_crm_customers",
        C: "customer.build_customer_lifetime_value"}
FIRST_COLUMN = {O: "amount", R: "refund_amount", P: "country", C: "net_revenue"}
DOWNSTREAM_CHECKS = {C: ["clv_net_revenue_non_negative", "clv_segment_accepted", "clv_customer_id_unique"],
                     M: ["campaign_roas_non_negative", "campaign_id_unique"]}
UPSTREAM_CHECKS = {O: "orders_amount_non_negative", R: "returns_refund_non_negative", P: "profile_customer_id_unique",
                   C: "clv_net_revenue_non_negative"}


def _scenarios() -> list[dict[str, Any]]:
    made = []
    pairs = [(O, C), (O, M), (R, C), (R, M), (P, C), (P, M), (C, M)]
    for upstream, downstream in pairs:
        for cause in ("schema_change", "late_run", "upstream_check"):
            if cause == "upstream_check" and upstream == C:
                continue
            for check in DOWNSTREAM_CHECKS[downstream][:1 if cause != "schema_change" else 2]:
                made.append({"name": f"{cause} on {upstream.rsplit('/', 1)[-1]} -> {check}", "cause": cause,
                             "cause_ref": upstream, "upstream": upstream, "downstream": downstream, "check": check})
    return made


UPSTREAM_OF = {C: [O, R, P], M: [C, O, R, P]}
UNRELATED = {C: (M, "campaign_id_unique")}  # downstream of CLV: cannot have caused its failure
DISTRACTORS = ("schema_change_after", "check_after", "old_late_run", "on_time_run", "unrelated_failure")


def _distracted(base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every scenario again with two or three distractors, on upstreams other than the cause, in turn."""
    made = []
    for i, scenario in enumerate(base):
        others = [u for u in UPSTREAM_OF[scenario["downstream"]] if u != scenario["upstream"]]
        kinds = [DISTRACTORS[(i + j) % len(DISTRACTORS)] for j in range(3)]
        distractors = []
        for j, kind in enumerate(kinds):
            if kind == "unrelated_failure" and scenario["downstream"] not in UNRELATED:
                continue
            distractors.append({"kind": kind, "dataset": others[(i + j) % len(others)]})
        made.append(scenario | {"name": f"{scenario['name']} + {', '.join(d['kind'] for d in distractors)}",
                                "distractors": distractors})
    return made


_PLANTED = _scenarios()
SCENARIOS = _PLANTED + _distracted(_PLANTED)


def plant(workspace: Workspace, scenario: dict[str, Any]) -> str:
    """Write the scenario's events and results into the workspace; returns what to triage."""
    upstream, cause = scenario["upstream"], scenario["cause"]
    if cause in ("schema_change", "late_run"):
        start, end = ("13:30", "13:41") if cause == "late_run" else ("02:31", "02:40")
        add_run(workspace, JOBS[upstream], start, end, retype=FIRST_COLUMN[upstream] if cause == "schema_change" else None)
        failed_at = "14:00" if cause == "late_run" else "06:00"
    else:
        add_failure(workspace, upstream, UPSTREAM_CHECKS[upstream], "03:00")
        failed_at = "05:00"
    add_failure(workspace, scenario["downstream"], scenario["check"], failed_at)
    later = f"{int(failed_at[:2]) + 3:02d}:00"
    for distractor in scenario.get("distractors", ()):
        kind, dataset = distractor["kind"], distractor["dataset"]
        if kind == "schema_change_after":
            add_run(workspace, JOBS[dataset], later, later[:3] + "20", retype=FIRST_COLUMN[dataset])
        elif kind == "check_after":
            add_failure(workspace, dataset, UPSTREAM_CHECKS[dataset], later)
        elif kind == "old_late_run":
            add_run(workspace, JOBS[dataset], "15:00", "15:20", day=WEEK_BEFORE)
        elif kind == "on_time_run":
            add_run(workspace, JOBS[dataset], "01:55", "02:05")
        elif kind == "unrelated_failure":
            unrelated, check = UNRELATED[scenario["downstream"]]
            add_failure(workspace, unrelated, check, "01:00")
    return scenario["check"]


def add_run(workspace: Workspace, job: str, start: str, end: str, retype: str | None = None, day: str = "") -> None:
    """A completed run of `job` on `day` (DAY by default), copied from its last demo run; `retype` changes
    that output column's type."""
    day = day or DAY
    lines = (workspace.root / "lineage" / "demo-pipelines.jsonl").read_text(encoding="utf-8").splitlines()
    template = [e for e in map(json.loads, lines) if e["job"]["name"] == job and e["eventType"] == "COMPLETE"][-1]
    run_id = str(uuid.uuid4())
    begin = copy.deepcopy(template) | {"eventType": "START", "eventTime": f"{day}T{start}:00+00:00", "outputs": [],
                                       "run": {"runId": run_id, "facets": {}}}
    finish = copy.deepcopy(template) | {"eventType": "COMPLETE", "eventTime": f"{day}T{end}:00+00:00",
                                        "run": {"runId": run_id, "facets": {}}}
    if retype:
        for field in finish["outputs"][0]["facets"]["schema"]["fields"]:
            if field["name"] == retype:
                field["type"] = "VARCHAR" if field["type"] != "VARCHAR" else "INTEGER"
    with open(workspace.root / "lineage" / "scenario.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(begin) + "\n" + json.dumps(finish) + "\n")


def add_failure(workspace: Workspace, dataset: str, check: str, time: str) -> None:
    """A failing result of `check` on DAY at `time`."""
    with open(workspace.root / "quality" / "scenario.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"check_id": check, "dataset": dataset, "status": "fail", "observed": 3,
                                 "message": "3 failing rows", "run_at": f"{DAY}T{time}:00Z"}) + "\n")
