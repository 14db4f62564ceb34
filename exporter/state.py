"""Per-workspace memory across polls: the last good view of the runs, status transitions, histograms
and poll health. Only the workspace's poller mutates it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from exporter.apistats import ApiStats
from exporter.client import PAGE_CAP, POLL_ERROR_REASONS, PollResult
from exporter.histogram import RUN_DURATION_BUCKETS, Histogram
from exporter.model import Run, Workflow
from exporter.statuses import NEEDS_ACTION_STATUSES, RUNNING, STATUS_LABEL_VALUES, TERMINAL_STATUSES

#: How long a run that vanished from the API's list is remembered, so that a run missed by one poll
#: (page shifts, page cap) is not counted again when it comes back.
FORGET_VANISHED_RUNS_AFTER = 86400.0


@dataclass(frozen=True)
class NeedsAction:
    workflow: Workflow
    run: Run


@dataclass
class _Seen:
    status: str
    last_seen: float


@dataclass
class WorkspaceState:
    name: str
    needs_action_limit: int = 50
    api: ApiStats = field(default_factory=ApiStats)

    # Poll health.
    up: bool = False
    attempted: bool = False
    last_success: float | None = None
    last_poll_duration: float | None = None
    last_error: str = ""
    poll_errors: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(POLL_ERROR_REASONS, 0)))

    # The last good view.
    workflows: list[Workflow] = field(default_factory=list)
    runs: dict[str, list[Run]] = field(default_factory=dict)
    polled_at: float = 0.0

    # Memory across polls.
    baseline_taken: bool = False
    seen: dict[str, _Seen] = field(default_factory=dict)
    status_changes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (uid, name, status)
    durations: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    last_status_time: dict[tuple[str, str], float] = field(default_factory=dict)  # (workflow uid, status)

    def record_failure(self, reason: str, message: str) -> None:
        """A poll failed: the last good view stays, the reason is counted."""
        self.attempted = True
        self.up = False
        self.last_error = f"{reason}: {message}"
        self.poll_errors[reason] += 1

    def apply(self, result: PollResult, now: float | None = None) -> None:
        """A poll succeeded: take its view, count what changed since the previous one."""
        now = time.time() if now is None else now
        self.attempted = True
        self.up = True
        self.last_success = now
        self.last_error = ""
        if result.truncated:
            self.poll_errors[PAGE_CAP] += 1
            self.last_error = f"{PAGE_CAP}: pagination stopped early for {len(result.truncated)} workflow(s)"
        for workflow in result.workflows:
            self._initialise_series(workflow)
            for run in result.runs.get(workflow.uid, ()):
                self._observe(workflow, run, now)
        self.baseline_taken = True
        self.seen = {
            uid: seen for uid, seen in self.seen.items() if now - seen.last_seen <= FORGET_VANISHED_RUNS_AFTER
        }
        self.workflows = list(result.workflows)
        self.runs = {workflow.uid: list(result.runs.get(workflow.uid, ())) for workflow in result.workflows}
        self.polled_at = now

    def _initialise_series(self, workflow: Workflow) -> None:
        """Counters and histograms exist at 0 from a workflow's first poll, so rate() and increase()
        see their first increment."""
        for status in STATUS_LABEL_VALUES:
            self.status_changes.setdefault((workflow.uid, workflow.name, status), 0)
        for status in sorted(TERMINAL_STATUSES):
            self.durations.setdefault((workflow.uid, workflow.name, status), Histogram(RUN_DURATION_BUCKETS))

    def _observe(self, workflow: Workflow, run: Run, now: float) -> None:
        previous = self.seen.get(run.uid)
        entered = (previous is None and self.baseline_taken) or (
            previous is not None and previous.status != run.status
        )
        self.seen[run.uid] = _Seen(run.status, now)
        if entered:
            key = (workflow.uid, workflow.name, run.status)
            self.status_changes[key] += 1
            if run.status in TERMINAL_STATUSES and run.duration is not None:
                self.durations.setdefault(key, Histogram(RUN_DURATION_BUCKETS)).observe(run.duration)
        moment = run.status_time
        if moment is not None:
            key2 = (workflow.uid, run.status)
            self.last_status_time[key2] = max(moment, self.last_status_time.get(key2, moment))

    # Views derived from the last good poll, used by the exposition and the landing page.

    def status_counts(self, workflow: Workflow) -> Counter[str]:
        return Counter(run.status for run in self.runs.get(workflow.uid, ()))

    def oldest_running_start(self, workflow: Workflow) -> float | None:
        starts = [
            run.start_time
            for run in self.runs.get(workflow.uid, ())
            if run.status == RUNNING and run.start_time is not None
        ]
        return min(starts) if starts else None

    def needs_action(self) -> list[NeedsAction]:
        """Runs in warning, shutdown or paused, most recent first, capped."""
        found = [
            NeedsAction(workflow, run)
            for workflow in self.workflows
            for run in self.runs.get(workflow.uid, ())
            if run.status in NEEDS_ACTION_STATUSES
        ]

        def recency(item: NeedsAction) -> tuple[float, str]:
            run = item.run
            moment = run.finish_time or run.start_time or run.scheduled_time or 0.0
            return (moment, run.uid)

        found.sort(key=recency, reverse=True)
        return found[: self.needs_action_limit]

    def totals_by_status(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for workflow in self.workflows:
            totals.update(self.status_counts(workflow))
        return totals
