"""The simulator's own behaviour: scripting over HTTP, paging, auth forms, lifecycles, determinism."""

from __future__ import annotations

import httpx

from exporter.simulator import Simulator, build_demo_simulator
from exporter.simulator.clock import ManualClock
from tests.conftest import API_KEY, WORKSPACE_UID


def auth(bare: bool = False) -> dict[str, str]:
    key = {"x-api-key": API_KEY} if bare else {"Authorization": f"x-api-key {API_KEY}"}
    return {**key, "x-project-id": WORKSPACE_UID}


def test_scripting_over_http(sim: Simulator, sim_url: str) -> None:
    workflow = httpx.post(f"{sim_url}/_sim/add_workflow", json={"name": "Scripted"}).json()["result"]
    run = httpx.post(f"{sim_url}/_sim/add_run", json={"workflow_uid": workflow, "status": "running"}).json()[
        "result"
    ]
    runs = httpx.get(f"{sim_url}/v3/workflows/{workflow}/jobs", params={"page": 0}, headers=auth()).json()
    assert [(r["uid"], r["status"], r["workflow_name"]) for r in runs] == [(run, "running", "Scripted")]
    assert (
        httpx.post(
            f"{sim_url}/_sim/add_fault", json={"kind": "status", "status": 503, "count": 1}
        ).status_code
        == 200
    )
    assert httpx.get(f"{sim_url}/v3/workflows", headers=auth()).status_code == 503
    assert httpx.get(f"{sim_url}/v3/workflows", headers=auth(bare=True)).status_code == 200
    bad = httpx.post(f"{sim_url}/_sim/add_fault", json={"kind": "bogus"})
    assert bad.status_code == 400
    assert "kind must be one of" in bad.json()["message"]
    assert httpx.post(f"{sim_url}/_sim/nope", json={}).status_code == 404
    log = httpx.get(f"{sim_url}/_sim/requests").json()
    assert [entry["status"] for entry in log][-2:] == [503, 200]


def test_auth_is_required(sim: Simulator, sim_url: str) -> None:
    assert httpx.get(f"{sim_url}/v3/workflows").status_code == 401
    assert (
        httpx.get(f"{sim_url}/v3/workflows", headers={"Authorization": f"x-api-key {API_KEY}"}).status_code
        == 401
    )
    wrong = {"Authorization": "x-api-key " + "0" * 64, "x-project-id": WORKSPACE_UID}
    assert httpx.get(f"{sim_url}/v3/workflows", headers=wrong).status_code == 401


def test_runs_follow_their_timeline(sim: Simulator, sim_url: str) -> None:
    clock = ManualClock(1_750_000_000.0)  # the simulator's clock: the test moves it instead of sleeping
    sim.clock = clock
    workflow = sim.add_workflow(name="Timed")
    run = sim.launch(workflow, [(0, "pending"), (1.0, "running"), (2.0, "shutdown")])

    def status() -> tuple[str, str | None, str | None]:
        item = httpx.get(f"{sim_url}/v3/jobs/{run}", headers=auth()).json()
        return item["status"], item["start_time"], item["finish_time"]

    assert status() == ("pending", None, None)
    clock.advance(1.4)
    running = status()
    assert running[0] == "running"
    assert running[1] is not None
    assert running[2] is None
    clock.advance(1.0)
    assert status()[0] == "shutdown"
    assert status()[2] is not None


def test_demo_is_deterministic_under_a_seed() -> None:
    def snapshot(sim: Simulator) -> list[tuple[str, str]]:
        return sorted((run.workflow_uid, run.timeline[-1][1]) for run in sim.runs.values())

    first = build_demo_simulator(seed=3, api_key="k", workspace_uid="w")
    second = build_demo_simulator(seed=3, api_key="k", workspace_uid="w")
    assert snapshot(first) == snapshot(second)
    assert sorted(first.runs) == sorted(second.runs)
    assert {status for _, status in snapshot(first)} >= {
        "running",
        "pending",
        "finished",
        "warning",
        "shutdown",
        "stopped",
        "paused",
    }


def test_the_request_log_keeps_the_last_requests_and_counts_them_all(sim: Simulator, sim_url: str) -> None:
    """A long --demo must not grow without bound: the log keeps about its limit, the total counts all."""
    sim.request_log.limit = 8
    for _ in range(25):
        assert httpx.get(f"{sim_url}/v3/workflows", headers=auth()).status_code == 200
    log = sim.request_log
    assert 8 <= len(log) <= 10
    assert log.total == 25
    assert log.dropped == 25 - len(log)
    assert len(log.since(22)) == 3
    answer = httpx.get(f"{sim_url}/_sim/requests")
    assert len(answer.json()) == len(log)
    assert answer.headers["X-Requests-Total"] == "25"
    log.clear()
    assert log == []
    assert log.total == 25
