"""The simulator's v4 side over real HTTP: listing, filters, sort, paging, auth, errors, resume, 429,
faults, lifecycles and the manual clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.v4 import V4_STATUSES, V4Api
from exporter.simulator.v4demo import populate_demo_v4
from tests.support.sim_server import running_simulator

KEY = "f00d" * 16
T0 = 1_780_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sim4(clock: ManualClock) -> Simulator:
    sim = Simulator(seed=3, clock=clock)
    sim.add_workspace("ws-v4", KEY)
    return sim


@pytest.fixture
def url(sim4: Simulator) -> Iterator[str]:
    with running_simulator(sim4) as base:
        yield base


def get(url: str, path: str, key: str = KEY, **params: str | int) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers={"X-API-Key": key})


def test_list_filters_sort_and_paging(sim4: Simulator, url: str, clock: ManualClock) -> None:
    api = V4Api.of(sim4)
    uids = []
    for index, status in enumerate(V4_STATUSES):
        clock.advance(10)
        uids.append(api.add_run("enrich" if index % 2 else "search", status))
    newest_first = get(url, "/v4/runs", sort="-updated_at", limit=100).json()
    assert [run["uid"] for run in newest_first] == uids[::-1]
    run = newest_first[0]
    for name in (
        "id",
        "uid",
        "action_id",
        "action_name",
        "retry_count",
        "user_uid",
        "workspace_uid",
        "execution_mode",
        "last_error",
        "callback",
        "status",
        "postponed_until",
        "started_at",
        "finished_at",
        "synced_at",
        "created_at",
        "updated_at",
    ):
        assert name in run
    assert get(url, "/v4/runs").json()[0]["uid"] == uids[0]  # default limit 10, ascending
    assert len(get(url, "/v4/runs").json()) == 10
    page = get(url, "/v4/runs", sort="-updated_at", limit=3, offset=3).json()
    assert [r["uid"] for r in page] == uids[::-1][3:6]
    failed = get(url, "/v4/runs", status="FAILED").json()
    assert [r["status"] for r in failed] == ["FAILED"]
    assert failed[0]["last_error"]["label"]
    two = httpx.get(
        f"{url}/v4/runs", params=[("status", "RUNNING"), ("status", "QUEUED")], headers={"X-API-Key": KEY}
    ).json()
    assert sorted(r["status"] for r in two) == ["QUEUED", "RUNNING"]
    assert {r["action_name"] for r in get(url, "/v4/runs", action_name="enrich", limit=100).json()} == {
        "enrich"
    }
    assert [r["uid"] for r in get(url, "/v4/runs", uid=uids[4]).json()] == [uids[4]]
    by_status = [r["status"] for r in get(url, "/v4/runs", sort="status", limit=100).json()]
    assert by_status == sorted(V4_STATUSES)
    alias = get(url, "/v4/api/runs/list", sort="-updated_at", limit=100).json()
    assert [r["uid"] for r in alias] == uids[::-1]
    assert get(url, f"/v4/runs/{uids[2]}").json()["uid"] == uids[2]
    assert get(url, "/v4/api/runs/get", uid=uids[2]).json()["uid"] == uids[2]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"offset": -1}, {"sort": "name"}]
)
def test_bad_parameters_get_the_v4_error_body(url: str, params: dict[str, str | int]) -> None:
    response = httpx.get(f"{url}/v4/runs", params=params, headers={"X-API-Key": KEY})
    assert response.status_code == 422
    body = response.json()
    assert body["error_scope"] == "param"
    assert body["error_label"] == "INVALID_PARAMS"
    assert body["message"]


def test_auth_is_x_api_key(url: str) -> None:
    denied = httpx.get(f"{url}/v4/runs")
    assert denied.status_code == 401
    assert denied.json()["error_scope"] == "auth"
    assert get(url, "/v4/runs", key="0" * 64).status_code == 401
    assert httpx.get(f"{url}/v4/runs", headers={"x-api-key": KEY}).status_code == 200
    v3_style = {"Authorization": f"x-api-key {KEY}", "x-project-id": "ws-v4"}
    assert httpx.get(f"{url}/v4/runs", headers=v3_style).status_code == 401


def test_updated_at_moves_on_every_change(sim4: Simulator, url: str, clock: ManualClock) -> None:
    api = V4Api.of(sim4)
    uid = api.launch("enrich", [(0, "CREATED"), (5, "QUEUED"), (10, "RUNNING"), (60, "SUCCEEDED")])
    seen = []
    for _ in range(4):
        run = get(url, f"/v4/runs/{uid}").json()
        seen.append((run["status"], run["updated_at"], run["started_at"], run["finished_at"]))
        clock.advance(20)
    statuses = [s[0] for s in seen]
    assert statuses == ["CREATED", "RUNNING", "RUNNING", "SUCCEEDED"]
    assert seen[0][1] < seen[1][1] == seen[2][1] < seen[3][1]
    assert seen[0][2] is None
    assert seen[1][2] is not None
    assert seen[2][3] is None
    assert seen[3][3] is not None
    before = get(url, f"/v4/runs/{uid}").json()["updated_at"]
    clock.advance(1)
    assert httpx.post(f"{url}/_sim/v4/touch_run", json={"uid": uid}).status_code == 200
    assert get(url, f"/v4/runs/{uid}").json()["updated_at"] > before


def test_resume_a_blocked_run(sim4: Simulator, url: str, clock: ManualClock) -> None:
    api = V4Api.of(sim4)
    blocked = api.add_run("enrich", "BLOCKED")
    blocked_json = get(url, f"/v4/runs/{blocked}").json()
    assert blocked_json["postponed_until"] is not None
    assert blocked_json["last_error"]["label"] == "LIMIT_REACHED"
    done = api.add_run("enrich", "SUCCEEDED")
    clock.advance(1)
    resumed = httpx.post(f"{url}/v4/runs/{blocked}/resume", json={}, headers={"X-API-Key": KEY})
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "QUEUED"
    assert resumed.json()["postponed_until"] is None
    refused = httpx.post(f"{url}/v4/runs/{done}/resume", json={}, headers={"X-API-Key": KEY})
    assert refused.status_code == 400
    assert refused.json()["error_label"] == "RUN_NOT_RESUMABLE"
    clock.advance(60)
    assert get(url, f"/v4/runs/{blocked}").json()["status"] == "SUCCEEDED"
    assert get(url, "/v4/runs/nope").status_code == 404


def test_429_carries_the_v4_headers_and_body(sim4: Simulator, url: str) -> None:
    sim4.set_rate_limit(1, window_seconds=60.0)
    assert get(url, "/v4/runs").status_code == 200
    limited = get(url, "/v4/runs")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"
    assert limited.headers["X-RateLimit-Type"] == "minute"
    assert int(limited.headers["X-RateLimit-Reset"]) == int(T0 + 60)
    assert limited.json()["error_label"] == "RATE_LIMIT_EXCEEDED"


def test_faults_apply_to_v4(sim4: Simulator, url: str) -> None:
    V4Api.of(sim4).add_run("enrich", "RUNNING")
    V4Api.of(sim4).add_run("enrich", "QUEUED")
    sim4.add_fault("status", count=1, status=503, path_contains="/v4/")
    failed = get(url, "/v4/runs")
    assert failed.status_code == 503
    assert failed.json()["error_scope"] == "server"
    sim4.add_fault("wrong_shape", count=1)
    assert isinstance(get(url, "/v4/runs").json(), dict)
    sim4.add_fault("ignore_page", count=1)
    assert get(url, "/v4/runs", limit=1, offset=1).json() == get(url, "/v4/runs", limit=1).json()
    log = httpx.get(f"{url}/_sim/requests").json()
    assert all(entry["x_api_key"] for entry in log)


def test_clock_and_scripting_over_http(url: str) -> None:
    now = httpx.get(f"{url}/_sim/clock").json()["now"]
    assert httpx.post(f"{url}/_sim/clock", json={"advance": 30}).json()["now"] == now + 30
    added = httpx.post(f"{url}/_sim/v4/add_run", json={"action_name": "a", "status": "RUNNING"})
    uid = added.json()["result"]
    assert get(url, f"/v4/runs/{uid}").json()["status"] == "RUNNING"
    assert httpx.post(f"{url}/_sim/v4/update_run", json={"uid": uid, "status": "FAILED"}).status_code == 200
    assert get(url, f"/v4/runs/{uid}").json()["status"] == "FAILED"
    assert httpx.post(f"{url}/_sim/v4/nope", json={}).status_code == 404
    assert httpx.post(f"{url}/_sim/v4/add_run", json={"bogus": 1}).status_code == 400


def test_demo_has_every_status_and_keeps_moving(clock: ManualClock) -> None:
    sim = Simulator(seed=5, clock=clock)
    populate_demo_v4(sim, sim.add_workspace("w", "k"))
    api = V4Api.of(sim)
    assert {run.status_at(clock()) for run in api.runs.values()} == set(V4_STATUSES)
    before = len(api.runs)
    clock.advance(300)
    api.advance()
    statuses = {run.status_at(clock()) for run in api.runs.values()}
    assert len(api.runs) == before + 101  # one launch every 3s, both ends included
    assert {"SUCCEEDED", "RUNNING", "BLOCKED"} <= statuses
