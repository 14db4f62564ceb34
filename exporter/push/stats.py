"""What push counts, per workspace, ready to be rendered as the ``captaindata_push_*`` families
(exporter/families.py): requests by outcome, runs applied, changes missed, the last event's time and
the apply latency. The outcome vocabulary lives beside its family."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from exporter.families import (
    PUSH_ACCEPTED,
    PUSH_DUPLICATE,
    PUSH_FETCH_FAILED,
    PUSH_INVALID,
    PUSH_OUTCOMES,
    PUSH_OVERLOADED,
    PUSH_TOO_LARGE,
    PUSH_UNAUTHORIZED,
    PUSH_UNKNOWN_WORKSPACE,
)
from exporter.histogram import PUSH_APPLY_BUCKETS, Histogram
from exporter.snapshot import HistogramSnapshot

ACCEPTED: Final = PUSH_ACCEPTED
DUPLICATE: Final = PUSH_DUPLICATE
UNAUTHORIZED: Final = PUSH_UNAUTHORIZED
INVALID: Final = PUSH_INVALID
TOO_LARGE: Final = PUSH_TOO_LARGE
UNKNOWN_WORKSPACE: Final = PUSH_UNKNOWN_WORKSPACE
OVERLOADED: Final = PUSH_OVERLOADED
FETCH_FAILED: Final = PUSH_FETCH_FAILED
OUTCOMES: Final = PUSH_OUTCOMES
#: The workspace label of a push to a workspace that is not configured (so the label set stays bounded).
UNKNOWN: Final = ""
#: Outcomes of an authenticated, well-formed event: they move the last-event timestamp.
_EVENTS: Final = frozenset({ACCEPTED, DUPLICATE, OVERLOADED})


@dataclass(frozen=True)
class PushFigures:
    """A copy of the stats, for one render or one page."""

    requests: Mapping[tuple[str, str], int]  # (workspace, outcome), in exposition order
    applied: Mapping[str, int]
    missed: Mapping[str, int]
    last_event: Mapping[str, float | None]
    apply_seconds: Mapping[str, HistogramSnapshot]
    enabled: Mapping[str, bool]  # whether pushes can reach the workspace (a token, or basic auth)


class PushStats:
    """Counters per (workspace, outcome), every pair present from the start (at 0), and per workspace
    the runs applied, the changes missed, the last event's time and the apply latency. Only configured
    workspaces and ``""`` are ever labels. ``on_change`` (event loop) is told after each count, so
    /metrics shows it."""

    def __init__(self, workspaces: Iterable[str], now: Callable[[], float] = time.time) -> None:
        self._now = now
        names = [*dict.fromkeys(workspaces)]
        self._counts: dict[tuple[str, str], int] = {
            (name, outcome): 0 for name in names for outcome in OUTCOMES
        }
        self._counts[(UNKNOWN, UNKNOWN_WORKSPACE)] = 0
        self._last_event: dict[str, float | None] = dict.fromkeys(names)
        self._applied = dict.fromkeys(names, 0)
        self._missed = dict.fromkeys(names, 0)
        self._apply = {name: Histogram(PUSH_APPLY_BUCKETS) for name in names}
        self._lock = threading.Lock()  # missed pushes are counted from the workspace's thread
        self.on_change: Callable[[], None] | None = None
        self.reachable: frozenset[str] = frozenset(names)  # set by exporter/push/apply.py

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def count(self, workspace: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown push outcome {outcome!r}")
        if workspace not in self._last_event:
            workspace, outcome = UNKNOWN, UNKNOWN_WORKSPACE
        with self._lock:
            self._counts[(workspace, outcome)] += 1
            if outcome in _EVENTS:
                self._last_event[workspace] = self._now()
        self._changed()

    def applied(self, workspace: str, seconds: float) -> None:
        """A run's change read after a push was published ``seconds`` after the push arrived."""
        with self._lock:
            self._applied[workspace] += 1
            self._apply[workspace].observe(seconds)
        self._changed()

    def missed(self, workspace: str) -> None:
        """A poll found a change no push announced (any thread; the poll publishes it)."""
        with self._lock:
            self._missed[workspace] += 1

    def get(self, workspace: str, outcome: str) -> int:
        return self._counts.get((workspace, outcome), 0)

    def applied_count(self, workspace: str) -> int:
        return self._applied.get(workspace, 0)

    def missed_count(self, workspace: str) -> int:
        return self._missed.get(workspace, 0)

    def counts(self) -> Mapping[tuple[str, str], int]:
        """(workspace, outcome) → count, a copy, in exposition order."""
        with self._lock:
            return dict(self._counts)

    def last_event(self, workspace: str) -> float | None:
        """Unix time of the workspace's last authenticated, well-formed event (None: none yet)."""
        return self._last_event.get(workspace)

    def figures(self) -> PushFigures:
        with self._lock:
            return PushFigures(
                requests=dict(self._counts),
                applied=dict(self._applied),
                missed=dict(self._missed),
                last_event=dict(self._last_event),
                apply_seconds={name: h.snapshot() for name, h in self._apply.items()},
                enabled={name: name in self.reachable for name in self._applied},
            )
