"""The demo mesh: the starting portfolio map, built deterministically.

Commerce (Orders, Returns), Customer (Customer profile with PII, Customer lifetime value derived from
Orders, Returns and Profile) and Marketing (Campaign performance derived from CLV). The raw tables are
synthetic rows from a fixed seed; the derived tables are computed by real SQL in the warehouse, and
the OpenLineage events, check results and incidents describe what that SQL and those checks did.

The story the data tells: a CRM form change three days before `AS_OF` stopped capturing e-mail
addresses for new sign-ups, so the profile's e-mail completeness check fails and INC-0003 is open.
Two earlier incidents (a late orders load, a returns schema change) were resolved.
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from meshpilot.mesh import files
from meshpilot.mesh.model import (
    SLO,
    CheckResult,
    CheckStatus,
    Column,
    Consumer,
    Contact,
    DataProduct,
    Dataset,
    Incident,
    IncidentEvent,
    OutputPort,
    QualityCheck,
    Team,
    logical_type,
)
from meshpilot.mesh.quality import evaluate
from meshpilot.mesh.workspace import Workspace

SEED = 20240611
AS_OF = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
HISTORY_DAYS = 14
WAREHOUSE_NS = "duckdb://meshpilot-demo/warehouse"
PRODUCER = "https://github.com/meshpilot/meshpilot/demo"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/{name}.json#/$defs/{cls}"

FIRST_NAMES = ["Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Chloe", "Arjun", "Yuki", "Omar",
               "Lena", "Diego", "Priya", "Jonas", "Amara", "Ethan", "Zoe", "Hiroshi", "Fatima", "Leo", "Ines", "Kofi"]
LAST_NAMES = ["Smith", "Garcia", "Muller", "Rossi", "Kowalski", "Nguyen", "Okafor", "Silva", "Tanaka", "Dubois",
              "Johansson", "Patel", "Haddad", "Novak", "Fischer", "Moreau", "Kim", "Costa", "Schmidt", "Walsh"]
STREETS = ["Main St", "Oak Avenue", "Station Road", "Harbour Way", "Elm Street", "Market Square", "Mill Lane",
           "Park Road", "Church Street", "Victoria Road"]
CITIES = [("Boston", "US"), ("Austin", "US"), ("Seattle", "US"), ("Toronto", "CA"), ("London", "GB"),
          ("Manchester", "GB"), ("Berlin", "DE"), ("Munich", "DE"), ("Paris", "FR"), ("Lyon", "FR"),
          ("Madrid", "ES"), ("Amsterdam", "NL")]
RETURN_REASONS = ["damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery"]
CAMPAIGNS = [
    ("CMP-001", "Winter VIP preview", "email", "vip"), ("CMP-002", "Loyalty double points", "app", "loyal"),
    ("CMP-003", "Win-back autumn", "email", "at_risk"), ("CMP-004", "New customer welcome", "email", "new"),
    ("CMP-005", "VIP concierge", "phone", "vip"), ("CMP-006", "Refer a friend", "social", "loyal"),
    ("CMP-007", "We miss you", "sms", "at_risk"), ("CMP-008", "First repeat purchase", "app", "new"),
    ("CMP-009", "Black Friday early access", "email", "vip"), ("CMP-010", "Seasonal lookbook", "social", "loyal"),
]


# --- the products ----------------------------------------------------------------------------------


def _col(name: str, type_: str, description: str, **kw: Any) -> Column:
    return Column(name=name, type=type_, description=description, **kw)


def _check(id_: str, kind: str, description: str, column: str | None = None, severity: str = "error", **params: Any) -> QualityCheck:
    return QualityCheck(id=id_, kind=kind, column=column, description=description, severity=severity, params=params,
                        schedule="daily 05:00 UTC")


def _port(name: str, qualified: str, description: str, columns: list[Column], checks: list[QualityCheck]) -> OutputPort:
    return OutputPort(
        name=name, kind="table", location=f"warehouse.duckdb:{qualified}", description=description,
        dataset=Dataset(name=name, qualified_name=qualified, namespace=WAREHOUSE_NS, description=description,
                        columns=columns, checks=checks),
    )


def teams() -> list[Team]:
    def member(name: str, role: str) -> Contact:
        return Contact(name=name, email=f"{name.lower().replace(' ', '.')}@meshpilot-demo.example", role=role,
                       slack="@" + name.split()[0].lower())

    return [
        Team(id="commerce-data", name="Commerce Data", domain="commerce", slack_channel="#commerce-data",
             oncall="dana.whitfield@meshpilot-demo.example", description="Owns order and return facts.",
             members=[member("Dana Whitfield", "product owner"), member("Ravi Menon", "data engineer"),
                      member("Sam Ortiz", "analytics engineer")]),
        Team(id="customer-insights", name="Customer Insights", domain="customer", slack_channel="#customer-insights",
             oncall="grace.liu@meshpilot-demo.example", description="Owns the customer profile and customer value.",
             members=[member("Grace Liu", "product owner"), member("Tomasz Nowak", "data engineer"),
                      member("Elif Yilmaz", "data scientist")]),
        Team(id="marketing-analytics", name="Marketing Analytics", domain="marketing",
             slack_channel="#marketing-analytics", oncall="marco.bianchi@meshpilot-demo.example",
             description="Measures campaigns and audiences.",
             members=[member("Marco Bianchi", "product owner"), member("Nora Jensen", "analytics engineer")]),
        Team(id="data-platform", name="Data Platform", slack_channel="#data-platform",
             oncall="platform-oncall", description="Runs the mesh platform, governance and the copilot.",
             members=[member("Alex Kim", "platform engineer"), member("Jordan Reyes", "governance lead")]),
    ]


def products() -> list[DataProduct]:
    orders = DataProduct(
        id="orders", name="Orders", domain="commerce", owner="commerce-data", version="2.3.0",
        description="Order facts: one row per customer order placed on the web shop, the app or in store, with "
                    "its amount, status and sales channel. The source of truth for revenue reporting.",
        tags=["orders", "sales", "revenue", "facts"],
        consumers=[Consumer(name="mesh://customer/customer-lifetime-value", kind="product", purpose="customer value"),
                   Consumer(name="finance-reporting", kind="team", purpose="monthly revenue close")],
        output_ports=[_port("orders", "commerce.orders", "Customer orders, one row per order.", [
            _col("order_id", "VARCHAR", "Unique order identifier.", nullable=False, primary_key=True),
            _col("customer_id", "VARCHAR", "The customer who placed the order.", nullable=False,
                 references="mesh://customer/customer-profile/customer_profile#customer_id"),
            _col("order_date", "DATE", "Date the order was placed (UTC).", nullable=False),
            _col("status", "VARCHAR", "Order status: completed, shipped, pending or cancelled."),
            _col("currency", "VARCHAR", "ISO 4217 currency of the amount."),
            _col("amount", "DECIMAL(10,2)", "Order total including tax, in the order currency.", nullable=False),
            _col("item_count", "INTEGER", "Number of items in the order."),
            _col("channel", "VARCHAR", "Sales channel: web, app or store."),
            _col("loaded_at", "TIMESTAMPTZ", "When the row was loaded into the warehouse."),
        ], [
            _check("orders_order_id_unique", "unique", "Order ids are unique.", "order_id"),
            _check("orders_amount_non_negative", "range", "Amounts are never negative.", "amount", min=0),
            _check("orders_status_accepted", "accepted_values", "Status is one of the known values.", "status",
                   values=["completed", "shipped", "pending", "cancelled"]),
            _check("orders_row_count", "row_count", "At least 1,000 orders.", min=1000, severity="warning"),
            _check("orders_freshness", "freshness", "Loaded within the last 24 hours.", "loaded_at", max_age_hours=24),
        ])],
        slos=[SLO(kind="freshness", target=timedelta(hours=24), dataset="orders"),
              SLO(kind="completeness", target=0.999, dataset="orders", column="customer_id"),
              SLO(kind="availability", target=0.995)],
        contract="contracts/commerce.orders.odcs.yaml",
    )
    returns = DataProduct(
        id="returns", name="Returns", domain="commerce", owner="commerce-data", version="1.4.1",
        description="Return facts: one row per returned order with the reason and the refunded amount.",
        tags=["returns", "refunds", "facts"],
        consumers=[Consumer(name="mesh://customer/customer-lifetime-value", kind="product", purpose="net revenue")],
        output_ports=[_port("returns", "commerce.returns", "Returned orders and refunds.", [
            _col("return_id", "VARCHAR", "Unique return identifier.", nullable=False, primary_key=True),
            _col("order_id", "VARCHAR", "The returned order.", nullable=False,
                 references="mesh://commerce/orders/orders#order_id"),
            _col("customer_id", "VARCHAR", "The customer who returned it.", nullable=False),
            _col("return_date", "DATE", "Date the return was received."),
            _col("reason", "VARCHAR", "Return reason code."),
            _col("refund_amount", "DECIMAL(10,2)", "Amount refunded to the customer.", nullable=False),
            _col("loaded_at", "TIMESTAMPTZ", "When the row was loaded into the warehouse."),
        ], [
            _check("returns_return_id_unique", "unique", "Return ids are unique.", "return_id"),
            _check("returns_refund_non_negative", "range", "Refunds are never negative.", "refund_amount", min=0),
            _check("returns_reason_accepted", "accepted_values", "Reason is a known code.", "reason",
                   values=RETURN_REASONS),
        ])],
        slos=[SLO(kind="freshness", target=timedelta(hours=24), dataset="returns"),
              SLO(kind="availability", target=0.99)],
        contract="contracts/commerce.returns.odcs.yaml",
    )
    profile = DataProduct(
        id="customer-profile", name="Customer profile", domain="customer", owner="customer-insights", version="3.1.0",
        description="One row per customer with contact details and consent. Holds personal data (names, e-mails, "
                    "phones, addresses, dates of birth): access is restricted and PII columns are masked by default.",
        tags=["customers", "pii", "crm", "gdpr"],
        consumers=[Consumer(name="mesh://customer/customer-lifetime-value", kind="product", purpose="customer key"),
                   Consumer(name="customer-service", kind="team", purpose="contact customers about orders")],
        output_ports=[_port("customer_profile", "customer.customer_profile", "Customer master data from the CRM.", [
            _col("customer_id", "VARCHAR", "Unique customer identifier.", nullable=False, primary_key=True),
            _col("first_name", "VARCHAR", "Given name.", classification="PERSON", tags=["pii"]),
            _col("last_name", "VARCHAR", "Family name.", classification="PERSON", tags=["pii"]),
            _col("email", "VARCHAR", "Contact e-mail address.", classification="EMAIL_ADDRESS", tags=["pii"]),
            _col("phone", "VARCHAR", "Contact phone number (E.164).", classification="PHONE_NUMBER", tags=["pii"]),
            _col("street_address", "VARCHAR", "Street and number.", classification="LOCATION", tags=["pii"]),
            _col("city", "VARCHAR", "City.", classification="LOCATION", tags=["pii"]),
            _col("country", "VARCHAR", "ISO 3166 country code."),
            _col("date_of_birth", "DATE", "Date of birth.", classification="DATE_OF_BIRTH", tags=["pii"]),
            _col("signup_date", "DATE", "When the customer created an account.", nullable=False),
            _col("marketing_opt_in", "BOOLEAN", "Consent to marketing e-mails."),
            _col("loaded_at", "TIMESTAMPTZ", "When the row was loaded into the warehouse."),
        ], [
            _check("profile_customer_id_unique", "unique", "Customer ids are unique.", "customer_id"),
            _check("profile_email_not_null", "not_null", "Every customer has an e-mail address.", "email",
                   severity="critical"),
            _check("profile_email_format", "regex", "E-mail addresses are well formed.", "email",
                   pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"),
        ])],
        slos=[SLO(kind="completeness", target=0.99, dataset="customer_profile", column="email"),
              SLO(kind="freshness", target=timedelta(hours=24), dataset="customer_profile"),
              SLO(kind="availability", target=0.999)],
        contract="contracts/customer.customer-profile.odcs.yaml",
    )
    clv = DataProduct(
        id="customer-lifetime-value", name="Customer lifetime value", domain="customer", owner="customer-insights",
        version="1.2.0",
        description="Customer lifetime value: per customer, orders, gross revenue, refunds and net revenue to "
                    "date, and a value segment (vip, loyal, new, at_risk). Derived from Orders, Returns and "
                    "Customer profile.",
        tags=["clv", "customers", "revenue", "segmentation"],
        inputs=["mesh://commerce/orders", "mesh://commerce/returns", "mesh://customer/customer-profile"],
        consumers=[Consumer(name="mesh://marketing/campaign-performance", kind="product", purpose="audiences"),
                   Consumer(name="crm-personalisation", kind="application", purpose="next best offer")],
        output_ports=[_port("customer_lifetime_value", "customer.customer_lifetime_value",
                            "Lifetime value and segment per customer.", [
            _col("customer_id", "VARCHAR", "Customer identifier.", nullable=False, primary_key=True,
                 references="mesh://customer/customer-profile/customer_profile#customer_id"),
            _col("first_order_date", "DATE", "Date of the first order."),
            _col("last_order_date", "DATE", "Date of the most recent order."),
            _col("order_count", "BIGINT", "Number of completed or shipped orders."),
            _col("gross_revenue", "DECIMAL(18,2)", "Sum of order amounts."),
            _col("refunds", "DECIMAL(18,2)", "Sum of refunded amounts."),
            _col("net_revenue", "DECIMAL(18,2)", "Gross revenue minus refunds."),
            _col("clv_segment", "VARCHAR", "Value segment: vip, loyal, new or at_risk."),
            _col("contactable", "BOOLEAN", "Has an e-mail address and consented to marketing."),
            _col("computed_at", "TIMESTAMPTZ", "When the value was computed."),
        ], [
            _check("clv_customer_id_unique", "unique", "One row per customer.", "customer_id"),
            _check("clv_net_revenue_non_negative", "range", "Net revenue is never negative.", "net_revenue", min=0),
            _check("clv_segment_accepted", "accepted_values", "Segment is a known value.", "clv_segment",
                   values=["vip", "loyal", "new", "at_risk"]),
        ])],
        slos=[SLO(kind="freshness", target=timedelta(hours=36), dataset="customer_lifetime_value"),
              SLO(kind="availability", target=0.99)],
        contract="contracts/customer.customer-lifetime-value.odcs.yaml",
    )
    campaigns = DataProduct(
        id="campaign-performance", name="Campaign performance", domain="marketing", owner="marketing-analytics",
        version="0.9.0", status="active",
        description="Campaign performance: per campaign, the targeted value segment, customers reached, "
                    "conversions, attributed revenue, spend and return on ad spend. Derived from Customer "
                    "lifetime value.",
        tags=["marketing", "campaigns", "roas", "attribution"],
        inputs=["mesh://customer/customer-lifetime-value"],
        consumers=[Consumer(name="growth-team", kind="team", purpose="budget allocation"),
                   Consumer(name="exec-dashboard", kind="application", purpose="weekly marketing KPIs")],
        output_ports=[_port("campaign_performance", "marketing.campaign_performance",
                            "Performance per marketing campaign.", [
            _col("campaign_id", "VARCHAR", "Campaign identifier.", nullable=False, primary_key=True),
            _col("campaign_name", "VARCHAR", "Campaign name."),
            _col("channel", "VARCHAR", "Channel: email, app, sms, phone or social."),
            _col("clv_segment", "VARCHAR", "Targeted value segment."),
            _col("customers_targeted", "BIGINT", "Contactable customers in the audience."),
            _col("conversions", "BIGINT", "Customers who ordered after contact."),
            _col("revenue_attributed", "DECIMAL(18,2)", "Revenue attributed to the campaign."),
            _col("spend", "DECIMAL(18,2)", "Campaign spend."),
            _col("roas", "DOUBLE", "Return on ad spend: attributed revenue / spend."),
            _col("computed_at", "TIMESTAMPTZ", "When the figures were computed."),
        ], [
            _check("campaign_id_unique", "unique", "One row per campaign.", "campaign_id"),
            _check("campaign_roas_non_negative", "range", "ROAS is never negative.", "roas", min=0),
        ])],
        slos=[SLO(kind="freshness", target=timedelta(hours=48), dataset="campaign_performance")],
        contract="contracts/marketing.campaign-performance.odcs.yaml",
    )
    return [orders, returns, profile, clv, campaigns]


# --- the data --------------------------------------------------------------------------------------


def _raw_rows(rng: random.Random) -> dict[str, tuple[list[str], list[list[Any]]]]:
    today = AS_OF.date()
    loaded_at = (AS_OF - timedelta(hours=1)).isoformat()
    form_change = today - timedelta(days=3)
    customers = []
    for n in range(1, 2401):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        # The newest 60 customers signed up after the CRM form change that dropped the e-mail field.
        signup = (today - timedelta(days=rng.randint(4, 1100))) if n <= 2340 else (form_change + timedelta(days=rng.randint(0, 2)))
        email = None if signup >= form_change else f"{first}.{last}{n}@{rng.choice(['mail.example', 'inbox.example', 'post.example'])}".lower()
        customers.append([
            f"C{n:05d}", first, last, email, f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            f"{rng.randint(1, 250)} {rng.choice(STREETS)}", city, country,
            date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)).isoformat(), signup.isoformat(),
            rng.random() < 0.6, loaded_at,
        ])
    orders, returns = [], []
    for n in range(1, 7001):
        customer = rng.choice(customers)
        signup = date.fromisoformat(customer[9])
        order_date = signup + timedelta(days=rng.randint(0, max(0, (today - signup).days)))
        status = rng.choices(["completed", "shipped", "pending", "cancelled"], [70, 15, 8, 7])[0]
        amount = round(rng.lognormvariate(4.0, 0.7), 2)
        orders.append([f"O{n:06d}", customer[0], order_date.isoformat(), status,
                       rng.choice(["USD", "USD", "EUR", "GBP"]), amount, rng.randint(1, 8),
                       rng.choice(["web", "web", "app", "store"]), loaded_at])
        if status == "completed" and rng.random() < 0.11:
            refund = round(amount * rng.choice([1.0, 1.0, 0.5, 0.25]), 2)
            returns.append([f"R{len(returns) + 1:06d}", f"O{n:06d}", customer[0],
                            min(today, order_date + timedelta(days=rng.randint(2, 30))).isoformat(),
                            rng.choice(RETURN_REASONS), refund, loaded_at])
    return {
        "customer.customer_profile": (
            ["customer_id", "first_name", "last_name", "email", "phone", "street_address", "city", "country",
             "date_of_birth", "signup_date", "marketing_opt_in", "loaded_at"], customers),
        "commerce.orders": (
            ["order_id", "customer_id", "order_date", "status", "currency", "amount", "item_count", "channel",
             "loaded_at"], orders),
        "commerce.returns": (
            ["return_id", "order_id", "customer_id", "return_date", "reason", "refund_amount", "loaded_at"], returns),
    }


_CLV_SQL = """
CREATE TABLE customer.customer_lifetime_value AS
WITH o AS (
    SELECT customer_id, min(order_date) AS first_order_date, max(order_date) AS last_order_date,
           count(*) AS order_count, sum(amount) AS gross_revenue
    FROM commerce.orders WHERE status IN ('completed', 'shipped') GROUP BY customer_id
), r AS (
    SELECT customer_id, sum(refund_amount) AS refunds FROM commerce.returns GROUP BY customer_id
)
SELECT p.customer_id, o.first_order_date, o.last_order_date, coalesce(o.order_count, 0) AS order_count,
       CAST(coalesce(o.gross_revenue, 0) AS DECIMAL(18,2)) AS gross_revenue,
       CAST(coalesce(r.refunds, 0) AS DECIMAL(18,2)) AS refunds,
       CAST(coalesce(o.gross_revenue, 0) - coalesce(r.refunds, 0) AS DECIMAL(18,2)) AS net_revenue,
       CASE WHEN coalesce(o.gross_revenue, 0) - coalesce(r.refunds, 0) >= 400 THEN 'vip'
            WHEN o.order_count >= 3 THEN 'loyal'
            WHEN o.last_order_date < DATE '{as_of}' - INTERVAL 180 DAY THEN 'at_risk'
            ELSE 'new' END AS clv_segment,
       p.email IS NOT NULL AND coalesce(p.marketing_opt_in, false) AS contactable,
       TIMESTAMPTZ '{computed}' AS computed_at
FROM customer.customer_profile p LEFT JOIN o USING (customer_id) LEFT JOIN r USING (customer_id)
ORDER BY p.customer_id
"""

_CAMPAIGN_SQL = """
CREATE TABLE marketing.campaign_performance AS
WITH seg AS (
    SELECT clv_segment, count(*) FILTER (contactable) AS customers, sum(net_revenue) AS net_revenue
    FROM customer.customer_lifetime_value GROUP BY clv_segment
), c AS (SELECT * FROM (VALUES {campaigns}) t(campaign_id, campaign_name, channel, clv_segment))
SELECT c.campaign_id, c.campaign_name, c.channel, c.clv_segment,
       CAST(seg.customers * 0.8 AS BIGINT) AS customers_targeted,
       CAST(seg.customers * 0.8 * (0.02 + (hash(c.campaign_id) % 7) / 100.0) AS BIGINT) AS conversions,
       CAST(seg.net_revenue * (0.01 + (hash(c.campaign_id) % 5) / 100.0) AS DECIMAL(18,2)) AS revenue_attributed,
       CAST(500 + (hash(c.campaign_id) % 4000) AS DECIMAL(18,2)) AS spend,
       round(CAST(revenue_attributed AS DOUBLE) / CAST(spend AS DOUBLE), 3) AS roas,
       TIMESTAMPTZ '{computed}' AS computed_at
FROM c JOIN seg USING (clv_segment) ORDER BY c.campaign_id
"""


def build_warehouse(path: Path, product_list: list[DataProduct]) -> None:
    """Create the warehouse at `path` (replacing it atomically) with raw and derived tables."""
    rng = random.Random(SEED)
    raw = _raw_rows(rng)
    declared = {d.qualified_name: d for p in product_list for d in p.datasets}
    with files.replaced_atomically(path) as tmp, duckdb.connect(str(tmp)) as con, \
            tempfile.TemporaryDirectory() as scratch:
        for schema in ("commerce", "customer", "marketing"):
            con.execute(f"CREATE SCHEMA {schema}")
        for table, (header, rows) in raw.items():
            csv_path = Path(scratch) / f"{table}.csv"
            with csv_path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                writer.writerows(rows)
            columns = ", ".join(f'"{c.name}" {c.type}' for c in declared[table].columns)
            con.execute(f"CREATE TABLE {table} ({columns})")
            con.execute(f"INSERT INTO {table} SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                        [str(csv_path)])
        computed = (AS_OF - timedelta(minutes=30)).isoformat()
        con.execute(_CLV_SQL.format(as_of=AS_OF.date().isoformat(), computed=computed))
        values = ", ".join("(" + ", ".join(f"'{v}'" for v in c) + ")" for c in CAMPAIGNS)
        con.execute(_CAMPAIGN_SQL.format(campaigns=values, computed=computed))


# --- contracts -------------------------------------------------------------------------------------

def _odcs_quality(check: QualityCheck) -> dict[str, Any]:
    base = {"id": check.id, "description": check.description, "severity": check.severity.value}
    p = check.params
    match check.kind.value:
        case "not_null":
            return {**base, "type": "library", "metric": "nullValues", "mustBe": 0, "dimension": "completeness"}
        case "unique":
            return {**base, "type": "library", "metric": "duplicateValues", "mustBe": 0, "dimension": "uniqueness"}
        case "accepted_values":
            return {**base, "type": "library", "metric": "invalidValues", "mustBe": 0, "dimension": "conformity",
                    "arguments": {"validValues": p["values"]}}
        case "regex":
            return {**base, "type": "library", "metric": "invalidValues", "mustBe": 0, "dimension": "conformity",
                    "arguments": {"pattern": p["pattern"]}}
        case "row_count":
            return {**base, "type": "library", "metric": "rowCount", "mustBeGreaterOrEqualTo": p["min"],
                    "dimension": "completeness"}
        case "range":
            return {**base, "type": "sql", "dimension": "accuracy", "mustBe": 0,
                    "query": f"SELECT count(*) FROM ${{object}} WHERE {check.column} < {p['min']}"}
        case _:
            return {**base, "type": "custom", "dimension": "timeliness", "engine": "meshpilot",
                    "implementation": {"kind": check.kind.value, **p}}


def contract_for(product: DataProduct, team: Team) -> dict[str, Any]:
    """The ODCS v3.1 contract of a demo product, written the way a product team would."""
    schema = []
    for dataset in product.datasets:
        schema.append({
            "name": dataset.name, "physicalName": dataset.qualified_name, "physicalType": "table",
            "logicalType": "object", "description": dataset.description,
            "properties": [
                {k: v for k, v in {
                    "name": c.name, "logicalType": logical_type(c.type), "physicalType": c.type,
                    "description": c.description, "required": not c.nullable or None,
                    "primaryKey": c.primary_key or None, "classification": c.classification,
                    "tags": c.tags or None,
                    "quality": [_odcs_quality(q) for q in dataset.checks if q.column == c.name] or None,
                }.items() if v is not None}
                for c in dataset.columns
            ],
            "quality": [_odcs_quality(q) for q in dataset.checks if q.column is None] or None,
        })
        if schema[-1]["quality"] is None:
            del schema[-1]["quality"]
    sla = []
    for slo in product.slos:
        entry: dict[str, Any] = {"property": {"freshness": "latency", "completeness": "completeness",
                                               "availability": "availability"}[slo.kind.value]}
        if isinstance(slo.target, timedelta):
            entry.update(value=int(slo.target.total_seconds() // 3600), unit="h")
        else:
            entry.update(value=slo.target, unit="ratio")
        if slo.dataset:
            entry["element"] = f"{slo.dataset}.{slo.column}" if slo.column else slo.dataset
        sla.append(entry)
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": f"{product.domain}-{product.id}",
        "name": product.name, "version": product.version, "status": "active", "domain": product.domain,
        "dataProduct": product.id, "tenant": "meshpilot-demo",
        "description": {"purpose": product.description,
                        "usage": "Read through the output port tables in the warehouse.",
                        "limitations": "Synthetic demo data." + (" Contains PII: restricted access."
                                                                 if "pii" in product.tags else "")},
        "schema": schema,
        "slaProperties": sla,
        "team": {"name": team.name, "members": [{"username": m.email, "name": m.name, "role": m.role}
                                                 for m in team.members]},
        "support": [{"channel": team.slack_channel, "tool": "slack"}],
        "tags": product.tags,
        "contractCreatedTs": "2026-01-15T09:00:00Z",
    }


# --- lineage ---------------------------------------------------------------------------------------


def _facet(name: str, cls: str, **body: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA.format(name=name, cls=cls), **body}


def _ol_dataset(namespace: str, name: str, columns: list[Column] | None = None,
                column_lineage: dict[str, list[tuple[str, str, str, str, str]]] | None = None,
                indirect: list[tuple[str, str, str, str]] | None = None) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if columns:
        facets["schema"] = _facet("SchemaDatasetFacet", "SchemaDatasetFacet",
                                  fields=[{"name": c.name, "type": c.type, "description": c.description}
                                          for c in columns])
    if column_lineage:
        def field(ns: str, ds: str, col: str, type_: str, subtype: str) -> dict[str, Any]:
            return {"namespace": ns, "name": ds, "field": col,
                    "transformations": [{"type": type_, "subtype": subtype, "masking": False}]}

        facets["columnLineage"] = _facet(
            "ColumnLineageDatasetFacet", "ColumnLineageDatasetFacet",
            fields={out: {"inputFields": [field(*src) for src in sources]} for out, sources in column_lineage.items()},
            dataset=[field(ns, ds, col, "INDIRECT", sub) for ns, ds, col, sub in (indirect or [])],
        )
    return {"namespace": namespace, "name": name, "facets": facets}


def _identity(namespace: str, source: str, columns: list[Column]) -> dict[str, list[tuple]]:
    return {c.name: [(namespace, source, c.name, "DIRECT", "IDENTITY")] for c in columns if c.name != "loaded_at"}


def _jobs(product_list: list[DataProduct]) -> list[dict[str, Any]]:
    """Each pipeline: its job name, inputs and outputs as OpenLineage datasets, and its daily start hour."""
    by_name = {d.qualified_name: d for p in product_list for d in p.datasets}
    wh = WAREHOUSE_NS
    o, r, p = "commerce.orders", "commerce.returns", "customer.customer_profile"
    clv, camp = "customer.customer_lifetime_value", "marketing.campaign_performance"
    agg = "AGGREGATION"
    clv_lineage = {
        "customer_id": [(wh, p, "customer_id", "DIRECT", "IDENTITY")],
        "first_order_date": [(wh, o, "order_date", "DIRECT", agg)],
        "last_order_date": [(wh, o, "order_date", "DIRECT", agg)],
        "order_count": [(wh, o, "order_id", "DIRECT", agg)],
        "gross_revenue": [(wh, o, "amount", "DIRECT", agg)],
        "refunds": [(wh, r, "refund_amount", "DIRECT", agg)],
        "net_revenue": [(wh, o, "amount", "DIRECT", agg), (wh, r, "refund_amount", "DIRECT", agg)],
        "contactable": [(wh, p, "email", "DIRECT", "TRANSFORMATION"), (wh, p, "marketing_opt_in", "DIRECT", "TRANSFORMATION")],
        "clv_segment": [(wh, o, "amount", "DIRECT", "TRANSFORMATION"), (wh, r, "refund_amount", "DIRECT", "TRANSFORMATION"),
                        (wh, o, "order_id", "DIRECT", "TRANSFORMATION"), (wh, o, "order_date", "DIRECT", "TRANSFORMATION")],
    }
    clv_indirect = [(wh, o, "status", "FILTER"), (wh, o, "customer_id", "JOIN"), (wh, r, "customer_id", "JOIN"),
                    (wh, p, "customer_id", "JOIN"), (wh, o, "customer_id", "GROUP_BY")]
    mkt = "hubspot://marketing"
    camp_lineage = {
        "campaign_id": [(mkt, "campaigns", "campaign_id", "DIRECT", "IDENTITY")],
        "campaign_name": [(mkt, "campaigns", "campaign_name", "DIRECT", "IDENTITY")],
        "channel": [(mkt, "campaigns", "channel", "DIRECT", "IDENTITY")],
        "clv_segment": [(mkt, "campaigns", "clv_segment", "DIRECT", "IDENTITY")],
        "customers_targeted": [(wh, clv, "customer_id", "DIRECT", agg), (wh, clv, "contactable", "DIRECT", agg)],
        "conversions": [(wh, clv, "customer_id", "DIRECT", agg)],
        "revenue_attributed": [(wh, clv, "net_revenue", "DIRECT", agg)],
        "spend": [(mkt, "campaigns", "budget", "DIRECT", "TRANSFORMATION")],
        "roas": [(wh, clv, "net_revenue", "DIRECT", "TRANSFORMATION"), (mkt, "campaigns", "budget", "DIRECT", "TRANSFORMATION")],
    }

    def ingest(job: str, source_ns: str, source: str, target: str, hour: int) -> dict[str, Any]:
        cols = by_name[target].columns
        return {"job": job, "hour": hour, "inputs": [_ol_dataset(source_ns, source)],
                "outputs": [_ol_dataset(wh, target, cols, _identity(source_ns, source, cols))]}

    return [
        ingest("commerce.ingest_orders", "postgres://shop-db.internal:5432", "shop.public.orders", o, 2),
        ingest("commerce.ingest_returns", "postgres://shop-db.internal:5432", "shop.public.returns", r, 2),
        ingest("customer.ingest_crm_customers", "postgres://crm-db.internal:5432", "crm.public.customers", p, 3),
        {"job": "customer.build_customer_lifetime_value", "hour": 4,
         "inputs": [_ol_dataset(wh, n) for n in (o, r, p)],
         "outputs": [_ol_dataset(wh, clv, by_name[clv].columns, clv_lineage, clv_indirect)]},
        {"job": "marketing.build_campaign_performance", "hour": 5,
         "inputs": [_ol_dataset(wh, clv), _ol_dataset(mkt, "campaigns")],
         "outputs": [_ol_dataset(wh, camp, by_name[camp].columns, camp_lineage)]},
    ]


# Deviations from the daily routine that the incidents tell of: (job, days before AS_OF) -> what happened.
_LATE_ORDERS = ("commerce.ingest_orders", 11)
_FAILED_RETURNS = ("commerce.ingest_returns", 6)


def lineage_events(product_list: list[DataProduct], rng: random.Random) -> list[dict[str, Any]]:
    events = []
    for days_ago in range(HISTORY_DAYS - 1, -1, -1):
        day = AS_OF.replace(hour=0, minute=0) - timedelta(days=days_ago)
        for job in _jobs(product_list):
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            start = day + timedelta(hours=job["hour"], minutes=rng.randint(0, 9))
            duration = timedelta(minutes=rng.randint(3, 12))
            state, run_facets = "COMPLETE", {}
            if (job["job"], days_ago) == _LATE_ORDERS:
                start += timedelta(hours=9)  # the source database was in maintenance
            if (job["job"], days_ago) == _FAILED_RETURNS:
                state = "FAIL"
                run_facets["errorMessage"] = _facet(
                    "ErrorMessageRunFacet", "ErrorMessageRunFacet", programmingLanguage="SQL",
                    message="Conversion Error: Could not convert string '12,50' to DECIMAL(10,2) in column "
                            "refund_amount: upstream shop.public.returns changed refund_amount from NUMERIC to TEXT")
            base = {"producer": PRODUCER, "schemaURL": RUN_SCHEMA,
                    "job": {"namespace": "meshpilot-demo", "name": job["job"],
                            "facets": {"jobType": _facet("JobTypeJobFacet", "JobTypeJobFacet", processingType="BATCH",
                                                         integration="DBT", jobType="MODEL")}}}
            events.append({**base, "eventType": "START", "eventTime": start.isoformat(),
                           "run": {"runId": run_id, "facets": {}}, "inputs": job["inputs"], "outputs": []})
            events.append({**base, "eventType": state, "eventTime": (start + duration).isoformat(),
                           "run": {"runId": run_id, "facets": run_facets}, "inputs": job["inputs"],
                           "outputs": job["outputs"] if state == "COMPLETE" else []})
    return events


# --- quality history and incidents -----------------------------------------------------------------


def check_history(product_list: list[DataProduct], warehouse: Path, rng: random.Random) -> list[CheckResult]:
    """Daily results: the latest evaluated on the warehouse, earlier days replaying the story."""
    results = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for product in product_list:
            for dataset in product.datasets:
                ref = str(product.dataset_ref(dataset.name))
                for check in dataset.checks:
                    status, observed, message = evaluate(con, dataset, check, as_of=AS_OF)
                    for days_ago in range(HISTORY_DAYS - 1, -1, -1):
                        run_at = AS_OF.replace(hour=5, minute=30) - timedelta(days=days_ago)
                        if days_ago == 0 or (check.id == "profile_email_not_null" and days_ago <= 2):
                            day_status, day_observed, day_message = status, observed, message
                            if days_ago:  # the missing e-mails grew day by day since the form change
                                day_observed = max(1.0, round(observed * (3 - days_ago) / 3))
                                day_message = f"{day_observed:g} failing rows"
                        elif check.id == "returns_refund_non_negative" and days_ago == _FAILED_RETURNS[1]:
                            day_status, day_observed, day_message = (
                                CheckStatus.ERROR, None, "not evaluated: the load of commerce.returns failed")
                        elif check.kind.value == "freshness" and days_ago == _LATE_ORDERS[1]:
                            day_status, day_observed, day_message = CheckStatus.FAIL, 31.5, "31.5 hours old"
                        else:
                            day_status = CheckStatus.PASS
                            day_observed = observed if check.kind.value == "row_count" else 0.0
                            day_message = "0 failing rows" if day_observed == 0 else message
                        results.append(CheckResult(check_id=check.id, dataset=ref, status=day_status, run_at=run_at,
                                                   observed=day_observed, message=day_message))
    return results


def incidents() -> list[Incident]:
    def at(days_ago: int, hour: int, minute: int = 0) -> datetime:
        return AS_OF.replace(hour=hour, minute=minute) - timedelta(days=days_ago)

    late_day, fail_day = _LATE_ORDERS[1], _FAILED_RETURNS[1]
    return [
        Incident(
            id="INC-0001", title="Orders landed 9 hours late", status="resolved", severity="SEV3",
            opened_at=at(late_day, 5, 35), resolved_at=at(late_day, 12, 10),
            products=["mesh://commerce/orders", "mesh://customer/customer-lifetime-value"],
            datasets=["mesh://commerce/orders/orders"], check_id="orders_freshness", assignee="Ravi Menon",
            summary="The nightly orders load started at 11:00 instead of 02:00; CLV was computed on stale orders.",
            root_cause="Planned maintenance of the shop database was not announced to the Commerce Data team.",
            timeline=[
                IncidentEvent(at=at(late_day, 5, 35), actor="meshpilot", action="opened",
                              note="orders_freshness failed: 31.5 hours old (SLO 24 h)."),
                IncidentEvent(at=at(late_day, 6, 5), actor="Ravi Menon", action="assigned"),
                IncidentEvent(at=at(late_day, 11, 20), actor="Ravi Menon", action="note",
                              note="Shop DB maintenance window overran; load re-triggered."),
                IncidentEvent(at=at(late_day, 12, 10), actor="Ravi Menon", action="resolved",
                              note="Orders and CLV recomputed; added the shop DB calendar to on-call docs."),
            ],
        ),
        Incident(
            id="INC-0002", title="Returns load failed after an upstream type change", status="resolved",
            severity="SEV2", opened_at=at(fail_day, 2, 20), resolved_at=at(fail_day - 1, 10, 0),
            products=["mesh://commerce/returns", "mesh://customer/customer-lifetime-value"],
            datasets=["mesh://commerce/returns/returns"], check_id="returns_refund_non_negative",
            assignee="Sam Ortiz",
            summary="commerce.ingest_returns failed: shop.public.returns.refund_amount changed from NUMERIC to "
                    "TEXT with decimal commas; refunds were missing from CLV for one day.",
            root_cause="An unannounced schema change in the shop application (breaking change to refund_amount).",
            timeline=[
                IncidentEvent(at=at(fail_day, 2, 20), actor="meshpilot", action="opened",
                              note="Run of commerce.ingest_returns FAILED: conversion error on refund_amount."),
                IncidentEvent(at=at(fail_day, 8, 0), actor="Sam Ortiz", action="status", note="investigating"),
                IncidentEvent(at=at(fail_day, 15, 30), actor="Sam Ortiz", action="note",
                              note="Shop team reverted the column type; backfill scheduled."),
                IncidentEvent(at=at(fail_day - 1, 10, 0), actor="Sam Ortiz", action="resolved",
                              note="Backfilled; asked the shop team to publish a contract for returns."),
            ],
        ),
        Incident(
            id="INC-0003", title="New customers have no e-mail address", status="investigating", severity="SEV2",
            opened_at=at(2, 5, 40),
            products=["mesh://customer/customer-profile", "mesh://customer/customer-lifetime-value",
                      "mesh://marketing/campaign-performance"],
            datasets=["mesh://customer/customer-profile/customer_profile"], check_id="profile_email_not_null",
            assignee="Tomasz Nowak",
            summary="profile_email_not_null fails since the CRM sign-up form release: new customers arrive "
                    "without an e-mail; e-mail campaigns for the 'new' segment reach fewer customers.",
            timeline=[
                IncidentEvent(at=at(2, 5, 40), actor="meshpilot", action="opened",
                              note="profile_email_not_null failed (critical): rows with a null e-mail."),
                IncidentEvent(at=at(2, 7, 15), actor="Tomasz Nowak", action="assigned"),
                IncidentEvent(at=at(1, 9, 30), actor="Tomasz Nowak", action="note",
                              note="Started with the CRM form release; raised with the CRM team."),
            ],
        ),
    ]


# Who may see and do what (guardrails/policy.py reads it): analysts see every domain but no raw PII,
# product owners everything of their own domains, governance everything.
DEMO_POLICY = {
    "roles": {
        "analyst": {"description": "Explores every domain; never reads raw personal data.",
                    "domains": "*", "pii": "refuse", "tools": "*"},
        "data-product-owner": {"description": "Full access to the domains their team owns.",
                               "domains": "own", "pii": "allow", "tools": "*"},
        "governance": {"description": "Everything, for audits and incidents.", "domains": "*", "pii": "allow",
                       "tools": "*"},
        "commerce-analyst": {"description": "The commerce domain only; no personal data.", "domains": ["commerce"],
                             "pii": "refuse", "tools": "*"},
        "pseudonymous-analyst": {"description": "Every domain; personal data only as stable tokens (joins and "
                                                "counts work, values never show).", "domains": "*", "pii": "mask",
                                 "tools": "*"},
    },
    "default_role": "analyst",
    "approval": ["run_sql_on_pii", "publish_contract", "post_to_slack"],
}


# --- putting it together ---------------------------------------------------------------------------


def build_demo(path: str | os.PathLike[str] | None, progress: Callable[[str], None] = lambda _: None) -> Workspace:
    """Create the demo workspace at `path` (which must be new or empty)."""
    workspace = Workspace.create(path, name="meshpilot-demo",
                                 description="The demo mesh: Commerce, Customer and Marketing domains.")
    try:
        _fill(workspace, progress)
    except BaseException:
        # A half-built demo would look like a broken workspace: leave the folder as we found it.
        for child in sorted(workspace.root.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        raise
    return workspace


def _fill(workspace: Workspace, progress: Callable[[str], None]) -> None:
    rng = random.Random(SEED)
    product_list = products()
    team_list = teams()
    progress("warehouse")
    build_warehouse(workspace.root / "warehouse.duckdb", product_list)
    with duckdb.connect(str(workspace.root / "warehouse.duckdb"), read_only=True) as con:
        for product in product_list:
            for dataset in product.datasets:
                dataset.row_count = con.execute(f"SELECT count(*) FROM {dataset.qualified_name}").fetchone()[0]
                dataset.last_updated = AS_OF - timedelta(hours=1)
    progress("lineage")
    changes: dict[str, str] = {
        "teams.yaml": files.dump_yaml({"teams": [t.model_dump(mode="json", exclude_defaults=True) for t in team_list]}),
    }
    owners = {t.id: t for t in team_list}
    for product in product_list:
        document = product.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        changes[f"products/{product.domain}.{product.id}.yaml"] = files.dump_yaml(document)
        changes[product.contract] = files.dump_yaml(contract_for(product, owners[product.owner]))
    events = lineage_events(product_list, rng)
    changes["lineage/demo-pipelines.jsonl"] = "".join(_json_line(e) for e in events)
    progress("quality")
    results = check_history(product_list, workspace.root / "warehouse.duckdb", rng)
    changes["quality/demo-checks.jsonl"] = "".join(
        _json_line(r.model_dump(mode="json", exclude_none=True)) for r in results)
    changes["policy.yaml"] = files.dump_yaml(DEMO_POLICY)
    for incident in incidents():
        changes[f"incidents/{incident.id}.yaml"] = files.dump_yaml(incident.model_dump(mode="json", exclude_defaults=True))
    progress("index")
    workspace.apply(changes)


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True) + "\n"

