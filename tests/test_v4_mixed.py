"""One config file with a v3 and a v4 workspace, the real exporter (a subprocess) polling the simulator:
the same lifecycles give the same counters in both versions, across a restart with the state file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from exporter.simulator import Simulator
from exporter.simulator.v4 import V4Api
from tests.conftest import API_KEY, WORKSPACE_UID
from tests.support.exporter_proc import fast_config, running_exporter, workspace_config
from tests.support.metrics import ScrapedMetrics
from tests.support.net import wait_until

V4_KEY = "5eed" * 16
WF, ACTION = "wf-extract", "extract_people"
CHANGES = "captaindata_run_status_changes_total"
INPUT_ERROR = {"label": "INVALID_INPUT", "message": "The provided input is invalid."}


def mixed_config(url: str, state: Path) -> dict[str, Any]:
    v4 = {"name": "growth", "api_version": "v4", "api_key": V4_KEY, "base_url": url}
    config = fast_config([workspace_config("legacy", url, WORKSPACE_UID, API_KEY), v4])
    config["state"] = {"path": str(state)}
    return config


def scrape(url: str) -> ScrapedMetrics:
    return ScrapedMetrics(httpx.get(f"{url}/metrics", timeout=10).text)


def by_status(exposition: ScrapedMetrics, name: str, workspace: str, workflow: str) -> dict[str, float]:
    return {
        s.label("status"): s.value
        for s in exposition.find(name, workspace=workspace, workflow_uid=workflow)
        if s.value
    }


def both(url: str, name: str) -> tuple[dict[str, float], dict[str, float]]:
    exposition = scrape(url)
    return by_status(exposition, name, "legacy", WF), by_status(exposition, name, "growth", ACTION)


def polls_seen(sim: Simulator) -> tuple[int, int]:
    with sim.lock:
        v3 = sum(1 for e in sim.request_log if e["path"] == "/v3/workflows")
        v4 = sum(1 for e in sim.request_log if e["path"] == "/v4/runs")
    return v3, v4


def after_polls(sim: Simulator, polls: int = 2) -> None:
    v3, v4 = polls_seen(sim)
    wait_until(
        lambda: all(now >= then + polls for now, then in zip(polls_seen(sim), (v3, v4), strict=True)),
        30,
        "more polls of both workspaces",
    )


def test_counters_are_exact_across_versions_and_restarts(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    sim.add_workspace("ws-growth", V4_KEY)
    v4 = V4Api.of(sim)
    now = time.time()
    sim.add_workflow(WF, "Extract People", workspace_uid=WORKSPACE_UID)
    r1 = sim.add_run(WF, "running", start_time=now - 300)
    r2 = sim.add_run(WF, "pending")
    sim.add_run(WF, "finished", start_time=now - 900, finish_time=now - 800)
    s1 = v4.add_run(ACTION, "RUNNING", workspace_uid="ws-growth", started_at=now - 300, updated_at=now - 300)
    s2 = v4.add_run(ACTION, "QUEUED", workspace_uid="ws-growth", updated_at=now - 250)
    v4.add_run(ACTION, "SUCCEEDED", workspace_uid="ws-growth", started_at=now - 900, updated_at=now - 800)
    config = mixed_config(sim_url, tmp_path / "state")

    with running_exporter(config, tmp_path / "first") as exporter:
        assert both(exporter.url, "captaindata_runs") == ({"running": 1, "pending": 1, "finished": 1},) * 2
        sim.update_run(r1, "warning", finish_time=time.time())
        v4.update_run(s1, "FAILED", last_error=INPUT_ERROR)  # failed on its input: warning
        wait_until(lambda: both(exporter.url, CHANGES) == ({"warning": 1},) * 2, 30, "both warnings counted")
        after_polls(sim)
        assert both(exporter.url, CHANGES) == ({"warning": 1},) * 2
    # Down (SIGTERM): a pending run starts, a warned run is fixed, and a new run appears and finishes.
    sim.update_run(r2, "running", start_time=time.time())
    v4.update_run(s2, "RUNNING")
    sim.add_run(WF, "finished", start_time=time.time() - 60, finish_time=time.time())
    v4.add_run(ACTION, "SUCCEEDED", workspace_uid="ws-growth", started_at=time.time() - 60)
    with running_exporter(config, tmp_path / "second") as exporter:
        after_polls(sim)
        v3_changes, v4_changes = both(exporter.url, CHANGES)
        assert v3_changes == v4_changes == {"warning": 1, "running": 1, "finished": 1}
        assert both(exporter.url, "captaindata_runs") == ({"running": 1, "warning": 1, "finished": 2},) * 2
        exposition = scrape(exporter.url)
        assert exposition.value("captaindata_up", workspace="legacy") == 1
        assert exposition.value("captaindata_up", workspace="growth") == 1
        assert exposition.find("captaindata_api_requests_total", workspace="growth", endpoint="/v4/runs")
        assert not exposition.find(
            "captaindata_api_requests_total", workspace="growth", endpoint="/v3/workflows"
        )
        log = exporter.log()
    assert V4_KEY not in log
    assert API_KEY not in log
    assert all(entry["x_api_key"] for entry in sim.request_log if entry["path"].startswith("/v4/"))
    assert not any(entry["x_api_key"] for entry in sim.request_log if entry["path"].startswith("/v3/"))
