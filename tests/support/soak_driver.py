"""Drives the soak (tests/test_soak.py): the real exporter process and the simulator on loopback, both on
one simulated clock (exporter/fileclock.py) that only this driver moves.

The loop: apply the plan's changes due now (tests/support/soak_plan.py) and send their pushes; wait
until the exporter has nothing left to do at this moment (its poll loop sleeps, no request is being
answered); then move time to the next thing due: a change, an hour mark, or the earliest deadline the
exporter sleeps for. When a poll waits for time (a 429 window, a retry backoff) while no request is
being answered, time moves to that deadline. Nothing waits for the wall clock but the exporter's own
work, so the day takes as long as the exporter needs to do it.

Every simulated hour a row of figures is written (``HEADER``).
"""

from __future__ import annotations

import asyncio
import csv
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.fileclock import ClockFile
from exporter.persist.journal import JOURNAL_SUFFIX, WorkspaceIdentity, parse_journal
from exporter.simulator import Simulator
from exporter.simulator.push import PushSender, PushTarget
from tests.support.exporter_proc import exporter_argv
from tests.support.metrics import ScrapedMetrics
from tests.support.net import LOOPBACK, free_port, http_ok, wait_until
from tests.support.procs import log_tail
from tests.support.soak_plan import HOUR, START, Event, Plan

WORKSPACE = "soak"
WORKSPACE_UID = "50a50a50-2024-4000-8000-000000000020"
API_KEY = "50ak" + "5e" * 30
PUSH_TOKEN = "soak-push-t0ken-" + "3c" * 12
#: The functions in which the poll loop sleeps between polls (exporter/poller.py).
LOOP = frozenset({"Poller._loop", "Poller._poll_forever"})
#: Those, and the side reads' loops between their reads (exporter/sideloop.py): sleeps that are not a
#: wait in the middle of some work.
BETWEEN = LOOP | {"SideLoop.run_forever"}
#: Real seconds the exporter may take to finish what one simulated moment asks of it.
STEP_TIMEOUT = 60.0
STORM = (6, 60.0)  # a 429 storm: 6 requests a minute
HEADER = (
    "hour",
    "wall_seconds",
    "exporter_pid",
    "rss_mib",
    "series",
    "requests_hour",
    "requests_total",
    "workflow_lists_hour",
    "answered_429_hour",
    "answered_5xx_hour",
    "pushes_total",
    "journal_bytes",
    "live_bytes",
    "state_dir_bytes",
    "request_log_length",
    "push_deliveries_kept",
    "simulator_runs",
)


def config(sim_url: str, push_port: int, state: Path) -> dict[str, Any]:
    return {
        "workspaces": [
            {
                "name": WORKSPACE,
                "workspace_uid": WORKSPACE_UID,
                "api_key": API_KEY,
                "api_version": "v3",
                "base_url": sim_url,
                "push_token": PUSH_TOKEN,
            }
        ],
        "poll": {"interval": "60s"},
        "api": {
            "requests_per_second": 5,
            "burst": 30,
            "retry_backoff": "2s",
            "retry_backoff_max": "30s",
            "max_retries": 2,
            "request_timeout": "10s",
        },
        "state": {"path": str(state)},
        "push": {"listen_address": f"{LOOPBACK}:{push_port}"},
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())


@dataclass
class Journal:
    path: Path | None
    file_bytes: int
    live_bytes: int
    live_keys: set[str]


def read_journal(state: Path, identity: WorkspaceIdentity) -> Journal:
    """The journal's size, and the size of its live records (what a compaction would write)."""
    found = [path for path in state.iterdir() if path.name.endswith(JOURNAL_SUFFIX)]
    if not found:
        return Journal(None, 0, 0, set())
    content = found[0].read_bytes()
    _, live, _ = parse_journal(content, identity)
    header = content.split(b"\n", 1)[0] + b"\n"
    return Journal(found[0], len(content), len(header) + sum(map(len, live.values())), set(live))


@dataclass
class Soak:
    """One soak run: ``run()`` plays the plan; the result is in ``rows``, ``final`` and the logs."""

    plan: Plan
    sim: Simulator
    sim_url: str
    workdir: Path
    clock: ClockFile
    rows: list[dict[str, Any]] = field(default_factory=list)
    segments: list[tuple[int, float]] = field(default_factory=list)  # (pid, hour it started)
    final: ScrapedMetrics | None = None
    proc: subprocess.Popen[bytes] | None = None
    blocked_steps: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        self.state = self.workdir / "state"
        self.push_port = free_port()
        self.address = f"{LOOPBACK}:{free_port()}"
        self.url = f"http://{self.address}"
        self.config_path = self.workdir / "soak.yaml"
        self.config_path.write_text(yaml.safe_dump(config(self.sim_url, self.push_port, self.state)))
        self.identity = WorkspaceIdentity(WORKSPACE, WORKSPACE_UID, self.sim_url, "v3")
        self.loop = asyncio.new_event_loop()  # the push sender's
        target = PushTarget(f"http://{LOOPBACK}:{self.push_port}/push/{WORKSPACE}", PUSH_TOKEN)
        self.sender = PushSender(self.sim, {WORKSPACE_UID: target}, timeout=10.0)
        self.started_wall = time.monotonic()
        self._hour_requests = 0
        self._logs = 0

    # The exporter process.

    def start(self) -> None:
        self._logs += 1
        self.log_path = self.workdir / f"exporter-{self._logs}.log"
        argv = exporter_argv(self.config_path, self.address, "--test.clock-file", str(self.clock.path))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the exporter exited with {proc.returncode}:\n{log_tail(self.log_path)}")
            return http_ok(f"{self.url}/-/healthy")

        wait_until(healthy, 30, "the exporter to start")
        self.segments.append((proc.pid, (self.clock.time() - START) / HOUR))

    def stop(self, kill: bool = False) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if not kill and proc.returncode != 0:
            raise RuntimeError(f"the exporter ended with {proc.returncode}:\n{log_tail(self.log_path)}")
        self.clock.reset_sleepers()  # a killed process leaves its sleepers written

    def metrics(self) -> ScrapedMetrics:
        response = httpx.get(f"{self.url}/metrics", timeout=30.0)
        response.raise_for_status()
        return ScrapedMetrics(response.text)

    # Applying the plan.

    def apply(self, event: Event) -> bool:
        """Make ``event`` happen; True when it changed a run (pushes are owed)."""
        sim = self.sim
        kind = event.kind
        if kind == "workflow_add":
            sim.add_workflow(event.workflow, event.name, WORKSPACE_UID)
        elif kind == "workflow_rename":
            sim.rename_workflow(event.workflow, event.name)
        elif kind == "workflow_remove":
            sim.remove_workflow(event.workflow)
        elif kind == "run_add" and event.workflow in sim.workflows:
            sim.add_run(event.workflow, event.status, uid=event.run, error_message=event.error)
            return True
        elif kind == "run_update" and event.run in sim.runs:
            sim.update_run(event.run, event.status)
            return True
        elif kind == "run_remove":
            sim.remove_run(event.run)
        elif kind == "storm":
            sim.set_rate_limit(*STORM) if event.on else sim.set_rate_limit(None)
        elif kind == "outage":
            sim.add_fault("status", status=503, path_contains="/v3/") if event.on else sim.clear_faults()
        elif kind == "stop":
            self.stop(kill=event.kill)
        elif kind == "start":
            self.start()
        return False

    def push(self) -> None:
        self.loop.run_until_complete(self.sender.scan())

    # Waiting for the exporter.

    def settle(self) -> float | None:
        """Wait until the exporter is done with this moment (None), or waits for time: the deadline to
        move to (a poll waiting on a 429 window or a backoff while no request is being answered)."""
        if self.proc is None:
            return None
        deadline = time.monotonic() + STEP_TIMEOUT
        quiet = 0
        while True:
            now = self.clock.time()
            sleepers = self.clock.sleepers()
            idle = any(name in LOOP and until > now for name, until in sleepers)
            busy = self.sim.in_flight
            if idle and not busy:
                return None
            waits = [until for name, until in sleepers if name not in BETWEEN and until > now]
            quiet = quiet + 1 if waits and not busy else 0
            if quiet >= 5:
                self.blocked_steps += 1
                return min(waits)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the exporter exited:\n{log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the exporter did not settle at {now - START:.0f}s: sleepers {sleepers}, "
                    f"in flight {busy}\n{log_tail(self.log_path)}"
                )
            time.sleep(0.001)

    # The hour's figures.

    def record(self, hour: int) -> None:
        log = self.sim.request_log
        journal = read_journal(self.state, self.identity)
        recent = log.since(self._hour_requests)
        pid = self.proc.pid if self.proc is not None else 0
        row = {
            "hour": hour,
            "wall_seconds": round(time.monotonic() - self.started_wall, 1),
            "exporter_pid": pid,
            "rss_mib": round(rss_mib(pid), 2) if pid else 0.0,
            "series": len(self.metrics().series) if pid else 0,
            "requests_hour": log.total - self._hour_requests,
            "requests_total": log.total,
            "workflow_lists_hour": sum(1 for entry in recent if entry["path"] == "/v3/workflows"),
            "answered_429_hour": sum(1 for entry in recent if entry.get("status") == 429),
            "answered_5xx_hour": sum(1 for entry in recent if entry.get("status", 0) >= 500),
            "pushes_total": self.sender.deliveries.total,
            "journal_bytes": journal.file_bytes,
            "live_bytes": journal.live_bytes,
            "state_dir_bytes": directory_bytes(self.state),
            "request_log_length": len(log),
            "push_deliveries_kept": len(self.sender.deliveries),
            "simulator_runs": len(self.sim.runs),
        }
        self._hour_requests = log.total
        self.rows.append(row)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=HEADER)
            writer.writeheader()
            writer.writerows(self.rows)

    # The day.

    def prepare(self) -> None:
        """The workflows and their history before the day starts (the first poll's baseline)."""
        sim = self.sim
        for uid, name in self.plan.first_workflows:
            sim.add_workflow(uid, name, WORKSPACE_UID)
        for workflow, start, finish in self.plan.history:
            sim.add_run(workflow, "finished", start_time=start, finish_time=finish, created_at=start)
        sim.changes.clear()  # history: not what the day counts
        self.push()  # the sender's baseline: no push for what exists

    def run(self) -> None:
        self.prepare()
        self.start()
        # Every event happens on time, a run change in the middle of a poll too (a poll waiting on a
        # 429 window, a push read racing a poll's page: docs/counting.md keeps them exact).
        events = self.plan.events
        index = 0
        next_hour = START + HOUR
        end = self.plan.end
        self.record(0)
        while True:
            now = self.clock.time()
            changed = False
            while index < len(events) and events[index].at <= now:
                changed = self.apply(events[index]) or changed
                index += 1
            if changed:
                self.push()
            waiting = self.settle()
            self.steps += 1
            if now >= next_hour:
                self.record(round((now - START) / HOUR))
                next_hour += HOUR
            if now >= end:
                break
            candidates = [next_hour, end]
            if index < len(events):
                candidates.append(events[index].at)
            if waiting is not None:
                candidates.append(waiting)
            else:
                candidates += [until for _, until in self.clock.sleepers() if until > now]
            self.clock.set(max(now, min(candidates)))
        self.final = self.metrics()

    def close(self) -> None:
        self.stop()
        self.loop.run_until_complete(self.sender.aclose())
        self.loop.close()


@contextmanager
def soak(plan: Plan, sim: Simulator, sim_url: str, workdir: Path, clock: ClockFile) -> Iterator[Soak]:
    running = Soak(plan, sim, sim_url, workdir, clock)
    try:
        yield running
    finally:
        running.close()
