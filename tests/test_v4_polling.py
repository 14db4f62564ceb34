"""v4 polling end to end: the real exporter pipeline (transport, V4Source, state, exposition) against
the simulator over loopback HTTP, on the simulator's manual clock."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from exporter.api.v4.source import V4Source
from exporter.config import parse_config
from exporter.poller import Poller, build
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.v4 import V4_STATUSES, V4Api
from exporter.snapshot import WorkflowSnapshot
from tests.support.metrics import ScrapedMetrics
from tests.support.sim_server import running_simulator

KEY = "4a7e" * 16
INTERVAL = 60.0
DAY = 86400.0


@dataclass
class V4Harness:
    sim: Simulator
    api: V4Api
    clock: ManualClock
    poller: Poller
    published: Any

    @property
    def source(self) -> V4Source:
        assert isinstance(self.poller.source, V4Source)
        return self.poller.source

    async def poll(self) -> ScrapedMetrics:
        self.sim.request_log.clear()
        assert await self.poller.poll_once()
        return await self.exposition()

    async def exposition(self) -> ScrapedMetrics:
        return ScrapedMetrics((await self.published.exposition(openmetrics=False, gzip=False)).decode())

    def listing_requests(self) -> list[dict[str, str]]:
        return [entry["query"] for entry in self.sim.request_log if entry["path"] == "/v4/runs"]

    def workflow(self, action: str) -> WorkflowSnapshot:
        (snapshot,) = self.published.workspaces()
        found: WorkflowSnapshot = next(w for w in snapshot.workflows if w.uid == action)
        return found


def wait_for_offset(h: V4Harness, offset: str) -> None:
    """Block (in a helper thread) until the simulator has been asked for the page at ``offset``."""
    deadline = time.monotonic() + 10
    while not any(e["query"].get("offset") == offset for e in list(h.sim.request_log)):
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture
def sim4(clock: ManualClock) -> Simulator:
    sim = Simulator(seed=11, clock=clock)
    sim.add_workspace("ws-growth", KEY)
    return sim


@pytest.fixture
def sim4_url(sim4: Simulator) -> Iterator[str]:
    with running_simulator(sim4) as url:
        yield url


def v4_workspace(url: str, **v4: Any) -> dict[str, Any]:
    return {
        "name": "growth",
        "api_version": "v4",
        "api_key": KEY,
        "base_url": url,
        "v4": {"page_size": 10, "resync_interval": "10m", **v4},
    }


def fast(workspaces: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "workspaces": workspaces,
        "poll": {"interval": f"{int(INTERVAL)}s"},
        "api": {"requests_per_second": 500, "burst": 500, "retry_backoff": "50ms", "request_timeout": "5s"},
    }


@pytest.fixture
async def v4h(sim4: Simulator, sim4_url: str, clock: ManualClock) -> AsyncIterator[Any]:
    made: list[Poller] = []

    def make(**v4: Any) -> V4Harness:
        published, pollers = build(parse_config(fast([v4_workspace(sim4_url, **v4)])), clock=clock)
        (poller,) = pollers
        made.append(poller)
        harness = V4Harness(sim4, V4Api.of(sim4), clock, poller, published)
        harness.source.clock = clock
        return harness

    yield make
    for poller in made:
        await poller.aclose()


def runs(exposition: ScrapedMetrics, action: str) -> dict[str, float]:
    return {
        s.label("status"): s.value
        for s in exposition.find("captaindata_runs", workflow_uid=action, workflow=action)
        if s.value
    }


def changes(exposition: ScrapedMetrics, action: str) -> dict[str, float]:
    return {
        s.label("status"): s.value
        for s in exposition.find("captaindata_run_status_changes_total", workflow_uid=action)
        if s.value
    }


async def test_first_poll_then_steady_state_reads_only_what_changed(v4h: Any) -> None:
    h: V4Harness = v4h()
    old = h.clock() - 3 * 3600
    uids = [h.api.add_run(f"act-{i % 3}", "SUCCEEDED", updated_at=old - 300 * i) for i in range(95)]
    first = await h.poll()
    # Ten pages down to the lookback, then the top again (runs updated meanwhile).
    assert [q["offset"] for q in h.listing_requests()] == [str(10 * i) for i in range(10)] + ["0"]
    assert all(q["sort"] == "-updated_at" and q["limit"] == "10" for q in h.listing_requests())
    assert sum(runs(first, f"act-{i}").get("finished", 0) for i in range(3)) == 95
    assert changes(first, "act-0") == {}  # the first poll is the baseline

    h.clock.advance(INTERVAL)
    steady = await h.poll()
    assert len(h.listing_requests()) == 1  # nothing changed: one page says so
    assert steady.value("captaindata_up") == 1

    h.clock.advance(INTERVAL)
    for uid in uids[:12]:  # 12 changes: 2 pages of 10
        h.clock.advance(1)
        h.api.update_run(uid, "RUNNING")
    exposition = await h.poll()
    assert len(h.listing_requests()) == 2  # ceil(12 / 10) + 1 at most
    assert sum(runs(exposition, f"act-{i}").get("running", 0) for i in range(3)) == 12
    assert sum(changes(exposition, f"act-{i}").get("running", 0) for i in range(3)) == 12
    # The overlap re-reads the previous changes, which are not counted again.
    h.clock.advance(INTERVAL)
    again = await h.poll()
    assert sum(changes(again, f"act-{i}").get("running", 0) for i in range(3)) == 12
    assert again.value("captaindata_api_requests_total", endpoint="/v4/runs", code="200") == 11 + 1 + 2 + 2


async def test_a_run_updated_mid_listing_is_caught_by_the_next_poll(v4h: Any) -> None:
    h: V4Harness = v4h()
    base = h.clock() - 3600
    queued = [h.api.add_run("enrich", "QUEUED", updated_at=base - 300 * i) for i in range(30)]
    await h.poll()
    changed = queued[:15]
    for uid in changed:  # c0 .. c14, newest last: the listing reads c14 .. c5, then c4 .. c0
        h.clock.advance(1)
        h.api.update_run(uid, "RUNNING")
    h.sim.add_fault("slow", count=1, delay=0.5, path_contains="offset=10")

    def update_while_page_2_is_answered() -> None:
        wait_for_offset(h, "10")
        h.clock.advance(1)
        h.api.update_run(changed[0], "SUCCEEDED")  # not read yet: moves above page 1
        h.api.update_run(changed[1], "SUCCEEDED")
        h.api.update_run(queued[20], "RUNNING")  # an unchanged run changes too

    h.sim.request_log.clear()
    thread = threading.Thread(target=update_while_page_2_is_answered)
    thread.start()
    exposition = await h.poll()
    thread.join()
    assert [q["offset"] for q in h.listing_requests()] == ["0", "10"]
    # Page 2 was shifted by three: c7..c5 came twice (kept once); c1, c0 and the other run were missed.
    assert runs(exposition, "enrich") == {"pending": 17, "running": 13}
    h.clock.advance(INTERVAL)
    exposition = await h.poll()
    assert runs(exposition, "enrich") == {"pending": 14, "running": 14, "finished": 2}
    assert changes(exposition, "enrich") == {"running": 14, "finished": 2}


async def test_resync_drops_vanished_runs_and_empty_actions(v4h: Any) -> None:
    h: V4Harness = v4h(resync_interval="10m")
    base = h.clock() - 3600
    kept = [h.api.add_run("keep", "SUCCEEDED", updated_at=base - 300 * i) for i in range(5)]
    gone = [h.api.add_run("gone", "FAILED", updated_at=base - 10 - i) for i in range(3)]
    await h.poll()
    for uid in [*gone, kept[0]]:
        h.api.remove_run(uid)
    h.clock.advance(INTERVAL)
    steady = await h.poll()  # steady state does not know what vanished
    assert runs(steady, "gone") == {"shutdown": 3}
    assert runs(steady, "keep") == {"finished": 5}
    h.clock.advance(10 * 60)
    resync = await h.poll()
    assert len(h.listing_requests()) == 2  # the whole list (one page), then the top again
    assert runs(resync, "keep") == {"finished": 4}
    assert resync.find("captaindata_runs", workflow_uid="gone") == []
    assert resync.value("captaindata_workflows") == 1
    h.clock.advance(INTERVAL)
    assert runs(await h.poll(), "keep") == {"finished": 4}


async def test_a_run_updated_during_a_resync_is_not_dropped(v4h: Any) -> None:
    h: V4Harness = v4h(resync_interval="10m")
    base = h.clock() - 3600
    uids = [h.api.add_run("enrich", "QUEUED", updated_at=base - 300 * i) for i in range(25)]
    await h.poll()
    h.clock.advance(10 * 60)
    h.sim.add_fault("slow", count=1, delay=0.5, path_contains="offset=10")

    def update_while_page_2_is_answered() -> None:
        wait_for_offset(h, "10")
        h.clock.advance(1)
        h.api.update_run(uids[24], "RUNNING")  # the oldest run, on page 3: it jumps to page 1

    h.sim.request_log.clear()
    thread = threading.Thread(target=update_while_page_2_is_answered)
    thread.start()
    exposition = await h.poll()
    thread.join()
    assert [q["offset"] for q in h.listing_requests()] == ["0", "10", "20", "0"]
    assert runs(exposition, "enrich") == {"pending": 24, "running": 1}
    assert changes(exposition, "enrich") == {"running": 1}


async def test_lookback_bounds_what_is_tracked(v4h: Any) -> None:
    h: V4Harness = v4h(lookback="60d", resync_interval="1d")
    now = h.clock()
    h.api.add_run("recent", "SUCCEEDED", updated_at=now - 59 * DAY, created_at=now - 59.5 * DAY)
    h.api.add_run("recent", "RUNNING", updated_at=now - DAY, created_at=now - 2 * DAY)
    for i in range(20):
        h.api.add_run("ancient", "SUCCEEDED", updated_at=now - 61 * DAY - i, created_at=now - 61.5 * DAY)
    h.sim.history_window = 90 * DAY  # the API still lists them; the lookback decides
    exposition = await h.poll()
    assert len(h.listing_requests()) == 2  # the first page reached past the lookback; the top again
    assert runs(exposition, "recent") == {"finished": 1, "running": 1}
    assert exposition.find("captaindata_runs", workflow_uid="ancient") == []
    h.clock.advance(1.5 * DAY)  # the older recent run is now past the lookback: the resync drops it
    assert runs(await h.poll(), "recent") == {"running": 1}


async def test_status_mapping_and_api_status_through_the_pipeline(v4h: Any) -> None:
    h: V4Harness = v4h()
    base = h.clock() - 600
    statuses = [*V4_STATUSES, "EXPLODED"]
    for index, status in enumerate(statuses):
        h.api.add_run("all", status, updated_at=base - index)
    h.api.add_run(
        "all",
        "FAILED",
        updated_at=base - 20,
        last_error={"label": "INVALID_INPUT", "message": "The provided input is invalid."},
    )
    exposition = await h.poll()
    assert runs(exposition, "all") == {
        "running": 1,
        "pending": 3,
        "finished": 2,
        "warning": 2,
        "shutdown": 1,
        "stopped": 1,
        "paused": 1,
        "unknown": 1,
    }
    by_api = {
        s.label("api_status"): s.value
        for s in exposition.find("captaindata_runs_by_api_status", workflow_uid="all")
        if s.value
    }
    assert by_api == {
        "running": 1,
        "created": 1,
        "queued": 1,
        "scheduled": 1,
        "succeeded": 1,
        "partial_succeeded": 1,
        "invalid": 1,
        "failed": 2,
        "stopped": 1,
        "blocked": 1,
        "unknown": 1,
    }
    assert h.workflow("all").postponed == 1  # the BLOCKED run waits on a limit
    assert exposition.value("captaindata_runs_postponed", workflow_uid="all") == 1


@pytest.mark.parametrize("style", ["seconds", "reset", "http-date"])
async def test_429_with_v4_headers_waits_in_the_shared_window(v4h: Any, sim4: Simulator, style: str) -> None:
    h: V4Harness = v4h()
    for i in range(15):
        h.api.add_run("a", "SUCCEEDED", updated_at=h.clock() - 600 - i)
    sim4.set_rate_limit(1, window_seconds=1.0, style=style)  # "reset": X-RateLimit-Reset only
    exposition = await h.poll()
    assert exposition.value("captaindata_up") == 1
    assert (
        exposition.value("captaindata_api_rate_limited_total", endpoint="/v4/runs", limit_type="second") >= 1
    )
    assert exposition.value("captaindata_api_requests_total", endpoint="/v4/runs", code="429") >= 1
    assert runs(exposition, "a") == {"finished": 15}
    assert h.clock.slept, "the exporter waited for the window (on the clock it shares with the simulator)"


async def test_404_names_the_path_knob_and_the_alias_path_works(v4h: Any) -> None:
    h: V4Harness = v4h(path="/v4/runs/list-that-does-not-exist")
    h.sim.request_log.clear()
    assert not await h.poller.poll_once()
    assert "v4.path: /v4/api/runs/list" in h.published.workspaces()[0].last_error
    alias: V4Harness = v4h(path="/v4/api/runs/list")
    alias.api.add_run("a", "RUNNING")
    alias.sim.request_log.clear()
    assert await alias.poller.poll_once()
    assert [e["path"] for e in alias.sim.request_log] == ["/v4/api/runs/list"] * 2
    assert all(e["x_api_key"] and not e["project"] for e in alias.sim.request_log)


async def test_the_v4_error_body_is_named_and_the_key_never_echoed(v4h: Any, sim4: Simulator) -> None:
    h: V4Harness = v4h()
    sim4.set_api_key("ws-growth", "rotated" * 8)
    assert not await h.poller.poll_once()
    (workspace,) = h.published.workspaces()
    assert workspace.last_error.startswith("unauthorized: ")
    assert "(UNAUTHORIZED/auth: Invalid or missing API key" in workspace.last_error
    assert KEY not in workspace.last_error
    assert KEY not in (await h.exposition()).text
