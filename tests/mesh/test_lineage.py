"""Facts the index build derives from OpenLineage events."""

from __future__ import annotations

from meshpilot.mesh.lineage import LineageEvent, schema_versions

PRODUCER = "https://example.com/producer"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _event(time: str, run: str, fields: list[tuple[str, str]] | None, name: str = "orders") -> LineageEvent:
    facets = {"schema": {"fields": [{"name": n, "type": t} for n, t in fields]}} if fields else {}
    return LineageEvent.model_validate({
        "eventTime": time, "producer": PRODUCER, "schemaURL": SCHEMA, "eventType": "COMPLETE",
        "run": {"runId": run}, "job": {"namespace": "etl", "name": "load_orders"},
        "outputs": [{"namespace": "warehouse", "name": name, "facets": facets}]})


def test_schema_versions_record_each_change_once_in_time_order() -> None:
    first = "00000000-0000-4000-8000-000000000001"
    second = "00000000-0000-4000-8000-000000000002"
    events = [
        _event("2026-11-02T02:00:00Z", second, [("id", "INT"), ("amount", "DOUBLE"), ("note", "VARCHAR")]),
        _event("2026-11-01T02:00:00Z", first, [("id", "INT"), ("amount", "VARCHAR")]),
        _event("2026-11-01T03:00:00Z", first, [("id", "INT"), ("amount", "VARCHAR")]),  # unchanged: no version
        _event("2026-11-01T04:00:00Z", first, None),  # no schema facet: says nothing
    ]
    versions = schema_versions(events)
    assert [(v[0], v[1], v[3], v[5]) for v in versions] == [
        ("warehouse", "orders", "etl/load_orders", None),
        ("warehouse", "orders", "etl/load_orders", "added note, amount: VARCHAR -> DOUBLE"),
    ]


def test_events_appended_later_continue_from_the_newest_schema() -> None:
    run = "00000000-0000-4000-8000-000000000003"
    last: dict = {}
    schema_versions([_event("2026-11-01T02:00:00Z", run, [("id", "INT")])], last)
    later = schema_versions([_event("2026-11-03T02:00:00Z", run, [("id", "BIGINT")])], last)
    assert [v[5] for v in later] == ["id: INT -> BIGINT"]
