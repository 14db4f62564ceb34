"""The simulator's v4 side: runs of actions with the ten UPPERCASE statuses, ``updated_at`` that moves
on every change, and what tests script about them. The state lives next to the v3 state of the same
:class:`Simulator` (workspaces, faults, rate limit and clock are shared)."""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.simulator.errors import PLANTED, V4_ERRORS, hostile_errors, v4_error
from exporter.simulator.model import Simulator, retire_launched

V4_STATUSES = (
    "CREATED",
    "INVALID",
    "QUEUED",
    "SCHEDULED",
    "BLOCKED",
    "STOPPED",
    "RUNNING",
    "FAILED",
    "PARTIAL_SUCCEEDED",
    "SUCCEEDED",
)
V4_TERMINAL = frozenset({"INVALID", "STOPPED", "FAILED", "PARTIAL_SUCCEEDED", "SUCCEEDED"})
V4_RESUMABLE = frozenset({"BLOCKED", "STOPPED"})
V4_SORT_FIELDS = ("created_at", "updated_at", "status")
V4_TIME_FORMATS = ("millis", "z", "offset", "naive", "epoch")
BLOCKED_FOR = 3600.0  # how long a BLOCKED run says it is postponed by default
#: last_error of a run that reached a status without a scripted one (the first of run_errors.yaml's).
DEFAULT_ERRORS: dict[str, dict[str, Any]] = {
    status: error for status in V4_ERRORS if (error := v4_error(status)) is not None
}
#: The v4 status of each v3 status the fault texts of run_errors.yaml are in.
_HOSTILE_STATUS = {"warning": "INVALID", "shutdown": "FAILED", "paused": "BLOCKED"}


def format_v4_time(moment: float | None, style: str) -> str | float | None:
    if moment is None:
        return None
    if style == "epoch":
        return moment
    stamp = datetime.fromtimestamp(moment, UTC)
    if style == "millis":
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if style == "z":
        return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
    if style == "naive":
        return stamp.replace(tzinfo=None).isoformat(timespec="microseconds")
    return stamp.isoformat(timespec="microseconds")


@dataclass
class V4Run:
    id: int
    uid: str
    action_name: str
    workspace_uid: str
    created_at: float
    # (moment, status) in time order; the status at t is the last entry at or before t.
    timeline: list[tuple[float, str]]
    execution_mode: str = "ASYNC"
    user_uid: str = ""
    last_error: dict[str, Any] | None = None
    postponed_until: float | None = None
    retry_count: int = 0
    touched: float | None = None  # a change that is not a status change (e.g. a sync of results)
    started_at: float | None = None  # explicit times override the ones derived from the timeline
    finished_at: float | None = None
    updated_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def status_at(self, now: float) -> str:
        current = self.timeline[0][1]
        for moment, status in self.timeline:
            if moment > now:
                break
            current = status
        return current

    def updated_at_at(self, now: float) -> float:
        moments = [self.created_at] + [moment for moment, _ in self.timeline if moment <= now]
        if self.touched is not None and self.touched <= now:
            moments.append(self.touched)
        if self.updated_at is not None:
            moments.append(self.updated_at)
        return max(moments)

    def to_json(self, now: float, style: str) -> dict[str, Any]:
        status = self.status_at(now)
        past = [step for step in self.timeline if step[0] <= now] or self.timeline[:1]
        entered = past[-1][0]
        started = self.started_at
        if started is None:
            started = next((moment for moment, step in past if step == "RUNNING"), None)
        finished = self.finished_at
        if finished is None and status in V4_TERMINAL:
            finished = entered
        error = self.last_error if self.last_error is not None else DEFAULT_ERRORS.get(status)
        postponed = self.postponed_until
        if postponed is None and status == "BLOCKED":
            postponed = entered + BLOCKED_FOR
        if status in V4_TERMINAL or status == "RUNNING":
            postponed = None
        updated = self.updated_at_at(now)
        return {
            "id": self.id,
            "uid": self.uid,
            "action_id": _stable_id(self.action_name),
            "action_name": self.action_name,
            "retry_count": self.retry_count,
            "user_uid": self.user_uid,
            "workspace_uid": self.workspace_uid,
            "execution_mode": self.execution_mode,
            "scheduled_run_uid": None,
            "parameters": {},
            "last_error": error if status in ("FAILED", "INVALID", "BLOCKED", "STOPPED") else None,
            "callback": {"url": "https://hooks.example.com/captaindata"},
            "status": status,
            "postponed_until": format_v4_time(postponed, style),
            "started_at": format_v4_time(started, style),
            "finished_at": format_v4_time(finished, style),
            "synced_at": format_v4_time(updated, style),
            "created_at": format_v4_time(self.created_at, style),
            "updated_at": format_v4_time(updated, style),
            "output_count": 9 if status in ("SUCCEEDED", "PARTIAL_SUCCEEDED") else None,
            **self.extra,
        }


def _stable_id(text: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(text)) % 100_000 + 1


@dataclass
class V4Autopilot:
    interval: float
    retention: float
    next_launch: float
    actions: tuple[str, ...]
    workspace_uid: str
    plan: Callable[[random.Random], list[tuple[float, str]]]
    launched: list[str] = field(default_factory=list)


_APIS: weakref.WeakKeyDictionary[Simulator, V4Api] = weakref.WeakKeyDictionary()


class V4Api:
    """The v4 runs of one :class:`Simulator`. Get it with :meth:`of`; every method is thread-safe (it
    takes the simulator's lock) and reachable over HTTP as ``POST /_sim/v4/<method>``."""

    SCRIPTABLE = (
        "add_run",
        "launch",
        "update_run",
        "touch_run",
        "remove_run",
        "set_time_format",
        "add_hostile_error_runs",
    )

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.runs: dict[str, V4Run] = {}
        self.time_format = "millis"
        self.autopilot: V4Autopilot | None = None
        self._next_id = 1

    @classmethod
    def of(cls, sim: Simulator) -> V4Api:
        with sim.lock:
            api = _APIS.get(sim)
            if api is None:
                api = _APIS[sim] = cls(sim)
            return api

    def _new_run(self, action_name: str, workspace_uid: str | None, created: float, **kwargs: Any) -> V4Run:
        if not isinstance(action_name, str):
            raise ValueError("action_name must be a string")
        uid = kwargs.pop("uid", None) or self.sim._uid()
        run = V4Run(
            id=self._next_id,
            uid=uid,
            action_name=action_name,
            workspace_uid=self.sim._default_workspace(workspace_uid),
            created_at=created,
            user_uid=kwargs.pop("user_uid", None) or "7d4c5b1e-0a8f-4e61-9b2c-3f1a6d8e9c70",
            **kwargs,
        )
        self._next_id += 1
        self.runs[uid] = run
        return run

    def add_run(
        self,
        action_name: str,
        status: str = "SUCCEEDED",
        *,
        uid: str | None = None,
        workspace_uid: str | None = None,
        created_at: float | None = None,
        updated_at: float | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
        postponed_until: float | None = None,
        last_error: dict[str, Any] | None = None,
        execution_mode: str = "ASYNC",
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A run that is in ``status`` (sent as given) since ``updated_at`` (default: now)."""
        with self.sim.lock:
            now = self.sim.clock.time()
            moment = updated_at if updated_at is not None else now
            created = created_at if created_at is not None else min(moment, started_at or moment)
            run = self._new_run(
                action_name,
                workspace_uid,
                created,
                uid=uid,
                timeline=[(moment, status)],
                started_at=started_at,
                finished_at=finished_at,
                postponed_until=postponed_until,
                last_error=last_error,
                execution_mode=execution_mode,
                extra=dict(extra or {}),
            )
            self.sim.changed()
            return run.uid

    def launch(
        self,
        action_name: str,
        timeline: Sequence[Sequence[Any]],
        *,
        workspace_uid: str | None = None,
        last_error: dict[str, Any] | None = None,
    ) -> str:
        """A run created now whose status follows ``timeline``: [(seconds from now, STATUS), ...]."""
        with self.sim.lock:
            now = self.sim.clock.time()
            steps = sorted((now + float(offset), str(status)) for offset, status in timeline)
            uid = self._new_run(action_name, workspace_uid, now, timeline=steps, last_error=last_error).uid
            self.sim.changed()
            return uid

    def update_run(
        self,
        uid: str,
        status: str | None = None,
        *,
        last_error: dict[str, Any] | None = None,
        postponed_until: float | None = None,
    ) -> None:
        """Move a run to ``status`` now (its future timeline is dropped); ``updated_at`` moves."""
        with self.sim.lock:
            run = self.runs[uid]
            now = self.sim.clock.time()
            if status is not None:
                run.timeline = [step for step in run.timeline if step[0] <= now] + [(now, status)]
                run.updated_at = None
                if status not in V4_TERMINAL:
                    run.finished_at = None
            else:
                run.touched = now
            if last_error is not None:
                run.last_error = last_error
            if postponed_until is not None:
                run.postponed_until = postponed_until
            self.sim.changed()

    def add_hostile_error_runs(self, action_name: str, workspace_uid: str | None = None) -> list[str]:
        """Fault: one run per fault text of run_errors.yaml with it as ``last_error.message`` (no label,
        so the message gives the cause), and one with an unknown label that plants a token and control
        characters; returns their uids."""
        with self.sim.lock:
            workspace = self.sim._default_workspace(workspace_uid)
            api_key = self.sim.workspaces[workspace].api_key
            uids = [
                self.add_run(
                    action_name,
                    _HOSTILE_STATUS[status],
                    workspace_uid=workspace,
                    last_error={"label": None, "message": text, "params": {"cookie": PLANTED["li_at"]}},
                )
                for status, _, text in hostile_errors(api_key)
            ]
            label = f"LEAK_\x00{PLANTED['token']}\n"
            uids.append(
                self.add_run(
                    action_name,
                    "BLOCKED",
                    workspace_uid=workspace,
                    last_error={"label": label, "message": f"Bearer {PLANTED['bearer']}"},
                )
            )
            return uids

    def touch_run(self, uid: str) -> None:
        """A change that is not a status change: only ``updated_at`` (and ``synced_at``) move."""
        with self.sim.lock:
            self.runs[uid].touched = self.sim.clock.time()

    def remove_run(self, uid: str) -> None:
        with self.sim.lock:
            self.runs.pop(uid, None)

    def set_time_format(self, style: str) -> None:
        if style not in V4_TIME_FORMATS:
            raise ValueError(f"style must be one of {V4_TIME_FORMATS}")
        with self.sim.lock:
            self.time_format = style

    def resume(self, uid: str) -> V4Run | None:
        """``POST /v4/runs/{uid}/resume``: a BLOCKED or STOPPED run is queued again and runs to
        SUCCEEDED. ``None`` when the run is in another status."""
        with self.sim.lock:
            run = self.runs[uid]
            now = self.sim.clock.time()
            if run.status_at(now) not in V4_RESUMABLE:
                return None
            run.timeline = [step for step in run.timeline if step[0] <= now] + [
                (now, "QUEUED"),
                (now + 2.0, "RUNNING"),
                (now + 30.0, "SUCCEEDED"),
            ]
            run.updated_at = None
            run.finished_at = None
            run.postponed_until = None
            run.last_error = None
            run.retry_count += 1
            self.sim.changed()
            return run

    def start_autopilot(
        self,
        interval: float,
        retention: float,
        actions: Sequence[str],
        plan: Callable[[random.Random], list[tuple[float, str]]],
        workspace_uid: str | None = None,
    ) -> None:
        with self.sim.lock:
            self.autopilot = V4Autopilot(
                interval,
                retention,
                self.sim.clock.time(),
                tuple(actions),
                self.sim._default_workspace(workspace_uid),
                plan,
            )

    def advance(self) -> None:
        """Let the autopilot launch and retire runs up to now."""
        with self.sim.lock:
            pilot = self.autopilot
            if pilot is None:
                return
            now = self.sim.clock.time()
            while pilot.next_launch <= now:
                moment = pilot.next_launch
                steps = [(moment + offset, status) for offset, status in pilot.plan(self.sim.random)]
                action = self.sim.random.choice(pilot.actions)
                run = self._new_run(action, pilot.workspace_uid, moment, timeline=steps)
                # drawn apart from the simulator's random, so that errors leave the runs' own draws unchanged
                draw = random.Random(run.uid)
                run.last_error = next((v4_error(st, draw) for _, st in steps if st in V4_ERRORS), None)
                pilot.launched.append(run.uid)
                pilot.next_launch += pilot.interval
            pilot.launched = retire_launched(self.runs, pilot.launched, now, pilot.retention)

    def listed(
        self,
        workspace_uid: str,
        *,
        statuses: Sequence[str] = (),
        actions: Sequence[str] = (),
        uids: Sequence[str] = (),
        sort: Sequence[str] = (),
    ) -> list[V4Run]:
        """The workspace's runs the API lists now (created, within the history window), filtered and
        sorted (``sort``: field names, ``-`` for descending, ties broken by ``id``)."""
        with self.sim.lock:
            now = self.sim.clock.time()
            window = now - self.sim.history_window
            runs = [
                run
                for run in self.runs.values()
                if run.workspace_uid == workspace_uid
                and window <= run.created_at <= now
                and (not actions or run.action_name in actions)
                and (not uids or run.uid in uids)
            ]
            if statuses:
                runs = [run for run in runs if run.status_at(now) in statuses]
            runs.sort(key=lambda run: run.id)
            for key in reversed(sort):
                name = key.lstrip("-")
                if name == "updated_at":
                    values: dict[str, Any] = {run.uid: run.updated_at_at(now) for run in runs}
                elif name == "created_at":
                    values = {run.uid: run.created_at for run in runs}
                else:
                    values = {run.uid: run.status_at(now) for run in runs}
                runs.sort(key=lambda run: values[run.uid], reverse=key.startswith("-"))
            return runs
