"""Snapshots built directly (they are plain data), with every kind of series in them. Label values are
ones the exporter really emits (families.py and statuses.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from exporter.families import (
    INVALID_UID,
    INVALID_VALUE,
    POLL_ERROR_REASONS,
    SIDE_ERROR_REASONS,
    SIDE_READS,
    SKIP_REASONS,
    TIMEOUT,
)
from exporter.health import Account, AccountLimit, Credits
from exporter.histogram import REQUEST_DURATION_BUCKETS, RUN_DURATION_BUCKETS
from exporter.snapshot import (
    ApiStatsSnapshot,
    HistogramSnapshot,
    RunView,
    WorkflowSnapshot,
    WorkspaceSnapshot,
)
from exporter.statuses import FINISHED, PAUSED, STATUS_LABEL_VALUES, TERMINAL_STATUSES, UNKNOWN, WARNING

NOW = 1_764_378_000.25


def histogram(bounds: tuple[float, ...], observations: int, total: float) -> HistogramSnapshot:
    cumulative = (*(min(observations, index) for index in range(len(bounds))), observations)
    return HistogramSnapshot(bounds, cumulative, total, observations)


def workflow(uid: str, name: str, runs: int = 7, **changes: Any) -> WorkflowSnapshot:
    by_status = {
        status: runs // len(STATUS_LABEL_VALUES) + (i < runs % 8)
        for i, status in enumerate(STATUS_LABEL_VALUES)
    }
    made = WorkflowSnapshot(
        uid=uid,
        name=name,
        runs_by_status=by_status,
        runs_by_api_status={FINISHED: runs - 1, UNKNOWN: 1},
        oldest_running_start=NOW - 3600,
        read_at=NOW,
        last_status_time={status: NOW - 60 for status in ("running", "finished", "warning")},
        status_changes={status: i * 3 for i, status in enumerate(STATUS_LABEL_VALUES)},
        durations={
            status: histogram(RUN_DURATION_BUCKETS, 4, 12345.5) for status in sorted(TERMINAL_STATUSES)
        },
        last_success=NOW - 5,
        needs_action=(
            RunView(
                f"{uid}-run-1", f"{name} run", WARNING, WARNING, NOW - 100, f"Invalid input: {name}", "input"
            ),
            RunView(f"{uid}-run-2", "paused run", PAUSED, PAUSED, None),
        ),
        failures={(PAUSED, "account_session"): 2, (WARNING, "input"): 1},
    )
    return dataclasses.replace(made, **changes)


def workspace(name: str, workflows: tuple[WorkflowSnapshot, ...], **changes: Any) -> WorkspaceSnapshot:
    endpoints = ("/v3/workflows", "/v3/workflows/{workflow_uid}/jobs")
    made = WorkspaceSnapshot(
        name=name,
        up=True,
        attempted=True,
        last_success=NOW,
        last_poll_duration=1.5,
        poll_errors={**dict.fromkeys(POLL_ERROR_REASONS, 0), TIMEOUT: 2},
        runs_skipped={**dict.fromkeys(SKIP_REASONS, 0), INVALID_UID: 3},
        api=ApiStatsSnapshot(
            requests={(endpoint, "200"): 12 for endpoint in endpoints},
            failures={(endpoints[1], TIMEOUT): 1},
            rate_limited={(endpoint, "none"): 0 for endpoint in endpoints} | {(endpoints[1], "minute"): 2},
            durations={endpoint: histogram(REQUEST_DURATION_BUCKETS, 12, 3.25) for endpoint in endpoints},
        ),
        workflows=workflows,
        # Credits and account health (issue 17).
        credits=Credits(900.0, 1000.0, 100.0, NOW - 86400, NOW + 29 * 86400, "Growth"),
        accounts=(
            Account(
                "linkedin",
                "acct-1",
                "Ann",
                True,
                (AccountLimit("connection requests", 92.0, 100.0, NOW + 3600),),
                4.0,
            ),
        ),
        side_errors={(read, reason): 0 for read in SIDE_READS for reason in SIDE_ERROR_REASONS}
        | {("accounts", TIMEOUT): 1},
        side_skipped={(read, INVALID_VALUE): 0 for read in SIDE_READS},
    )
    return dataclasses.replace(made, **changes)


def big_workspace(name: str, workflows: int, name_length: int = 40) -> WorkspaceSnapshot:
    flows = tuple(workflow(f"wf-{i:05d}", f"Workflow {i} ".ljust(name_length, "x")) for i in range(workflows))
    return workspace(name, flows)
