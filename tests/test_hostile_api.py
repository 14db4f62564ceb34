"""Issue #19, bounded whatever the API sends: an API on loopback that serves what a hostile or broken
Captain Data might (bodies the simulator cannot even encode), polled by the real exporter pipeline."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.parsing import _items_one_by_one
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.v4 import V4Api
from tests.support.app_server import serving_app
from tests.support.metrics import ScrapedMetrics
from tests.support.sim_server import running_simulator

KEY = "5eb0" * 16
WORKSPACE_UID = "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19"
DEEP = "[" * 5000 + "]" * 5000
HUGE = "9" * 5000


@asynccontextmanager
async def serving(routes: dict[str, str], seen: list[str]) -> AsyncIterator[str]:
    """Answers each path of ``routes`` with its body (raw JSON text); logs every path asked."""

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        body = routes.get(request.path)
        if request.query.get("page", "0") != "0" or request.query.get("offset", "0") != "0":
            body = "[]"  # one page of everything
        if body is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    async with serving_app(app) as url:
        yield url


async def poll_once(workspace: dict[str, Any], **sections: Any) -> ScrapedMetrics:
    config = parse_config(
        {
            "workspaces": [{"name": "acme", "api_key": KEY, **workspace}],
            "api": {"requests_per_second": 500, "burst": 500, "retry_backoff": "50ms", "max_retries": 0},
            **sections,
        }
    )
    published, pollers = build(config)
    try:
        for poller in pollers:
            await poller.poll_once()
        return ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
    finally:
        for poller in pollers:
            await poller.aclose()


def v4_run(uid: str, status: str = "SUCCEEDED", **fields: str) -> str:
    run = {
        "uid": uid,
        "action_name": "extract",
        "status": status,
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:05:00Z",
        "started_at": "2026-12-01T10:00:00Z",
        "finished_at": "2026-12-01T10:05:00Z",
    }
    text = json.dumps(run)[:-1]
    return text + "".join(f', "{key}": {value}' for key, value in fields.items()) + "}"


# 6. One oversized run is skipped and counted; the rest is applied.


async def test_an_oversized_v4_run_is_skipped_and_counted_not_the_whole_poll() -> None:
    page = (
        "["
        + ", ".join(
            [
                v4_run("run-1"),
                v4_run("run-deep", parameters=DEEP),
                v4_run("run-2", "FAILED"),
                v4_run("run-huge", retry_count=HUGE),
                v4_run("run-3"),
            ]
        )
        + "]"
    )
    seen: list[str] = []
    async with serving({"/v4/runs": page}, seen) as url:
        exposition = await poll_once({"api_version": "v4", "base_url": url})
    assert exposition.value("captaindata_up") == 1
    assert exposition.total("captaindata_poll_errors_total") == 0
    assert exposition.value("captaindata_runs_skipped_total", reason="invalid_item") == 2
    assert exposition.value("captaindata_runs", workflow_uid="extract", status="finished") == 2
    assert exposition.value("captaindata_runs", workflow_uid="extract", status="shutdown") == 1


async def test_an_oversized_v3_run_is_skipped_and_counted_not_its_workflow() -> None:
    def job(uid: str, extra: str = "") -> str:
        return json.dumps({"uid": uid, "status": "finished", "name": "Job"})[:-1] + extra + "}"

    jobs = (
        "["
        + ", ".join([job("a"), job("deep", ', "p": ' + DEEP), job("huge", ', "n": ' + HUGE), job("b")])
        + "]"
    )
    seen: list[str] = []
    routes = {"/v3/workflows": '[{"uid": "wf-1", "name": "One"}]', "/v3/workflows/wf-1/jobs": jobs}
    async with serving(routes, seen) as url:
        exposition = await poll_once({"base_url": url, "workspace_uid": WORKSPACE_UID})
    assert exposition.value("captaindata_up") == 1
    assert exposition.value("captaindata_runs_skipped_total", reason="invalid_item") == 2
    assert exposition.value("captaindata_runs", workflow_uid="wf-1", status="finished") == 2


# 8. Workflow uids are plain identifiers, and every path segment is encoded.


async def test_a_workflow_uid_that_is_not_a_plain_identifier_is_refused_and_never_requested() -> None:
    hostile = ["../../admin/secret", "..", "a/b", "a?b=1", "a#b", "%2e%2e", "a b", "wf\\x"]
    workflows = json.dumps([{"uid": uid, "name": "x"} for uid in hostile] + [{"uid": "wf-ok", "name": "ok"}])
    seen: list[str] = []
    routes = {"/v3/workflows": workflows, "/v3/workflows/wf-ok/jobs": "[]"}
    async with serving(routes, seen) as url:
        exposition = await poll_once({"base_url": url, "workspace_uid": WORKSPACE_UID})
    assert sorted(seen) == ["/v3/workflows", "/v3/workflows/wf-ok/jobs?page=0"]
    assert exposition.value("captaindata_runs_skipped_total", reason="invalid_uid") == len(hostile)
    assert exposition.value("captaindata_workflows") == 1
    assert exposition.value("captaindata_up") == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=8), st.sampled_from([None, 0, 2]))
@settings(max_examples=300, deadline=None)
def test_reading_an_array_item_by_item_reads_what_json_reads(items: list[object], indent: int | None) -> None:
    text = json.dumps(items, indent=indent)
    assert _items_one_by_one(text) == json.loads(text)


# 7. Workflows and actions are capped; applying counts as progress.


async def test_workflows_past_api_max_workflows_are_left_out_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = Simulator(seed=3, page_size=5)
    sim.add_workspace(WORKSPACE_UID, KEY)
    for index in range(5):
        sim.add_workflow(f"wf-{index}", f"W{index}")
        sim.add_run(f"wf-{index}", "finished")
    with running_simulator(sim) as url, caplog.at_level(logging.WARNING):
        workspace = {"base_url": url, "workspace_uid": WORKSPACE_UID}
        config = parse_config(
            {
                "workspaces": [{"name": "acme", "api_key": KEY, **workspace}],
                "api": {"requests_per_second": 500, "burst": 500, "max_workflows": 3},
            }
        )
        published, (poller,) = build(config)
        try:
            for _ in range(2):
                assert await poller.poll_once()
            exposition = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
        finally:
            await poller.aclose()
    assert exposition.value("captaindata_workflows") == 3
    assert {s.label("workflow_uid") for s in exposition.find("captaindata_runs")} == {"wf-0", "wf-1", "wf-2"}
    assert exposition.value("captaindata_poll_errors_total", reason="over_limit") == 2
    assert caplog.text.count("api.max_workflows") == 1
    assert not [e for e in sim.request_log if "wf-3" in e["path"] or "wf-4" in e["path"]]


async def test_actions_past_v4_max_actions_are_left_out_and_applying_is_progress() -> None:
    clock = ManualClock(time.time())
    sim = Simulator(seed=5, clock=clock)
    sim.add_workspace("ws", KEY)
    api = V4Api.of(sim)
    for index in range(8):
        api.add_run(f"action-{index}", "SUCCEEDED", updated_at=clock() - 600)

    def slow(point: str) -> None:
        if point == "apply":
            time.sleep(0.3)  # a slow apply (worker thread): the applies of a poll take > poll.timeout

    with running_simulator(sim) as url:
        config = parse_config(
            {
                "workspaces": [
                    {
                        "name": "acme",
                        "api_key": KEY,
                        "api_version": "v4",
                        "base_url": url,
                        "v4": {"max_actions": 6},
                    }
                ],
                "poll": {"interval": "1s", "timeout": "500ms"},
                "api": {"requests_per_second": 500, "burst": 500},
            }
        )
        published, (poller,) = build(config, checkpoint=slow)
        try:
            up = await poller.poll_once()
            exposition = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
        finally:
            await poller.aclose()
    assert exposition.value("captaindata_poll_errors_total", reason="timeout") == 0
    assert up
    assert exposition.value("captaindata_workflows") == 6
    assert exposition.value("captaindata_poll_errors_total", reason="over_limit") == 1
