"""Wide workspaces (issue #19, item 7): the first poll of a v3 workspace of many workflows, and a v4 poll
of many actions, and the size of ``/metrics`` after it.

    python -m bench.wide [--v3-workflows 5000] [--v4-actions 10000]

The simulator runs in its own process (``python -m bench.wide --serve v3|v4 N``: one run per workflow
or action, each workflow's list indexed once); the real exporter pipeline (transport, source, state,
exposition) runs in this one, with no request budget to wait for, the default ``poll.timeout`` and no
cap on workflows or actions. Prints seconds and MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from exporter.config import parse_config
from exporter.poller import build

KEY = "c" * 64
WORKSPACE = "bench-wide"


async def _serve(version: str, size: int) -> None:
    from bench.sim_host import IndexedSimulator
    from exporter.simulator import start_simulator
    from exporter.simulator.v4 import V4Api

    sim = IndexedSimulator(seed=1, page_size=100)
    sim.add_workspace(WORKSPACE, KEY)
    now = time.time()
    if version == "v3":
        for index in range(size):
            workflow = sim.add_workflow(f"wf-{index:05d}", f"Workflow {index}", WORKSPACE)
            sim.add_run(workflow, "finished", start_time=now - 3600, finish_time=now - 3000)
    else:
        api = V4Api.of(sim)
        for index in range(size):
            api.add_run(f"action-{index:05d}", "SUCCEEDED", workspace_uid=WORKSPACE, updated_at=now - 3000)
    sim.freeze()
    _runner, url = await start_simulator(sim, "127.0.0.1", 0)
    print(json.dumps({"url": url}), flush=True)
    await asyncio.Event().wait()


def config(url: str, version: str, size: int) -> dict[str, Any]:
    workspace: dict[str, Any] = {"name": version, "api_key": KEY, "base_url": url, "api_version": version}
    limits: dict[str, Any] = {}
    if version == "v3":
        workspace["workspace_uid"] = WORKSPACE
        limits["max_workflows"] = size
    else:
        workspace["v4"] = {"page_size": 100, "max_actions": size}
    api = {"requests_per_second": 10_000, "burst": 10_000, "concurrency": 16, "request_timeout": "60s"}
    return {"workspaces": [workspace], "api": api | limits}


def measure(version: str, size: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.wide", "--serve", version, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        asyncio.run(polls(json.loads(server.stdout.readline())["url"], version, size))
    finally:
        server.terminate()
        server.wait()


async def polls(url: str, version: str, size: int) -> None:
    settings = config(url, version, size)
    try:
        parsed = parse_config(settings)
    except Exception:  # a checkout without the caps: measure without them
        for key in ("max_workflows",):
            settings["api"].pop(key, None)
        settings["workspaces"][0].get("v4", {}).pop("max_actions", None)
        parsed = parse_config(settings)
    published, pollers = build(parsed)
    (poller,) = pollers
    try:
        for number in (1, 2):
            started, cpu = time.monotonic(), time.process_time()
            up = await poller.poll_once()
            elapsed, used = time.monotonic() - started, time.process_time() - cpu
            body = await published.exposition(openmetrics=False, gzip=False)
            print(
                f"{version} {size:>6} {'workflows' if version == 'v3' else 'actions'}: poll {number} "
                f"{elapsed:6.1f} s ({used:5.1f} s CPU in this process), up {int(up)}, "
                f"/metrics {len(body) / 1e6:.1f} MB, last error {poller.state.last_error!r}",
                flush=True,
            )
    finally:
        await poller.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--v3-workflows", type=int, default=5000)
    parser.add_argument("--v4-actions", type=int, default=10_000)
    parser.add_argument("--serve", nargs=2, metavar=("VERSION", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.v3_workflows, args.v4_actions = 20, 20
    if args.serve:
        asyncio.run(_serve(args.serve[0], int(args.serve[1])))
        return 0
    if args.v3_workflows:
        measure("v3", args.v3_workflows)
    if args.v4_actions:
        measure("v4", args.v4_actions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
