"""The exporter's HTTP endpoints served on loopback: formats, health, landing page, concurrent scrapes."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import html
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.guide import GUIDE
from exporter.published import STALE_BYTES, STALE_WORKFLOWS, Published
from exporter.server import create_app
from exporter.simulator import Simulator
from exporter.snapshot import next_version
from tests.conftest import API_KEY
from tests.support.metrics import ScrapedMetrics
from tests.support.net import LOOPBACK
from tests.support.snapshots import big_workspace

WF = "wf-1"


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    return runner, f"http://{LOOPBACK}:{runner.addresses[0][1]}"


@pytest.fixture
async def served(sim: Simulator, harness_for: Any) -> AsyncIterator[tuple[Any, str]]:
    sim.add_workflow(WF, "Extract LinkedIn People Profile")
    now = time.time()
    sim.add_run(WF, "running", start_time=now - 100)
    sim.add_run(
        WF, "warning", name="Campaign <script>alert(1)</script>", start_time=now - 50, finish_time=now
    )
    harness = harness_for()
    runner, url = await serve(create_app(harness.published))
    yield harness, url
    await runner.cleanup()


async def test_ready_only_after_every_workspace_was_polled(served: tuple[Any, str]) -> None:
    harness, url = served
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/-/healthy")).status_code == 200
        assert (await client.get(f"{url}/-/ready")).status_code == 503
        before = ScrapedMetrics((await client.get(f"{url}/metrics")).text)
        assert before.value("captaindata_up") == 0
        assert before.find("captaindata_runs") == []
        await harness.poll()
        assert (await client.get(f"{url}/-/ready")).status_code == 200


async def test_text_format_parses_and_has_no_created_series(served: tuple[Any, str]) -> None:
    harness, url = served
    await harness.poll()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics", headers={"Accept": "text/plain"})
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    exposition = ScrapedMetrics(response.text)
    assert exposition.value("captaindata_runs", status="running") == 1
    assert exposition.value("captaindata_exporter_build_info") == 1
    assert not [name for name in exposition.names() if name.endswith("_created")]


async def test_openmetrics_when_the_scraper_asks_for_it(served: tuple[Any, str]) -> None:
    harness, url = served
    await harness.poll()
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics", headers={"Accept": prometheus_accept})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    parsed = parse_openmetrics(response.text)  # type: ignore[no-untyped-call]
    families = {family.name: family for family in parsed}
    assert families["captaindata_run_status_changes"].type == "counter"
    assert families["captaindata_run_duration_seconds"].type == "histogram"
    assert not [s for f in families.values() for s in f.samples if s.name.endswith("_created")]


async def test_gzip_when_accepted(served: tuple[Any, str]) -> None:
    harness, url = served
    await harness.poll()
    async with httpx.AsyncClient() as client:
        plain = await client.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"})
        async with client.stream("GET", f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        refused = await client.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in plain.headers
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in refused.headers
    assert gzip.decompress(raw) == plain.content


async def test_landing_page_shows_health_statuses_and_actions(served: tuple[Any, str]) -> None:
    harness, url = served
    await harness.poll()
    async with httpx.AsyncClient() as client:
        page = (await client.get(f"{url}/")).text
    assert "acme" in page
    assert '<span class="up">up</span>' in page  # the health cell itself ("up" alone is in the CSS)
    for guide in GUIDE.values():
        assert guide.title in page
        assert html.escape(guide.action) in page
    assert API_KEY not in page
    assert "<script>" not in page


async def test_concurrent_scrapes_never_see_half_a_workflow(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    sim.add_workflow("wf-2", "B")
    uids = [sim.add_run(WF if i % 2 else "wf-2", "finished") for i in range(12)]
    harness = harness_for()
    runner, url = await serve(create_app(harness.published))
    await harness.poll()
    flips = 0

    async def keep_polling() -> None:
        nonlocal flips
        while True:
            status = "warning" if flips % 2 == 0 else "finished"
            for uid in uids:  # the simulator changes every run between two polls
                sim.update_run(uid, status)
            await harness.poll()
            flips += 1

    seen: set[tuple[float, float]] = set()

    async def scrape(client: httpx.AsyncClient) -> None:
        exposition = ScrapedMetrics((await client.get(f"{url}/metrics")).text)
        assert len(exposition.find("captaindata_runs")) == 16
        for workflow_uid in (WF, "wf-2"):  # each workflow is applied whole, as soon as it is read
            finished = exposition.total("captaindata_runs", status="finished", workflow_uid=workflow_uid)
            warning = exposition.total("captaindata_runs", status="warning", workflow_uid=workflow_uid)
            assert (finished, warning) in {(6, 0), (0, 6)}
            seen.add((finished, warning))

    poller = asyncio.create_task(keep_polling())
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20)) as client:
            for _ in range(15):
                await asyncio.gather(*(scrape(client) for _ in range(20)))
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await runner.cleanup()
    assert flips >= 2
    assert seen == {(6, 0), (0, 6)}


class _Gate:
    """A name whose rendering in a worker thread waits until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        gate = self

        class Stalling(str):
            __slots__ = ()

            def replace(self, old: str, new: str, count: int = -1) -> str:  # type: ignore[override]
                if threading.current_thread() is not threading.main_thread():
                    gate.entered.set()
                    gate.release.wait(timeout=60)
                return str.replace(self, old, new, count)

        self.name = Stalling("stalling")


@pytest.fixture
def gate() -> Any:
    made = _Gate()
    yield made
    made.release.set()


def with_stalling_workflow(snapshot: Any, gate: _Gate) -> Any:
    first = dataclasses.replace(snapshot.workflows[0], name=gate.name, version=next_version())
    return dataclasses.replace(snapshot, version=next_version(), workflows=(first, *snapshot.workflows[1:]))


async def test_scrapes_get_the_previous_body_while_a_big_render_runs(gate: _Gate) -> None:
    published = Published(["big"], render_gap=0.0)
    snapshot = big_workspace("big", 40)
    published.publish(snapshot)
    runner, url = await serve(create_app(published))
    try:
        async with httpx.AsyncClient() as client:
            before = (await client.get(f"{url}/metrics")).content
            assert len(before) >= STALE_BYTES
            published.publish(with_stalling_workflow(snapshot, gate))
            scrapes = [asyncio.create_task(client.get(f"{url}/metrics")) for _ in range(4)]
            assert await asyncio.to_thread(gate.entered.wait, 30)
            answered = await asyncio.gather(*scrapes)
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
            assert not gate.release.is_set()  # every scrape above was answered during the render
            assert [response.content for response in answered] == [before] * 4
            assert len(published._renders) == 1  # they all waited on the one render
            render = next(iter(published._renders.values()))[1]
            stalled = published.workspaces()[0]
            latest = dataclasses.replace(stalled, version=next_version(), last_poll_duration=4321.0)
            published.publish(latest)  # while the big render runs: no second one starts
            assert (await client.get(f"{url}/metrics")).content == before
            assert [task for _, task in published._renders.values()] == [render]
            gate.release.set()
            await render
            for _ in range(3):  # the render of the latest publish starts now
                after = ScrapedMetrics((await client.get(f"{url}/metrics")).text)
                if after.value("captaindata_poll_duration_seconds") == 4321:
                    break
                await asyncio.gather(*(task for _, task in published._renders.values()))
    finally:
        await runner.cleanup()
    assert after.value("captaindata_poll_duration_seconds") == 4321
    assert len(after.find("captaindata_runs", workflow="stalling")) == 8


async def test_a_body_of_many_workflows_is_big_before_a_big_one_was_rendered(gate: _Gate) -> None:
    # A poll's first publish after a big workflow list: the last body rendered is the small one of
    # before the list; a scrape gets it rather than waiting for the whole render (bench/perf: 80 to
    # 120 ms at 500 workflows).
    published = Published(["big"], render_gap=0.0)
    runner, url = await serve(create_app(published))
    try:
        async with httpx.AsyncClient() as client:
            before = (await client.get(f"{url}/metrics")).content
            assert len(before) < STALE_BYTES
            published.publish(with_stalling_workflow(big_workspace("big", STALE_WORKFLOWS), gate))
            assert (await client.get(f"{url}/metrics")).content == before
            assert await asyncio.to_thread(gate.entered.wait, 30)  # the render runs, in the background
            assert not gate.release.is_set()
            gate.release.set()
            await asyncio.gather(*(task for _, task in published._renders.values()))
            after = ScrapedMetrics((await client.get(f"{url}/metrics")).text)
    finally:
        await runner.cleanup()
    assert after.value("captaindata_workflows") == STALE_WORKFLOWS


async def test_without_a_previous_body_a_scrape_waits_for_the_render_off_the_loop(gate: _Gate) -> None:
    published = Published(["big"])
    published.publish(with_stalling_workflow(big_workspace("big", 40), gate))
    runner, url = await serve(create_app(published))
    try:
        async with httpx.AsyncClient() as client:
            scrape = asyncio.create_task(
                client.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"})
            )
            assert await asyncio.to_thread(gate.entered.wait, 30)
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
            assert (await client.get(f"{url}/-/ready")).status_code == 200
            assert not scrape.done()
            gate.release.set()
            body = (await scrape).text
    finally:
        await runner.cleanup()
    exposition = ScrapedMetrics(body)
    assert exposition.value("captaindata_workflows") == 40
    assert len(exposition.find("captaindata_runs", workflow="stalling")) == 8
