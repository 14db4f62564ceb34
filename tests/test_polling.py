"""The exporter polling the simulator over loopback HTTP: statuses, pagination, counters, timings."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import httpx
import pytest

from exporter.config import parse_config
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.statuses import STATUS_LABEL_VALUES
from tests.conftest import API_KEY, WORKSPACE_UID
from tests.support.exporter_proc import fast_config, workspace_config
from tests.support.metrics import ScrapedMetrics

HOUR = 3600.0
WF = "wf-1"


def runs_by_status(exposition: Any, workflow_uid: str = WF) -> dict[str, float]:
    return {
        s.label("status"): s.value for s in exposition.find("captaindata_runs", workflow_uid=workflow_uid)
    }


def changes(exposition: Any, status: str, workflow_uid: str = WF) -> float:
    return float(
        exposition.value("captaindata_run_status_changes_total", workflow_uid=workflow_uid, status=status)
    )


async def test_every_status_and_unknown_are_exported(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "Extract LinkedIn People Profile")
    for status in ("running", "pending", "finished", "warning", "shutdown", "stopped", "paused"):
        sim.add_run(WF, status, start_time=time.time() - 60)
    sim.add_run(WF, "COMPLETED")  # alias of finished, any case
    sim.add_run(WF, "Running")
    sim.add_run(WF, "exploded")  # not a known status
    exposition = await harness_for().poll()
    assert runs_by_status(exposition) == {
        "running": 2,
        "pending": 1,
        "finished": 2,
        "warning": 1,
        "shutdown": 1,
        "stopped": 1,
        "paused": 1,
        "unknown": 1,
    }
    assert exposition.value("captaindata_up", workspace="acme") == 1
    assert exposition.value("captaindata_workflows", workspace="acme") == 1
    series = exposition.find("captaindata_runs")[0]
    assert dict(series.labels) == {
        "workspace": "acme",
        "workflow_uid": WF,
        "workflow": "Extract LinkedIn People Profile",
        "status": "running",
    }


async def test_every_status_is_present_at_zero_for_an_idle_workflow(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "Idle")
    exposition = await harness_for().poll()
    assert runs_by_status(exposition) == dict.fromkeys(STATUS_LABEL_VALUES, 0)
    assert {s.label("status") for s in exposition.find("captaindata_run_status_changes_total")} == set(
        STATUS_LABEL_VALUES
    )
    assert exposition.value("captaindata_running_run_max_age_seconds", workflow_uid=WF) == 0
    assert exposition.find("captaindata_running_run_oldest_start_timestamp_seconds") == []
    assert "_created" not in exposition.text


async def test_requests_carry_the_documented_auth_headers(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    await harness_for().poll()
    assert sim.request_log
    for entry in sim.request_log:
        assert entry["authorization_scheme"] == "x-api-key"
        assert entry["project"] == WORKSPACE_UID
        assert entry["status"] == 200
    assert [e["query"].get("page") for e in sim.request_log if e["path"].endswith("/jobs")] == ["0"]


@pytest.mark.parametrize("time_format", ["naive", "offset", "z", "epoch"])
async def test_timestamp_forms(sim: Simulator, harness_for: Any, time_format: str) -> None:
    start = float(int(time.time()) - 3 * 86400)
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "running", start_time=start, time_format=time_format)
    exposition = await harness_for().poll()
    assert (
        exposition.value("captaindata_running_run_oldest_start_timestamp_seconds", workflow_uid=WF) == start
    )


async def test_offset_timestamps_are_converted_to_utc(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "running", extra={"start_time": "2026-01-01T02:00:00+02:00"})
    sim.add_run(WF, "pending", extra={"start_time": None, "scheduled_time": "not a time"})
    exposition = await harness_for().poll()
    assert (
        exposition.value("captaindata_running_run_oldest_start_timestamp_seconds", workflow_uid=WF)
        == 1767225600.0
    )
    assert runs_by_status(exposition)["pending"] == 0  # an unreadable timestamp skips the run (contract §1)


async def test_unknown_fields_and_missing_optional_fields_are_tolerated(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "finished", extra={"brand_new_field": {"x": 1}, "name": None, "finish_time": None})
    exposition = await harness_for().poll()
    assert runs_by_status(exposition)["finished"] == 1


async def request_log(sim_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        log: list[dict[str, Any]] = (await client.get(f"{sim_url}/_sim/requests", timeout=5)).json()
        return log


async def jobs_requests(sim_url: str) -> list[tuple[str, str]]:
    """(workflow uid, page) of every runs request, from the simulator's request log over HTTP."""
    log = await request_log(sim_url)
    return [(e["path"].split("/")[3], e["query"].get("page")) for e in log if e["path"].endswith("/jobs")]


async def test_pagination_learns_the_page_size_and_stays_at_the_lower_bound(
    sim: Simulator, sim_url: str, harness_for: Any
) -> None:
    now = time.time()
    sizes = {"wf-a": 23, "wf-b": 3, "wf-c": 0, "wf-d": 10}  # the simulator's page size is 5
    for uid, size in sizes.items():
        sim.add_workflow(uid, uid)
        for i in range(size):
            sim.add_run(uid, "finished", created_at=now - i, start_time=now - i - 60, finish_time=now - i)
    harness = harness_for(api={"concurrency": 1})
    exposition = await harness.poll()
    assert {uid: runs_by_status(exposition, uid)["finished"] for uid in sizes} == sizes
    first = await jobs_requests(sim_url)
    # Until a page followed by a non-empty page is seen, an empty page ends pagination (as before);
    # wf-a teaches the page size at its page 1, so its short page 4 is its last request.
    assert [page for uid, page in first if uid == "wf-a"] == ["0", "1", "2", "3", "4"]

    sim.request_log.clear()
    exposition = await harness.poll()
    lower_bound = 1 + sum(max(1, math.ceil(size / 5)) for size in sizes.values())
    requests = len(await request_log(sim_url))
    assert requests <= 1.1 * lower_bound, (requests, lower_bound)
    assert {uid: runs_by_status(exposition, uid)["finished"] for uid in sizes} == sizes

    # New runs: a short page still ends pagination, a full one asks for the next.
    sim.request_log.clear()
    sim.add_run("wf-b", "running", start_time=time.time())
    sim.add_run("wf-b", "running", start_time=time.time())
    sim.add_run("wf-d", "running", start_time=time.time())
    exposition = await harness.poll()
    pages = await jobs_requests(sim_url)
    assert [page for uid, page in pages if uid == "wf-b"] == ["0", "1"]  # 5 runs: a full page
    assert [page for uid, page in pages if uid == "wf-d"] == ["0", "1", "2"]  # 11 runs
    assert runs_by_status(exposition, "wf-b")["running"] == 2
    assert changes(exposition, "running", "wf-d") == 1


async def test_runs_shifting_between_pages_are_counted_once(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    now = time.time()
    for i in range(10):
        sim.add_run(WF, "finished", created_at=now - 100 - i)
    harness = harness_for()
    await harness.poll()  # baseline
    sim.request_log.clear()
    # While page 1 is being answered, three new runs arrive and push older runs onto later pages.
    sim.add_fault("slow", count=1, delay=0.5, path_contains="page=1")

    def add_runs_once_page_1_is_asked() -> None:
        deadline = time.monotonic() + 10
        while not any(e["query"].get("page") == "1" for e in list(sim.request_log)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(3):
            sim.add_run(WF, "running", start_time=time.time())

    added = threading.Thread(target=add_runs_once_page_1_is_asked)
    added.start()
    exposition = await harness.poll()
    added.join()
    pages = [e["query"]["page"] for e in sim.request_log if e["path"].endswith("/jobs")]
    assert pages == ["0", "1", "2"]  # the shift pushed three runs onto page 2, a short last page
    assert runs_by_status(exposition)["finished"] == 10
    # Page 0 was read before the new runs arrived; they are counted on the next poll, once.
    exposition = await harness.poll()
    assert runs_by_status(exposition)["finished"] == 10
    assert runs_by_status(exposition)["running"] == 3
    assert changes(exposition, "running") == 3
    assert changes(exposition, "finished") == 0
    exposition = await harness.poll()
    assert changes(exposition, "running") == 3


async def test_a_server_that_ignores_page_is_detected_and_counted(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    for _ in range(7):
        sim.add_run(WF, "finished")
    sim.add_fault("ignore_page")
    exposition = await harness_for().poll()
    pages = [e["query"]["page"] for e in sim.request_log if e["path"].endswith("/jobs")]
    assert pages == ["0", "1"]
    assert runs_by_status(exposition)["finished"] == 5  # what page 0 holds
    assert exposition.value("captaindata_poll_errors_total", reason="page_cap") == 1
    assert exposition.value("captaindata_up") == 1


async def test_page_cap_stops_pagination_and_is_counted(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    for _ in range(12):
        sim.add_run(WF, "finished")
    exposition = await harness_for(api={"max_pages": 2}).poll()
    assert runs_by_status(exposition)["finished"] == 10
    assert exposition.value("captaindata_poll_errors_total", reason="page_cap") == 1
    assert len([e for e in sim.request_log if e["path"].endswith("/jobs")]) == 2


async def test_status_change_counters(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    now = time.time()
    baseline_warning = sim.add_run(WF, "warning", start_time=now - 600, finish_time=now - 300)
    moving = sim.add_run(WF, "pending")
    harness = harness_for()
    exposition = await harness.poll()
    # Runs present at the first poll are the baseline: nothing counted.
    assert {s.value for s in exposition.find("captaindata_run_status_changes_total")} == {0}

    sim.update_run(moving, "running", start_time=now)
    sim.add_run(WF, "shutdown", start_time=now - 120, finish_time=now - 60)  # first seen later: counted
    exposition = await harness.poll()
    assert changes(exposition, "running") == 1
    assert changes(exposition, "shutdown") == 1
    assert changes(exposition, "warning") == 0

    exposition = await harness.poll()  # nothing changed: nothing counted twice
    assert changes(exposition, "running") == 1
    assert changes(exposition, "shutdown") == 1

    sim.update_run(moving, "finished", finish_time=now + 90)
    sim.remove_run(baseline_warning)  # aged out of the API's window: dropped, not counted
    exposition = await harness.poll()
    assert changes(exposition, "finished") == 1
    assert runs_by_status(exposition)["warning"] == 0
    assert sum(s.value for s in exposition.find("captaindata_run_status_changes_total")) == 3
    # Retried and failed again: a new entry into warning.
    sim.update_run(moving, "running")
    await harness.poll()
    sim.update_run(moving, "warning")
    exposition = await harness.poll()
    assert changes(exposition, "running") == 2
    assert changes(exposition, "warning") == 1


async def test_a_run_missing_from_one_poll_is_not_counted_again(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    run = sim.add_run(WF, "paused", start_time=time.time() - 60)
    harness = harness_for()
    await harness.poll()
    saved = sim.runs.pop(run)
    exposition = await harness.poll()
    assert runs_by_status(exposition)["paused"] == 0
    sim.runs[run] = saved
    exposition = await harness.poll()
    assert runs_by_status(exposition)["paused"] == 1
    assert changes(exposition, "paused") == 0


async def test_run_durations_are_observed_when_runs_finish(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    now = time.time()
    run = sim.add_run(WF, "running", start_time=now - 1000)
    harness = harness_for()
    await harness.poll()
    sim.update_run(run, "finished", finish_time=now - 100)  # 900 s start to finish
    sim.add_run(WF, "shutdown", start_time=now - 50_000, finish_time=now - 10)
    exposition = await harness.poll()
    finished = {
        s.label("le"): s.value
        for s in exposition.find(
            "captaindata_run_duration_seconds_bucket", workflow_uid=WF, status="finished"
        )
    }
    assert finished["600.0"] == 0
    assert finished["1800.0"] == 1
    assert finished["+Inf"] == 1
    assert exposition.value("captaindata_run_duration_seconds_sum", status="finished") == pytest.approx(
        900, abs=1
    )
    assert exposition.value("captaindata_run_duration_seconds_count", status="shutdown") == 1
    assert exposition.value("captaindata_run_duration_seconds_count", status="warning") == 0
    bounds = [
        s.label("le") for s in exposition.find("captaindata_run_duration_seconds_bucket", status="finished")
    ]
    assert bounds[0] == "60.0"
    assert bounds[-2] == "86400.0"


async def test_time_in_running(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    now = time.time()
    sim.add_run(WF, "running", start_time=now - 7 * HOUR)
    sim.add_run(WF, "running", start_time=now - 2 * HOUR)
    sim.add_run(WF, "finished", start_time=now - 30 * HOUR, finish_time=now - 29 * HOUR)
    harness = harness_for()
    exposition = await harness.poll()
    oldest = exposition.value("captaindata_running_run_oldest_start_timestamp_seconds", workflow_uid=WF)
    assert oldest == pytest.approx(now - 7 * HOUR, abs=0.01)
    age = exposition.value("captaindata_running_run_max_age_seconds", workflow_uid=WF)
    assert 7 * HOUR <= age < 7 * HOUR + 30


async def test_last_status_timestamps(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    base = 1767225600.0  # timestamps before 2015 are treated as missing
    sim.add_run(WF, "finished", start_time=base + 1000, finish_time=base + 5000, created_at=time.time() - 10)
    sim.add_run(WF, "finished", start_time=base + 2000, finish_time=base + 3000, created_at=time.time() - 20)
    sim.add_run(WF, "running", start_time=base + 7000, created_at=time.time() - 5)
    exposition = await harness_for().poll()
    stamps = {
        s.label("status"): s.value
        for s in exposition.find("captaindata_workflow_last_status_timestamp_seconds", workflow_uid=WF)
    }
    assert stamps == {"finished": base + 5000, "running": base + 7000}


async def test_needs_action_series_most_recent_first_and_capped(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    now = time.time()
    expected = []
    for i, status in enumerate(["warning", "shutdown", "paused", "warning"]):
        uid = sim.add_run(WF, status, name=f"Campaign {i}", start_time=now - 1000 + i, finish_time=None)
        expected.append((uid, status, f"Campaign {i}"))
    sim.add_run(WF, "finished", start_time=now - 10, finish_time=now)
    exposition = await harness_for(metrics={"needs_action_limit": 3}).poll()
    found = exposition.find("captaindata_run_needs_action")
    assert [(s.label("run_uid"), s.label("status"), s.label("run_name")) for s in found] == list(
        reversed(expected)
    )[:3]
    assert {s.value for s in found} == {1}


async def test_workflow_include_and_exclude(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "LinkedIn Extract")
    sim.add_workflow("wf-b", "LinkedIn Connect")
    sim.add_workflow("wf-c", "Email Finder")
    harness = harness_for(workspace={"workflows": {"include": ["LinkedIn.*"], "exclude": ["wf-b"]}})
    exposition = await harness.poll()
    assert {s.label("workflow_uid") for s in exposition.find("captaindata_runs")} == {"wf-a"}
    assert exposition.value("captaindata_workflows") == 1


async def test_a_workflow_answering_404_is_counted_not_failed_and_keeps_its_baseline(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_workflow("wf-b", "B")
    for _ in range(3):
        sim.add_run("wf-b", "finished")
    sim.add_fault("status", count=1, status=404, path_contains="wf-b/jobs")
    harness = harness_for()
    exposition = await harness.poll()
    assert exposition.value("captaindata_up") == 1  # wf-a was read
    assert exposition.total("captaindata_poll_errors_total") == 1
    assert exposition.value("captaindata_poll_errors_total", reason="not_found") == 1
    assert runs_by_status(exposition, "wf-b")["finished"] == 0  # not read yet
    # Still listed: read now, and its runs are the baseline (they predate the exporter).
    exposition = await harness.poll()
    assert runs_by_status(exposition, "wf-b")["finished"] == 3
    assert changes(exposition, "finished", "wf-b") == 0
    # Really deleted: the next list drops every series of it.
    sim.remove_workflow("wf-b")
    exposition = await harness.poll()
    assert {s.label("workflow_uid") for s in exposition.find("captaindata_runs")} == {"wf-a"}
    assert exposition.find("captaindata_run_status_changes_total", workflow_uid="wf-b") == []


async def test_every_workflow_answering_404_is_not_up(sim: Simulator, harness_for: Any) -> None:
    # Issue #19: a base URL or key that lists workflows but whose runs path answers 404 everywhere.
    for uid in ("wf-a", "wf-b"):
        sim.add_workflow(uid, uid)
        sim.add_run(uid, "finished")
    sim.add_fault("status", count=100, status=404, path_contains="/jobs")
    exposition = await harness_for().poll()
    assert exposition.value("captaindata_up") == 0
    assert exposition.value("captaindata_poll_errors_total", reason="not_found") == 1


async def test_workflow_name_falls_back_to_uid(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "")
    exposition = await harness_for().poll()
    assert exposition.find("captaindata_runs")[0].label("workflow") == "wf-a"


async def test_workspaces_are_polled_and_reported_independently(sim: Simulator, sim_url: str) -> None:
    other_uid = sim.add_workspace("7d1e0c2a-9b8f-4e3d-a6c5-1f2e3d4c5b6a", "b" * 64)
    sim.add_workflow("wf-a", "A", workspace_uid=WORKSPACE_UID)
    sim.add_workflow("wf-b", "B", workspace_uid=other_uid)
    sim.add_run("wf-a", "finished")
    sim.add_run("wf-b", "paused")
    config = parse_config(
        fast_config(
            [
                workspace_config("acme", sim_url, WORKSPACE_UID, API_KEY),
                workspace_config("globex", sim_url, other_uid, "wrong" * 10),
            ]
        )
    )
    published, pollers = build(config)
    try:
        results = [await poller.poll_once() for poller in pollers]
    finally:
        for poller in pollers:
            await poller.aclose()
    assert results == [True, False]
    exposition = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
    assert exposition.value("captaindata_up", workspace="acme") == 1
    assert exposition.value("captaindata_up", workspace="globex") == 0
    assert exposition.value("captaindata_poll_errors_total", workspace="globex", reason="unauthorized") == 1
    assert {s.label("workflow_uid") for s in exposition.find("captaindata_runs", workspace="acme")} == {
        "wf-a"
    }
    assert exposition.find("captaindata_runs", workspace="globex") == []


async def test_an_unknown_status_is_logged_once(
    sim: Simulator, harness_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "Teleported")
    sim.add_run(WF, "Teleported")
    harness = harness_for()
    with caplog.at_level("WARNING", logger="exporter.unknown_statuses"):
        await harness.poll()
        exposition = await harness.poll()
    assert exposition.value("captaindata_runs", status="unknown") == 2
    assert [r.getMessage() for r in caplog.records] == [
        "unknown run status 'Teleported' counted as 'unknown'"
    ]
