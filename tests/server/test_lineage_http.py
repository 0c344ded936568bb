"""The OpenLineage HTTP endpoint, driven by the official openlineage-python client over loopback."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests
import uvicorn

from meshpilot.mesh.store import MeshStore
from meshpilot.mesh.workspace import Workspace
from meshpilot.server.lineage_http import create_app
from tests.servers import free_port, wait_healthy


@pytest.fixture
def endpoint(empty_workspace: Workspace):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(empty_workspace, token="s3cret"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", empty_workspace
    server.should_exit = True
    thread.join(timeout=10)


def _client(url: str, token: str, compression=None):
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

    config = HttpConfig(url=url, auth=ApiKeyTokenProvider({"apiKey": token}), compression=compression,
                        retry={"total": 0})
    return OpenLineageClient(transport=HttpTransport(config))


def _event(name: str = "load_orders"):
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import column_lineage_dataset

    lineage = column_lineage_dataset.ColumnLineageDatasetFacet(fields={
        "amount": column_lineage_dataset.Fields(inputFields=[column_lineage_dataset.InputField(
            namespace="pg", name="shop.orders", field="total")])})
    return RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(tz=UTC).isoformat(),
                    run=Run(runId=str(uuid.uuid4())), job=Job(namespace="etl", name=name),
                    producer="https://example.com/etl", inputs=[InputDataset("pg", "shop.orders")],
                    outputs=[OutputDataset("duckdb", "commerce.orders", facets={"columnLineage": lineage})])


def test_the_official_client_delivers_events(endpoint) -> None:
    from openlineage.client.transport.http import HttpCompression

    url, workspace = endpoint
    _client(url, "s3cret").emit(_event())
    _client(url, "s3cret", compression=HttpCompression.GZIP).emit(_event("load_returns"))
    with MeshStore.open(workspace) as store:
        assert store.counts()["lineage_events"] == 2
        edges = store.con.execute("SELECT source_field, target_name, target_field FROM column_edges").fetchall()
    assert ("total", "commerce.orders", "amount") in edges


def test_a_wrong_token_is_refused(endpoint) -> None:
    url, workspace = endpoint
    with pytest.raises(Exception):
        _client(url, "wrong").emit(_event())
    response = requests.post(f"{url}/api/v1/lineage", json={}, timeout=5)
    assert response.status_code == 401
    assert not (workspace.root / "lineage").exists()


def test_an_invalid_event_is_refused_with_reasons_and_nothing_is_stored(endpoint) -> None:
    url, workspace = endpoint
    headers = {"Authorization": "Bearer s3cret"}
    from openlineage.client.serde import Serde

    good = json.loads(Serde.to_json(_event()))
    bad = dict(good, eventType="EXPLODE")
    response = requests.post(f"{url}/api/v1/lineage/batch", json=[good, bad], headers=headers, timeout=5)
    assert response.status_code == 400
    body = response.json()
    assert "nothing was stored" in body["error"] and any("event 2" in p and "eventType" in p for p in body["problems"])
    assert requests.post(f"{url}/api/v1/lineage", data=b"{not json", headers=headers, timeout=5).status_code == 400
    assert not (workspace.root / "lineage").exists()


def test_a_torn_last_line_is_ignored(empty_workspace: Workspace) -> None:
    from openlineage.client.serde import Serde

    folder = empty_workspace.root / "lineage"
    folder.mkdir()
    (folder / "http-20260101.jsonl").write_text(Serde.to_json(_event()) + "\n" + '{"eventType": "STA')
    with MeshStore.open(empty_workspace) as store:
        assert store.counts()["lineage_events"] == 1


def test_concurrent_requests_share_fsyncs_and_every_acknowledged_event_is_stored(endpoint, monkeypatch) -> None:
    import os as os_module
    from concurrent.futures import ThreadPoolExecutor

    from openlineage.client.serde import Serde

    url, workspace = endpoint
    syncs = []
    real_fsync = os_module.fsync
    # A slow disk: requests that arrive while one fsync runs must share the next one.
    monkeypatch.setattr(os_module, "fsync", lambda fd: (syncs.append(fd), time.sleep(0.02), real_fsync(fd)))
    headers = {"Authorization": "Bearer s3cret"}
    bodies = [Serde.to_json(_event(f"job{i}")) for i in range(120)]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda b: requests.post(f"{url}/api/v1/lineage", data=b, headers={
            **headers, "Content-Type": "application/json"}, timeout=30).status_code, bodies))
    assert codes == [201] * 120
    assert 1 <= len(syncs) <= 60, len(syncs)  # one fsync per request would be 120
    with MeshStore.open(workspace) as store:
        jobs = {j for (j,) in store.con.execute("SELECT DISTINCT job FROM lineage_events").fetchall()}
    assert jobs == {f"etl/job{i}" for i in range(120)}


def test_a_failed_write_is_a_503_and_nothing_is_acknowledged(endpoint, monkeypatch) -> None:
    import os as os_module

    from openlineage.client.serde import Serde

    url, workspace = endpoint

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os_module, "fsync", full_disk)
    response = requests.post(f"{url}/api/v1/lineage", data=Serde.to_json(_event()), timeout=10,
                             headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"})
    assert response.status_code == 503 and "No space left on device" in response.json()["error"]


def test_several_server_processes_each_keep_their_own_log(empty_workspace: Workspace) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from openlineage.client.serde import Serde

    port = free_port()
    command = [str(Path(sys.executable).parent / "meshpilot"), "serve", "lineage", "--workspace",
               str(empty_workspace.root), "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", server)
        for i in range(40):
            response = requests.post(f"{url}/api/v1/lineage", data=Serde.to_json(_event(f"job{i}")),
                                     headers={"Content-Type": "application/json"}, timeout=10)
            assert response.status_code == 201
        graph = requests.get(f"{url}/api/v1/lineage", params={"nodeId": "job:etl:job7"}, timeout=30).json()
        assert "dataset:pg:shop.orders" in {n["id"] for n in graph["graph"]}
    finally:
        server.terminate()
        server.wait(timeout=30)
    logs = sorted((empty_workspace.root / "lineage").glob("http-*.jsonl"))
    assert logs and all(p.name.count("-") == 2 for p in logs)  # http-<date>-<pid>.jsonl
    assert sum(len(p.read_text().splitlines()) for p in logs) == 40
