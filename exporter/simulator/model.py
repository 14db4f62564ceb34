"""The simulator's state: workspaces, workflows and runs whose status follows a timeline, plus the
rate limit and the faults that tests script. Thread-safe: tests may script it from another thread."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.simulator.errors import hostile_errors, v3_error
from exporter.simulator.health import HealthModel

HISTORY_WINDOW = 60 * 86400.0  # the API lists runs of the last two months
TERMINAL_WIRE_STATUSES = frozenset({"finished", "completed", "warning", "shutdown", "stopped"})
FAULT_KINDS = ("status", "slow", "malformed", "wrong_shape", "drop", "ignore_page", "dribble", "late")
RATE_LIMIT_STYLES = ("seconds", "http-date", "reset", "none")
TIME_FORMATS = ("naive", "offset", "z", "epoch")
#: How many of the last API requests the request log keeps (a long --demo must not grow without bound).
REQUEST_LOG_LIMIT = 10_000


class BoundedLog(list[Any]):
    """A list that keeps only about its last ``limit`` items: once it holds a quarter more, the oldest
    are dropped (in one go, so appending stays cheap). ``total`` counts every item ever appended,
    ``dropped`` those dropped; :meth:`since` gives what was appended after a ``total`` taken earlier.
    Everything else is a plain list's (tests iterate, count, compare and clear it)."""

    def __init__(self, limit: int, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.limit = limit
        self.total = len(self)
        self.dropped = 0

    def append(self, item: Any) -> None:
        super().append(item)
        self.total += 1
        if len(self) > self.limit + self.limit // 4:
            extra = len(self) - self.limit
            del self[:extra]
            self.dropped += extra

    def clear(self) -> None:
        self.dropped += len(self)
        super().clear()

    def since(self, total: int) -> list[Any]:
        """The items appended after ``self.total`` was ``total`` (those still kept)."""
        return self[max(0, total - self.dropped) :]


def format_time(moment: float | None, style: str) -> str | float | None:
    if moment is None:
        return None
    if style == "epoch":
        return moment
    stamp = datetime.fromtimestamp(moment, UTC)
    if style == "naive":
        return stamp.replace(tzinfo=None).isoformat(timespec="microseconds")
    if style == "z":
        return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
    return stamp.isoformat(timespec="microseconds")


@dataclass
class SimRun:
    uid: str
    workflow_uid: str
    name: str
    created_at: float
    # (moment, wire status) in time order; the run's status at t is the last entry at or before t.
    timeline: list[tuple[float, str]]
    start_time: float | None = None  # explicit times override the ones derived from the timeline
    finish_time: float | None = None
    scheduled_time: float | None = None
    error_message: str | None = None
    time_format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    account_uid: str | None = None  # the integration account it uses (exporter/simulator/health.py)

    def status_at(self, now: float) -> str:
        current = self.timeline[0][1]
        for moment, status in self.timeline:
            if moment > now:
                break
            current = status
        return current

    def times_at(self, now: float) -> tuple[float | None, float | None]:
        start = self.start_time
        finish = self.finish_time
        for moment, status in self.timeline:
            if moment > now:
                break
            if start is None and status.lower() == "running":
                start = moment
            if self.finish_time is None and status.lower() in TERMINAL_WIRE_STATUSES:
                finish = moment
        if self.finish_time is None and self.status_at(now).lower() not in TERMINAL_WIRE_STATUSES:
            finish = None
        return start, finish

    def to_json(self, now: float, workflow_name: str, style: str) -> dict[str, Any]:
        start, finish = self.times_at(now)
        status = self.status_at(now)
        fmt = self.time_format or style
        return {
            "uid": self.uid,
            "name": self.name,
            "workflow_uid": self.workflow_uid,
            "workflow_name": workflow_name,
            "main_job_uid": self.uid,
            "main_job_name": self.name,
            "status": status,
            "error_message": self.error_message
            if status.lower() in ("warning", "shutdown", "paused")
            else None,
            "step_uid": None,
            "scheduled_time": format_time(self.scheduled_time, fmt),
            "start_time": format_time(start, fmt),
            "finish_time": format_time(finish, fmt),
            "number_inputs": 10,
            "row_count": 9 if status.lower() == "finished" else 0,
            "total_row_count": 9 if status.lower() == "finished" else 0,
            "accounts": [self.account_uid] if self.account_uid else [],
            "configuration": {},
            **self.extra,
        }


@dataclass
class SimWorkflow:
    uid: str
    name: str
    workspace_uid: str
    created_at: float


@dataclass
class SimWorkspace:
    uid: str
    api_key: str


@dataclass
class Fault:
    kind: str
    remaining: int | None  # None: until cleared
    status: int = 500
    delay: float = 0.0
    path_contains: str = ""


@dataclass
class RateLimit:
    max_requests: int
    window_seconds: float
    style: str
    window_started: float = 0.0
    used: int = 0


@dataclass
class Autopilot:
    """Launches runs on its own so that a demo keeps moving."""

    interval: float
    retention: float
    next_launch: float
    plan: Callable[[random.Random, float], tuple[str, list[tuple[float, str]]]]
    launched: list[str] = field(default_factory=list)


class Simulator(HealthModel):
    """A faithful stand-in for the Captain Data v3 API (see docs/simulator.md)."""

    def __init__(
        self,
        seed: int = 0,
        page_size: int = 20,
        clock: Clock = SYSTEM_CLOCK,
        time_format: str = "naive",
        history_window: float = HISTORY_WINDOW,
    ) -> None:
        self.lock = threading.RLock()
        self.random = random.Random(seed)
        self.page_size = page_size
        self.clock = clock
        self.time_format = time_format
        self.history_window = history_window
        self.workspaces: dict[str, SimWorkspace] = {}
        self.workflows: dict[str, SimWorkflow] = {}
        self.runs: dict[str, SimRun] = {}
        self.faults: list[Fault] = []
        self.rate_limit: RateLimit | None = None
        self.autopilot: Autopilot | None = None
        self.request_log: BoundedLog = BoundedLog(REQUEST_LOG_LIMIT)  # the last API requests served
        self.in_flight = 0  # API requests being answered now
        # Scripted status changes (add_run, update_run): (workflow uid, wire status lower-cased) -> count.
        # Not timelines' steps (launch, the autopilot), which happen as time passes.
        self.changes: Counter[tuple[str, str]] = Counter()
        self.on_change: list[Callable[[], None]] = []  # told of scripted changes (exporter/simulator/push.py)
        self._init_health()

    def changed(self) -> None:
        for listener in self.on_change:
            listener()

    def _uid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    # Scripting API (also reachable over HTTP as POST /_sim/<method>).

    def add_workspace(self, workspace_uid: str | None = None, api_key: str | None = None) -> str:
        with self.lock:
            uid = workspace_uid or self._uid()
            self.workspaces[uid] = SimWorkspace(uid, api_key or f"{self.random.getrandbits(256):064x}")
            return uid

    def set_api_key(self, workspace_uid: str, api_key: str) -> None:
        with self.lock:
            self.workspaces[workspace_uid].api_key = api_key

    def _default_workspace(self, workspace_uid: str | None) -> str:
        if workspace_uid:
            if workspace_uid not in self.workspaces:
                raise KeyError(f"no workspace {workspace_uid}")
            return workspace_uid
        if len(self.workspaces) != 1:
            raise ValueError("workspace_uid is required when there is not exactly one workspace")
        return next(iter(self.workspaces))

    def add_workflow(
        self, uid: str | None = None, name: str | None = None, workspace_uid: str | None = None
    ) -> str:
        with self.lock:
            workflow_uid = uid or self._uid()
            self.workflows[workflow_uid] = SimWorkflow(
                workflow_uid,
                name if name is not None else f"Workflow {workflow_uid[:8]}",
                self._default_workspace(workspace_uid),
                self.clock.time(),
            )
            return workflow_uid

    def rename_workflow(self, uid: str, name: str) -> None:
        with self.lock:
            self.workflows[uid].name = name

    def remove_workflow(self, uid: str) -> None:
        with self.lock:
            del self.workflows[uid]
            for run_uid in [r.uid for r in self.runs.values() if r.workflow_uid == uid]:
                del self.runs[run_uid]

    def add_run(
        self,
        workflow_uid: str,
        status: str = "finished",
        *,
        uid: str | None = None,
        name: str | None = None,
        start_time: float | None = None,
        finish_time: float | None = None,
        scheduled_time: float | None = None,
        created_at: float | None = None,
        error_message: str | None = None,
        time_format: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A run in ``status`` (sent as given, so aliases and odd casing can be scripted)."""
        with self.lock:
            if workflow_uid not in self.workflows:
                raise KeyError(f"no workflow {workflow_uid}")
            if time_format is not None and time_format not in TIME_FORMATS:
                raise ValueError(f"time_format must be one of {TIME_FORMATS}")
            now = self.clock.time()
            created = (
                created_at if created_at is not None else (start_time if start_time is not None else now)
            )
            run_uid = uid or self._uid()
            self.runs[run_uid] = SimRun(
                uid=run_uid,
                workflow_uid=workflow_uid,
                name=name or f"Run {run_uid[:8]}",
                created_at=created,
                timeline=[(created, status)],
                start_time=start_time,
                finish_time=finish_time,
                scheduled_time=scheduled_time,
                error_message=error_message or _default_error(status),
                time_format=time_format,
                extra=dict(extra or {}),
            )
            self.changes[workflow_uid, status.lower()] += 1
            self._track(self.runs[run_uid])
            self.changed()
            return run_uid

    def launch(self, workflow_uid: str, timeline: Sequence[Sequence[Any]], name: str | None = None) -> str:
        """A run whose status follows ``timeline``: [(seconds from now, status), ...]."""
        with self.lock:
            now = self.clock.time()
            steps = [(now + float(offset), str(status)) for offset, status in timeline]
            run_uid = self._uid()
            self.runs[run_uid] = SimRun(
                uid=run_uid,
                workflow_uid=workflow_uid,
                name=name or f"Run {run_uid[:8]}",
                created_at=now,
                timeline=sorted(steps),
                error_message=_default_error(steps[-1][1]),
            )
            self._track(self.runs[run_uid])
            self.changed()
            return run_uid

    def update_run(
        self,
        uid: str,
        status: str | None = None,
        *,
        start_time: float | None = None,
        finish_time: float | None = None,
        name: str | None = None,
    ) -> None:
        """Move a run to ``status`` now (and/or set its times)."""
        with self.lock:
            run = self.runs[uid]
            if status is not None:
                now = self.clock.time()
                if status.lower() != run.status_at(now).lower():
                    self.changes[run.workflow_uid, status.lower()] += 1
                run.timeline = [step for step in run.timeline if step[0] <= now] + [(now, status)]
                run.error_message = run.error_message or _default_error(status)
                if status.lower() not in TERMINAL_WIRE_STATUSES and finish_time is None:
                    run.finish_time = None
            if start_time is not None:
                run.start_time = start_time
            if finish_time is not None:
                run.finish_time = finish_time
            if name is not None:
                run.name = name
            self.changed()

    def remove_run(self, uid: str) -> None:
        with self.lock:
            self.runs.pop(uid, None)

    def add_hostile_error_runs(self, workflow_uid: str) -> list[str]:
        """Fault: one run per fault text of run_errors.yaml (planted cookies, tokens and the workspace's
        API key, control characters, a huge text), each in its status; returns their uids."""
        with self.lock:
            api_key = self.workspaces[self.workflows[workflow_uid].workspace_uid].api_key
            now = self.clock.time()
            return [
                self.add_run(
                    workflow_uid, status, start_time=now - 60, finish_time=now - 30, error_message=text
                )
                if status != "paused"
                else self.add_run(workflow_uid, status, start_time=now - 60, error_message=text)
                for status, _, text in hostile_errors(api_key)
            ]

    def set_rate_limit(
        self, max_requests: int | None, window_seconds: float = 60.0, style: str = "seconds"
    ) -> None:
        """Answer 429 once ``max_requests`` were served in the current window (``None`` lifts it)."""
        with self.lock:
            if style not in RATE_LIMIT_STYLES:
                raise ValueError(f"style must be one of {RATE_LIMIT_STYLES}")
            self.rate_limit = (
                None
                if max_requests is None
                else RateLimit(max_requests, window_seconds, style, self.clock.time())
            )

    def add_fault(
        self,
        kind: str,
        count: int | None = None,
        status: int = 500,
        delay: float = 0.0,
        path_contains: str = "",
    ) -> None:
        """Misbehave on the next ``count`` API requests (all of them when ``None``) whose path contains
        ``path_contains``."""
        with self.lock:
            if kind not in FAULT_KINDS:
                raise ValueError(f"kind must be one of {FAULT_KINDS}")
            self.faults.append(Fault(kind, count, status, delay, path_contains))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def start_autopilot(self, interval: float, retention: float, plan: Callable[..., Any]) -> None:
        with self.lock:
            self.autopilot = Autopilot(interval, retention, self.clock.time(), plan)

    # Used by the HTTP app.

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and (fault.remaining is None or fault.remaining > 0):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
            return None

    def take_rate_limit(self) -> RateLimit | None:
        """The rate limit if this request is over it, else None (and the request is counted)."""
        with self.lock:
            limit = self.rate_limit
            if limit is None:
                return None
            now = self.clock.time()
            if now - limit.window_started >= limit.window_seconds:
                limit.window_started = now
                limit.used = 0
            if limit.used >= limit.max_requests:
                return limit
            limit.used += 1
            return None

    def advance(self) -> None:
        """Let the autopilot launch and retire runs up to now."""
        with self.lock:
            now = self.clock.time()
            if self._unbilled:
                self._advance_health(now)
            pilot = self.autopilot
            if pilot is None:
                return
            workflows = sorted(self.workflows)
            while pilot.next_launch <= now and workflows:
                workflow_uid = self.random.choice(workflows)
                name, offsets = pilot.plan(self.random, pilot.next_launch)
                run_uid = self._uid()
                steps = [(pilot.next_launch + offset, status) for offset, status in offsets]
                self.runs[run_uid] = SimRun(
                    uid=run_uid,
                    workflow_uid=workflow_uid,
                    name=name,
                    created_at=pilot.next_launch,
                    timeline=steps,
                    # drawn apart from self.random, so that errors leave the runs' own draws unchanged
                    error_message=v3_error(steps[-1][1], random.Random(run_uid)),
                )
                self._track(self.runs[run_uid])
                pilot.launched.append(run_uid)
                pilot.next_launch += pilot.interval
            pilot.launched = retire_launched(self.runs, pilot.launched, now, pilot.retention)

    def visible_runs(self, workflow_uid: str) -> list[SimRun]:
        """The workflow's runs the API lists now: created, within the history window, newest first."""
        with self.lock:
            now = self.clock.time()
            runs = [
                run
                for run in self.runs.values()
                if run.workflow_uid == workflow_uid and now - self.history_window <= run.created_at <= now
            ]
            runs.sort(key=lambda run: (run.created_at, run.uid), reverse=True)
            return runs


def retire_launched(
    runs: MutableMapping[str, Any], launched: list[str], now: float, retention: float
) -> list[str]:
    """Drop from ``runs`` the autopilot's runs created more than ``retention`` ago; return the uids of
    ``launched`` still there (a run removed otherwise is forgotten too)."""
    keep = []
    for uid in launched:
        run = runs.get(uid)
        if run is not None and now - run.created_at > retention:
            del runs[uid]
        elif run is not None:
            keep.append(uid)
    return keep


def _default_error(status: str) -> str | None:
    """The error of a scripted run in ``status``: the first of run_errors.yaml's for it."""
    return v3_error(status)
