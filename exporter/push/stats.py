"""What the push receiver counts, per workspace and outcome, ready to be rendered as
``captaindata_push_requests_total{workspace, outcome}`` and
``captaindata_push_last_event_timestamp_seconds{workspace}``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
UNAUTHORIZED: Final = "unauthorized"
INVALID: Final = "invalid"
TOO_LARGE: Final = "too_large"
UNKNOWN_WORKSPACE: Final = "unknown_workspace"
OVERLOADED: Final = "overloaded"
FETCH_FAILED: Final = "fetch_failed"
#: The outcome label's vocabulary, in exposition order (phase 2 moves it beside its family).
OUTCOMES: Final = (
    ACCEPTED,
    DUPLICATE,
    UNAUTHORIZED,
    INVALID,
    TOO_LARGE,
    UNKNOWN_WORKSPACE,
    OVERLOADED,
    FETCH_FAILED,
)
#: The workspace label of a push to a workspace that is not configured (so the label set stays bounded).
UNKNOWN: Final = ""
#: Outcomes of an authenticated, well-formed event: they move the last-event timestamp.
_EVENTS: Final = frozenset({ACCEPTED, DUPLICATE, OVERLOADED})


class PushStats:
    """Counters per (workspace, outcome), every pair present from the start (at 0), and the time of
    each workspace's last event. Only configured workspaces and ``""`` are ever labels."""

    def __init__(self, workspaces: Iterable[str], now: Callable[[], float] = time.time) -> None:
        self._now = now
        names = [*dict.fromkeys(workspaces)]
        self._counts: dict[tuple[str, str], int] = {
            (name, outcome): 0 for name in names for outcome in OUTCOMES
        }
        self._counts[(UNKNOWN, UNKNOWN_WORKSPACE)] = 0
        self._last_event: dict[str, float | None] = dict.fromkeys(names)

    def count(self, workspace: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown push outcome {outcome!r}")
        if workspace not in self._last_event:
            workspace, outcome = UNKNOWN, UNKNOWN_WORKSPACE
        self._counts[(workspace, outcome)] += 1
        if outcome in _EVENTS:
            self._last_event[workspace] = self._now()

    def get(self, workspace: str, outcome: str) -> int:
        return self._counts.get((workspace, outcome), 0)

    def counts(self) -> Mapping[tuple[str, str], int]:
        """(workspace, outcome) → count, a copy, in exposition order."""
        return dict(self._counts)

    def last_event(self, workspace: str) -> float | None:
        """Unix time of the workspace's last authenticated, well-formed event (None: none yet)."""
        return self._last_event.get(workspace)
