"""Rate limits, server errors, timeouts, bad bodies, dropped connections and bad keys, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from exporter.apistats import ApiStats
from exporter.config import ApiConfig
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.transport import ApiTransport, RequestFailed
from tests.conftest import WORKSPACE_UID

WF = "wf-1"
RUNS = "/v3/workflows/{workflow_uid}/jobs"


def seed_runs(sim: Simulator) -> None:
    sim.add_workflow(WF, "A")
    for status in ("finished", "finished", "warning", "running"):
        sim.add_run(WF, status, start_time=time.time() - 60)


def api_requests(sim: Simulator) -> list[int]:
    return [entry["status"] for entry in sim.request_log]


@pytest.mark.parametrize("style", ["seconds", "http-date", "reset"])
async def test_429_is_counted_waited_and_the_poll_continues(
    sim: Simulator, clock: ManualClock, harness_for: Any, style: str
) -> None:
    seed_runs(sim)
    # Two requests per second; the poll needs three (workflows, page 0, page 1).
    sim.set_rate_limit(2, window_seconds=1.0, style=style)
    harness = harness_for(clock=clock, poll={"timeout": "10s"})
    started = clock.monotonic()
    exposition = await harness.poll()
    waited = clock.monotonic() - started
    assert exposition.value("captaindata_up") == 1
    assert exposition.value("captaindata_runs", status="finished") == 2
    assert exposition.total("captaindata_api_rate_limited_total", endpoint=RUNS) >= 1
    limit_types = {
        s.label("limit_type") for s in exposition.find("captaindata_api_rate_limited_total") if s.value
    }
    assert limit_types == {"second"}  # X-RateLimit-Type of the simulator's 1 s window
    assert exposition.value("captaindata_api_requests_total", endpoint=RUNS, code="429") >= 1
    assert exposition.value("captaindata_poll_errors_total", reason="rate_limited") == 0
    assert waited > 0.3  # the exporter waited for the window to reset before retrying
    assert 429 in api_requests(sim)
    assert api_requests(sim)[-1] == 200
    # A success after the 429 resets the advertised wait.
    assert exposition.value("captaindata_api_retry_after_seconds") == 0


async def test_retry_after_is_clamped_to_the_wait_the_exporter_does(
    sim: Simulator, clock: ManualClock, harness_for: Any
) -> None:
    seed_runs(sim)
    sim.set_rate_limit(0, window_seconds=120, style="seconds")  # asks for about 120 s
    harness = harness_for(clock=clock, api={"max_retry_after": "300ms", "max_rate_limit_retries": 2})
    exposition = await harness.poll()
    assert clock.slept == [pytest.approx(0.3)] * 2  # two 429 waits, each clamped; the third 429 gives up
    # Each 429 wait is clamped to api.max_retry_after; only repeated 429s give up.
    assert api_requests(sim) == [429, 429, 429]
    assert exposition.value("captaindata_up") == 0
    assert exposition.value("captaindata_poll_errors_total", reason="rate_limited") == 1
    assert exposition.value("captaindata_api_retry_after_seconds") == pytest.approx(0.3)
    assert exposition.total("captaindata_api_rate_limited_total", endpoint="/v3/workflows") == 3


async def test_429_without_hints_backs_off_then_gives_up(
    sim: Simulator, clock: ManualClock, harness_for: Any
) -> None:
    seed_runs(sim)
    sim.set_rate_limit(0, window_seconds=600, style="none")
    exposition = await harness_for(clock=clock, api={"max_rate_limit_retries": 2}).poll()
    assert api_requests(sim) == [429, 429, 429]
    assert exposition.value("captaindata_poll_errors_total", reason="rate_limited") == 1
    assert (
        exposition.value("captaindata_api_rate_limited_total", endpoint="/v3/workflows", limit_type="none")
        == 3
    )
    assert 0 < exposition.value("captaindata_api_retry_after_seconds") <= 0.2


async def test_transient_5xx_is_retried_within_the_poll(sim: Simulator, harness_for: Any) -> None:
    seed_runs(sim)
    sim.add_fault("status", count=2, status=503)
    exposition = await harness_for().poll()
    assert exposition.value("captaindata_up") == 1
    assert api_requests(sim)[:3] == [503, 503, 200]
    assert exposition.value("captaindata_api_requests_total", endpoint="/v3/workflows", code="503") == 2
    assert exposition.value("captaindata_poll_errors_total", reason="server_error") == 0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "status", "status": 502}, "server_error"),
        ({"kind": "slow", "delay": 3.0}, "timeout"),
        ({"kind": "malformed"}, "bad_response"),
        ({"kind": "wrong_shape"}, "bad_response"),
        ({"kind": "drop"}, "network"),
        ({"kind": "status", "status": 418}, "bad_response"),
    ],
)
async def test_failed_poll_keeps_last_metrics_counts_reason_then_recovers(
    sim: Simulator, harness_for: Any, fault: dict[str, Any], reason: str
) -> None:
    seed_runs(sim)
    harness = harness_for(api={"request_timeout": "500ms", "max_retries": 1})
    good = await harness.poll()
    assert good.value("captaindata_up") == 1
    last_success = good.value("captaindata_last_poll_success_timestamp_seconds")

    sim.add_fault(**fault, path_contains="/jobs")
    sim.add_run(WF, "paused")  # not seen: the poll fails
    failed = await harness.poll()
    assert failed.value("captaindata_up") == 0
    assert failed.value("captaindata_poll_errors_total", reason=reason) == 1
    assert failed.total("captaindata_poll_errors_total") == 1
    assert failed.value("captaindata_last_poll_success_timestamp_seconds") == last_success
    # The last good view is still served, unchanged.
    assert failed.find("captaindata_runs") == good.find("captaindata_runs")
    assert failed.find("captaindata_run_status_changes_total") == good.find(
        "captaindata_run_status_changes_total"
    )

    sim.clear_faults()
    recovered = await harness.poll()
    assert recovered.value("captaindata_up") == 1
    assert recovered.value("captaindata_runs", status="paused") == 1
    assert recovered.value("captaindata_run_status_changes_total", status="paused") == 1
    assert recovered.value("captaindata_poll_errors_total", reason=reason) == 1
    assert recovered.value("captaindata_last_poll_success_timestamp_seconds") > last_success


async def test_timeouts_and_dropped_connections_are_counted_per_request(
    sim: Simulator, harness_for: Any
) -> None:
    seed_runs(sim)
    sim.add_fault("drop", count=1)
    # A request that answers after 8 s times out at 2 s; the others answer well within it, even on a
    # loaded machine.
    sim.add_fault("slow", count=1, delay=8.0)
    exposition = await harness_for(api={"request_timeout": "2s"}).poll()
    assert exposition.value("captaindata_up") == 1
    samples = exposition.find("captaindata_api_request_failures_total")
    # 4 endpoints (workflows, runs, and the credits and accounts reads of issue 17) x 2 reasons
    assert len(samples) == 8, "every (endpoint, reason) is present, at 0 until it happens"
    failures = {
        reason: sum(s.value for s in samples if s.label("reason") == reason)
        for reason in ("network", "timeout")
    }
    assert failures == {"network": 1, "timeout": 1}


async def test_unauthorized_is_not_retried(sim: Simulator, harness_for: Any) -> None:
    seed_runs(sim)
    harness = harness_for()
    await harness.poll()
    sim.request_log.clear()
    sim.set_api_key(WORKSPACE_UID, "f" * 64)  # the key was rotated
    exposition = await harness.poll()
    assert api_requests(sim) == [401]
    assert exposition.value("captaindata_up") == 0
    assert exposition.value("captaindata_poll_errors_total", reason="unauthorized") == 1
    assert exposition.value("captaindata_api_requests_total", code="401") == 1
    assert exposition.value("captaindata_runs", status="warning") == 1  # last good view kept


async def test_missing_project_id_is_unauthorized(sim: Simulator, harness_for: Any) -> None:
    seed_runs(sim)
    exposition = await harness_for(workspace={"workspace_uid": "not-my-workspace"}).poll()
    assert exposition.value("captaindata_poll_errors_total", reason="unauthorized") == 1


async def test_a_slow_poll_that_progresses_is_not_a_timeout(sim: Simulator, harness_for: Any) -> None:
    seed_runs(sim)
    sim.add_fault("slow", delay=0.4)  # every request is slow, the poll (3 requests) passes poll.timeout
    harness = harness_for(poll={"interval": "1s", "timeout": "1s"}, api={"concurrency": 1})
    exposition = await harness.poll()
    assert exposition.value("captaindata_up") == 1
    assert exposition.value("captaindata_poll_errors_total", reason="timeout") == 0
    assert exposition.value("captaindata_poll_duration_seconds") >= 1


async def test_poll_timeout_ends_a_poll_without_progress(sim: Simulator, harness_for: Any) -> None:
    seed_runs(sim)
    sim.add_fault("slow", delay=3.0, path_contains="/jobs")
    harness = harness_for(poll={"interval": "1s", "timeout": "1s"}, api={"request_timeout": "5s"})
    exposition = await harness.poll()
    assert exposition.value("captaindata_poll_errors_total", reason="timeout") == 1
    assert exposition.value("captaindata_up") == 0
    assert exposition.value("captaindata_api_requests_total", endpoint="/v3/workflows", code="200") == 1


@pytest.mark.parametrize(("code", "reason"), [(200, "bad_response"), (503, "server_error")])
async def test_a_body_its_content_encoding_cannot_decode_is_the_servers_fault(code: int, reason: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            code, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
        )

    stats = ApiStats()
    transport = ApiTransport("http://api.test", {}, ApiConfig(max_retries=0), stats)
    await transport.aclose()
    transport._http = httpx.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(RequestFailed) as failed:
            await transport.get(RUNS, "/v3/workflows/wf-1/jobs", None, lambda body: body)
    finally:
        await transport.aclose()
    assert failed.value.reason == reason  # not an internal error (a bug in the exporter)
    assert stats.requests[(RUNS, str(code))] == 1
