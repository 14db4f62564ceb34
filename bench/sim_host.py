"""The simulator with the benchmark's workspaces, in its own process so that it does not share a core's
event loop with the exporter or the scraper: ``python -m bench.sim_host [--page-size N] [WORKSPACE...]``.

Prints one JSON line (base URL, page size, and per workspace its uid, key and runs per workflow), then
serves until SIGTERM. Runs never change here, so each workflow's runs are indexed once: the stock
simulator scans every run of every workspace on each request, which at 110k runs would measure the
simulator rather than the exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from exporter.simulator import Simulator, serve_until_stopped
from exporter.simulator.model import SimRun

#: name -> runs of each of its workflows. "ratio": one workflow per size the issue asks about.
WORKSPACES: dict[str, list[int]] = {
    "ratio": [0, 5, 20, 45, 210],
    "empty": [],
    "10k": [200] * 50,
    "100k": [200] * 500,
    "1m": [1000] * 1000,  # bench.perf --million (api.max_workflows is 2,000 by default)
    # bench.perf --tiny (the test suite's smoke run)
    "tiny-small": [20] * 5,
    "tiny-big": [20] * 20,
}
STATUSES = ("finished", "finished", "finished", "warning", "running", "pending", "shutdown", "stopped")


class IndexedSimulator(Simulator):
    """A simulator whose runs are fixed once built: each workflow's list is computed once."""

    def freeze(self) -> None:
        by_workflow: dict[str, list[SimRun]] = {}
        for run in self.runs.values():
            by_workflow.setdefault(run.workflow_uid, []).append(run)
        for runs in by_workflow.values():
            runs.sort(key=lambda run: (run.created_at, run.uid), reverse=True)
        self._frozen = by_workflow

    def visible_runs(self, workflow_uid: str) -> list[SimRun]:
        return self._frozen.get(workflow_uid, [])


def build(
    names: list[str], page_size: int, seed: int = 1
) -> tuple[IndexedSimulator, dict[str, dict[str, object]]]:
    sim = IndexedSimulator(seed=seed, page_size=page_size)
    now = time.time()
    described: dict[str, dict[str, object]] = {}
    for name in names:
        sizes = WORKSPACES[name]
        uid = sim.add_workspace()
        workflows = []
        for index, runs in enumerate(sizes):
            workflow = sim.add_workflow(f"{name}-wf-{index:04d}", f"Workflow {index} of {name}", uid)
            workflows.append({"uid": workflow, "runs": runs})
            for number in range(runs):
                status = STATUSES[number % len(STATUSES)]
                start = now - 86400 + number * 60.0
                finish = None if status in ("running", "pending") else start + 30.0 + number
                sim.add_run(workflow, status, start_time=start, finish_time=finish)
        described[name] = {"uid": uid, "api_key": sim.workspaces[uid].api_key, "workflows": workflows}
    sim.freeze()
    return sim, described


async def serve(names: list[str], page_size: int) -> None:
    sim, described = build(names, page_size)

    def announce(url: str) -> None:
        print(json.dumps({"url": url, "page_size": sim.page_size, "workspaces": described}), flush=True)

    await serve_until_stopped(sim, "127.0.0.1", 0, announce)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--page-size", type=int, default=Simulator().page_size)
    parser.add_argument("workspaces", nargs="*", choices=list(WORKSPACES), default=[])
    args = parser.parse_args()
    asyncio.run(serve(args.workspaces or list(WORKSPACES), args.page_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
