import yaml

from meshpilot.guardrails.classify import classify_column, classify_workspace
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.catalog import Catalog


def test_demo_columns_are_classified_as_curated(demo_workspace: Workspace) -> None:
    proposals = {(p.dataset.rsplit("/", 1)[-1], p.column): p for p in classify_workspace(demo_workspace)}
    profile = {c: p for (d, c), p in proposals.items() if d == "customer_profile"}
    for column in ("first_name", "last_name", "email", "phone", "street_address", "city", "date_of_birth"):
        assert profile[column].proposed == profile[column].current, (column, profile[column])
    assert "sampled values" in profile["email"].evidence and "sampled values" in profile["phone"].evidence
    # No false alarms: flags, keys, amounts and categories stay unclassified.
    wrong = [p for p in proposals.values() if p.proposed and not p.current]
    assert not wrong, wrong


def test_column_rules() -> None:
    assert classify_column("contact", None, ["ann@example.org", "bo@example.org", "cy@example.org"])[0] == "EMAIL_ADDRESS"
    assert classify_column("email_opt_in", "Consented to e-mail", ["true", "false"])[0] is None
    assert classify_column("notes", "Free text", ["call me back", "late delivery", "ok"])[0] is None
    assert classify_column("customer_email", None, [])[0] == "EMAIL_ADDRESS"
    assert classify_column("ltv", "Lifetime value per e-mail", [], "DOUBLE")[0] is None


def test_write_stores_classification_in_the_product_files(demo_workspace: Workspace, cli) -> None:
    path = demo_workspace.root / "products" / "customer.customer-profile.yaml"
    doc = yaml.safe_load(path.read_text())
    columns = doc["output_ports"][0]["dataset"]["columns"]
    email = next(c for c in columns if c["name"] == "email")
    del email["classification"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    dry = cli("pii", "classify", "--workspace", str(demo_workspace.root))
    assert dry.code == 0 and "would change" in dry.stderr
    assert "classification" not in next(c for c in yaml.safe_load(path.read_text())["output_ports"][0]["dataset"]["columns"]
                                        if c["name"] == "email")
    wrote = cli("pii", "classify", "--workspace", str(demo_workspace.root), "--write", "--json")
    assert wrote.code == 0 and "products/customer.customer-profile.yaml" in wrote.stdout
    hits = Catalog.open(demo_workspace).search("email", classification="EMAIL_ADDRESS", kind="column").hits
    assert any(h.ref.endswith("#email") for h in hits)
