"""What a poll publishes: immutable snapshots of a workspace and its workflows.

The poller builds them in a worker thread after each change; the exposition, the landing page and the
status API only ever read them, so a scrape never sees a half-applied poll and never takes a lock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

_versions = itertools.count(1)


def next_version() -> int:
    """A process-wide, ever-increasing number: a new snapshot gets a new one, so caches key on it."""
    return next(_versions)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]  # upper bounds, without +Inf
    cumulative: tuple[int, ...]  # one per bound, then +Inf (len(bounds) + 1)
    total: float
    count: int


@dataclass(frozen=True, slots=True)
class RunView:
    """A run that needs action now (warning, shutdown, paused)."""

    uid: str
    name: str
    status: str  # the guide's status
    api_status: str  # the API's own value, lower-cased (bounded)
    since: float | None  # when it entered that status, as far as the API tells


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    uid: str
    name: str  # current name; every series of the workflow carries it
    version: int  # from next_version(); a changed workflow is a new snapshot with a new version
    runs_by_status: Mapping[str, int]  # every STATUS_LABEL_VALUES key
    runs_by_api_status: Mapping[str, int]  # lower-cased API values (bounded; others under "unknown")
    postponed: int  # v4 runs waiting on a limit (postponed_until in the future); 0 for v3
    oldest_running_start: float | None
    read_at: float | None  # when its runs were last read successfully (time in Running is measured there)
    last_status_time: Mapping[str, float]  # guide status -> latest time a run entered it
    status_changes: Mapping[str, int]  # every STATUS_LABEL_VALUES key
    durations: Mapping[str, HistogramSnapshot]  # every terminal status
    last_success: float | None  # workflow_last_success_timestamp_seconds
    last_error: str  # "" when its last read succeeded; a reason and summary, never raw library text
    needs_action: tuple[RunView, ...]  # most recent first, at most the workspace's needs_action_limit


@dataclass(frozen=True, slots=True)
class ApiStatsSnapshot:
    requests: Mapping[tuple[str, str], int]  # (endpoint, code)
    failures: Mapping[tuple[str, str], int]  # (endpoint, reason)
    rate_limited: Mapping[tuple[str, str], int]  # (endpoint, limit_type)
    durations: Mapping[str, HistogramSnapshot]  # endpoint
    retry_after: float  # what the exporter will actually wait after the latest 429 (0 after a success)


@dataclass(frozen=True, slots=True)
class WorkspaceSnapshot:
    name: str
    api_version: str  # "v3" or "v4"
    version: int
    up: bool
    attempted: bool
    last_success: float | None
    last_poll_duration: float | None
    last_error: str
    poll_errors: Mapping[str, int]  # every POLL_ERROR_REASONS key
    runs_skipped: Mapping[str, int]  # every SKIP_REASONS key
    api: ApiStatsSnapshot
    needs_action_limit: int
    workflows: tuple[WorkflowSnapshot, ...] = field(default=())  # sorted by uid
