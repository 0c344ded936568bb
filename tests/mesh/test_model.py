from datetime import timedelta

import pytest
from pydantic import ValidationError

from meshpilot.errors import InvalidReferenceError
from meshpilot.mesh.model import SLO, Column, Dataset, MeshRef, slugify


@pytest.mark.parametrize("text", [
    "mesh://commerce/orders",
    "mesh://commerce/orders/orders",
    "mesh://commerce/orders/orders#amount",
    "mesh://sample_data/shopify/dim.api%2Fclient#id",
])
def test_mesh_ref_round_trips(text: str) -> None:
    assert str(MeshRef.parse(text)) == text


def test_mesh_ref_decodes_names_from_foreign_catalogs() -> None:
    ref = MeshRef.parse("mesh://sample_data/shopify/dim.api%2Fclient#weird%23col")
    assert (ref.dataset, ref.column) == ("dim.api/client", "weird#col")
    assert ref.product_ref() == MeshRef(domain="sample_data", product="shopify")


@pytest.mark.parametrize("text", ["commerce/orders", "mesh://commerce", "mesh://commerce/orders#amount",
                                  "mesh://a/b/c/d", "mesh://a//c", "mesh://a/b/c#"])
def test_malformed_mesh_refs_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        MeshRef.parse(text)
    assert "mesh://<domain>/<product>" in info.value.hint


def test_slo_targets_must_fit_their_kind() -> None:
    assert SLO(kind="freshness", target="PT24H").target == timedelta(hours=24)
    assert SLO(kind="completeness", target=0.99).target == 0.99
    with pytest.raises(ValidationError, match="duration"):
        SLO(kind="freshness", target=0.5)
    with pytest.raises(ValidationError, match="ratio"):
        SLO(kind="availability", target=99.9)


def test_datasets_refuse_duplicate_columns() -> None:
    with pytest.raises(ValidationError, match="duplicate column names in dataset 'd': a"):
        Dataset(name="d", qualified_name="s.d", columns=[Column(name="a"), Column(name="a")])


def test_unknown_fields_are_refused_so_typos_surface() -> None:
    with pytest.raises(ValidationError, match="descripton"):
        Column(name="a", descripton="typo")


def test_slugify() -> None:
    assert slugify("Customer Insights") == "customer-insights"
    assert slugify("dim.api/client") == "dim.api-client"
    assert slugify("///") == "unnamed"
