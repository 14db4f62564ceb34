"""The landing page and /api/v1/status: what needs action now, with the action, the exact API call and
the runbook, per workflow state; escaped; capped; the same content in both; and --demo's 429s."""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from deploy.generate import DEFAULT_RUNBOOK_BASE_URL
from exporter.guide import GUIDE
from exporter.landing import render_landing_page
from exporter.published import Published
from exporter.server import BOARD_INLINE_MAX_WORKFLOWS, create_app
from exporter.simulator import Simulator, build_demo_simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.scenarios import DEMO_REQUEST_BUDGET
from exporter.status_view import NEEDS_ACTION_CAP, RUNBOOKS_URL, WORKFLOWS_CAP, build_status
from tests.conftest import API_KEY, WORKSPACE_UID
from tests.support.net import LOOPBACK
from tests.support.snapshots import NOW, big_workspace, workflow, workspace

HOSTILE = '<script>alert("x")</script> & "quotes"'


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    return runner, f"http://{LOOPBACK}:{runner.addresses[0][1]}"


@pytest.fixture
async def board(sim: Simulator, harness_for: Any) -> AsyncIterator[tuple[str, dict[str, float]]]:
    """A workspace with a run in each needs-action status, one Running for 8 hours, and hostile names."""
    now = time.time()
    sim.add_workflow("wf-1", HOSTILE)
    sim.add_workflow("wf-2", "Send LinkedIn Messages")
    since = {
        "warning": now - 600,
        "shutdown": now - 3 * 3600,
        "paused": now - 2 * 86400,
    }
    sim.add_run(
        "wf-1", "warning", uid="run-w", name=HOSTILE, start_time=now - 900, finish_time=since["warning"]
    )
    sim.add_run(
        "wf-1", "shutdown", uid="run-s", name="Sync", start_time=now - 4 * 3600, finish_time=since["shutdown"]
    )
    sim.add_run("wf-2", "paused", uid="run-p", name="Follow-ups", start_time=since["paused"])
    sim.add_run("wf-2", "running", uid="run-r", name="Campaign", start_time=now - 8 * 3600)
    sim.add_run("wf-2", "finished", start_time=now - 100, finish_time=now - 50)
    harness = harness_for()
    await harness.poll()
    runner, url = await serve(create_app(harness.published))
    yield url, since
    await runner.cleanup()


async def test_needs_action_rows_carry_the_action_the_call_and_the_runbook(
    board: tuple[str, dict[str, float]],
) -> None:
    url, since = board
    async with httpx.AsyncClient() as client:
        status = (await client.get(f"{url}/api/v1/status")).json()
        page = (await client.get(f"{url}/")).text
    rows = {row["status"]: row for row in status["needs_action"]}
    assert set(rows) == {"warning", "shutdown", "paused", "running_too_long"}
    assert rows["warning"]["run_uid"] == "run-w"
    assert rows["warning"]["workflow"] == HOSTILE
    assert rows["warning"]["api_call"] == "POST https://api.captaindata.co/v3/jobs/run-w/retry"
    assert rows["paused"]["api_call"] == "POST https://api.captaindata.co/v3/jobs/run-p/retry"
    assert rows["shutdown"]["action"] == GUIDE["shutdown"].action
    assert rows["warning"]["runbook"] == f"{RUNBOOKS_URL}#captaindatarunwarning"
    assert rows["running_too_long"]["runbook"] == f"{RUNBOOKS_URL}#captaindatarunrunningtoolong"
    assert rows["running_too_long"]["workflow_uid"] == "wf-2"
    for name in ("warning", "shutdown", "paused"):
        assert rows[name]["since"] == pytest.approx(since[name], abs=1)
    # most recent first
    assert [row["status"] for row in status["needs_action"]][:2] == ["warning", "shutdown"]
    # the page shows the same rows: how long ago, the action, the call, the runbook link
    assert 'id="needs-action"' in page
    assert "10m 0s ago" in page or "10m 1s ago" in page
    assert "2d 0h ago" in page
    assert html.escape(rows["shutdown"]["action"]) in page
    assert "POST https://api.captaindata.co/v3/jobs/run-s/retry" in page
    assert f'href="{RUNBOOKS_URL}#captaindatarunpaused"' in page
    assert '<meta http-equiv="refresh"' in page
    assert "<script" not in page
    assert html.escape(HOSTILE) in page
    assert API_KEY not in page
    assert API_KEY not in str(status)


async def test_workflows_show_runs_by_status_last_read_and_error(board: tuple[str, dict[str, float]]) -> None:
    url, _ = board
    async with httpx.AsyncClient() as client:
        status = (await client.get(f"{url}/api/v1/status")).json()
    flows = {row["workflow_uid"]: row for row in status["workflows"]}
    assert flows["wf-2"]["runs_by_status"]["paused"] == 1
    assert flows["wf-2"]["runs_by_status"]["running"] == 1
    assert flows["wf-2"]["last_success"] is not None
    assert flows["wf-1"]["last_error"] == ""
    (ws,) = status["workspaces"]
    assert ws["name"] == "acme"
    assert ws["up"] is True
    assert ws["api_version"] == "v3"


def test_the_runbook_links_are_the_alert_rules_runbooks() -> None:
    assert RUNBOOKS_URL == DEFAULT_RUNBOOK_BASE_URL


def test_a_thousand_workflows_stay_small_and_quick() -> None:
    snapshots = (big_workspace("big", 1000),)
    started = time.perf_counter()
    page = render_landing_page(snapshots, now=NOW)
    status = build_status(snapshots, now=NOW)
    elapsed = time.perf_counter() - started
    assert status["needs_action_total"] == 2000  # two runs per workflow (their Running run is 1h old)
    assert len(status["needs_action"]) == NEEDS_ACTION_CAP
    assert status["workflows_total"] == 1000
    assert len(status["workflows"]) == WORKFLOWS_CAP
    assert page.count("<tr") < NEEDS_ACTION_CAP + WORKFLOWS_CAP + 20
    assert f"Showing {NEEDS_ACTION_CAP} of 2000 runs that need action" in page
    assert f"Showing {WORKFLOWS_CAP} of 1000 workflows" in page
    assert len(page.encode()) < 200_000
    print(f"1,000 workflows: page {len(page.encode())} bytes, built and rendered in {elapsed * 1000:.1f} ms")


def test_v4_workspaces_get_the_v4_action_and_call() -> None:
    flow = workflow("wf-4", "v4 flow", oldest_running_start=None)
    snapshot = dataclasses.replace(workspace("four", (flow,)), api_version="v4")
    rows = {row["status"]: row for row in build_status((snapshot,), now=NOW)["needs_action"]}
    assert rows["paused"]["api_call"] == "POST https://api.captaindata.com/v4/runs/wf-4-run-2/resume"
    assert rows["paused"]["action"] == GUIDE["paused"].v4_action
    assert rows["warning"]["api_call"] == "GET https://api.captaindata.com/v4/runs/wf-4-run-1"


def test_an_empty_board_says_nothing_needs_action() -> None:
    flow = workflow("wf-1", "calm", needs_action=(), oldest_running_start=None)
    page = render_landing_page((workspace("calm", (flow,)),), now=NOW)
    assert 'id="needs-action-empty"' in page
    assert 'id="needs-action"' not in page


async def test_the_demo_gets_429s_and_its_polls_still_succeed(
    harness_for: Any, sim: Simulator, clock: ManualClock
) -> None:
    """--demo's request budget: back-to-back polls (faster than the demo's) hit it; the API answers 429
    with Retry-After and X-RateLimit-* headers, and every poll still succeeds after waiting."""
    demo = build_demo_simulator(seed=1, api_key=API_KEY, workspace_uid=WORKSPACE_UID)
    sim.workflows, sim.runs = demo.workflows, demo.runs  # the demo's data, served by the test's simulator
    sim.set_rate_limit(DEMO_REQUEST_BUDGET[0], window_seconds=3.0, style="seconds")  # a shorter window
    harness = harness_for(clock=clock)  # the waits move the clock the simulator's window follows
    rate_limited = 0.0
    for _ in range(4):
        exposition = await harness.poll()
        assert exposition.value("captaindata_up") == 1
        rate_limited = exposition.total("captaindata_api_rate_limited_total")
        if rate_limited:
            break
    assert rate_limited > 0
    answered = [entry for entry in sim.request_log if entry.get("status") == 429]
    assert answered
    assert clock.slept, "the exporter waited for the window"


async def test_a_big_board_is_served_off_the_loop() -> None:
    """Over the inline limit the board is built in a worker thread; it serves the same capped content."""
    published = Published(["big"])
    published.publish(big_workspace("big", BOARD_INLINE_MAX_WORKFLOWS + 300))
    runner, url = await serve(create_app(published))
    try:
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{url}/")
            status = (await client.get(f"{url}/api/v1/status")).json()
    finally:
        await runner.cleanup()
    assert page.status_code == 200
    assert f"Showing {WORKFLOWS_CAP} of {BOARD_INLINE_MAX_WORKFLOWS + 300} workflows" in page.text
    assert status["workflows_total"] == BOARD_INLINE_MAX_WORKFLOWS + 300
    assert len(status["needs_action"]) == NEEDS_ACTION_CAP
