"""The simulator's pushes: a v3 webhook or a v4 callback to a configured URL, with
``Authorization: Bearer <token>``, for every status change of a simulated run, with faults (dropped
pushes, duplicates, out-of-order callbacks, a wrong token, bodies that are not JSON or are huge).

Real v3 webhooks exist for three events (Created, Succeeded, Failed); the simulator announces every
change with the nearest of the three (a Paused run is announced as Failed, with its error). A v4
callback carries the run's status itself. Changes are found by comparing each run's timeline with
what was already announced, so timed steps and scripted changes are both announced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from exporter.simulator.model import BoundedLog, SimRun, Simulator
from exporter.simulator.v4 import V4Api, V4Run

V3_EVENTS = {"running": "created", "pending": "created", "finished": "succeeded", "completed": "succeeded"}
V3_MESSAGES = {"created": "Job created.", "succeeded": "Job successfully finished.", "failed": "Job failed."}
V4_FAILING = frozenset({"FAILED", "INVALID", "BLOCKED", "STOPPED"})
HUGE_BYTES = 2 * 1024 * 1024  # over the receiver's default 1 MiB
SCAN_INTERVAL = 0.1  # seconds between looks at the timelines (a scripted change wakes it at once)
DELIVERIES_KEPT = 10_000  # the last deliveries kept for tests (a long --demo pushes without end)


@dataclass(frozen=True)
class PushFaults:
    drop: float = 0.0  # share of pushes never sent
    duplicates: int = 0  # extra copies of every push sent
    out_of_order: bool = False  # a RUNNING callback is held back and sent after the run's next one
    wrong_token: float = 0.0  # share sent with a wrong token
    not_json: float = 0.0  # share whose body is not JSON
    huge: float = 0.0  # share whose body is valid JSON of huge_bytes
    huge_bytes: int = HUGE_BYTES


@dataclass(frozen=True)
class PushTarget:
    """Where one simulated workspace's pushes go (``http://host:port/push/<workspace name>``)."""

    url: str
    token: str | None
    api_version: Literal["v3", "v4"] = "v3"


@dataclass(frozen=True)
class Push:
    api: Literal["v3", "v4"]
    workspace_uid: str
    run_uid: str
    status: str
    body: dict[str, Any]


@dataclass
class Delivery:
    """One push as sent: ``fault`` is "" or the fault applied; ``http_status`` None when not sent."""

    push: Push
    fault: str = ""
    http_status: int | None = None


@dataclass
class _Seen:
    step: tuple[float, str] | None = None  # the last timeline step announced
    status: str = ""


@dataclass
class PushSender:
    sim: Simulator
    targets: Mapping[str, PushTarget]  # simulated workspace uid → target
    faults: PushFaults = field(default_factory=PushFaults)
    seed: int = 0
    timeout: float = 10.0
    deliveries: BoundedLog = field(default_factory=lambda: BoundedLog(DELIVERIES_KEPT))

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._seen: dict[str, _Seen] = {}
        self._held: dict[str, Push] = {}
        self._baseline_taken = False
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # Finding the changes.

    def _v3_push(self, run: SimRun, status: str) -> Push | None:
        workflow = self.sim.workflows.get(run.workflow_uid)
        if workflow is None or workflow.workspace_uid not in self.targets:
            return None
        event = V3_EVENTS.get(status.lower(), "failed")
        body = {
            "uid": self.sim._uid(),
            "job_uid": run.uid,
            "message": V3_MESSAGES[event],
            "project_uid": workflow.workspace_uid,
            "error": run.error_message if event == "failed" else None,
            "recipe_ref": run.uid,
            "workflow_uid": workflow.uid,
            "workflow_name": workflow.name,
            "job_name": run.name,
        }
        return Push("v3", workflow.workspace_uid, run.uid, status, body)

    def _v4_push(self, run: V4Run, status: str, now: float) -> Push | None:
        if run.workspace_uid not in self.targets:
            return None
        error = run.to_json(now, "z").get("last_error") if status in V4_FAILING else None
        body = {
            "run": {"run_uid": run.uid, "batch_uid": None, "status": status},
            "input": {},
            "custom_data": {},
            "error": error,
            "results": [{"row": index} for index in range(10)] if status == "RUNNING" else [],
        }
        return Push("v4", run.workspace_uid, run.uid, status, body)

    def _new_steps(self, uid: str, timeline: list[tuple[float, str]], now: float) -> list[str]:
        seen = self._seen.setdefault(uid, _Seen())
        past = [step for step in timeline if step[0] <= now]
        start = past.index(seen.step) + 1 if seen.step in past else 0
        statuses = []
        for step in past[start:]:
            if step[1] != seen.status:
                statuses.append(step[1])
                seen.status = step[1]
            seen.step = step
        return statuses

    def changes(self) -> list[Push]:
        """The pushes owed since the last call; the first call only takes note of what exists."""
        self.sim.advance()
        v4 = V4Api.of(self.sim)
        v4.advance()
        pushes: list[Push] = []
        with self.sim.lock:
            now = self.sim.clock.time()
            baseline = not self._baseline_taken
            self._baseline_taken = True
            for run in list(self.sim.runs.values()):
                for status in self._new_steps(run.uid, run.timeline, now):
                    push = None if baseline else self._v3_push(run, status)
                    pushes += [push] if push else []
            for v4run in list(v4.runs.values()):
                for status in self._new_steps(v4run.uid, v4run.timeline, now):
                    push = None if baseline else self._v4_push(v4run, status, now)
                    pushes += [push] if push else []
            gone = self._seen.keys() - self.sim.runs.keys() - v4.runs.keys()
        for uid in gone:  # retired or removed runs
            del self._seen[uid]
            self._held.pop(uid, None)
        return pushes

    # Sending them.

    def _ordered(self, pushes: list[Push]) -> list[Push]:
        """With ``out_of_order``, each RUNNING callback goes after the run's next callback."""
        if not self.faults.out_of_order:
            return pushes
        ordered: list[Push] = []
        for push in pushes:
            if push.api == "v4" and push.status == "RUNNING" and push.run_uid not in self._held:
                self._held[push.run_uid] = push
                continue
            ordered.append(push)
            held = self._held.pop(push.run_uid, None)
            if held is not None:
                ordered.append(held)
        return ordered

    async def _send(self, push: Push) -> None:
        target = self.targets[push.workspace_uid]
        chance = self._random.random
        if chance() < self.faults.drop:
            self.deliveries.append(Delivery(push, "dropped"))
            return
        fault = ""
        body = json.dumps(push.body).encode()
        token = target.token
        if chance() < self.faults.wrong_token:
            fault, token = "wrong_token", f"wrong-{self._random.getrandbits(64):016x}"
        elif chance() < self.faults.not_json:
            fault, body = "not_json", b"<html><body>not JSON</body></html>"
        elif chance() < self.faults.huge:
            padding = "x" * self.faults.huge_bytes
            fault, body = "huge", json.dumps({**push.body, "results": [{"padding": padding}]}).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        assert self._client is not None
        for copy in range(1 + self.faults.duplicates):
            try:
                response = await self._client.post(target.url, content=body, headers=headers)
                status: int | None = response.status_code
            except httpx.HTTPError:
                status = None
            self.deliveries.append(Delivery(push, fault or ("duplicate" if copy else ""), status))

    async def scan(self) -> list[Delivery]:
        """Send what changed since the last scan; returns those deliveries."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        before = self.deliveries.total
        for push in self._ordered(self.changes()):
            await self._send(push)
        return self.deliveries.since(before)

    def _changed(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self, interval: float) -> None:
        while True:
            self._wake.clear()
            await self.scan()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    def start(self, interval: float = SCAN_INTERVAL) -> None:
        """Scan in the background (every ``interval`` seconds, and at once after a scripted change)."""
        self._loop = asyncio.get_running_loop()
        self.sim.on_change.append(self._changed)
        self._task = asyncio.create_task(self._run(interval), name="simulator pushes")

    async def aclose(self) -> None:
        if self._changed in self.sim.on_change:
            self.sim.on_change.remove(self._changed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
