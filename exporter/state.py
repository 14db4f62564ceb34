"""Per-workspace memory across polls, kept per workflow: the runs last read, status transitions,
histograms and health. Mutated only through the sink (one call at a time, in a worker thread);
every mutation returns a fresh immutable snapshot for the exposition and the pages."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence

from exporter.api import adapter
from exporter.apistats import ApiStats
from exporter.families import (
    ACCOUNTS,
    CREDITS,
    DUPLICATE_UID,
    INVALID_VALUE,
    PAGE_CAP,
    POLL_ERROR_REASONS,
    SIDE_SKIP_REASONS,
    SKIP_REASONS,
)
from exporter.health import Account, CreditHistory, Credits
from exporter.histogram import RUN_DURATION_BUCKETS, Histogram
from exporter.needs_action import newest_first
from exporter.parsing import Parsed, Run, Workflow
from exporter.snapshot import RunView, WorkflowSnapshot, WorkspaceSnapshot, next_version
from exporter.statuses import NEEDS_ACTION_STATUSES, RUNNING, STATUS_LABEL_VALUES, TERMINAL_STATUSES

#: How long a run that vanished from its workflow's list is remembered, so that a run missed by one
#: read (page shifts, page cap) is not counted again when it comes back.
FORGET_VANISHED_RUNS_AFTER = 86400.0
_TERMINAL_ORDER = tuple(sorted(TERMINAL_STATUSES))
_NEVER = float("-inf")


class WorkflowState:
    """One tracked workflow. No per-run objects beyond the parsed Run itself."""

    __slots__ = (
        "baseline",
        "durations",
        "last_attempt",
        "last_error",
        "last_status_time",
        "last_success",
        "name",
        "read",
        "read_at",
        "runs",
        "snapshot",
        "status_changes",
        "uid",
        "vanished",
    )

    def __init__(self, uid: str, name: str, baseline: bool) -> None:
        self.uid = uid
        self.name = name
        self.baseline = baseline  # runs present at its first read are not counted
        self.read = False  # its runs were read successfully at least once
        self.runs: dict[str, Run] = {}  # the current listing
        self.vanished: dict[str, tuple[str, float]] = {}  # uid -> (status, when it left the listing)
        self.status_changes: dict[str, int] = dict.fromkeys(STATUS_LABEL_VALUES, 0)
        self.durations: dict[str, Histogram] = {s: Histogram(RUN_DURATION_BUCKETS) for s in _TERMINAL_ORDER}
        self.last_status_time: dict[str, float] = {}
        self.last_success: float | None = None
        self.last_attempt = _NEVER  # time.monotonic() of its last read attempt
        self.last_error = ""
        self.read_at: float | None = None
        self.snapshot: WorkflowSnapshot | None = None

    def known_status(self, uid: str) -> str | None:
        run = self.runs.get(uid)
        if run is not None:
            return run.status
        gone = self.vanished.get(uid)
        return gone[0] if gone is not None else None

    def build_snapshot(self, needs_action_limit: int, now: float) -> WorkflowSnapshot:
        by_status = dict.fromkeys(STATUS_LABEL_VALUES, 0)
        by_api_status: Counter[str] = Counter()
        oldest: float | None = None
        postponed = 0
        flagged: list[Run] = []
        for run in self.runs.values():
            by_status[run.status] += 1
            by_api_status[run.api_status] += 1
            if run.status == RUNNING and run.start_time is not None:
                oldest = run.start_time if oldest is None else min(oldest, run.start_time)
            until = run.postponed_until
            if until is not None and until > now:
                postponed += 1
            if run.status in NEEDS_ACTION_STATUSES:
                flagged.append(run)
        self.snapshot = WorkflowSnapshot(
            uid=self.uid,
            name=self.name,
            version=next_version(),
            runs_by_status=by_status,
            runs_by_api_status=dict(by_api_status),
            postponed=postponed,
            oldest_running_start=oldest,
            read_at=self.read_at,
            last_status_time=dict(self.last_status_time),
            status_changes=dict(self.status_changes),
            durations={status: histogram.snapshot() for status, histogram in self.durations.items()},
            last_success=self.last_success,
            last_error=self.last_error,
            needs_action=tuple(
                RunView(run.uid, run.name, run.status, run.api_status, run.status_time)
                for run in newest_first(flagged, needs_action_limit, _latest_time, _uid)
            ),
        )
        return self.snapshot


def _latest_time(run: Run) -> float | None:
    """Which needs-action runs a workflow keeps when it has more than the limit: the latest moments."""
    return run.finish_time or run.start_time or run.scheduled_time


def _uid(run: Run) -> str:
    return run.uid


class WorkspaceState:
    def __init__(
        self,
        name: str,
        needs_action_limit: int = 50,
        api_version: str = "v3",
        endpoints: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.needs_action_limit = needs_action_limit
        self.api_version = api_version
        if endpoints is None:
            endpoints = adapter(api_version).endpoints
        self.api = ApiStats(tuple(endpoints))
        # Poll health.
        self.up = False
        self.attempted = False
        self.last_success: float | None = None
        self.last_poll_duration: float | None = None
        self.last_error = ""
        self.poll_errors: Counter[str] = Counter(dict.fromkeys(POLL_ERROR_REASONS, 0))
        self.runs_skipped: Counter[str] = Counter(dict.fromkeys(SKIP_REASONS, 0))
        # Memory across polls.
        self.listed_once = False  # workflows of the first list are the baseline
        self.workflows: dict[str, WorkflowState] = {}  # in list order
        self.owner: dict[str, str] = {}  # run uid -> the workflow uid it is counted under
        # Workflow uids changed or removed since the state saver last took them (exporter/persist/).
        self.changed: set[str] = set()
        self.removed: set[str] = set()
        # Credits and account health (issue 17): the side reads that are on, and their last values.
        self.side_reads: tuple[str, ...] = ()
        self.credits: Credits | None = None
        self.credit_history = CreditHistory()
        self.accounts: dict[str, tuple[Account, ...]] = {}  # integration -> accounts, as listed
        self.side_errors: Counter[tuple[str, str]] = Counter()
        self.side_skipped: Counter[tuple[str, str]] = Counter()
        self.side_last_error: dict[str, str] = {}
        # The poll in progress.
        self._listed = False
        self._failures: dict[str, str] = {}  # reason -> message, this poll
        self._read: set[str] = set()
        self._snapshot = self._build()

    # The sink's operations (each returns the new snapshot).

    def begin_poll(self) -> None:
        self._listed = False
        self._failures = {}
        self._read = set()

    def workflows_listed(self, workflows: Sequence[Workflow]) -> WorkspaceSnapshot:
        listed = {workflow.uid: workflow for workflow in workflows}
        for uid in [uid for uid in self.workflows if uid not in listed]:
            self._forget(uid)
        current: dict[str, WorkflowState] = {}
        for workflow in listed.values():
            tracked = self.workflows.get(workflow.uid)
            if tracked is None:
                tracked = WorkflowState(workflow.uid, workflow.name, baseline=not self.listed_once)
                self.changed.add(workflow.uid)
            elif tracked.name != workflow.name:
                tracked.name = workflow.name
                tracked.snapshot = None
                self.changed.add(workflow.uid)
            current[workflow.uid] = tracked
        self.workflows = current
        self.listed_once = True
        self._listed = True
        return self._build()

    def _forget(self, uid: str) -> None:
        gone = self.workflows.pop(uid)
        for run_uid in gone.runs:
            if self.owner.get(run_uid) == uid:
                del self.owner[run_uid]
        self.changed.discard(uid)
        self.removed.add(uid)

    def runs_read(
        self, workflow: Workflow, parsed: Parsed[Run], complete: bool = True, now: float | None = None
    ) -> WorkspaceSnapshot:
        now = time.time() if now is None else now
        tracked = self.workflows.get(workflow.uid)
        if tracked is None:  # not listed (any more): nothing to keep
            return self._snapshot
        self.runs_skipped.update(parsed.skipped)
        counting = tracked.read or not tracked.baseline
        kept: dict[str, Run] = {} if complete else dict(tracked.runs)
        duplicates = 0
        for run in parsed.items:
            owner = self.owner.get(run.uid)
            if owner is not None and owner != tracked.uid:
                other = self.workflows.get(owner)
                if other is not None and run.uid in other.runs:
                    duplicates += 1
                    continue
            self.owner[run.uid] = tracked.uid
            previous = tracked.known_status(run.uid)
            if counting and previous != run.status:
                self._count(tracked, run)
            tracked.vanished.pop(run.uid, None)
            kept[run.uid] = run
            moment = run.status_time
            if moment is not None and math.isfinite(moment):
                last = tracked.last_status_time.get(run.status)
                tracked.last_status_time[run.status] = moment if last is None else max(last, moment)
        if duplicates:
            self.runs_skipped[DUPLICATE_UID] += duplicates
        for uid, run in tracked.runs.items() if complete else ():  # an upsert keeps every run
            if uid not in kept:
                tracked.vanished[uid] = (run.status, now)
                if self.owner.get(uid) == tracked.uid:
                    del self.owner[uid]
        tracked.vanished = {
            uid: gone for uid, gone in tracked.vanished.items() if now - gone[1] <= FORGET_VANISHED_RUNS_AFTER
        }
        tracked.runs = kept
        tracked.read = True
        tracked.read_at = now
        tracked.last_success = now
        tracked.last_error = ""
        tracked.last_attempt = time.monotonic()
        tracked.snapshot = None
        self._read.add(tracked.uid)
        self.changed.add(tracked.uid)
        return self._build(now)

    def _count(self, tracked: WorkflowState, run: Run) -> None:
        tracked.status_changes[run.status] += 1
        duration = run.duration
        if run.status in TERMINAL_STATUSES and duration is not None:
            tracked.durations[run.status].observe(duration)

    def workflow_failed(self, workflow: Workflow, reason: str, message: str) -> WorkspaceSnapshot:
        tracked = self.workflows.get(workflow.uid)
        if tracked is not None:
            tracked.last_error = f"{reason}: {message}"
            tracked.last_attempt = time.monotonic()
            tracked.snapshot = None
        self._failures.setdefault(reason, message)
        return self._build()

    def workflow_vanished(self, workflow: Workflow) -> WorkspaceSnapshot:
        """404 on its runs: deleted since it was listed. The next list drops it; this is no failure."""
        tracked = self.workflows.get(workflow.uid)
        if tracked is not None:
            tracked.last_attempt = time.monotonic()
            self._read.add(workflow.uid)
        return self._snapshot

    def truncated(self, workflow: Workflow, message: str) -> None:
        """Pagination of ``workflow`` stopped early (page cap, repeated page): counted, poll stays up."""
        self._failures.setdefault(PAGE_CAP, f"{workflow.uid}: {message}")

    def poll_failed(self, reason: str, message: str) -> None:
        """The poll could not go on (the workflow list failed, no progress, an internal error)."""
        self._failures.setdefault(reason, message)

    def end_poll(self, duration: float, now: float | None = None) -> WorkspaceSnapshot:
        now = time.time() if now is None else now
        for reason in self._failures:
            self.poll_errors[reason] += 1
        failed = {reason: text for reason, text in self._failures.items() if reason != PAGE_CAP}
        self.up = self._listed and not failed and all(uid in self._read for uid in self.workflows)
        if self.up:
            self.last_success = now
        if failed:
            reason, message = next(iter(failed.items()))
            self.last_error = f"{reason}: {message}"
        elif not self.up:
            unread = sum(1 for uid in self.workflows if uid not in self._read)
            self.last_error = f"{unread} workflow(s) not read in this poll"
        elif PAGE_CAP in self._failures:
            self.last_error = f"{PAGE_CAP}: {self._failures[PAGE_CAP]}"
        else:
            self.last_error = ""
        self.attempted = True
        self.last_poll_duration = duration
        self._failures = {}
        return self._build(now)

    # Credits and account health (issue 17): the side reads' operations.

    def enable_side_reads(self, reads: Sequence[str], endpoints: Sequence[str]) -> None:
        """Turn on the side reads ``reads``: their counters and endpoints are present at 0."""
        self.side_reads = tuple(reads)
        self.api.add_endpoints(endpoints)
        for read in self.side_reads:
            self.side_last_error.setdefault(read, "")
            for reason in POLL_ERROR_REASONS:
                if reason != PAGE_CAP:  # an accounts page cap is logged, the values read are kept
                    self.side_errors.setdefault((read, reason), 0)
            for reason in SIDE_SKIP_REASONS if read == ACCOUNTS else (INVALID_VALUE,):
                self.side_skipped.setdefault((read, reason), 0)
        self._build()

    def credits_read(
        self, credits: Credits, skipped: Counter[str], now: float | None = None
    ) -> WorkspaceSnapshot:
        now = time.time() if now is None else now
        self.credits = credits
        if credits.remaining is not None:
            self.credit_history.add(now, credits.remaining)
        self._skipped(CREDITS, skipped)
        self.side_last_error[CREDITS] = ""
        return self._build(now)

    def accounts_read(
        self, listings: dict[str, tuple[list[Account], bool]], skipped: Counter[str]
    ) -> WorkspaceSnapshot:
        """Each integration's accounts; a complete listing replaces the last one (an account no longer
        listed loses its series), an incomplete one updates the accounts it lists."""
        for integration, (accounts, complete) in listings.items():
            if complete:
                self.accounts[integration] = tuple(accounts)
            else:
                merged = {account.uid: account for account in self.accounts.get(integration, ())}
                merged.update((account.uid, account) for account in accounts)
                self.accounts[integration] = tuple(merged.values())
        self.accounts = {name: self.accounts[name] for name in listings if name in self.accounts}
        self._skipped(ACCOUNTS, skipped)
        self.side_last_error[ACCOUNTS] = ""
        return self._build()

    def side_failed(self, read: str, reason: str, message: str) -> WorkspaceSnapshot:
        """A side read failed: counted; its last values are kept, the runs poll is not touched."""
        self.side_errors[(read, reason)] += 1
        self.side_last_error[read] = f"{reason}: {message}"
        return self._build()

    def _skipped(self, read: str, skipped: Counter[str]) -> None:
        for reason, count in skipped.items():
            if reason in SIDE_SKIP_REASONS:
                self.side_skipped[(read, reason)] += count

    def stalest_first(self, workflows: Sequence[Workflow]) -> list[Workflow]:
        def staleness(workflow: Workflow) -> float:
            tracked = self.workflows.get(workflow.uid)
            return tracked.last_attempt if tracked is not None else _NEVER

        return sorted(workflows, key=staleness)

    # Snapshots.

    @property
    def snapshot(self) -> WorkspaceSnapshot:
        return self._snapshot

    def refresh(self, now: float | None = None) -> WorkspaceSnapshot:
        """A new snapshot of the workspace-level values (API counters change between sink calls)."""
        return self._build(now)

    def _build(self, now: float | None = None) -> WorkspaceSnapshot:
        now = time.time() if now is None else now
        workflows = []
        for uid in sorted(self.workflows):
            tracked = self.workflows[uid]
            workflows.append(tracked.snapshot or tracked.build_snapshot(self.needs_action_limit, now))
        self._snapshot = WorkspaceSnapshot(
            name=self.name,
            api_version=self.api_version,
            version=next_version(),
            up=self.up,
            attempted=self.attempted,
            last_success=self.last_success,
            last_poll_duration=self.last_poll_duration,
            last_error=self.last_error,
            poll_errors=dict(self.poll_errors),
            runs_skipped=dict(self.runs_skipped),
            api=self.api.snapshot(),
            needs_action_limit=self.needs_action_limit,
            workflows=tuple(workflows),
            credits=self.credits,
            forecast=self.credit_history.forecast(self.credits.period_end if self.credits else None),
            accounts=tuple(account for accounts in self.accounts.values() for account in accounts),
            side_errors=dict(self.side_errors),
            side_skipped=dict(self.side_skipped),
            side_last_error=dict(self.side_last_error),
        )
        return self._snapshot
