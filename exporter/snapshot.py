"""What a poll publishes: immutable snapshots of a workspace and its workflows.

The poller builds them in a worker thread after each change; the exposition, the landing page and the
status API only ever read them, so a scrape never sees a half-applied poll and never takes a lock.
Every field past the identity has a default (no series, never read), so a new field needs one too and
code that builds snapshots by keyword keeps working.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.config import MetricsConfig
from exporter.families import POLL_ERROR_REASONS, SKIP_REASONS
from exporter.health import Account, Credits, Forecast

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
    since: float | None = None  # when it entered that status, as far as the API tells
    # run errors: its error (cleaned, redacted, bounded; "" when none) and its reason ("" when none)
    error: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    uid: str
    name: str  # current name; every series of the workflow carries it
    # from next_version(); a changed workflow is a new snapshot with a new version
    version: int = field(default_factory=next_version)
    runs_by_status: Mapping[str, int] = field(default_factory=dict)  # every STATUS_LABEL_VALUES key
    # lower-cased API values (bounded; others under "unknown")
    runs_by_api_status: Mapping[str, int] = field(default_factory=dict)
    postponed: int = 0  # v4 runs waiting on a limit (postponed_until in the future); 0 for v3
    oldest_running_start: float | None = None
    # when its runs were last read successfully (time in Running is measured there)
    read_at: float | None = None
    last_status_time: Mapping[str, float] = field(default_factory=dict)  # guide status -> latest entry time
    status_changes: Mapping[str, int] = field(default_factory=dict)  # every STATUS_LABEL_VALUES key
    durations: Mapping[str, HistogramSnapshot] = field(default_factory=dict)  # every terminal status
    last_success: float | None = None  # workflow_last_success_timestamp_seconds
    last_error: str = ""  # "" when its last read succeeded; a reason and summary, never raw library text
    needs_action: tuple[RunView, ...] = ()  # most recent first, at most the workspace's needs_action_limit
    # run errors: (status, reason) -> runs observed entering a needs-action status for that reason
    failures: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiStatsSnapshot:
    requests: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, code)
    failures: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, reason)
    rate_limited: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, limit_type)
    durations: Mapping[str, HistogramSnapshot] = field(default_factory=dict)  # endpoint
    retry_after: float = 0.0  # what the exporter will actually wait after the latest 429 (0 after a success)


@dataclass(frozen=True, slots=True)
class WorkspaceSnapshot:
    name: str
    api_version: str = "v3"  # "v3" or "v4"
    version: int = field(default_factory=next_version)
    up: bool = False
    attempted: bool = False
    last_success: float | None = None
    last_poll_duration: float | None = None
    last_error: str = ""
    poll_errors: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(POLL_ERROR_REASONS, 0))
    runs_skipped: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    state_save_errors: int = 0
    api: ApiStatsSnapshot = field(default_factory=ApiStatsSnapshot)
    needs_action_limit: int = MetricsConfig.needs_action_limit
    workflows: tuple[WorkflowSnapshot, ...] = field(default=())  # sorted by uid
    # A workspace split by workflow: the workflows its last list tracked in all (every shard's); None
    # until listed, and for a workspace polled whole (then it tracks them all: len(workflows)).
    workflows_tracked: int | None = None
    # Credits and account health (issue 17): the side reads' last values (kept when a read fails).
    credits: Credits | None = None  # None: credits are off or not read yet
    forecast: Forecast | None = None  # None until two credit reads
    accounts: tuple[Account, ...] = ()  # by integration, then as listed; at most accounts.max_accounts
    side_errors: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (read, reason)
    side_skipped: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (read, reason)
    side_last_error: Mapping[str, str] = field(default_factory=dict)  # read -> "" or reason: message
