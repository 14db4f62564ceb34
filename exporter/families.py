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

from exporter.api.v3.statuses import API_STATUS_VALUES
from exporter.api.v4.statuses import V4_API_STATUS_VALUES
from exporter.statuses import (
    KNOWN_STATUSES,
    NEEDS_ACTION_STATUSES,
    STATUS_LABEL_VALUES,
    TERMINAL_STATUSES,
)

Kind = Literal["gauge", "counter", "histogram"]
Stability = Literal["stable", "experimental"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    name: str  # counters without ``_total``
    type: Kind
    help: str
    unit: str = ""  # OpenMetrics ``# UNIT``: the base-unit suffix of the name
    labels: tuple[str, ...]  # as the docs list them; the exposition writes them sorted
    vocab: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # label -> every value it takes
    stability: Stability = "stable"


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
# count-once (#19): a workflow's runs answering 404; workflows or actions past their cap
NOT_FOUND: Final = "not_found"
OVER_LIMIT: Final = "over_limit"
POLL_ERROR_REASONS: Final[tuple[str, ...]] = (
    RATE_LIMITED,
    UNAUTHORIZED,
    TIMEOUT,
    SERVER_ERROR,
    BAD_RESPONSE,
    NETWORK,
    PAGE_CAP,
    INTERNAL,
    # count-once (#19)
    NOT_FOUND,
    OVER_LIMIT,
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

# Run errors (issue 17): values of the ``reason`` label of captaindata_run_failures_total, in the order of
# exporter/failures.yaml, which says what each means and how a run's error maps onto one.
RUN_FAILURE_REASONS: Final[tuple[str, ...]] = (
    "account_session",
    "account_limit",
    "credits",
    "api_key",
    "input",
    "third_party",
    "internal",
    "other",
)
OTHER_REASON: Final = "other"  # an error no pattern or label knows, or no error at all

#: Values of the ``api_status`` label: v3's, then v4's that v3 has not.
API_STATUS_LABEL_VALUES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys((*API_STATUS_VALUES, *V4_API_STATUS_VALUES))
)
_TERMINAL: Final = tuple(status for status in KNOWN_STATUSES if status in TERMINAL_STATUSES)
_NEEDS_ACTION: Final = tuple(status for status in KNOWN_STATUSES if status in NEEDS_ACTION_STATUSES)

RUNS: Final = Family(
    name="captaindata_runs",
    type="gauge",
    help="Runs the Captain Data API currently lists, by workflow and status.",
    labels=(*WORKFLOW, "status"),
    vocab={"status": STATUS_LABEL_VALUES},
)
RUNS_BY_API_STATUS: Final = Family(
    name="captaindata_runs_by_api_status",
    type="gauge",
    help="Runs the Captain Data API currently lists, by workflow and by the API's own status value.",
    labels=(*WORKFLOW, "api_status"),
    vocab={"api_status": API_STATUS_LABEL_VALUES},
    stability="experimental",
)
RUNS_POSTPONED: Final = Family(
    name="captaindata_runs_postponed",
    type="gauge",
    help="Runs the API lists as postponed by a limit (v4: postponed_until in the future; 0 for v3).",
    labels=WORKFLOW,
    stability="experimental",
)
STATUS_CHANGES: Final = Family(
    name="captaindata_run_status_changes",
    type="counter",
    help="Runs observed entering each status since the exporter started (runs present at its first poll "
    "are the baseline and are not counted).",
    labels=(*WORKFLOW, "status"),
    vocab={"status": STATUS_LABEL_VALUES},
)
# Run errors (issue 17): runs entering warning, shutdown or paused, by cause.
RUN_FAILURES: Final = Family(
    name="captaindata_run_failures",
    type="counter",
    help="Runs observed entering warning, shutdown or paused, by the cause their error gives (counted like "
    "captaindata_run_status_changes_total; a series appears at its first run).",
    labels=(*WORKFLOW, "status", "reason"),
    vocab={"status": _NEEDS_ACTION, "reason": RUN_FAILURE_REASONS},
    stability="experimental",
)
RUN_DURATION: Final = Family(
    name="captaindata_run_duration_seconds",
    type="histogram",
    help="Start-to-finish time of runs observed reaching finished, warning, shutdown or stopped.",
    unit="seconds",
    labels=(*WORKFLOW, "status"),
    vocab={"status": _TERMINAL},
)
MAX_AGE: Final = Family(
    name="captaindata_running_run_max_age_seconds",
    type="gauge",
    help="Time in Running of the workflow's longest-running run, as of the last successful poll "
    "(0 when none).",
    unit="seconds",
    labels=WORKFLOW,
)
OLDEST_START: Final = Family(
    name="captaindata_running_run_oldest_start_timestamp_seconds",
    type="gauge",
    help="Start time of the workflow's longest-running run (absent when no run is running).",
    unit="seconds",
    labels=WORKFLOW,
)
LAST_STATUS: Final = Family(
    name="captaindata_workflow_last_status_timestamp_seconds",
    type="gauge",
    help="Latest time a run of the workflow was seen in each status: finish time for terminal statuses, "
    "start time otherwise.",
    unit="seconds",
    labels=(*WORKFLOW, "status"),
    vocab={"status": STATUS_LABEL_VALUES},
)
WORKFLOW_LAST_SUCCESS: Final = Family(
    name="captaindata_workflow_last_success_timestamp_seconds",
    type="gauge",
    help="When the workflow's runs were last read successfully.",
    unit="seconds",
    labels=WORKFLOW,
    stability="experimental",
)
NEEDS_ACTION: Final = Family(
    name="captaindata_run_needs_action",
    type="gauge",
    help="1 for each run currently in warning, shutdown or paused (most recent first, capped), with its "
    "error (cleaned, secrets redacted, at most 200 characters; empty when the API gave none).",
    labels=(*WORKFLOW, "status", "run_uid", "run_name", "error"),
    vocab={"status": _NEEDS_ACTION},
)
API_REQUESTS: Final = Family(
    name="captaindata_api_requests",
    type="counter",
    help="Requests to the Captain Data API that got an HTTP response.",
    labels=(*WORKSPACE, "endpoint", "code"),
)
API_FAILURES: Final = Family(
    name="captaindata_api_request_failures",
    type="counter",
    help="Requests to the Captain Data API that got no HTTP response, by reason (timeout, network).",
    labels=(*WORKSPACE, "endpoint", "reason"),
    vocab={"reason": FAILURE_REASONS},
)
API_RATE_LIMITED: Final = Family(
    name="captaindata_api_rate_limited",
    type="counter",
    help="429 Too Many Requests answers from the Captain Data API.",
    labels=(*WORKSPACE, "endpoint", "limit_type"),
    vocab={"limit_type": LIMIT_TYPES},
)
API_DURATION: Final = Family(
    name="captaindata_api_request_duration_seconds",
    type="histogram",
    help="Latency of Captain Data API requests.",
    unit="seconds",
    labels=(*WORKSPACE, "endpoint"),
)
RETRY_AFTER: Final = Family(
    name="captaindata_api_retry_after_seconds",
    type="gauge",
    help="Wait asked by the workspace's most recent 429 (0 after a successful request).",
    unit="seconds",
    labels=WORKSPACE,
)
UP: Final = Family(
    name="captaindata_up",
    type="gauge",
    help="1 if the workspace's last poll read the workflow list and every workflow, else 0.",
    labels=WORKSPACE,
)
LAST_POLL_SUCCESS: Final = Family(
    name="captaindata_last_poll_success_timestamp_seconds",
    type="gauge",
    help="When the workspace's last successful poll ended.",
    unit="seconds",
    labels=WORKSPACE,
)
POLL_DURATION: Final = Family(
    name="captaindata_poll_duration_seconds",
    type="gauge",
    help="Duration of the workspace's last poll.",
    unit="seconds",
    labels=WORKSPACE,
)
POLL_ERRORS: Final = Family(
    name="captaindata_poll_errors",
    type="counter",
    help="Polls that failed or stopped paginating early, by reason.",
    labels=(*WORKSPACE, "reason"),
    vocab={"reason": POLL_ERROR_REASONS},
)
RUNS_SKIPPED: Final = Family(
    name="captaindata_runs_skipped",
    type="counter",
    help="Runs the exporter could not understand and skipped, by reason.",
    labels=(*WORKSPACE, "reason"),
    vocab={"reason": SKIP_REASONS},
    stability="experimental",
)
WORKFLOWS: Final = Family(
    name="captaindata_workflows",
    type="gauge",
    help="Workflows tracked in the workspace.",
    labels=WORKSPACE,
)
WEB_CONFIG_RELOADS: Final = Family(
    name="captaindata_web_config_reloads",
    type="counter",
    help="Re-reads of --web.config.file after a change, by result (failure: the previous one is kept).",
    labels=("result",),
    vocab={"result": ("success", "failure")},
    stability="experimental",
)
# push (#16): the push receiver's families, experimental, rendered only when push is on.
#: Values of the ``outcome`` label of captaindata_push_requests_total.
PUSH_ACCEPTED: Final = "accepted"
PUSH_DUPLICATE: Final = "duplicate"
PUSH_UNAUTHORIZED: Final = "unauthorized"
PUSH_INVALID: Final = "invalid"
PUSH_TOO_LARGE: Final = "too_large"
PUSH_UNKNOWN_WORKSPACE: Final = "unknown_workspace"
PUSH_OVERLOADED: Final = "overloaded"
PUSH_FETCH_FAILED: Final = "fetch_failed"
PUSH_OUTCOMES: Final[tuple[str, ...]] = (
    PUSH_ACCEPTED,
    PUSH_DUPLICATE,
    PUSH_UNAUTHORIZED,
    PUSH_INVALID,
    PUSH_TOO_LARGE,
    PUSH_UNKNOWN_WORKSPACE,
    PUSH_OVERLOADED,
    PUSH_FETCH_FAILED,
)
PUSH_REQUESTS: Final = Family(
    name="captaindata_push_requests",
    type="counter",
    help='Pushes (v3 webhooks, v4 callbacks) received, by outcome; workspace is "" for an unknown workspace.',
    labels=(*WORKSPACE, "outcome"),
    vocab={"outcome": PUSH_OUTCOMES},
    stability="experimental",
)
PUSH_APPLIED: Final = Family(
    name="captaindata_push_applied",
    type="counter",
    help="Runs whose status change was applied from the read that followed a push.",
    labels=WORKSPACE,
    stability="experimental",
)
PUSH_MISSED: Final = Family(
    name="captaindata_push_missed",
    type="counter",
    help="Status changes a poll found first that no push announced in the 2 x poll.interval before.",
    labels=WORKSPACE,
    stability="experimental",
)
PUSH_LAST_EVENT: Final = Family(
    name="captaindata_push_last_event_timestamp_seconds",
    type="gauge",
    help="When the workspace's last authenticated, well-formed push arrived.",
    unit="seconds",
    labels=WORKSPACE,
    stability="experimental",
)
PUSH_APPLY: Final = Family(
    name="captaindata_push_apply_seconds",
    type="histogram",
    help="Time from receiving a push to its run's change being visible in /metrics.",
    unit="seconds",
    labels=WORKSPACE,
    stability="experimental",
)
#: The push families: rendered only when push is on.
PUSH_FAMILIES: Final = (PUSH_REQUESTS, PUSH_APPLIED, PUSH_MISSED, PUSH_LAST_EVENT, PUSH_APPLY)

# count-once (#19): saves of the state that failed
STATE_SAVE_ERRORS: Final = Family(
    name="captaindata_state_save_errors",
    type="counter",
    help="Saves of the workspace's state (state.path) that failed; counts since the last good save "
    "would be lost by a restart.",
    labels=WORKSPACE,
    stability="experimental",
)
# Credits and account health (issue 17): the workspace's credits and its integration accounts, read
# beside the runs poll (exporter/api/v3/side.py).
CREDITS: Final = "credits"
ACCOUNTS: Final = "accounts"
#: Values of the ``read`` label: the side reads.
SIDE_READS: Final[tuple[str, ...]] = (CREDITS, ACCOUNTS)
INVALID_VALUE: Final = "invalid_value"  # a negative, non-finite or non-numeric number (the item is kept)
OVER_MAX_ACCOUNTS: Final = "over_max_accounts"  # beyond accounts.max_accounts
#: Values of the ``reason`` label of captaindata_side_read_skipped_total.
SIDE_SKIP_REASONS: Final[tuple[str, ...]] = (INVALID_ITEM, INVALID_UID, INVALID_VALUE, OVER_MAX_ACCOUNTS)
#: Values of the ``reason`` label of captaindata_side_read_errors_total: the poll's, but for the runs
#: poll's own not_found (a 404 of a side read is a bad_response) and over_limit.
SIDE_ERROR_REASONS: Final[tuple[str, ...]] = tuple(
    reason for reason in POLL_ERROR_REASONS if reason not in (NOT_FOUND, OVER_LIMIT)
)
ACCOUNT: Final = (*WORKSPACE, "integration", "account_uid")
CREDITS_REMAINING: Final = Family(
    name="captaindata_workspace_credits_remaining",
    type="gauge",
    help="Credits (tasks) left in the workspace's current period (GET /v3/workspace tasks_left).",
    labels=WORKSPACE,
    stability="experimental",
)
CREDITS_LIMIT: Final = Family(
    name="captaindata_workspace_credits_limit",
    type="gauge",
    help="Credits (tasks) of the workspace's period (tasks_max).",
    labels=WORKSPACE,
    stability="experimental",
)
CREDITS_USED: Final = Family(
    name="captaindata_workspace_credits_used",
    type="gauge",
    help="Credits (tasks) used in the workspace's current period (tasks_used).",
    labels=WORKSPACE,
    stability="experimental",
)
CREDITS_PERIOD_END: Final = Family(
    name="captaindata_workspace_credits_period_end_timestamp_seconds",
    type="gauge",
    help="When the workspace's credit period ends and its credits renew (current_month_end).",
    unit="seconds",
    labels=WORKSPACE,
    stability="experimental",
)
WORKSPACE_INFO: Final = Family(
    name="captaindata_workspace_info",
    type="gauge",
    help="The workspace's plan (plan_name); always 1.",
    labels=(*WORKSPACE, "plan"),
    stability="experimental",
)
ACCOUNT_VALID: Final = Family(
    name="captaindata_account_valid",
    type="gauge",
    help="1 if the integration account's session (cookies) is valid, 0 if not (is_valid).",
    labels=(*ACCOUNT, "account"),
    stability="experimental",
)
ACCOUNT_LIMIT_USED: Final = Family(
    name="captaindata_account_limit_used",
    type="gauge",
    help="Items the account used of each of its limits in the limit's current time range (item_scraped).",
    labels=(*ACCOUNT, "limit"),
    stability="experimental",
)
ACCOUNT_LIMIT: Final = Family(
    name="captaindata_account_limit",
    type="gauge",
    help="Each limit of the account: items allowed per time range (limit_value).",
    labels=(*ACCOUNT, "limit"),
    stability="experimental",
)
ACCOUNT_LIMIT_RESET: Final = Family(
    name="captaindata_account_limit_reset_timestamp_seconds",
    type="gauge",
    help="When the current time range of each of the account's limits ends (end_time_range).",
    unit="seconds",
    labels=(*ACCOUNT, "limit"),
    stability="experimental",
)
ACCOUNT_INPUTS_QUEUED: Final = Family(
    name="captaindata_account_inputs_queued",
    type="gauge",
    help="Inputs queued on the account for the next seven days (nbr_inputs_queued_next_seven_days, the "
    "largest over its limits).",
    labels=ACCOUNT,
    stability="experimental",
)
SIDE_READ_ERRORS: Final = Family(
    name="captaindata_side_read_errors",
    type="counter",
    help="Credits and accounts reads that failed, by reason; the last values read are kept.",
    labels=(*WORKSPACE, "read", "reason"),
    vocab={"read": SIDE_READS, "reason": SIDE_ERROR_REASONS},
    stability="experimental",
)
SIDE_READ_SKIPPED: Final = Family(
    name="captaindata_side_read_skipped",
    type="counter",
    help="Accounts, limits and credit fields the exporter could not understand or did not keep, by reason.",
    labels=(*WORKSPACE, "read", "reason"),
    vocab={"read": SIDE_READS, "reason": SIDE_SKIP_REASONS},
    stability="experimental",
)

BUILD_INFO: Final = Family(
    name="captaindata_exporter_build_info",
    type="gauge",
    help="Version of the exporter and of Python; always 1.",
    labels=("version", "python_version"),
)

# Sharding (exporter/sharding.py, docs/deployment.md).
SHARD_INFO: Final = Family(
    name="captaindata_exporter_shard_info",
    type="gauge",
    help="This exporter's shard (0-based) and the number of shards; always 1.",
    labels=("shard", "total_shards"),
    stability="experimental",
)
#: The label that tells apart the shards' own series of a workspace split by workflow.
SHARD: Final = "shard"
#: The workspace-level families whose value is each shard's own (its requests, its polls): for a
#: workspace split by workflow, every shard exports them with its ``shard`` label, and their sum (up:
#: min) over the shards is what one exporter would export. captaindata_workflows, the one workspace-
#: level value every shard knows whole, is exported by the workspace's owner shard only.
PER_SHARD: Final[tuple[Family, ...]] = (
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
    STATE_SAVE_ERRORS,
)

#: Every family, in the order of the exposition.
FAMILIES: Final[tuple[Family, ...]] = (
    RUNS,
    RUNS_BY_API_STATUS,
    RUNS_POSTPONED,
    STATUS_CHANGES,
    # Run errors (issue 17)
    RUN_FAILURES,
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
    # push (#16)
    PUSH_REQUESTS,
    PUSH_APPLIED,
    PUSH_MISSED,
    PUSH_LAST_EVENT,
    PUSH_APPLY,
    # count-once (#19)
    STATE_SAVE_ERRORS,
    # Credits and account health (issue 17).
    CREDITS_REMAINING,
    CREDITS_LIMIT,
    CREDITS_USED,
    CREDITS_PERIOD_END,
    WORKSPACE_INFO,
    ACCOUNT_VALID,
    ACCOUNT_LIMIT_USED,
    ACCOUNT_LIMIT,
    ACCOUNT_LIMIT_RESET,
    ACCOUNT_INPUTS_QUEUED,
    SIDE_READ_ERRORS,
    SIDE_READ_SKIPPED,
    BUILD_INFO,
    WEB_CONFIG_RELOADS,
    SHARD_INFO,
)
