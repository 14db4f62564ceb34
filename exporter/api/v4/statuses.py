"""How v4's wire statuses map onto the status guide, and the v4 values of the ``api_status`` label.

Captain Data does not document how its ten UPPERCASE statuses relate to the status guide; this table
is inferred (see docs/metrics.md) and is the only place that says it.
"""

from __future__ import annotations

from typing import Final

from exporter.statuses import FINISHED, PAUSED, PENDING, RUNNING, SHUTDOWN, STOPPED, UNKNOWN, WARNING

#: v4 status -> the guide's status. ``FAILED`` is ``shutdown`` unless its ``last_error`` points at the
#: run's input or parameters (V4_INPUT_ERROR_PATTERNS), then ``warning``. Anything else: ``unknown``.
V4_STATUS_MAP: Final[dict[str, str]] = {
    "RUNNING": RUNNING,
    "CREATED": PENDING,
    "QUEUED": PENDING,
    "SCHEDULED": PENDING,
    "SUCCEEDED": FINISHED,
    "PARTIAL_SUCCEEDED": FINISHED,
    "INVALID": WARNING,
    "FAILED": SHUTDOWN,
    "STOPPED": STOPPED,
    "BLOCKED": PAUSED,
}
V4_FAILED_ON_INPUT: Final = WARNING
#: (field of ``last_error``, regex searched case-insensitively): any match means the run failed on its
#: input or parameters. ``scope`` is ``error_scope`` (input | param | auth | server) when present.
V4_INPUT_ERROR_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    ("label", r"input|param|validation"),
    ("scope", r"^(input|param|params|parameters?)$"),
    ("error_scope", r"^(input|param|params|parameters?)$"),
    ("message", r"\b(invalid|missing|malformed|wrong) (input|parameters?)\b"),
)
#: Every value of ``api_status`` for v4 workspaces: the ten statuses lower-cased, and ``unknown``.
V4_API_STATUS_VALUES: Final[tuple[str, ...]] = (*(s.lower() for s in V4_STATUS_MAP), UNKNOWN)
