"""The run statuses of the status guide: the values of the ``status`` label, and which of them are
terminal or need action. What each means and what to do lives in ``exporter/guide.py``; how each API
version's wire values map onto them, in its adapter (``exporter/api/``)."""

from __future__ import annotations

from typing import Final

RUNNING: Final = "running"
PENDING: Final = "pending"
FINISHED: Final = "finished"
WARNING: Final = "warning"
SHUTDOWN: Final = "shutdown"
STOPPED: Final = "stopped"
PAUSED: Final = "paused"
UNKNOWN: Final = "unknown"

#: The seven statuses the API documents, in the order the status guide presents them (plus pending).
KNOWN_STATUSES: Final[tuple[str, ...]] = (
    RUNNING,
    PENDING,
    FINISHED,
    WARNING,
    SHUTDOWN,
    STOPPED,
    PAUSED,
)
#: Every value of the ``status`` label: the seven statuses and ``unknown``.
STATUS_LABEL_VALUES: Final[tuple[str, ...]] = (*KNOWN_STATUSES, UNKNOWN)

#: Statuses after which a run does not move on by itself; their timestamp is the finish time.
TERMINAL_STATUSES: Final = frozenset({FINISHED, WARNING, SHUTDOWN, STOPPED})
#: Statuses whose runs get a ``captaindata_run_needs_action`` series.
NEEDS_ACTION_STATUSES: Final = frozenset({WARNING, SHUTDOWN, PAUSED})
