"""The soak's simulated day (tests/test_soak.py): every change it makes to the simulator, at its moment.

Drawn once from a seed, so a failing soak replays exactly. Steady churn (a run launched every
LAUNCH_EVERY on average: pending, running, then an outcome; paused runs resume; ended runs leave the
list after RETIRE_AFTER), workflows created, renamed and deleted, 429 storms, a 30-minute outage and two
restarts (one SIGTERM, one kill -9).

What the exporter cannot see, it cannot count: a run that changes twice while polls cannot read (an
outage, a restart, a 429 storm) would show only its last status. So within such a window (and
BLIND_MARGIN after it) each run changes at most once: later changes wait for the window's end. Then
every change the simulator makes is one the exporter must count, and the truth is the simulator's own
tally (``Simulator.changes``).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from exporter.simulator.errors import V3_ERRORS

HOUR = 3600.0
MINUTE = 60.0
START = 1_767_571_200.0  # 2026-01-05T00:00:00Z: the simulated day starts here
GRID = 30.0  # every change happens on this grid (the poll interval is 60 s)
LAUNCH_EVERY = 2 * MINUTE
RETIRE_AFTER = 2 * HOUR
BLIND_MARGIN = 4 * MINUTE  # after a blind window: the first polls that read again
SEEN_BEFORE = 2 * MINUTE  # before one: a change this close to it may not be read before it starts
QUIET_END = 15 * MINUTE  # no change in the day's last minutes: the last polls see everything
LAST_LAUNCH = 90 * MINUTE  # no launch in the 90 minutes before: most runs end within the day
FIRST_WORKFLOWS = 8
OUTCOMES = (("finished", 62), ("warning", 10), ("shutdown", 8), ("stopped", 8), ("paused", 12))

EventKind = Literal[
    "workflow_add",
    "workflow_rename",
    "workflow_remove",
    "run_add",
    "run_update",
    "run_remove",
    "storm",
    "outage",
    "stop",
    "start",
]


@dataclass(frozen=True)
class Event:
    at: float
    kind: EventKind
    workflow: str = ""  # workflow uid
    run: str = ""  # run uid
    status: str = ""
    name: str = ""
    error: str | None = None
    on: bool = True  # storm / outage: begins or ends
    kill: bool = False  # stop: kill -9 rather than SIGTERM


@dataclass(frozen=True)
class Window:
    """Polls cannot read from ``start`` to ``end`` (plus BLIND_MARGIN)."""

    start: float
    end: float
    what: str

    def blind(self, moment: float) -> bool:
        return self.start - SEEN_BEFORE <= moment < self.end + BLIND_MARGIN


@dataclass
class Plan:
    hours: float
    events: list[Event]
    windows: list[Window]
    first_workflows: list[tuple[str, str]]  # (uid, name), created before the day starts
    history: list[tuple[str, float, float]]  # (workflow uid, start, finish) of finished runs before it
    failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (workflow, status, reason)

    @property
    def end(self) -> float:
        return START + self.hours * HOUR

    def deleted(self) -> set[str]:
        return {event.workflow for event in self.events if event.kind == "workflow_remove"}


def _grid(moment: float) -> float:
    return START + round((moment - START) / GRID) * GRID


def _schedule(hours: float) -> tuple[list[Event], list[Window]]:
    """The day's incidents and workflow changes, as fractions of the day (so a shorter soak keeps them)."""
    day = hours * HOUR

    def at(fraction: float) -> float:
        return _grid(START + fraction * day)

    events: list[Event] = []
    windows: list[Window] = []
    for begin, minutes in ((4 / 24, 20), (11 / 24, 20), (19.5 / 24, 20)):
        start, end = at(begin), at(begin) + minutes * MINUTE
        events += [Event(start, "storm"), Event(end, "storm", on=False)]
        windows.append(Window(start, end, "429 storm"))
    start = at(14 / 24)
    events += [Event(start, "outage"), Event(start + 30 * MINUTE, "outage", on=False)]
    windows.append(Window(start, start + 30 * MINUTE, "API outage"))
    for begin, down, kill in ((8 / 24, 3, False), (16.7 / 24, 4, True)):
        stop = at(begin)
        events += [Event(stop, "stop", kill=kill), Event(stop + down * MINUTE, "start")]
        windows.append(Window(stop, stop + down * MINUTE, "kill -9" if kill else "restart"))
    return events, windows


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _postpone(changes: list[tuple[float, str]], windows: list[Window]) -> list[tuple[float, str]]:
    """Move a run's changes so that no blind window sees two of them (keeping their spacing)."""
    moved = list(changes)
    for window in sorted(windows, key=lambda w: w.start):
        seen = 0
        for index, (moment, _) in enumerate(moved):
            if window.blind(moment):
                seen += 1
                if seen > 1:
                    shift = window.end + BLIND_MARGIN + GRID - moment
                    moved[index:] = [(m + shift, s) for m, s in moved[index:]]
                    break
    return moved


def make_plan(seed: int = 20, hours: float = 24.0) -> Plan:
    rng = random.Random(seed)
    events, windows = _schedule(hours)
    end = START + hours * HOUR
    first = [(_uid(rng), f"Soak workflow {index + 1}") for index in range(FIRST_WORKFLOWS)]
    history = [
        (uid, start, start + rng.uniform(60, 1800))
        for uid, _ in first
        for start in (START - rng.uniform(2, 20) * HOUR for _ in range(3))
    ]
    # Workflows come and go: (fraction of the day, change).
    live = [uid for uid, _ in first]
    added: list[str] = []
    removed: set[str] = set()
    lifecycle: list[tuple[float, EventKind, int]] = [
        (2.2 / 24, "workflow_add", 0),
        (3.3 / 24, "workflow_rename", 0),
        (5.0 / 24, "workflow_remove", 7),
        (6.2 / 24, "workflow_add", 1),
        (12.2 / 24, "workflow_add", 2),
        (13.3 / 24, "workflow_rename", -1),
        (15.5 / 24, "workflow_remove", -2),
        (18.2 / 24, "workflow_add", 3),
        (20.0 / 24, "workflow_rename", 3),
        (21.0 / 24, "workflow_remove", 6),
    ]
    changes_of: dict[str, tuple[str, list[tuple[float, str]], str | None, str]] = {}
    workflow_events: list[Event] = []
    timeline = sorted(lifecycle)
    moment = START + 2 * MINUTE
    while moment < end - QUIET_END - LAST_LAUNCH:
        while timeline and START + timeline[0][0] * hours * HOUR <= moment:
            fraction, kind, which = timeline.pop(0)
            when = _grid(START + fraction * hours * HOUR)
            if kind == "workflow_add":
                uid = _uid(rng)
                added.append(uid)
                live.append(uid)
                workflow_events.append(Event(when, kind, workflow=uid, name=f"Soak workflow new {which + 1}"))
            else:
                uid = added[which] if which < 0 else live[which]
                if kind == "workflow_rename":
                    workflow_events.append(Event(when, kind, workflow=uid, name=f"Renamed {uid[:8]}"))
                else:
                    live.remove(uid)
                    removed.add(uid)
                    workflow_events.append(Event(when, kind, workflow=uid))
        workflow = rng.choice(live)
        run = _uid(rng)
        outcome = rng.choices([o for o, _ in OUTCOMES], weights=[w for _, w in OUTCOMES])[0]
        reason, _, error = rng.choice(V3_ERRORS[outcome]) if outcome in V3_ERRORS else ("", 0, None)
        created = _grid(moment + GRID)
        running = created + rng.randint(3, 10) * MINUTE
        ended = running + rng.randint(5, 45) * MINUTE
        steps = [(created, "pending"), (running, "running"), (ended, outcome)]
        if outcome == "paused" and rng.random() < 0.6:  # resumed, then finished
            resumed = ended + rng.randint(10, 40) * MINUTE
            steps += [(resumed, "running"), (resumed + rng.randint(5, 20) * MINUTE, "finished")]
        changes_of[run] = (workflow, _postpone([(_grid(m), s) for m, s in steps], windows), error, reason)
        moment += rng.uniform(0.2, 1.8) * LAUNCH_EVERY
    plan_events = list(events) + workflow_events
    removal = {e.workflow: e.at for e in workflow_events if e.kind == "workflow_remove"}
    failures: Counter[tuple[str, str, str]] = Counter()
    for run, (workflow, steps, error, reason) in changes_of.items():
        gone = removal.get(workflow, float("inf"))
        first_at, first_status = steps[0]
        if first_at >= gone:
            continue
        plan_events.append(
            Event(first_at, "run_add", workflow=workflow, run=run, status=first_status, error=error)
        )
        for moment, status in steps[1:]:
            if moment < gone and moment < end - QUIET_END:
                plan_events.append(Event(moment, "run_update", workflow=workflow, run=run, status=status))
                if status in ("warning", "shutdown", "paused"):
                    failures[workflow, status, reason] += 1
        last = steps[-1][0] + RETIRE_AFTER
        if last < gone and last < end - QUIET_END:
            plan_events.append(Event(last, "run_remove", workflow=workflow, run=run))
    order = {"stop": 0, "workflow_add": 1, "workflow_rename": 2, "run_add": 3, "run_update": 4}
    plan_events.sort(key=lambda e: (e.at, order.get(e.kind, 5)))
    return Plan(hours, plan_events, windows, first, history, failures)
