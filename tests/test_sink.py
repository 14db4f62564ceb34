"""The polling engine over loopback HTTP: slow budgets, 429 windows, partial failures, exact counting,
series lifecycle, supervision and the whole-request timeout."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from exporter.poller import Poller, unhealthy
from exporter.server import create_app
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from tests.support.app_server import serving_app
from tests.support.metrics import ScrapedMetrics

RUNS = "/v3/workflows/{workflow_uid}/jobs"


def statuses(sim: Simulator) -> list[int]:
    return [entry["status"] for entry in sim.request_log]


def runs(exposition: ScrapedMetrics, workflow_uid: str, status: str = "finished") -> float:
    return exposition.value("captaindata_runs", workflow_uid=workflow_uid, status=status)


def changes(exposition: ScrapedMetrics, workflow_uid: str, status: str) -> float:
    return exposition.value("captaindata_run_status_changes_total", workflow_uid=workflow_uid, status=status)


class Events:
    """A checkpoint test hook that records every point and raises where a test says so."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail: dict[str, int] = {}  # point -> how many more times to raise (-1: always)

    def __call__(self, point: str) -> None:
        self.seen.append(point)
        left = self.fail.get(point, 0)
        if left:
            self.fail[point] = left - 1 if left > 0 else left
            raise RuntimeError(f"injected fault at {point}")

    async def wait_for(self, point: str, count: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while True:
                if self.seen.count(point) >= count:
                    return
                await asyncio.sleep(0.02)


async def test_a_slow_budget_still_completes_the_first_poll_and_refreshes_every_workflow(
    sim: Simulator, clock: ManualClock, harness_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The 60 workflows with a 30 s interval, at 1 request/s: a poll's 61 requests (the list, then
    # one page per workflow) need a minute, twice the interval (on the test's clock: the exporter's
    # waits move it).
    for i in range(60):
        uid = f"wf-{i:02d}"
        sim.add_workflow(uid, f"Workflow {i}")
        sim.add_run(uid, "finished")
    events = Events()
    harness = harness_for(
        checkpoint=events,
        clock=clock,
        poll={"interval": "30s", "timeout": "5m"},
        api={"requests_per_second": 1, "burst": 1},
    )
    (poller,) = harness.pollers
    started = clock.monotonic()
    with caplog.at_level(logging.WARNING, logger="exporter.poller"):
        task = asyncio.create_task(poller.run_forever())
        try:
            await events.wait_for("loop", 3, within=60)  # two polls finished
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    exposition = await harness.exposition()
    assert clock.monotonic() - started >= 2 * 60  # two polls of 61 requests at 1 a second
    assert exposition.value("captaindata_up") == 1
    assert exposition.value("captaindata_workflows") == 60
    assert exposition.total("captaindata_poll_errors_total") == 0
    assert exposition.total("captaindata_runs", status="finished") == 60
    fresh = exposition.find("captaindata_workflow_last_success_timestamp_seconds")
    assert len(fresh) == 60
    slow = [r.getMessage() for r in caplog.records if "poll.interval" in r.getMessage()]
    assert len(slow) == 1, slow  # said once, not at every poll
    assert "api.requests_per_second" in slow[0]


async def test_a_retry_after_longer_than_the_interval_is_waited_not_failed(
    sim: Simulator, clock: ManualClock, harness_for: Any
) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_run("wf-a", "finished")
    # One request per 1 s window, asked as an HTTP date (1-2 s ahead): waits past the 300 ms interval.
    sim.set_rate_limit(1, window_seconds=1.0, style="http-date")
    exposition = await harness_for(clock=clock, poll={"interval": "300ms"}).poll()
    assert 429 in statuses(sim)
    assert max(clock.slept) > 0.3
    assert exposition.value("captaindata_up") == 1
    assert runs(exposition, "wf-a") == 1
    assert exposition.value("captaindata_poll_errors_total", reason="rate_limited") == 0
    assert exposition.value("captaindata_api_retry_after_seconds") == 0  # a success came after


async def test_one_429_window_pauses_every_request_of_the_workspace(sim: Simulator, harness_for: Any) -> None:
    for i in range(4):
        sim.add_workflow(f"wf-{i}", f"W{i}")
        sim.add_run(f"wf-{i}", "finished")
    # 3 requests per 500 ms window; a 429 asks to wait 1 s (the simulator rounds up to seconds).
    sim.set_rate_limit(3, window_seconds=0.5, style="seconds")
    # Real time: the requests in flight while a 429 comes back take real time, not the test clock's.
    harness = harness_for(api={"concurrency": 4, "requests_per_second": 20, "burst": 1})
    exposition = await harness.poll()
    assert exposition.value("captaindata_up") == 1
    answered = statuses(sim)
    assert answered.count(200) == 9  # the list, then pages 0 and 1 of each workflow
    # After a 429 every request of the workspace waits, so the next request is served: one 429 per
    # window (two windows), where requests sent regardless of the window would meet 429 after 429.
    assert answered.count(429) <= 3, answered
    assert exposition.value("captaindata_api_retry_after_seconds") == 0


async def test_one_failing_workflow_keeps_its_values_while_the_others_update(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow("wf-good", "Good")
    sim.add_workflow("wf-bad", "Bad")
    sim.add_run("wf-good", "finished")
    sim.add_run("wf-bad", "paused")
    harness = harness_for(api={"max_retries": 1})
    first = await harness.poll()
    assert first.value("captaindata_up") == 1
    bad_success = first.value("captaindata_workflow_last_success_timestamp_seconds", workflow_uid="wf-bad")

    sim.add_fault("status", status=502, path_contains="wf-bad/jobs")
    sim.add_run("wf-good", "finished")
    sim.add_run("wf-bad", "paused")
    second = await harness.poll()
    assert second.value("captaindata_up") == 0
    assert second.value("captaindata_poll_errors_total", reason="server_error") == 1
    assert runs(second, "wf-good") == 2  # updated
    assert runs(second, "wf-bad", "paused") == 1  # last good value kept
    assert (
        second.value("captaindata_workflow_last_success_timestamp_seconds", workflow_uid="wf-bad")
        == bad_success
    )
    assert second.value(
        "captaindata_workflow_last_success_timestamp_seconds", workflow_uid="wf-good"
    ) > first.value("captaindata_workflow_last_success_timestamp_seconds", workflow_uid="wf-good")

    sim.clear_faults()
    third = await harness.poll()
    assert third.value("captaindata_up") == 1
    assert runs(third, "wf-bad", "paused") == 2
    assert changes(third, "wf-bad", "paused") == 1


async def test_counting_is_exact_when_a_workflows_first_read_fails(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_workflow("wf-old", "Old")
    for _ in range(12):  # history that predates the exporter: the baseline
        sim.add_run("wf-old", "shutdown", start_time=time.time() - 600, finish_time=time.time() - 500)
    sim.add_fault("status", count=2, status=500, path_contains="wf-old/jobs")
    harness = harness_for(api={"max_retries": 1})
    first = await harness.poll()
    assert first.value("captaindata_up") == 0
    second = await harness.poll()  # its first successful read
    assert runs(second, "wf-old", "shutdown") == 12
    assert changes(second, "wf-old", "shutdown") == 0
    assert (
        second.value("captaindata_run_duration_seconds_count", workflow_uid="wf-old", status="shutdown") == 0
    )
    # A workflow created after the exporter's first list counts every run, a new run counts once.
    sim.add_workflow("wf-new", "New")
    sim.add_run("wf-new", "finished")
    sim.add_run("wf-old", "running")
    third = await harness.poll()
    assert changes(third, "wf-new", "finished") == 1
    assert changes(third, "wf-old", "running") == 1
    fourth = await harness.poll()
    assert changes(fourth, "wf-new", "finished") == 1
    assert sum(s.value for s in fourth.find("captaindata_run_status_changes_total")) == 2


async def test_series_follow_renames_and_deletions(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "Before")
    sim.add_workflow("wf-b", "Doomed")
    harness = harness_for()
    await harness.poll()
    run = sim.add_run("wf-a", "running", start_time=time.time() - 100)
    sim.add_run("wf-b", "warning", start_time=time.time() - 100, finish_time=time.time())
    await harness.poll()
    sim.update_run(run, "finished", finish_time=time.time())
    sim.rename_workflow("wf-a", "After")
    exposition = await harness.poll()
    names = {
        s.label("workflow") for s in exposition.series if s.labels and ("workflow_uid", "wf-a") in s.labels
    }
    assert names == {"After"}
    assert changes(exposition, "wf-a", "running") == 1  # kept across the rename
    assert changes(exposition, "wf-a", "finished") == 1
    assert (
        exposition.value("captaindata_run_duration_seconds_count", workflow_uid="wf-a", status="finished")
        == 1
    )
    assert exposition.find("captaindata_run_needs_action", workflow_uid="wf-b")

    sim.remove_workflow("wf-b")
    exposition = await harness.poll()
    assert not [s for s in exposition.series if ("workflow_uid", "wf-b") in s.labels]
    assert exposition.value("captaindata_workflows") == 1
    assert exposition.value("captaindata_up") == 1


async def test_a_run_listed_under_two_workflows_belongs_to_one_and_counts_once(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_workflow("wf-b", "B")
    harness = harness_for()
    await harness.poll()
    sim.add_run("wf-a", "finished", extra={"uid": "shared"})
    sim.add_run("wf-b", "finished", extra={"uid": "shared"})
    owners = set()
    for polls in range(1, 6):
        exposition = await harness.poll()
        counted = {uid: runs(exposition, uid) for uid in ("wf-a", "wf-b")}
        assert sorted(counted.values()) == [0, 1]
        owners.add(max(counted, key=lambda uid: counted[uid]))
        assert exposition.total("captaindata_run_status_changes_total") == 1
        assert exposition.value("captaindata_runs_skipped_total", reason="duplicate_uid") == polls
    assert len(owners) == 1  # chosen once, kept


async def test_an_oversized_body_fails_only_its_workflow(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-big", "Big")
    sim.add_workflow("wf-small", "Small")
    for _ in range(5):
        sim.add_run("wf-big", "finished", name="x" * 400)
    sim.add_run("wf-small", "finished")
    exposition = await harness_for(api={"max_response_bytes": 1024}).poll()
    assert exposition.value("captaindata_poll_errors_total", reason="bad_response") == 1
    assert runs(exposition, "wf-small") == 1
    assert runs(exposition, "wf-big") == 0
    assert exposition.value("captaindata_up") == 0


async def test_a_dribbling_server_hits_the_whole_request_timeout(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_run("wf-a", "finished")
    # 60 bytes at one every 100 ms: each read is fast, the request is not.
    sim.add_fault("dribble", count=1, delay=0.1, path_contains="/jobs")
    exposition = await harness_for(api={"request_timeout": "500ms"}).poll()
    assert exposition.total("captaindata_api_request_failures_total", reason="timeout") == 1
    assert exposition.value("captaindata_up") == 1  # retried
    assert runs(exposition, "wf-a") == 1


async def test_an_internal_error_is_counted_and_the_poll_recovers(
    sim: Simulator, harness_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_run("wf-a", "finished")
    events = Events()
    events.fail["apply"] = 1
    harness = harness_for(checkpoint=events)
    with caplog.at_level(logging.ERROR, logger="exporter.poller"):
        failed = await harness.poll()
    assert failed.value("captaindata_poll_errors_total", reason="internal") == 1
    assert failed.value("captaindata_poll_errors_total", reason="bad_response") == 0
    assert failed.value("captaindata_up") == 0
    assert any(r.exc_info for r in caplog.records), "logged with its traceback"
    recovered = await harness.poll()
    assert recovered.value("captaindata_up") == 1
    assert runs(recovered, "wf-a") == 1


async def until_health(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    async with asyncio.timeout(20):
        while True:
            answer = await client.get(f"{url}/-/healthy")
            if answer.status_code == status:
                return answer
            await asyncio.sleep(0.05)


async def until_up(harness: Any) -> None:
    async with asyncio.timeout(20):
        while True:
            if (await harness.exposition()).value("captaindata_up") == 1:
                return
            await asyncio.sleep(0.05)


async def test_a_crashing_loop_restarts_is_counted_and_fails_health(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "A")
    events = Events()
    events.fail["loop"] = -1  # every iteration crashes before a poll attempt
    harness = harness_for(checkpoint=events, poll={"interval": "100ms", "timeout": "500ms"})
    pollers: list[Poller] = harness.pollers
    health: Callable[[], list[str]] = lambda: unhealthy(pollers)  # noqa: E731
    async with serving_app(create_app(harness.published, health)) as url, httpx.AsyncClient() as client:
        task = asyncio.create_task(pollers[0].run_forever())
        try:
            await events.wait_for("loop", 2)  # restarted after a backoff
            answer = await until_health(client, url, 503)
            assert "acme" in answer.text
            exposition = await harness.exposition()
            assert exposition.value("captaindata_poll_errors_total", reason="internal") >= 2
            events.fail.clear()  # the bug goes away: the loop polls again and health recovers
            await until_health(client, url, 200)
            await until_up(harness)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_odd_runs_are_skipped_and_counted_while_the_rest_is_kept(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow("wf-a", "Odd \ud800 name")
    sim.add_run("wf-a", "finished")
    sim.add_run("wf-a", "finished", extra={"uid": None})
    sim.add_run("wf-a", "finished", extra={"uid": {"nested": 1}})
    sim.add_run("wf-a", "finished", extra={"start_time": int("9" * 401)})
    sim.add_run("wf-a", "running", extra={"start_time": float("nan"), "name": "bad \udfff run"})
    sim.add_run("wf-a", "finished", extra={"finish_time": "9999-01-01T00:00:00"})
    exposition = await harness_for().poll()
    assert exposition.value("captaindata_up") == 1
    assert runs(exposition, "wf-a") == 2  # the good one and the one with a far-future finish time
    assert runs(exposition, "wf-a", "running") == 1
    skipped = {s.label("reason"): s.value for s in exposition.find("captaindata_runs_skipped_total")}
    assert skipped == {"invalid_uid": 2, "invalid_timestamp": 1, "invalid_item": 0, "duplicate_uid": 0}
    assert exposition.find("captaindata_running_run_oldest_start_timestamp_seconds") == []
    assert all(math.isfinite(s.value) for s in exposition.series)
    assert {s.label("workflow") for s in exposition.find("captaindata_runs")} == {"Odd \ufffd name"}


async def test_scrapes_are_answered_while_a_state_update_runs(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-a", "A")
    sim.add_run("wf-a", "finished")
    entered, release = threading.Event(), threading.Event()

    def stall_in_apply(point: str) -> None:
        if point == "apply" and threading.current_thread() is not threading.main_thread():
            entered.set()
            release.wait(timeout=60)

    harness = harness_for(checkpoint=stall_in_apply)
    health: Callable[[], list[str]] = lambda: unhealthy(harness.pollers)  # noqa: E731
    async with serving_app(create_app(harness.published, health)) as url, httpx.AsyncClient() as client:
        poll = asyncio.create_task(harness.poll())
        try:
            assert await asyncio.to_thread(entered.wait, 30)
            # The update is held in its worker thread: the event loop still answers.
            assert (await client.get(f"{url}/metrics")).status_code == 200
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
            assert not poll.done()
        finally:
            release.set()
        exposition = await poll
    assert runs(exposition, "wf-a") == 1


async def test_a_long_poll_publishes_as_it_goes_and_stays_healthy(sim: Simulator, harness_for: Any) -> None:
    for i in range(6):
        sim.add_workflow(f"wf-{i}", f"W{i}")
    # 13 requests at 2/s take about 6.5 s, far past the 1 s allowance of a stuck loop and over six of the
    # sink's 1 s publish spacing; each request has that second to answer, so a loaded machine neither
    # times the poll out nor lets the scrapes miss every partial publish.
    harness = harness_for(
        poll={"interval": "100ms", "timeout": "1s"}, api={"requests_per_second": 2, "burst": 1}
    )
    health: Callable[[], list[str]] = lambda: unhealthy(harness.pollers)  # noqa: E731
    answers = []
    async with serving_app(create_app(harness.published, health)) as url, httpx.AsyncClient() as client:
        poll = asyncio.create_task(harness.poll())
        fresh = set()
        while not poll.done():
            answers.append((await client.get(f"{url}/-/healthy")).status_code)
            during = ScrapedMetrics((await client.get(f"{url}/metrics")).text)
            fresh.add(len(during.find("captaindata_workflow_last_success_timestamp_seconds")))
            await asyncio.sleep(0.1)
        exposition = await poll
    assert exposition.value("captaindata_up") == 1
    assert len(answers) >= 5  # spread over a poll far longer than the 1 s allowance
    assert set(answers) == {200}
    assert fresh & {1, 2, 3, 4, 5}, fresh  # workflows were published as they were read, not at the end


async def test_workflows_not_reached_by_an_aborted_poll_are_read_first_next_time(
    sim: Simulator, harness_for: Any
) -> None:
    for i in range(3):
        sim.add_workflow(f"wf-{i}", f"W{i}")
    sim.add_fault("slow", count=1, delay=2.0, path_contains="wf-1/jobs")  # hangs: no progress
    harness = harness_for(poll={"timeout": "500ms"}, api={"concurrency": 1, "request_timeout": "5s"})
    first = await harness.poll()
    assert first.value("captaindata_poll_errors_total", reason="timeout") == 1
    sim.request_log.clear()
    second = await harness.poll()
    assert second.value("captaindata_up") == 1
    order = [e["path"].split("/")[3] for e in sim.request_log if e["path"].endswith("/jobs")]
    assert order[:3] == ["wf-1", "wf-2", "wf-0"]  # stalest first: the starved ones lead
