"""Scrape cost: the exporter's pre-rendered /metrics against rendering on every scrape, side by side.

    python bench/scrape_bench.py [--workflows 200] [--runs 40] [--scrapes 200]

Both servers run in this process on 127.0.0.1 and serve the same states; only the handler differs.
Prints per-scrape latency for each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from aiohttp import web

from exporter.client import PollResult
from exporter.exposition import TEXT_CONTENT_TYPE
from exporter.model import Run, Workflow
from exporter.published import Published
from exporter.server import create_app
from exporter.state import WorkspaceState
from exporter.statuses import KNOWN_STATUSES


def synthetic_state(workflows: int, runs: int) -> WorkspaceState:
    now = time.time()
    state = WorkspaceState("bench", needs_action_limit=50)
    flows = [Workflow(f"wf-{i:04d}", f"Workflow {i}") for i in range(workflows)]
    result = PollResult(
        workflows=flows,
        runs={
            flow.uid: [
                Run(
                    f"{flow.uid}-run-{j}",
                    f"Run {j}",
                    KNOWN_STATUSES[j % 7],
                    KNOWN_STATUSES[j % 7],
                    now - 3600 + j,
                    now - j,
                    None,
                )
                for j in range(runs)
            ]
            for flow in flows
        },
    )
    state.apply(result, now)
    state.apply(result, now + 1)
    return state


async def render_every_scrape(request: web.Request) -> web.Response:
    states = request.app[STATES_KEY]
    return web.Response(body=Exposition.render(states).text, headers={"Content-Type": TEXT_CONTENT_TYPE})


STATES_KEY = web.AppKey("states", list)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"


async def measure(url: str, scrapes: int) -> list[float]:
    timings = []
    async with httpx.AsyncClient(timeout=30) as client:
        await client.get(url)  # warm up the connection
        for _ in range(scrapes):
            started = time.perf_counter()
            response = await client.get(url)
            response.raise_for_status()
            timings.append(time.perf_counter() - started)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--runs", type=int, default=40, help="runs per workflow")
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()

    states = [synthetic_state(args.workflows, args.runs)]
    hub = Hub(states)
    baseline = web.Application()
    baseline[STATES_KEY] = states
    baseline.router.add_get("/metrics", render_every_scrape)
    runners = []
    try:
        pre_runner, pre_url = await serve(create_app(hub))
        runners.append(pre_runner)
        base_runner, base_url = await serve(baseline)
        runners.append(base_runner)
        series = hub.exposition.text.count(b"\n") - hub.exposition.text.count(b"\n#")
        # Interleave the two so that machine noise hits both alike.
        pre: list[float] = []
        base: list[float] = []
        for _ in range(4):
            pre += await measure(pre_url, args.scrapes // 4)
            base += await measure(base_url, args.scrapes // 4)
    finally:
        for runner in runners:
            await runner.cleanup()
    pre_median = statistics.median(pre)
    base_median = statistics.median(base)
    print(f"{args.workflows} workflows x {args.runs} runs: {series} series, {len(hub.exposition.text)} bytes")
    print(f"pre-rendered per poll (the exporter): median {pre_median * 1000:.2f} ms per scrape")
    print(f"rendered on every scrape (baseline):  median {base_median * 1000:.2f} ms per scrape")
    print(f"ratio baseline / exporter: {base_median / pre_median:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
