"""Snapshots of today's ``WorkspaceState``, until the state builds its own (the engine replaces this)."""

from __future__ import annotations

from collections import Counter

from exporter.apistats import ApiStats
from exporter.client import POLL_ERROR_REASONS
from exporter.histogram import Histogram
from exporter.snapshot import (
    ApiStatsSnapshot,
    HistogramSnapshot,
    RunView,
    WorkflowSnapshot,
    WorkspaceSnapshot,
    next_version,
)
from exporter.state import WorkspaceState
from exporter.statuses import STATUS_LABEL_VALUES, TERMINAL_STATUSES

# The reasons of captaindata_runs_skipped_total (contract §1; exporter.model will define them).
SKIP_REASONS = ("invalid_item", "invalid_uid", "invalid_timestamp", "duplicate_uid")
# The limit_type of a 429 whose headers said nothing (contract §1, ratelimit.rate_limit_type).
NO_LIMIT_TYPE = "none"


def histogram_snapshot(histogram: Histogram) -> HistogramSnapshot:
    return HistogramSnapshot(
        bounds=histogram.bounds,
        cumulative=tuple(count for _, count in histogram.cumulative()),
        total=histogram.total,
        count=histogram.count,
    )


def api_snapshot(api: ApiStats) -> ApiStatsSnapshot:
    return ApiStatsSnapshot(
        requests=dict(api.requests),
        failures=dict(api.failures),
        rate_limited={(endpoint, NO_LIMIT_TYPE): count for endpoint, count in api.rate_limited.items()},
        durations={endpoint: histogram_snapshot(h) for endpoint, h in api.durations.items()},
        retry_after=api.retry_after,
    )


def empty_snapshot(name: str) -> WorkspaceSnapshot:
    """A workspace before its first poll ends."""
    return WorkspaceSnapshot(
        name=name,
        api_version="v3",
        version=next_version(),
        up=False,
        attempted=False,
        last_success=None,
        last_poll_duration=None,
        last_error="",
        poll_errors=dict.fromkeys(POLL_ERROR_REASONS, 0),
        runs_skipped=dict.fromkeys(SKIP_REASONS, 0),
        api=api_snapshot(ApiStats()),
        needs_action_limit=0,
    )


def snapshot_of(state: WorkspaceState) -> WorkspaceSnapshot:
    needing: dict[str, list[RunView]] = {}
    for item in state.needs_action():
        run = item.run
        view = RunView(run.uid, run.name, run.status, run.status, run.finish_time or run.start_time)
        needing.setdefault(item.workflow.uid, []).append(view)
    workflows = []
    for workflow in sorted(state.workflows, key=lambda w: w.uid):
        runs = state.runs.get(workflow.uid, [])
        counts = Counter(run.status for run in runs)
        key = (workflow.uid, workflow.name)
        workflows.append(
            WorkflowSnapshot(
                uid=workflow.uid,
                name=workflow.name,
                version=next_version(),
                runs_by_status={status: counts.get(status, 0) for status in STATUS_LABEL_VALUES},
                runs_by_api_status=dict(sorted(counts.items())),
                postponed=0,
                oldest_running_start=state.oldest_running_start(workflow),
                read_at=state.polled_at,
                last_status_time={
                    status: state.last_status_time[(workflow.uid, status)]
                    for status in STATUS_LABEL_VALUES
                    if (workflow.uid, status) in state.last_status_time
                },
                status_changes={
                    status: state.status_changes[(*key, status)] for status in STATUS_LABEL_VALUES
                },
                durations={
                    status: histogram_snapshot(state.durations[(*key, status)])
                    for status in sorted(TERMINAL_STATUSES)
                    if (*key, status) in state.durations
                },
                last_success=state.last_success,
                last_error="",
                needs_action=tuple(needing.get(workflow.uid, ())),
            )
        )
    return WorkspaceSnapshot(
        name=state.name,
        api_version="v3",
        version=next_version(),
        up=state.up,
        attempted=state.attempted,
        last_success=state.last_success,
        last_poll_duration=state.last_poll_duration,
        last_error=state.last_error,
        poll_errors=dict(state.poll_errors),
        runs_skipped=dict.fromkeys(SKIP_REASONS, 0),
        api=api_snapshot(state.api),
        needs_action_limit=state.needs_action_limit,
        workflows=tuple(workflows),
    )
