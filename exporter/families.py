"""The metric table: every family /metrics exposes, declared once, in exposition order.

Each ``Family`` says its name, type, help, unit, label names, the bounded vocabulary of each label that
has one, and its stability (docs/metrics.md). The renderer takes names, order, headers and label order
from here; the emitting modules take their label values from here; tests/test_metrics_doc.py checks
docs/metrics.md, tests/stable_metrics.yaml and the real exposition against it.

Adding a metric: a ``Family`` here (in ``FAMILIES`` where it should appear), the code that computes it
(a snapshot field with a default, one line in render.py), its row in docs/metrics.md, and, if stable,
its pin in tests/stable_metrics.yaml with a CHANGELOG.md line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from exporter.statuses import (
    API_STATUS_VALUES,
    KNOWN_STATUSES,
    NEEDS_ACTION_STATUSES,
    STATUS_LABEL_VALUES,
    TERMINAL_STATUSES,
    V4_API_STATUS_VALUES,
)

Kind = Literal["gauge", "counter", "histogram"]
Stability = Literal["stable", "experimental"]


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # counters without ``_total``
    type: Kind
    help: str
    labels: tuple[str, ...]  # as the docs list them; the exposition writes them sorted
    vocab: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # label -> every value it takes
    stability: Stability = "stable"
    unit: str = ""  # OpenMetrics ``# UNIT``: the base-unit suffix of the name


WORKSPACE: Final = ("workspace",)
WORKFLOW: Final = (*WORKSPACE, "workflow_uid", "workflow")

# Values of the ``reason`` label of captaindata_poll_errors_total.
RATE_LIMITED: Final = "rate_limited"
UNAUTHORIZED: Final = "unauthorized"
TIMEOUT: Final = "timeout"
SERVER_ERROR: Final = "server_error"
BAD_RESPONSE: Final = "bad_response"
NETWORK: Final = "network"
PAGE_CAP: Final = "page_cap"
INTERNAL: Final = "internal"
POLL_ERROR_REASONS: Final[tuple[str, ...]] = (
    RATE_LIMITED,
    UNAUTHORIZED,
    TIMEOUT,
    SERVER_ERROR,
    BAD_RESPONSE,
    NETWORK,
    PAGE_CAP,
    INTERNAL,
)

# Values of the ``reason`` label of captaindata_runs_skipped_total.
INVALID_ITEM: Final = "invalid_item"
INVALID_UID: Final = "invalid_uid"
INVALID_TIMESTAMP: Final = "invalid_timestamp"
DUPLICATE_UID: Final = "duplicate_uid"  # counted by the state (a uid listed by two workflows)
SKIP_REASONS: Final[tuple[str, ...]] = (INVALID_ITEM, INVALID_UID, INVALID_TIMESTAMP, DUPLICATE_UID)

#: Values of the ``reason`` label of captaindata_api_request_failures_total.
FAILURE_REASONS: Final[tuple[str, ...]] = (TIMEOUT, NETWORK)
#: Values of the ``limit_type`` label of captaindata_api_rate_limited_total.
LIMIT_TYPES: Final[tuple[str, ...]] = ("second", "minute", "hour", "day", "month", "other", "none")

#: Values of the ``api_status`` label: v3's, then v4's that v3 has not.
API_STATUS_LABEL_VALUES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys((*API_STATUS_VALUES, *V4_API_STATUS_VALUES))
)
_TERMINAL: Final = tuple(status for status in KNOWN_STATUSES if status in TERMINAL_STATUSES)
_NEEDS_ACTION: Final = tuple(status for status in KNOWN_STATUSES if status in NEEDS_ACTION_STATUSES)

RUNS: Final = Family(
    "captaindata_runs",
    "gauge",
    "Runs the Captain Data API currently lists, by workflow and status.",
    (*WORKFLOW, "status"),
    {"status": STATUS_LABEL_VALUES},
)
RUNS_BY_API_STATUS: Final = Family(
    "captaindata_runs_by_api_status",
    "gauge",
    "Runs the Captain Data API currently lists, by workflow and by the API's own status value.",
    (*WORKFLOW, "api_status"),
    {"api_status": API_STATUS_LABEL_VALUES},
    stability="experimental",
)
RUNS_POSTPONED: Final = Family(
    "captaindata_runs_postponed",
    "gauge",
    "Runs the API lists as postponed by a limit (v4: postponed_until in the future; 0 for v3).",
    WORKFLOW,
    stability="experimental",
)
STATUS_CHANGES: Final = Family(
    "captaindata_run_status_changes",
    "counter",
    "Runs observed entering each status since the exporter started (runs present at its first poll "
    "are the baseline and are not counted).",
    (*WORKFLOW, "status"),
    {"status": STATUS_LABEL_VALUES},
)
RUN_DURATION: Final = Family(
    "captaindata_run_duration_seconds",
    "histogram",
    "Start-to-finish time of runs observed reaching finished, warning, shutdown or stopped.",
    (*WORKFLOW, "status"),
    {"status": _TERMINAL},
    unit="seconds",
)
MAX_AGE: Final = Family(
    "captaindata_running_run_max_age_seconds",
    "gauge",
    "Time in Running of the workflow's longest-running run, as of the last successful poll (0 when none).",
    WORKFLOW,
    unit="seconds",
)
OLDEST_START: Final = Family(
    "captaindata_running_run_oldest_start_timestamp_seconds",
    "gauge",
    "Start time of the workflow's longest-running run (absent when no run is running).",
    WORKFLOW,
    unit="seconds",
)
LAST_STATUS: Final = Family(
    "captaindata_workflow_last_status_timestamp_seconds",
    "gauge",
    "Latest time a run of the workflow was seen in each status: finish time for terminal statuses, "
    "start time otherwise.",
    (*WORKFLOW, "status"),
    {"status": STATUS_LABEL_VALUES},
    unit="seconds",
)
WORKFLOW_LAST_SUCCESS: Final = Family(
    "captaindata_workflow_last_success_timestamp_seconds",
    "gauge",
    "When the workflow's runs were last read successfully.",
    WORKFLOW,
    stability="experimental",
    unit="seconds",
)
NEEDS_ACTION: Final = Family(
    "captaindata_run_needs_action",
    "gauge",
    "1 for each run currently in warning, shutdown or paused (most recent first, capped).",
    (*WORKFLOW, "status", "run_uid", "run_name"),
    {"status": _NEEDS_ACTION},
)
API_REQUESTS: Final = Family(
    "captaindata_api_requests",
    "counter",
    "Requests to the Captain Data API that got an HTTP response.",
    (*WORKSPACE, "endpoint", "code"),
)
API_FAILURES: Final = Family(
    "captaindata_api_request_failures",
    "counter",
    "Requests to the Captain Data API that got no HTTP response, by reason (timeout, network).",
    (*WORKSPACE, "endpoint", "reason"),
    {"reason": FAILURE_REASONS},
)
API_RATE_LIMITED: Final = Family(
    "captaindata_api_rate_limited",
    "counter",
    "429 Too Many Requests answers from the Captain Data API.",
    (*WORKSPACE, "endpoint", "limit_type"),
    {"limit_type": LIMIT_TYPES},
)
API_DURATION: Final = Family(
    "captaindata_api_request_duration_seconds",
    "histogram",
    "Latency of Captain Data API requests.",
    (*WORKSPACE, "endpoint"),
    unit="seconds",
)
RETRY_AFTER: Final = Family(
    "captaindata_api_retry_after_seconds",
    "gauge",
    "Wait asked by the workspace's most recent 429 (0 after a successful request).",
    WORKSPACE,
    unit="seconds",
)
UP: Final = Family(
    "captaindata_up",
    "gauge",
    "1 if the workspace's last poll read the workflow list and every workflow, else 0.",
    WORKSPACE,
)
LAST_POLL_SUCCESS: Final = Family(
    "captaindata_last_poll_success_timestamp_seconds",
    "gauge",
    "When the workspace's last successful poll ended.",
    WORKSPACE,
    unit="seconds",
)
POLL_DURATION: Final = Family(
    "captaindata_poll_duration_seconds",
    "gauge",
    "Duration of the workspace's last poll.",
    WORKSPACE,
    unit="seconds",
)
POLL_ERRORS: Final = Family(
    "captaindata_poll_errors",
    "counter",
    "Polls that failed or stopped paginating early, by reason.",
    (*WORKSPACE, "reason"),
    {"reason": POLL_ERROR_REASONS},
)
RUNS_SKIPPED: Final = Family(
    "captaindata_runs_skipped",
    "counter",
    "Runs the exporter could not understand and skipped, by reason.",
    (*WORKSPACE, "reason"),
    {"reason": SKIP_REASONS},
    stability="experimental",
)
WORKFLOWS: Final = Family(
    "captaindata_workflows",
    "gauge",
    "Workflows tracked in the workspace.",
    WORKSPACE,
)
BUILD_INFO: Final = Family(
    "captaindata_exporter_build_info",
    "gauge",
    "Version of the exporter and of Python; always 1.",
    ("version", "python_version"),
)

#: Every family, in the order of the exposition.
FAMILIES: Final[tuple[Family, ...]] = (
    RUNS,
    RUNS_BY_API_STATUS,
    RUNS_POSTPONED,
    STATUS_CHANGES,
    RUN_DURATION,
    MAX_AGE,
    OLDEST_START,
    LAST_STATUS,
    WORKFLOW_LAST_SUCCESS,
    NEEDS_ACTION,
    API_REQUESTS,
    API_FAILURES,
    API_RATE_LIMITED,
    API_DURATION,
    RETRY_AFTER,
    UP,
    LAST_POLL_SUCCESS,
    POLL_DURATION,
    POLL_ERRORS,
    RUNS_SKIPPED,
    WORKFLOWS,
    BUILD_INFO,
)
