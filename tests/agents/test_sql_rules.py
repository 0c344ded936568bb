"""The offline SQL writer answers right or says what it could not map: never a query that drops part of
the question. Tables and wording here are not the demo's."""

import pytest

from meshpilot.agents.sql_rules import Draft, OfflineSqlWriter, Refusal
from meshpilot.mesh.model import Column, Dataset

PCS = Dataset(name="pc", qualified_name="shop.pc", columns=[
    Column(name="code", type="INTEGER", primary_key=True), Column(name="model", type="VARCHAR"),
    Column(name="maker", type="VARCHAR"), Column(name="speed", type="DOUBLE"), Column(name="ram", type="INTEGER"),
    Column(name="price", type="DECIMAL(10,2)")])
SHIPMENTS = Dataset(name="shipments", qualified_name="logistics.shipments", columns=[
    Column(name="shipment_id", type="VARCHAR", primary_key=True), Column(name="carrier", type="VARCHAR"),
    Column(name="state", type="VARCHAR"), Column(name="weight_kg", type="DOUBLE"),
    Column(name="shipped_on", type="DATE"), Column(name="insured", type="BOOLEAN")])
VALUES = {("pc", "maker"): ["A", "B", "E"], ("pc", "model"): ["1121", "1232"],
          ("shipments", "carrier"): ["dhl", "ups", "fedex"], ("shipments", "state"): ["delivered", "lost", "in transit"]}


def write(question: str, table: Dataset) -> Draft | Refusal:
    return OfflineSqlWriter(lambda d, c: VALUES.get((d.name, c.name))).write(question, [table])


@pytest.mark.parametrize(("question", "table", "condition"), [
    ("How many PCs are not from maker B?", PCS, "maker <> 'B'"),
    ("how many pcs are there from maker E", PCS, "maker = 'E'"),
    ("list shipments that are not delivered", SHIPMENTS, "state <> 'delivered'"),
    ("count shipments that weren't lost", SHIPMENTS, "state <> 'lost'"),
    ("number of ups shipments", SHIPMENTS, "carrier = 'ups'"),
    ("How many shipments are not insured?", SHIPMENTS, "insured = FALSE"),
])
def test_filters_keep_their_sense(question: str, table: Dataset, condition: str) -> None:
    draft = write(question, table)
    assert isinstance(draft, Draft), draft
    assert condition in draft.sql


@pytest.mark.parametrize(("question", "table", "unmapped"), [
    ("How many PCs have a speed greater than 1.7?", PCS, "1.7"),
    ("list the pcs with at least 64 ram", PCS, "64"),
    ("How many shipments weigh over 20 kg?", SHIPMENTS, "20"),
    ("count the shipments without a tracking number", SHIPMENTS, "without"),
    ("which pcs are never discounted", PCS, "never"),
])
def test_what_cannot_be_mapped_is_named_not_dropped(question: str, table: Dataset, unmapped: str) -> None:
    refusal = write(question, table)
    assert isinstance(refusal, Refusal), refusal
    assert f"'{unmapped}'" in refusal.reason


def test_an_article_is_not_a_value() -> None:
    draft = write("list a pc from maker A", PCS)
    assert isinstance(draft, Draft) and draft.sql.count("maker = 'A'") == 1
    assert "maker = " not in write("how many pcs are there, as a total", PCS).sql


@pytest.mark.parametrize(("question", "window", "limit"), [
    ("show shipments in the last 30 days", "INTERVAL '30' DAY", None),
    ("how many shipments in the past 7 days", "INTERVAL '7' DAY", None),
    ("top 5 shipments by weight in the last 14 days", "INTERVAL '14' DAY", "LIMIT 5"),
])
def test_a_time_window_is_not_a_limit(question: str, window: str, limit: str | None) -> None:
    draft = write(question, SHIPMENTS)
    assert isinstance(draft, Draft), draft
    assert window in draft.sql and "shipped_on" in draft.sql
    assert (limit in draft.sql) if limit else "LIMIT" not in draft.sql


def test_a_negated_value_is_never_answered_as_the_value() -> None:
    found = write("How many PCs are not made by maker B?", PCS)
    assert isinstance(found, Refusal) or "maker <> 'B'" in found.sql
    assert not isinstance(found, Draft) or "maker = 'B'" not in found.sql
