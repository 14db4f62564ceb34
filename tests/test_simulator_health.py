"""The simulator's credits and accounts (issue 17), over HTTP on loopback: the documented shapes, pagination
with next_page_exist, credits that burn as runs end, accounts that expire and pause the runs using them
with a cookie error, limits that fill, runs that pause when credits run out, and --demo's timeline: the
page shows the forecast and the invalid account before the demo's runs pause."""

from __future__ import annotations

from typing import Any

import httpx

from exporter.config import parse_config
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.health import COOKIE_ERROR, CREDITS_ERROR
from exporter.simulator.scenarios import (
    DEMO_ACCOUNT_EXPIRES_IN,
    DEMO_PAUSE_AFTER_INVALID,
    populate_demo,
    populate_demo_health,
)
from exporter.status_view import build_status
from tests.support.exporter_proc import fast_config, workspace_config
from tests.support.sim_server import running_simulator

UID = "3f2e1d0c-9b8a-4c7d-8e6f-5a4b3c2d1e0f"
KEY = "51m" + "cd" * 30
HEADERS = {"Authorization": f"x-api-key {KEY}", "x-project-id": UID}


def get(url: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{url}{path}", headers=HEADERS, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def simulator(clock: ManualClock | None = None) -> Simulator:
    sim = Simulator(seed=5, clock=clock) if clock is not None else Simulator(seed=5)
    sim.add_workspace(UID, KEY)
    return sim


def test_the_documented_shapes_paginated_with_next_page_exist() -> None:
    sim = simulator()
    sim.set_credits(9966, tasks_max=10000)
    sim.accounts_page_size = 2
    for index in range(5):
        sim.add_account(f"Account {index}", uid=f"acct-{index}")
    with running_simulator(sim) as url:
        workspace = get(url, "/v3/workspace")
        assert set(workspace) == {
            "name",
            "tasks_left",
            "tasks_max",
            "tasks_used",
            "email",
            "plan_name",
            "current_month_start",
            "current_month_end",
        }
        assert (workspace["tasks_left"], workspace["tasks_max"], workspace["tasks_used"]) == (9966, 10000, 34)
        assert workspace["current_month_end"].endswith("+00:00")
        pages = [get(url, "/v3/integrations/linkedin/accounts", page=str(n), stats="true") for n in range(3)]
        assert [page["next_page_exist"] for page in pages] == [True, True, False]
        assert all(page["number_total_acounts"] == 5 for page in pages)  # sic, as documented
        assert [a["uid"] for page in pages for a in page["accounts"]] == [f"acct-{n}" for n in range(5)]
        account = pages[0]["accounts"][0]
        assert set(account["cookies"]) == {"li_at", "JSESSIONID"}
        assert account["is_valid"] is True
        (limit,) = account["limits"]
        assert set(limit) >= {
            "permalink",
            "item_scraped",
            "limit_value",
            "limit_name",
            "start_time_range",
            "end_time_range",
            "nbr_inputs_queued_next_seven_days",
        }
        assert get(url, "/v3/integrations/linkedin/accounts", stats="false")["accounts"][0]["limits"] == []
        assert get(url, "/v3/integrations/hubspot/accounts")["accounts"] == []


def test_credits_burn_limits_fill_and_expired_accounts_pause_their_runs() -> None:
    clock = ManualClock(1_780_000_000.0)
    sim = simulator(clock)
    sim.set_credits(25, cost_per_run=10)
    workflow = sim.add_workflow(name="Connect")
    account = sim.add_account("Ann", uid="acct-ann", limit_value=100)
    first = sim.launch(workflow, [(0, "pending"), (5, "running"), (10, "finished")])
    second = sim.launch(workflow, [(0, "running"), (600, "finished")])
    with running_simulator(sim) as url:
        assert get(url, "/v3/workspace")["tasks_left"] == 25
        clock.advance(11)
        assert get(url, "/v3/workspace")["tasks_left"] == 15  # the first run ended
        limit = get(url, "/v3/integrations/linkedin/accounts")["accounts"][0]["limits"][0]
        assert limit["item_scraped"] == 10  # its inputs ran on the account
        sim.expire_account(account)
        clock.advance(1)
        runs = {run["uid"]: run for run in get(url, f"/v3/workflows/{workflow}/jobs")}
        assert runs[second]["status"] == "paused"
        assert runs[second]["error_message"] == COOKIE_ERROR
        assert runs[second]["accounts"] == [account]
        assert runs[first]["status"] == "finished"
        assert get(url, "/v3/integrations/linkedin/accounts")["accounts"][0]["is_valid"] is False


def test_runs_pause_for_insufficient_credits_when_they_run_out() -> None:
    clock = ManualClock(1_780_000_000.0)
    sim = simulator(clock)
    sim.set_credits(10, cost_per_run=10)
    workflow = sim.add_workflow(name="Enrich")
    sim.launch(workflow, [(0, "running"), (5, "finished")])
    waiting = sim.launch(workflow, [(0, "pending"), (20, "running"), (40, "finished")])
    with running_simulator(sim) as url:
        clock.advance(6)
        assert get(url, "/v3/workspace")["tasks_left"] == 0
        runs = {run["uid"]: run for run in get(url, f"/v3/workflows/{workflow}/jobs")}
        assert runs[waiting]["status"] == "paused"
        assert runs[waiting]["error_message"] == CREDITS_ERROR


def test_hostile_faults_shape_the_answers() -> None:
    sim = simulator()
    sim.set_credits(100)
    sim.add_account("Ann", uid="acct-ann", cookies={"li_at": "AQEDsecret"})
    with running_simulator(sim) as url:
        sim.set_health_fault("negative")
        assert get(url, "/v3/workspace")["tasks_left"] == -5
        sim.set_health_fault("negative", on=False)
        sim.set_health_fault("cookies_everywhere")
        page = get(url, "/v3/integrations/linkedin/accounts")
        assert page["cookies"] == {"li_at": "AQEDsecret"}
        assert page["accounts"][0]["api_key"] == "AQEDsecret"
        assert page["accounts"][0]["limits"][0]["cookies"] == {"li_at": "AQEDsecret"}
        sim.set_health_fault("error_with_cookies")
        response = httpx.get(f"{url}/v3/integrations/linkedin/accounts", headers=HEADERS, timeout=10)
        assert response.status_code == 400
        assert "li_at=AQEDsecret" in response.json()["message"]
        sim.add_accounts(1000)  # a huge list
        sim.set_health_fault("error_with_cookies", on=False)
        assert get(url, "/v3/integrations/linkedin/accounts")["number_total_acounts"] == 1001


def _paused_by_health(sim: Simulator) -> int:
    with sim.lock:
        return sum(
            1
            for run in sim.runs.values()
            if run.error_message in (COOKIE_ERROR, CREDITS_ERROR)
            and run.status_at(sim.clock.time()) == "paused"
        )


async def test_the_demo_shows_the_forecast_and_the_invalid_account_before_its_runs_pause() -> None:
    """--demo's health timeline on a hand-moved clock: credits burn out within minutes; one account
    expires, and the page shows it (and the forecast) while no run has paused for it yet. The clock
    starts now: the exporter times its credit readings with the real clock."""
    clock = ManualClock()
    sim = simulator(clock)
    populate_demo(sim, UID)
    populate_demo_health(sim, UID)
    with running_simulator(sim) as url:
        config = parse_config(fast_config([workspace_config("demo", url, UID, KEY)]))
        published, (poller,) = build(config)
        try:

            async def read() -> dict[str, Any]:
                for loop in poller.side_loops:
                    assert await loop.read_once()
                poller.sink.flush()
                return build_status(published.workspaces(), now=clock.time())

            await read()
            clock.advance(DEMO_ACCOUNT_EXPIRES_IN + 1)
            status = await read()
            kinds = {row["kind"]: row for row in status["coming_up"]}
            assert kinds["credits_soon"]["runs_out_at"] is not None  # the forecast, before anything paused
            assert kinds["account_invalid"]["account_uid"] == "acct-bob"
            assert _paused_by_health(sim) == 0
            clock.advance(DEMO_PAUSE_AFTER_INVALID)
            await read()
            assert _paused_by_health(sim) > 0  # then the runs using it pause with the cookie error
            for _ in range(60):  # five minutes in 5 s steps
                clock.advance(5)
                status = await read()
                if poller.state.credits is not None and poller.state.credits.remaining == 0:
                    break
            assert poller.state.credits is not None
            assert poller.state.credits.remaining == 0, "the demo's credits last more than minutes"
            assert status["coming_up"][0]["kind"] == "credits_exhausted"
        finally:
            await poller.aclose()
