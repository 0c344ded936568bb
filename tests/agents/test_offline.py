import json
import shutil
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from meshpilot.agents.offline import HELP, OfflineChatModel, Router
from meshpilot.mesh.workspace import Workspace
from meshpilot.tools.catalog import Catalog

SUITE = Path(__file__).parents[2] / "src" / "meshpilot" / "evals" / "suites" / "routing.jsonl"
CASES = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo_copy(pristine_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy: opening the catalog writes its index into the workspace, and the pristine demo must stay as built."""
    target = tmp_path_factory.mktemp("offline") / "demo"
    shutil.copytree(pristine_demo, target)
    return target


@pytest.fixture(scope="module")
def router(demo_copy: Path) -> Router:
    return Router(Catalog.open(Workspace.open(demo_copy)))


def _matches(expected: list, calls: list[dict]) -> bool:
    if sorted(name for name, _ in expected) != sorted(c["name"] for c in calls):
        return False
    return all(any(c["name"] == name and all(c["args"].get(k) == v for k, v in args.items()) for c in calls)
               for name, args in expected)


def test_routing_accuracy_on_the_phrasing_suite(router: Router) -> None:
    assert len(CASES) >= 80
    wrong = [(case["request"], [[c["name"], c["args"]] for c in router.route(case["request"])])
             for case in CASES if not _matches(case["calls"], router.route(case["request"]))]
    accuracy = 1 - len(wrong) / len(CASES)
    assert accuracy >= 0.95, wrong


@pytest.mark.parametrize("request_text, tool", [
    ("Who is the owner of mesh://marketing/campaign-performance", "get_product"),
    ("what would break if we renamed customer_profile.country", "lineage_impact"),
    ("How many returns were there per day last month?", "ask_sql"),
])
def test_unseen_phrasings(router: Router, request_text: str, tool: str) -> None:
    assert tool in [c["name"] for c in router.route(request_text)]


def test_the_offline_model_asks_when_a_product_is_missing(demo_copy: Path) -> None:
    model = OfflineChatModel(workspace_root=str(demo_copy))
    assert "Which data product" in model.reply([HumanMessage("lint the contract")]).content
    assert model.reply([HumanMessage("help")]).content == HELP


def test_bound_tools_limit_what_it_calls(demo_copy: Path) -> None:
    model = OfflineChatModel(workspace_root=str(demo_copy)).bind_tools([{"name": "search_catalog"}])
    reply = model.reply([HumanMessage("who owns orders?")])
    assert reply.content == HELP and not reply.tool_calls  # get_product is not available to this caller
