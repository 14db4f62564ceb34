"""API requests per steady-state poll: v4 (incremental, by updated_at) against v3 (every run of every
workflow), on the same tracked runs.

    python -m bench.v4_requests [--runs 10000] [--workflows 50] [--changed 0 50 500] [--tiny]

Everything runs in this process on 127.0.0.1: the simulator on a manual clock, and the real exporter
pipeline (transport, source, state) polling it. For each number of runs changed between two polls it
prints the requests of that poll. Request counts do not depend on the machine.

- "burst": the runs changed since the previous poll; the changes before that are older than the
  overlap (2 x poll.interval), so the poll reads exactly the changed runs.
- "churn": the same number of runs changes in every interval; the overlap then re-reads the changes of
  the two previous intervals too (about 3 x changed runs).
- v3 pages: the simulator's page size (20; the real API's is not documented), and 100 for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import Any

from exporter.api.v4.source import V4Source
from exporter.config import parse_config
from exporter.poller import Poller, build
from exporter.simulator import Simulator, start_simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.v4 import V4Api

KEY = "b" * 64
WORKSPACE = "bench-workspace"
INTERVAL = 60.0
DAY = 86400.0


def config(url: str, version: str) -> dict[str, Any]:
    workspace: dict[str, Any] = {"name": version, "api_key": KEY, "base_url": url, "api_version": version}
    if version == "v3":
        workspace["workspace_uid"] = WORKSPACE
    else:
        workspace["v4"] = {"lookback": "60d", "resync_interval": "1d", "page_size": 100}
    return {
        "workspaces": [workspace],
        "poll": {"interval": f"{int(INTERVAL)}s", "timeout": "10m"},
        # The configuration's maxima: the bench counts requests, so the rate limiter must never wait.
        "api": {"requests_per_second": 10_000, "burst": 10_000, "request_timeout": "60s", "max_pages": 1000},
    }


async def requests_of(sim: Simulator, poller: Poller) -> int:
    sim.request_log.clear()
    assert await poller.poll_once(), "the poll failed"
    return len(sim.request_log)


def populate(sim: Simulator, runs: int, workflows: int, now: float) -> tuple[list[str], list[str]]:
    """The same runs in both versions: v3 runs of ``workflows`` workflows, v4 runs of as many actions,
    created and last updated over the last 30 days."""
    api = V4Api.of(sim)
    flows = [sim.add_workflow(name=f"Workflow {i}") for i in range(workflows)]
    v3_runs, v4_runs = [], []
    for index in range(runs):
        moment = now - 30 * DAY * (index + 1) / runs
        v3_runs.append(sim.add_run(flows[index % workflows], "finished", start_time=moment - 60))
        v4_runs.append(api.add_run(f"action-{index % workflows}", "SUCCEEDED", updated_at=moment))
    return v3_runs, v4_runs


async def measure(args: argparse.Namespace) -> list[tuple[str, int, int, int, int]]:
    clock = ManualClock(time.time())
    sim = Simulator(seed=1, page_size=20, clock=clock, history_window=60 * DAY)
    sim.add_workspace(WORKSPACE, KEY)
    v3_runs, v4_runs = populate(sim, args.runs, args.workflows, clock())
    api = V4Api.of(sim)
    runner, url = await start_simulator(sim)
    pollers: list[Poller] = []
    try:
        for version in ("v3", "v4"):
            _, made = build(parse_config(config(url, version)))
            pollers += made
        v3, v4 = pollers
        assert isinstance(v4.source, V4Source)
        v4.source.clock = clock
        first = {version: await requests_of(sim, poller) for version, poller in (("v3", v3), ("v4", v4))}
        print(f"first poll: v3 {first['v3']} requests, v4 {first['v4']} requests ({args.runs} runs)")
        rows = []
        cursor = 0

        def change(count: int) -> None:
            nonlocal cursor
            for _ in range(count):
                clock.advance(INTERVAL / (count + 1))
                sim.update_run(v3_runs[cursor % len(v3_runs)], "running")
                api.update_run(v4_runs[cursor % len(v4_runs)], "RUNNING")
                cursor += 1

        async def quiet() -> None:  # let earlier changes fall out of the overlap
            clock.advance(3 * INTERVAL)
            await requests_of(sim, v4)

        for changed in args.changed:
            await quiet()
            change(changed)
            clock.advance(1)
            burst_v4 = await requests_of(sim, v4)
            burst_v3 = await requests_of(sim, v3)
            for _ in range(2):  # two more intervals of the same churn, then measure the third
                change(changed)
                await requests_of(sim, v4)
            change(changed)
            churn_v4 = await requests_of(sim, v4)
            rows.append((f"{changed}", changed, burst_v4, churn_v4, burst_v3))
        return rows
    finally:
        for poller in pollers:
            await poller.aclose()
        await runner.cleanup()


def v3_pages(runs: int, workflows: int, page_size: int) -> int:
    """v3 requests per poll: the workflow list, then every page of every workflow (a short last page
    ends the listing once the page size is known; a full one needs one more, empty, page)."""
    per_workflow = runs // workflows
    return 1 + workflows * (per_workflow // page_size + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--changed", type=int, nargs="+", default=[0, 50, 500])
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.runs, args.workflows, args.changed = 200, 5, [0, 5]
    started = time.monotonic()
    rows = asyncio.run(measure(args))
    print(f"\nrequests per steady-state poll, {args.runs} tracked runs, {args.workflows} workflows/actions")
    print(
        f"{'changed':>8} {'v4 burst':>9} {'budget':>7} {'v4 churn':>9} {'v3 (page 20)':>13} "
        f"{'v3 (page 100)':>14}"
    )
    for label, changed, burst, churn, v3 in rows:
        v3_100 = v3_pages(args.runs, args.workflows, 100)
        print(f"{label:>8} {burst:>9} {math.ceil(changed / 100) + 1:>7} {churn:>9} {v3:>13} {v3_100:>14}")
    print(f"\n(measured in {time.monotonic() - started:.0f}s; v3 page 100 is computed, not measured)")


if __name__ == "__main__":
    main()
