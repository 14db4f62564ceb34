"""The CPU of applying a poll's runs to the state (``WorkspaceState.runs_read``), in-process, no HTTP:
a first poll (every run new) and steady polls (the same listing again; then one where a few runs are
new at the top of each workflow's listing and a few changed status), at 100k runs and 1M runs.

    python -m bench.state_apply [--sizes 100k,1m] [--repeat 3] [--baseline DIR] [--no-build]

``--baseline DIR`` measures the state of another checkout (its ``exporter`` package) in the same run:
each round runs both in child processes, alternated, and prints the medians and their ratio. Times
are CPU seconds of the child (``time.process_time``), the runs are made before the clock starts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from random import Random
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: size name -> (runs, workflows): the shapes bench.perf uses.
SIZES = {"tiny": (400, 4), "10k": (10_000, 50), "100k": (100_000, 500), "1m": (1_000_000, 1000)}
PHASES = ("first", "steady", "churn")
T = 1_764_633_600.0


def listing(rng: Random, count: int, now: float) -> list[tuple[Any, ...]]:
    """The fields of ``count`` runs as an API lists them (newest first), mostly finished."""
    rows = []
    for index in range(count):
        start = now - 60.0 * (index + 1)
        pick = rng.random()
        if pick < 0.8:
            status, api, finish = "finished", "finished", start + 30.0
        elif pick < 0.9:
            status, api, finish = "shutdown", "failed", start + 10.0
        elif pick < 0.95:
            status, api, finish = "running", "running", None
        else:
            status, api, finish = "warning", "warning", start + 20.0
        rows.append(
            (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"run {index}", status, api, start, finish)
        )
    return rows


def child(runs: int, workflows: int, build: bool) -> dict[str, float]:
    """Apply a first, a steady and a churned poll of ``runs`` runs in ``workflows`` workflows; CPU s each
    (``build``: with the snapshot each apply builds, as the sink has it)."""
    from exporter.parsing import Parsed, RunError, Workflow, new_run
    from exporter.state import WorkspaceState

    error = RunError("boom", "other")

    def parsed(rows: list[tuple[Any, ...]]) -> Parsed[Any]:
        items = [
            new_run(
                uid, name, status, api, start, finish, None, None, error if status == "shutdown" else None
            )
            for uid, name, status, api, start, finish in rows
        ]
        return Parsed(items=items)

    rng = Random(20)
    per = runs // workflows
    flows = [Workflow(f"wf-{index:04d}", f"Workflow {index}") for index in range(workflows)]
    rows = [listing(rng, per, T) for _ in flows]
    state = WorkspaceState("bench")
    state.workflows_listed(flows, now=T)
    if not build:
        state._build = lambda now=None: state._snapshot  # type: ignore[method-assign]
    figures: dict[str, float] = {}
    for phase in PHASES:
        if phase == "churn":  # 1 % new at the top, 1 % of the others finished since
            for flow_rows in rows:
                fresh = listing(rng, max(1, per // 100), T + 600.0)
                for at in range(0, len(flow_rows), 100):
                    uid, name, _, _, start, _ = flow_rows[at]
                    flow_rows[at] = (uid, name, "shutdown", "failed", start, T + 300.0)
                flow_rows[:0] = fresh
                del flow_rows[per:]
        pages = [parsed(flow_rows) for flow_rows in rows]
        gc.collect()
        state.begin_poll()
        started = time.process_time()
        for flow, page in zip(flows, pages, strict=True):
            state.runs_read(flow, page, True, T + 1000.0)
        figures[phase] = time.process_time() - started
        del pages
    return figures


def measure(tree: Path, runs: int, workflows: int, build: bool) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__)), "--child", f"{runs}:{workflows}:{int(build)}"]
    result = subprocess.run(command, env=environment, cwd=tree, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, measured alike")
    parser.add_argument(
        "--no-build", action="store_true", help="runs_read without the snapshot it builds (the apply alone)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    args = parser.parse_args()
    if args.child is not None:
        runs, workflows, build = map(int, args.child.split(":"))
        print(json.dumps(child(runs, workflows, bool(build))))
        return
    sizes = ["tiny"] if args.tiny else args.sizes.split(",")
    repeat = 1 if args.tiny else args.repeat
    trees = {"this": ROOT}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    load = os.getloadavg()
    what = "runs_read without its snapshot build" if args.no_build else "runs_read"
    print(f"load average {load[0]:.2f} {load[1]:.2f}; CPU s of {what}, medians of {repeat}")
    for size in sizes:
        runs, workflows = SIZES[size]
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(repeat):
            for name, tree in trees.items():  # alternated: the machine's load hits both alike
                results[name].append(measure(tree, runs, workflows, not args.no_build))
        for phase in PHASES:
            medians = {name: statistics.median(r[phase] for r in rounds) for name, rounds in results.items()}
            line = "  ".join(f"{name} {value:7.3f} s" for name, value in medians.items())
            if "baseline" in medians:
                line += f"  ratio {medians['this'] / medians['baseline']:.2f}x"
            print(f"{size:>5} runs ({workflows} workflows) {phase:>6}: {line}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
