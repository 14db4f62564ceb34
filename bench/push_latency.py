"""Push against poll-only, side by side in one run on the simulator (#16). Two real exporters
(``python -m exporter``, a process each) read two identical simulated workspaces: one with push on and a
10-minute reconciliation poll (the simulator's own PushSender posts a v3 webhook for every change), one
polling only, at the default ``poll.interval``. Each change moves a Running run into Warning in both
workspaces at the same instant. Prints:

1. change → ``/metrics`` latency (p50, p99, max) for each: the time from the change until the run's
   ``captaindata_run_needs_action`` series appears (scraped every 50 ms). Goal: push p99 ≤ 1 s.
2. API requests: per event for push (its targeted reads; goal ≤ 1), per poll, and per hour for push plus
   the 10-minute reconciliation against poll-only at the default interval and at push's freshness.
3. The push receiver under RATE webhooks/s for SECONDS (real reads behind them): every answer, 202
   latency (p50, p99, max; goal p99 ≤ 50 ms) and ``/metrics`` latency during the load.

    python -m bench.push_latency [--changes 40] [--spacing 3] [--rate 200] [--seconds 30]
    python -m bench.push_latency --tiny     # seconds; the test suite runs it as a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.simulator import Simulator, start_simulator
from exporter.simulator.push import PushSender, PushTarget

TOKEN = "bench-push-token-" + "0" * 32
KEYS = {"push": "p" * 48, "poll": "q" * 48}
UIDS = {"push": "bench-push-workspace", "poll": "bench-poll-workspace"}
WORKFLOWS = 20
RUNS_PER_WORKFLOW = 10
SCRAPE_EVERY = 0.05
RECONCILE = "10m"
DEFAULT_INTERVAL = 60.0  # poll.interval's default (exporter/config.py)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Side:
    name: str
    url: str
    push_url: str | None
    proc: subprocess.Popen[bytes]


class SimThread:
    """The simulator on loopback, in a thread with its own event loop; the push sender runs there too."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self.sender: PushSender | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            runner, self.url = await start_simulator(self.sim, "127.0.0.1", 0)
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            if self.sender is not None:
                await self.sender.aclose()
            await runner.cleanup()

        self.loop.run_until_complete(serve())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def start_pushes(self, push_url: str) -> None:
        async def start() -> None:
            target = PushTarget(f"{push_url}/push/push", TOKEN, "v3")
            self.sender = PushSender(self.sim, {UIDS["push"]: target})
            await self.sender.scan()  # the baseline: what exists now is not a change
            self.sender.start(interval=0.05)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def build_sim() -> tuple[Simulator, dict[str, list[tuple[str, str]]]]:
    """Two identical workspaces; returns, per side, its (workflow uid, run uid) in the same order."""
    sim = Simulator(seed=1, page_size=20)
    pairs: dict[str, list[tuple[str, str]]] = {"push": [], "poll": []}
    now = time.time()
    for side in ("push", "poll"):
        sim.add_workspace(UIDS[side], KEYS[side])
        for w in range(WORKFLOWS):
            workflow = f"{side}-wf-{w}"
            sim.add_workflow(workflow, f"Workflow {w}", UIDS[side])
            for r in range(RUNS_PER_WORKFLOW):
                uid = sim.add_run(workflow, "running", uid=f"{side}-run-{w}-{r}", start_time=now - 60)
                pairs[side].append((workflow, uid))
    return sim, pairs


def exporter_config(
    base_url: str, side: str, interval: str, push_port: int | None, rps: float | None
) -> dict[str, Any]:
    workspace: dict[str, Any] = {
        "name": side,
        "workspace_uid": UIDS[side],
        "api_key": KEYS[side],
        "base_url": base_url,
    }
    config: dict[str, Any] = {"workspaces": [workspace], "poll": {"interval": interval}}
    if rps is not None:  # --tiny: quicker first polls (the defaults otherwise)
        config["api"] = {"requests_per_second": rps, "burst": int(rps)}
    if push_port is not None:
        workspace["push_token"] = TOKEN
        config["push"] = {"listen_address": f"127.0.0.1:{push_port}"}
    return config


@contextmanager
def exporter(workdir: Path, side: str, config: dict[str, Any], push_port: int | None) -> Iterator[Side]:
    path = workdir / f"{side}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / f"{side}.log").open("wb")
    argv = [
        sys.executable,
        "-m",
        "exporter",
        "--config",
        str(path),
        "--web.listen-address",
        f"127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {side} exporter exited: {(workdir / f'{side}.log').read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {side} exporter did not become ready")
            time.sleep(0.1)
        yield Side(side, url, f"http://127.0.0.1:{push_port}" if push_port else None, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def requests_of(sim: Simulator, side: str) -> dict[str, int]:
    with sim.lock:
        entries = [e for e in sim.request_log if e.get("project") == UIDS[side]]
    reads = sum(1 for e in entries if e["path"].startswith("/v3/jobs/"))
    lists = sum(1 for e in entries if e["path"] == "/v3/workflows")
    return {"total": len(entries), "reads": reads, "polls": lists, "poll_requests": len(entries) - reads}


def steady_poll_requests(sim: Simulator, side: str) -> float:
    """Requests of ``side``'s last complete poll (from one workflow list to the next): a steady-state
    poll (the first one also asks for an empty page per workflow, until the page size is learnt)."""
    with sim.lock:
        paths = [e["path"] for e in sim.request_log if e.get("project") == UIDS[side]]
    starts = [i for i, path in enumerate(paths) if path == "/v3/workflows"]
    return float(starts[-1] - starts[-2]) if len(starts) >= 2 else float(len(paths))


def metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def latencies(
    sim: Simulator,
    sides: list[Side],
    pairs: dict[str, list[tuple[str, str]]],
    changes: int,
    spacing: float,
    patience: float,
) -> dict[str, list[float]]:
    """Change ``changes`` runs (one every ``spacing`` s) in both workspaces at once; per side, how long
    each took to show in /metrics."""
    changed_at: dict[int, float] = {}
    seen: dict[str, dict[int, float]] = {side.name: {} for side in sides}

    async def change() -> None:
        for index in range(changes):
            with sim.lock:
                for side in ("push", "poll"):
                    sim.update_run(pairs[side][index][1], "warning", finish_time=time.time())
                changed_at[index] = time.monotonic()
            await asyncio.sleep(spacing)

    async def watch(client: httpx.AsyncClient, side: Side, until: float) -> None:
        mine = seen[side.name]
        while time.monotonic() < until and len(mine) < changes:
            text = (await client.get(f"{side.url}/metrics")).text
            now = time.monotonic()
            for index in list(changed_at):
                if index not in mine and f'run_uid="{pairs[side.name][index][1]}"' in text:
                    mine[index] = now - changed_at[index]
            await asyncio.sleep(SCRAPE_EVERY)

    until = time.monotonic() + changes * spacing + patience
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(change(), *(watch(client, side, until) for side in sides))
    return {
        name: list(found.values()) + [float("inf")] * (changes - len(found)) for name, found in seen.items()
    }


def _load_process(
    out: Connection, push_url: str, metrics_url: str, uids: list[str], rate: float, seconds: float
) -> None:
    """The load client, in a process of its own (it does not share the simulator's or the exporter's CPU)."""
    import aiohttp

    async def run() -> tuple[list[float], list[float], dict[int, int]]:
        answers: list[float] = []
        scrapes: list[float] = []
        statuses: dict[int, int] = {}
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

            async def one(index: int, at: float) -> None:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                body = {
                    "job_uid": uids[index % len(uids)],
                    "workflow_uid": "x",
                    "message": "Job failed.",
                    "error": "boom",
                }
                started = time.perf_counter()
                try:
                    async with session.post(push_url, data=json.dumps(body), headers=headers) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except aiohttp.ClientError:
                    statuses[0] = statuses.get(0, 0) + 1
                answers.append(time.perf_counter() - started)

            async def probe(until: float) -> None:
                while time.perf_counter() < until:
                    started = time.perf_counter()
                    async with session.get(metrics_url) as response:
                        await response.read()
                    scrapes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.1)

            total = int(rate * seconds)
            start = time.perf_counter() + 0.2
            await asyncio.gather(probe(start + seconds), *(one(i, start + i / rate) for i in range(total)))
        return answers, scrapes, statuses

    out.send(asyncio.run(run()))


def receiver_load(push: Side, run_uids: list[str], rate: float, seconds: float) -> None:
    assert push.push_url is not None
    parent, child = multiprocessing.Pipe()
    args = (child, f"{push.push_url}/push/push", f"{push.url}/metrics", run_uids, rate, seconds)
    client = multiprocessing.Process(target=_load_process, args=args, daemon=True)
    client.start()
    answers, scrapes, statuses = parent.recv()
    client.join(30)
    total = int(rate * seconds)
    ms = 1000.0
    print(
        f"3. receiver: {total} webhooks at {rate:g}/s for {seconds:g}s (client in its own process), "
        f"answers {dict(sorted(statuses.items()))}"
    )
    print(
        f"   202 latency ms: p50 {statistics.median(answers) * ms:.1f}"
        f"  p99 {percentile(answers, 0.99) * ms:.1f}"
        f"  max {max(answers) * ms:.1f}  (goal p99 <= 50)"
    )
    print(
        f"   /metrics during the load ms: p50 {statistics.median(scrapes) * ms:.1f}"
        f"  p99 {percentile(scrapes, 0.99) * ms:.1f}  max {max(scrapes) * ms:.1f}"
    )


def show(name: str, values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    missing = len(values) - len(finite)
    tail = f", {missing} not seen" if missing else ""
    if not finite:
        return f"{name}: none seen"
    return (
        f"{name}: p50 {statistics.median(finite):.3f}s  p99 {percentile(values, 0.99):.3f}s  "
        f"max {max(values):.3f}s{tail}"
    )


def main(
    changes: int, spacing: float, poll_interval: float, rate: float, seconds: float, rps: float | None = None
) -> int:
    sim, pairs = build_sim()
    host = SimThread(sim)
    host.start()
    interval = f"{poll_interval:g}s"
    push_port = free_port()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            push_config = exporter_config(host.url, "push", RECONCILE, push_port, rps)
            poll_config = exporter_config(host.url, "poll", interval, None, rps)
            with (
                exporter(workdir, "push", push_config, push_port) as push,
                exporter(workdir, "poll", poll_config, None) as poll,
            ):
                host.start_pushes(push.push_url or "")
                before = {side: requests_of(sim, side) for side in ("push", "poll")}
                started = time.monotonic()
                found = asyncio.run(
                    latencies(sim, [push, poll], pairs, changes, spacing, patience=poll_interval * 2 + 10)
                )
                elapsed = time.monotonic() - started
                after = {side: requests_of(sim, side) for side in ("push", "poll")}
                text = httpx.get(f"{push.url}/metrics", timeout=10).text
                missed = metric(text, "captaindata_push_missed_total", workspace="push")
                applied = metric(text, "captaindata_push_applied_total", workspace="push")
                print(
                    f"1. change -> /metrics, {changes} changes {spacing:g}s apart, "
                    f"scraped every {SCRAPE_EVERY:g}s"
                )
                print(
                    "   " + show(f"push (+{RECONCILE} reconciliation)", found["push"]) + "  (goal p99 <= 1s)"
                )
                print("   " + show(f"poll-only every {interval}", found["poll"]))
                print(f"   push applied {applied:g}, missed {missed:g}")
                reads = after["push"]["reads"] - before["push"]["reads"]
                per_poll = steady_poll_requests(sim, "poll")
                per_event = reads / changes
                events_per_hour = changes / elapsed * 3600
                reconcile_polls = 3600 / 600
                push_hour = per_event * events_per_hour + reconcile_polls * per_poll
                default_hour = per_poll * 3600 / poll_interval
                push_p99 = percentile(found["push"], 0.99)
                equal = per_poll * 3600 / max(push_p99, 1.0)
                print(
                    f"2. API requests: push {reads} reads for {changes} events = {per_event:.2f} per event "
                    f"(goal <= 1); a poll of {WORKFLOWS} workflows = {per_poll:.1f} requests"
                )
                print(
                    f"   per hour at {events_per_hour:.0f} events/h: push + {RECONCILE} reconciliation "
                    f"{push_hour:.0f} (<= 1 per event + {reconcile_polls:g} polls = "
                    f"{events_per_hour + reconcile_polls * per_poll:.0f}); poll-only every {interval} "
                    f"{default_hour:.0f}; poll-only at push's freshness "
                    f"(every {max(push_p99, 1.0):.1f}s) {equal:.0f}"
                )
                receiver_load(push, [uid for _, uid in pairs["push"]], rate, seconds)
                goals = push_p99 <= 1.0 and per_event <= 1.0
                print(f"goals (push p99 <= 1s, <= 1 read per event): {'met' if goals else 'NOT met'}")
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--spacing", type=float, default=3.0, help="seconds between changes")
    parser.add_argument(
        "--poll-interval", type=float, default=DEFAULT_INTERVAL, help="of the poll-only exporter"
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--tiny", action="store_true", help="a few seconds: 4 changes, 2 s polls, 1 s of load"
    )
    args = parser.parse_args()
    if args.tiny:
        sys.exit(main(4, 0.5, 2.0, 50.0, 1.0, rps=50.0))
    sys.exit(main(args.changes, args.spacing, args.poll_interval, args.rate, args.seconds))
