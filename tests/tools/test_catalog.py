import importlib.util
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from meshpilot.errors import InvalidArgumentError, NotFoundError
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools import catalog, embeddings
from meshpilot.tools.catalog import Catalog
from tests.conftest import shared

EMAIL = "mesh://customer/customer-profile/customer_profile#email"


def test_search_finds_where_customer_emails_are_kept(demo_workspace: Workspace) -> None:
    result = catalog.search_catalog("where do we keep customer email addresses", k=5, workspace=demo_workspace)
    refs = [h.ref for h in result.hits]
    assert EMAIL in refs[:3]
    hit = next(h for h in result.hits if h.ref == EMAIL)
    assert hit.kind == "column" and hit.classification == ["EMAIL_ADDRESS"] and "email" in hit.matched["name"]
    assert hit.owner == "customer-insights" and "e-mail" in hit.snippet
    assert result.citations == refs


def test_words_the_catalog_does_not_use_find_what_it_names_otherwise(demo_workspace: Workspace) -> None:
    """No column says "born" or "nation": the general synonyms reach date_of_birth and country."""
    for query, wanted in (("when was the shopper born", "customer_profile#date_of_birth"),
                          ("advertising budget", "campaign_performance#spend")):
        refs = [h.ref for h in catalog.search_catalog(query, k=5, workspace=demo_workspace).hits]
        assert any(r.endswith(wanted) for r in refs), (query, refs)


def test_a_synonym_never_outranks_the_word_the_user_wrote(demo_workspace: Workspace) -> None:
    # "amount" widens to sum, value, paid, payment...: the columns named amount still come first.
    columns = [h.ref for h in catalog.search_catalog("amount", k=10, kind="column", workspace=demo_workspace).hits]
    named = [i for i, r in enumerate(columns) if "amount" in r.split("#")[1]]
    assert named and named == list(range(len(named))), columns


def test_a_mesh_adds_its_own_synonyms_in_its_manifest(demo_workspace: Workspace) -> None:
    import yaml

    assert not catalog.search_catalog("attrition", workspace=demo_workspace).hits  # nothing says attrition
    manifest = demo_workspace.root / "meshpilot.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["synonyms"] = [["attrition", "churn", "lifetime value"]]
    manifest.write_text(yaml.safe_dump(data))
    refs = [h.ref for h in catalog.search_catalog("attrition", k=3, workspace=demo_workspace).hits]
    assert "mesh://customer/customer-lifetime-value" in refs


def test_a_synonym_group_of_one_is_refused_with_where_it_is(demo_workspace: Workspace) -> None:
    import yaml

    from meshpilot.errors import MeshpilotError

    manifest = demo_workspace.root / "meshpilot.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["synonyms"] = [["sku", "article number"], ["lonely"]]
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(MeshpilotError) as info:
        catalog.search_catalog("sku", workspace=demo_workspace)
    assert "meshpilot.yaml" in info.value.message and "synonyms" in " ".join(map(str, info.value.problems))


@pytest.mark.parametrize(("filters", "allowed"), [
    ({"domain": "marketing"}, lambda ref: ref.startswith("mesh://marketing/")),
    ({"owner": "commerce-data"}, lambda ref: ref.startswith("mesh://commerce/")),
    ({"kind": "column"}, lambda ref: "#" in ref),
    ({"tags": ["pii"]}, lambda ref: ref.startswith("mesh://customer/customer-profile")),
    ({"classification": "EMAIL_ADDRESS"},
     lambda ref: ref in {EMAIL, "mesh://customer/customer-profile/customer_profile", "mesh://customer/customer-profile"}),
])
def test_filters_apply_before_ranking(demo_workspace: Workspace, filters, allowed) -> None:
    hits = catalog.search_catalog("customer revenue email order", k=50, workspace=demo_workspace, **filters).hits
    assert hits and all(allowed(h.ref) for h in hits), [h.ref for h in hits]


@pytest.mark.parametrize(("filters", "message", "hint"), [
    ({"domain": "comerce"}, "No domain 'comerce'", "commerce"),
    ({"owner": "nobody"}, "No owner 'nobody'", "Known values"),
    ({"kind": "table"}, "No kind 'table'", "column"),
    ({"classification": "EMAIL"}, "No classification 'EMAIL'", "EMAIL_ADDRESS"),
])
def test_unknown_filter_values_are_named(demo_workspace: Workspace, filters, message, hint) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        catalog.search_catalog("email", workspace=demo_workspace, **filters)
    assert message in info.value.message and hint in info.value.hint


@pytest.mark.parametrize("query", ["", "   ", "the of and", "???"])
def test_queries_without_searchable_words_are_refused(demo_workspace: Workspace, query: str) -> None:
    with pytest.raises(InvalidArgumentError):
        catalog.search_catalog(query, workspace=demo_workspace)


def test_the_index_is_persisted_and_updated_one_product_at_a_time(demo_workspace: Workspace) -> None:
    first = Catalog.open(demo_workspace)
    assert first.status["rebuilt"] == "there was no search index yet; built it"
    assert first.status["products_changed"] == 5
    again = Catalog.open(demo_workspace)
    assert "rebuilt" not in again.status and again.status["products_changed"] == 0
    product = demo_workspace.root / "products" / "commerce.returns.yaml"
    product.write_text(product.read_text().replace("Return facts:", "Return facts (reverse logistics):"))
    updated = Catalog.open(demo_workspace)
    assert updated.status["products_changed"] == 1
    assert updated.search("logistics", k=1).hits[0].ref == "mesh://commerce/returns"


def _answers(workspace: Workspace) -> list:
    found = Catalog.open(workspace)
    return [[(h.ref, round(h.score, 4)) for h in found.search(q, k=10).hits]
            for q in ("customer email", "order amount status", "returns refund", "lifetime value segment")]


def test_a_build_in_batches_and_an_update_answer_as_one_whole_build(demo_workspace: Workspace, tmp_path: Path,
                                                                    monkeypatch) -> None:
    from meshpilot.tools import search_index

    whole = _answers(demo_workspace)
    shutil.rmtree(demo_workspace.state_dir / "search")
    monkeypatch.setattr(search_index, "ADD_BATCH", 2)  # the demo's 5 products in three batches
    assert _answers(demo_workspace) == whole
    # One product changed in the batched, saved index; then the same workspace built whole.
    product = demo_workspace.root / "products" / "commerce.returns.yaml"
    product.write_text(product.read_text().replace("Return facts:", "Return refund facts:"))
    updated = _answers(demo_workspace)
    shutil.rmtree(demo_workspace.state_dir / "search")
    monkeypatch.setattr(search_index, "ADD_BATCH", 500)
    rebuilt = _answers(demo_workspace)
    assert [refs for refs in updated] != whole
    assert [[ref for ref, _ in q] for q in updated] == [[ref for ref, _ in q] for q in rebuilt]


def _shared_files(workspace: Workspace, which: str = "") -> set[str]:
    """The files the search index's states share: "documents", "terms" (segments) or all."""
    from meshpilot.tools.search_index import SHARED_DIR

    names = {p.name for p in (workspace.state_dir / SHARED_DIR).iterdir()}
    if which == "terms":
        return {n for n in names if "-terms-" in n}
    return {n for n in names if "-terms-" not in n} if which == "documents" else names


def _shown(workspace: Workspace) -> list:
    found = Catalog.open(workspace)
    return [[(h.ref, h.kind, h.name, h.snippet, h.matched, h.owner) for h in found.search(q, k=10).hits]
            for q in ("customer email", "returns refund", "order amount status")]


def test_a_changed_product_is_appended_to_the_documents_earlier_states_share(demo_workspace: Workspace,
                                                                             monkeypatch) -> None:
    from meshpilot.tools import search_index

    _shown(demo_workspace)
    files = _shared_files(demo_workspace, "documents")
    segments = _shared_files(demo_workspace, "terms")
    sizes = {name: (demo_workspace.state_dir / search_index.SHARED_DIR / name).stat().st_size for name in files}
    product = demo_workspace.root / "products" / "commerce.returns.yaml"
    for wording in ("Return refund facts:", "Return refund and exchange facts:"):
        product.write_text(product.read_text().replace("Return facts:", wording, 1)
                           .replace("Return refund facts:", wording, 1))
        updated = _shown(demo_workspace)
        if wording == "Return refund facts:":  # the first segments kept, the product's rows in new ones
            assert _shared_files(demo_workspace, "terms") > segments
    assert _shared_files(demo_workspace, "documents") == files  # appended to, not written again
    assert all((demo_workspace.state_dir / search_index.SHARED_DIR / n).stat().st_size > sizes[n] for n in
               files if n.startswith("column") or n.startswith("dataset"))
    # What the appended rows show is what a whole build shows.
    shutil.rmtree(demo_workspace.state_dir / "search")
    assert _shown(demo_workspace) == updated
    assert _shared_files(demo_workspace).isdisjoint(files)  # a whole build wrote new ones, the old are gone

    # Once most of a file is rows no state uses, the next save writes it anew.
    monkeypatch.setattr(search_index, "SHARED_SLACK", 0)
    files = _shared_files(demo_workspace, "documents")
    for _ in range(8):  # the returns product is a fifth of the demo: replaced eight times, most is dead
        product.write_text(product.read_text().replace("Return refund and exchange facts:", "Return facts:", 1))
        assert _shown(demo_workspace) != updated
        product.write_text(product.read_text().replace("Return facts:", "Return refund and exchange facts:", 1))
        assert _shown(demo_workspace) == updated
    assert _shared_files(demo_workspace, "documents") != files


def test_a_missing_or_broken_index_is_rebuilt_with_a_message(demo_workspace: Workspace) -> None:
    Catalog.open(demo_workspace)
    folder = demo_workspace.state_dir / "search"
    (folder / "column" / "terms.bin").write_bytes(b"not an array")  # torn
    rebuilt = Catalog.open(demo_workspace)
    assert "unreadable" in rebuilt.status["rebuilt"]
    assert EMAIL in [h.ref for h in rebuilt.search("email", k=3).hits]
    for name in _shared_files(demo_workspace):  # the documents its states share, gone
        (demo_workspace.state_dir / "search-shared" / name).unlink()
    rebuilt = Catalog.open(demo_workspace)
    assert "unreadable" in rebuilt.status["rebuilt"]
    assert EMAIL in [h.ref for h in rebuilt.search("email", k=3).hits]
    shutil.rmtree(folder)
    assert "no search index" in Catalog.open(demo_workspace).status["rebuilt"]


class CountingEmbedder:
    name = "counting"

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.inner = embeddings.HashingEmbedder(64)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return self.inner.embed(texts)


def test_unchanged_entries_are_never_re_embedded(demo_workspace: Workspace) -> None:
    embedder = CountingEmbedder()
    Catalog.open(demo_workspace, embedder)
    assert len(embedder.texts) == 10  # 5 products and 5 datasets
    Catalog.open(demo_workspace, embedder)
    assert len(embedder.texts) == 10  # reopening embeds nothing
    product = demo_workspace.root / "products" / "commerce.returns.yaml"
    product.write_text(product.read_text().replace("Return facts:", "Return facts (reverse logistics):"))
    Catalog.open(demo_workspace, embedder)
    assert len(embedder.texts) == 11 and "reverse logistics" in embedder.texts[-1]  # only the changed text


def test_schema_linking_gives_tables_keys_and_joins(demo_workspace: Workspace) -> None:
    link = catalog.link_schema("refund amount of returned orders by order channel", k=2, workspace=demo_workspace)
    refs = [t.ref for t in link.tables]
    assert refs[:2] == ["mesh://commerce/returns/returns", "mesh://commerce/orders/orders"] or set(refs[:2]) == {
        "mesh://commerce/returns/returns", "mesh://commerce/orders/orders"}
    assert {(j.left, j.right) for j in link.joins} & {
        ("mesh://commerce/orders/orders#order_id", "mesh://commerce/returns/returns#order_id"),
        ("mesh://commerce/returns/returns#order_id", "mesh://commerce/orders/orders#order_id")}
    returns = next(t for t in link.tables if t.ref.endswith("/returns"))
    reasons = {c.name: c.reason for c in returns.columns}
    assert "primary key" in reasons["return_id"] and "matches the question" in reasons["refund_amount"]
    assert set(link.citations) >= set(refs)


def test_a_join_through_a_table_the_question_does_not_name(demo_workspace: Workspace) -> None:
    link = Catalog.open(demo_workspace)
    returns = "mesh://commerce/returns/returns"
    profile = "mesh://customer/customer-profile/customer_profile"
    joins, bridges = link._join_paths([returns, profile])
    assert bridges == ["mesh://commerce/orders/orders"]
    assert len(joins) == 2


def test_get_product_and_get_dataset(demo_workspace: Workspace) -> None:
    product = catalog.get_product("customer-profile", workspace=demo_workspace)
    assert product["contract"]["id"] == "customer-customer-profile"
    assert product["owner_team"]["oncall"] == "grace.liu@meshpilot-demo.example"
    dataset = catalog.get_dataset("mesh://customer/customer-lifetime-value/customer_lifetime_value", workspace=demo_workspace)
    assert dataset["freshness"]["row_count"] == 2400
    assert {n["dataset_ref"] for n in dataset["upstream"]} == {
        "mesh://commerce/orders/orders", "mesh://commerce/returns/returns", profile_ref()}
    assert [s["kind"] for s in dataset["slos"]] == ["freshness", "availability"]
    with pytest.raises(InvalidArgumentError, match="names a product"):
        catalog.get_dataset("mesh://commerce/orders", workspace=demo_workspace)
    with pytest.raises(NotFoundError) as info:
        catalog.get_dataset("mesh://commerce/orders/order", workspace=demo_workspace)
    assert "mesh://commerce/orders/orders" in info.value.hint


def profile_ref() -> str:
    return "mesh://customer/customer-profile/customer_profile"


# --- embeddings through LiteLLM, against a local server speaking the OpenAI embeddings API ---------


class _EmbeddingsStub:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.inner = embeddings.HashingEmbedder(32)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if body["model"] == "broken-model":
                    payload, status = {"error": {"message": "model not found", "type": "invalid_request_error"}}, 404
                else:
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    vectors = stub.inner.embed(texts)
                    payload, status = {"object": "list", "model": body["model"], "usage": {
                        "prompt_tokens": 1, "total_tokens": 1}, "data": [
                        {"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}, 200
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def embeddings_stub(monkeypatch):
    stub = _EmbeddingsStub()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MESHPILOT_EMBEDDINGS_API_BASE", stub.url)
    yield stub
    stub.server.shutdown()


def test_litellm_embeddings_feed_dense_retrieval(demo_workspace: Workspace, embeddings_stub, monkeypatch) -> None:
    monkeypatch.setenv("MESHPILOT_EMBEDDINGS", "litellm:openai/text-embedding-3-small")
    result = catalog.search_catalog("customer email", k=3, workspace=demo_workspace)
    assert EMAIL in [h.ref for h in result.hits]
    assert result.index["embeddings"] == "litellm:openai/text-embedding-3-small"
    assert embeddings_stub.requests and embeddings_stub.requests[0]["model"] == "text-embedding-3-small"


def test_a_failing_embedding_model_is_a_clear_error(demo_workspace: Workspace, embeddings_stub, monkeypatch) -> None:
    monkeypatch.setenv("MESHPILOT_EMBEDDINGS", "litellm:openai/broken-model")
    with pytest.raises(InvalidArgumentError) as info:
        catalog.search_catalog("customer email", workspace=demo_workspace)
    assert "broken-model failed" in info.value.message and "MESHPILOT_EMBEDDINGS=none" in info.value.hint


def test_an_unknown_embeddings_setting_is_refused(demo_workspace: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("MESHPILOT_EMBEDDINGS", "word2vec")
    with pytest.raises(InvalidArgumentError, match="Unknown embeddings setting"):
        catalog.search_catalog("email", workspace=demo_workspace)


# --- quality on public data ------------------------------------------------------------------------


def _benchmark(name: str):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_linking_quality_on_spider_does_not_regress() -> None:
    shared("spider_dev")
    bench, spider = _benchmark("schema_linking"), _benchmark("spider")
    linked = Catalog.from_products(spider.products_from_spider(spider.SPIDER / "tables.json"))
    figures = bench.evaluate(linked, spider.questions("test"))
    # measured 0.905 and 0.753 on the held-out databases (0.874 and 0.738 before structural signals)
    assert figures["recall_at_10"] >= 0.89 and figures["db_at_1"] >= 0.745, figures


def test_a_local_sentence_transformers_model(demo_workspace: Workspace, monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the local-embeddings extra is not installed")
    pytest.importorskip("all_minilm_l6_v2", reason="the local-embeddings extra is not installed")
    monkeypatch.setenv("MESHPILOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MESHPILOT_EMBEDDINGS", "sentence-transformers")
    result = catalog.search_catalog("where do we keep customer email addresses", k=3, workspace=demo_workspace)
    assert result.index["embeddings"] == "sentence-transformers:all-MiniLM-L6-v2"
    assert EMAIL in [h.ref for h in result.hits]
