"""Per-workspace memory across polls, kept per workflow: the runs last read, status transitions,
histograms and health. Mutated only through the sink (one call at a time, in a worker thread);
every mutation returns a fresh immutable snapshot for the exposition and the pages."""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress
from operator import attrgetter
from typing import Final

from exporter.api import adapter
from exporter.apistats import ApiStats
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.families import (
    ACCOUNTS,
    CREDITS,
    DUPLICATE_UID,
    INVALID_VALUE,
    NOT_FOUND,
    OTHER_REASON,
    OVER_LIMIT,
    PAGE_CAP,
    POLL_ERROR_REASONS,
    SIDE_ERROR_REASONS,
    SIDE_SKIP_REASONS,
    SKIP_REASONS,
)
from exporter.health import Account, CreditHistory, Credits
from exporter.histogram import RUN_DURATION_BUCKETS, Histogram
from exporter.needs_action import newest_first
from exporter.parsing import Parsed, Run, Workflow
from exporter.runstore import (
    API_STATUSES,
    BLOCK_SHIFT,
    EMPTY,
    MARK_SHIFT,
    NAN,
    NEEDS_ACTION_CODES,
    NO_KEY,
    SLOT,
    STATUSES,
    UUID_MATCH,
    VANISHED,
    Extra,
    Key,
    RunBlock,
    RunStore,
    Vocabulary,
    packed_keys,
    uid_of,
)
from exporter.snapshot import RunView, WorkflowSnapshot, WorkspaceSnapshot, next_version
from exporter.statuses import NEEDS_ACTION_STATUSES, RUNNING, STATUS_LABEL_VALUES, TERMINAL_STATUSES

#: How long a run that vanished from its workflow's list is remembered, so that a run missed by one
#: read (page shifts, page cap) is not counted again when it comes back.
FORGET_VANISHED_RUNS_AFTER = 86400.0
#: A workflow missing from the workflow list keeps its memory (its series are dropped) until it has been
#: missing from this many consecutive lists and for FORGET_MISSING_WORKFLOWS_AFTER seconds: one flaky
#: list must not make its whole history count again when it comes back.
FORGET_MISSING_WORKFLOWS_LISTS = 3
FORGET_MISSING_WORKFLOWS_AFTER = 3600.0
#: A run first seen whose status time is older than its scope's baseline (``WorkflowState.since``) by
#: more than this is history, not a transition (docs/counting.md). The margin absorbs a difference
#: between the API's clock and ours.
CLOCK_MARGIN = 300.0
#: Runs a workflow remembers as applied by push, with when their read started (a poll's read that
#: started before must not undo them, docs/counting.md): the oldest are forgotten beyond this.
MAX_PUSHED_RUNS = 4096
_TERMINAL_ORDER = tuple(sorted(TERMINAL_STATUSES))
_NEVER = float("-inf")


class WorkflowState:
    """One tracked workflow. Its runs are packed (exporter/runstore.py): no object per run."""

    __slots__ = (
        "absent",
        "absent_since",
        "baseline",
        "durations",
        "failures",
        "last_attempt",
        "last_error",
        "last_status_time",
        "last_success",
        "name",
        "polled",
        "push_errors",
        "pushed",
        "read",
        "read_at",
        "runs",
        "since",
        "snapshot",
        "status_changes",
        "uid",
    )

    def __init__(
        self, uid: str, name: str, baseline: bool, since: float | None = None, runs: RunBlock | None = None
    ) -> None:
        self.uid = uid
        self.name = name
        self.baseline = baseline  # runs present at its first read are not counted
        #: When the exporter started watching it (docs/counting.md): a run first seen whose status is
        #: older is history. A baseline workflow's first read; else the list before the one that
        #: showed it first. None: unknown (a state saved before it was kept), no run is history.
        self.since = since
        self.read = False  # its runs were read successfully at least once
        #: its runs (exporter/runstore.py): the current listing, and those that left it with when
        #: (remembered FORGET_VANISHED_RUNS_AFTER). A workflow made alone has a store of its own.
        self.runs = RunStore().block(uid) if runs is None else runs
        self.absent = 0  # consecutive workflow lists it was missing from
        self.absent_since = 0.0
        self.status_changes: dict[str, int] = dict.fromkeys(STATUS_LABEL_VALUES, 0)
        self.durations: dict[str, Histogram] = {s: Histogram(RUN_DURATION_BUCKETS) for s in _TERMINAL_ORDER}
        self.failures: dict[tuple[str, str], int] = {}  # run errors: (status, reason) -> count
        self.last_status_time: dict[str, float] = {}
        self.last_success: float | None = None
        self.last_attempt = _NEVER  # clock.monotonic() of its last read attempt
        self.last_error = ""
        self.read_at: float | None = None
        self.snapshot: WorkflowSnapshot | None = None
        # push: run uid -> the error a v3 Failed webhook gave (cleaned, bounded, redacted); kept
        # while the run is listed, preferred to the polled error_message
        self.push_errors: dict[str, str] = {}
        # push: run uid -> when the read a push applied started (``StateSink.read_started``), until a
        # poll's read that started later is applied; and when the last applied poll read started
        self.pushed: dict[str, int] = {}
        self.polled = 0

    def known_status(self, uid: str) -> str | None:
        known = self.known(uid)
        return known[0] if known is not None else None

    def known(self, uid: str) -> tuple[str, str] | None:
        """(status, api_status) of a run it lists or remembers (api_status "" when unknown)."""
        return self.runs.known(uid)

    def release(self, uid: str) -> tuple[str, str] | None:
        """Give up a run another workflow now owns: what was known of it."""
        if self.runs.lists(uid):
            self.snapshot = None
        return self.runs.release(uid)

    def build_snapshot(self, needs_action_limit: int, now: float) -> WorkflowSnapshot:
        runs = self.runs
        codes = runs.status.tobytes()
        words = STATUSES.words
        by_status = dict.fromkeys(STATUS_LABEL_VALUES, 0)
        for code, count in Counter(codes).items():
            by_status[words[code]] += count
        self.snapshot = WorkflowSnapshot(
            uid=self.uid,
            name=self.name,
            version=next_version(),
            runs_by_status=by_status,
            runs_by_api_status=_by_api_status(runs),
            postponed=_postponed(runs, now),
            oldest_running_start=_oldest(runs, codes, _RUNNING),
            read_at=self.read_at,
            last_status_time=dict(self.last_status_time),
            status_changes=dict(self.status_changes),
            failures=dict(sorted(self.failures.items())),
            durations={status: histogram.snapshot() for status, histogram in self.durations.items()},
            last_success=self.last_success,
            last_error=self.last_error,
            needs_action=_needs_action(runs, codes, needs_action_limit, self.push_errors),
        )
        return self.snapshot


_RUNNING = STATUSES.code(RUNNING)
_NEEDS_ACTION = tuple(sorted(NEEDS_ACTION_CODES))


def _slots_of(codes: bytes, code: int) -> Iterator[int]:
    """The slots whose status code is ``code``."""
    found = bytes((code,))
    slot = codes.find(found)
    while slot >= 0:
        yield slot
        slot = codes.find(found, slot + 1)


def _by_api_status(runs: RunBlock) -> dict[str, int]:
    """Listed runs by API status, in the order the listing shows each status first."""
    counts = Counter(runs.api)
    words = API_STATUSES.words
    if len(counts) < 2:
        return {words[code]: count for code, count in counts.items()}
    first: dict[int, int] = {}
    for code, position in zip(runs.api, runs.position, strict=True):
        seen = first.get(code)
        if seen is None or position < seen:
            first[code] = position
    return {words[code]: counts[code] for code in sorted(first, key=first.__getitem__)}


def _postponed(runs: RunBlock, now: float) -> int:
    postponed = runs.postponed
    return 0 if postponed is None else sum(1 for until in postponed if until > now)


def _oldest(runs: RunBlock, codes: bytes, code: int) -> float | None:
    start = runs.start
    times = [moment for slot in _slots_of(codes, code) if (moment := start[slot]) == moment]
    return min(times) if times else None


def _needs_action(runs: RunBlock, codes: bytes, limit: int, pushed: Mapping[str, str]) -> tuple[RunView, ...]:
    """The needs-action runs shown (newest_first's rule), as views made from the columns."""
    slots = [slot for code in _NEEDS_ACTION for slot in _slots_of(codes, code)]
    if not slots or limit <= 0:
        return ()
    moments = {slot: _moment(runs, slot) for slot in slots}
    if len(slots) > limit:
        # Only what can be among the first ``limit`` needs its uid (for ties): the slots at or above
        # the limit-th latest time.
        floor = heapq.nlargest(limit, moments.values())[-1]
        slots = [slot for slot in slots if moments[slot] >= floor]
    uids = {slot: uid_of(runs.key_at(slot)) for slot in slots}
    shown = newest_first(slots, limit, moments.__getitem__, uids.__getitem__)
    return tuple(_view_at(runs, slot, uids[slot], pushed.get(uids[slot])) for slot in shown)


def _view_at(runs: RunBlock, slot: int, uid: str, pushed: str | None) -> RunView:
    """``_view`` of a listed slot, without its Run."""
    status = STATUSES.words[runs.status[slot]]
    if status in TERMINAL_STATUSES:
        since = runs.finish[slot]
    else:
        since = runs.start[slot]
        if since != since:
            since = runs.scheduled[slot]
    extra = runs.extra[slot]
    name, error = ("", None) if extra is None else (extra, None) if isinstance(extra, str) else extra
    api_status = API_STATUSES.words[runs.api[slot]]
    moment = None if since != since else since
    if error is None and not pushed:
        return RunView(uid, name, status, api_status, moment)
    text = pushed or (error.text if error is not None else "")
    reason = error.reason if error is not None else ""
    return RunView(uid, name, status, api_status, moment, text, reason)


def _moment(runs: RunBlock, slot: int) -> float:
    """``_latest_time`` of a slot (NaN for None), as newest_first orders it (unknown: -inf)."""
    value = runs.finish[slot]
    if not (value == value and value):
        value = runs.start[slot]
        if not (value == value and value):
            value = runs.scheduled[slot]
    return value if -math.inf < value < math.inf else -math.inf


_UID: Final = attrgetter("uid")
_STATUS: Final = attrgetter("status")
_API_STATUS: Final = attrgetter("api_status")
_START: Final = attrgetter("start_time")
_FINISH: Final = attrgetter("finish_time")
_SCHEDULED: Final = attrgetter("scheduled_time")
_POSTPONED: Final = attrgetter("postponed_until")
#: bytes.translate tables: code -> 1, every other byte -> 0.
_ONLY: Final = tuple(bytes(code) + b"\x01" + bytes(255 - code) for code in range(256))
#: A read's runs as columns: status codes, API status codes, start, finish, scheduled, postponed.
Columns = tuple["bytes", "array[int]", "array[float]", "array[float]", "array[float]", "array[float] | None"]


def _codes(words: list[str], vocabulary: Vocabulary) -> list[int]:
    try:
        return list(map(vocabulary.codes.__getitem__, words))
    except KeyError:  # a word not met yet
        return list(map(vocabulary.code, words))


def _times(values: Iterator[float | None]) -> array[float]:
    return array("d", [NAN if value is None else value for value in values])


def _columns(items: list[Run], postponed_kept: bool) -> Columns:
    """The columns of ``items`` (postponed: when one has it, or ``postponed_kept``)."""
    codes = bytes(_codes(list(map(_STATUS, items)), STATUSES))
    api = array("H", _codes(list(map(_API_STATUS, items)), API_STATUSES))
    postponed = list(map(_POSTPONED, items))
    unused = not postponed_kept and postponed.count(None) == len(postponed)
    return (
        codes,
        api,
        _times(map(_START, items)),
        _times(map(_FINISH, items)),
        _times(map(_SCHEDULED, items)),
        None if unused else _times(iter(postponed)),
    )


def _extra(items: list[Run], codes: bytes) -> list[Extra]:
    """The ``extra`` column of ``items``: what a needs-action run keeps."""
    extra: list[Extra] = [None] * len(items)
    for code in _NEEDS_ACTION:
        for slot in _slots_of(codes, code):
            run = items[slot]
            error = run.error
            extra[slot] = run.name if error is None else (run.name, error)
    return extra


def _differ(
    old: array[int] | array[float], new: bytes | array[int] | array[float], width: int
) -> Iterator[int]:
    """The slots whose ``width`` bytes differ between ``new`` and as many first slots of ``old``."""
    after = new if isinstance(new, bytes) else new.tobytes()
    before = old.tobytes()[: len(after)]
    if before != after:
        yield from _differ_in(before, after, width, 0, len(after), width * 512)


def _differ_in(before: bytes, after: bytes, width: int, start: int, end: int, step: int) -> Iterator[int]:
    """``_differ`` within bytes start:end, compared ``step`` bytes at a time (then an eighth of it)."""
    for at in range(start, end, step):
        if before[at : at + step] != after[at : at + step]:
            if step == width:
                yield at // width
            else:
                yield from _differ_in(before, after, width, at, min(end, at + step), max(width, step // 8))


def _latest(last_status_time: dict[str, float], run: Run) -> None:
    moment = run.status_time
    if moment is not None and math.isfinite(moment):
        last = last_status_time.get(run.status)
        if last is None or moment > last:
            last_status_time[run.status] = moment


def _latest_of_columns(last_status_time: dict[str, float], columns: Columns) -> None:
    """``_latest`` of every run of ``columns`` in listing order, a status at a time (a status new to
    ``last_status_time`` goes in where the listing first gives it a moment: the order it renders)."""
    codes, _, start, finish, scheduled, _ = columns
    added: list[tuple[int, str, float]] = []
    for code in set(codes):
        status = STATUSES.words[code]
        mask = codes.translate(_ONLY[code])
        terminal = status in TERMINAL_STATUSES
        if terminal:
            moments: Iterable[float] = compress(finish, mask)
        else:
            pairs = zip(compress(start, mask), compress(scheduled, mask), strict=True)
            moments = [s if s == s else t for s, t in pairs]
        moment = max(filter(math.isfinite, moments), default=None)
        if moment is None:
            continue
        last = last_status_time.get(status)
        if last is None:
            for slot in _slots_of(codes, code):
                value = (
                    finish[slot]
                    if terminal
                    else start[slot]
                    if start[slot] == start[slot]
                    else scheduled[slot]
                )
                if math.isfinite(value):
                    added.append((slot, status, moment))
                    break
        elif moment > last:
            last_status_time[status] = moment
    for _, status, moment in sorted(added):
        last_status_time[status] = moment


def _is_transition(run: Run, previous: tuple[str, str] | None, history: float) -> bool:
    """Whether a run read now counts as entering its status (docs/counting.md): a run first seen counts
    unless its status is older than the scope's watch (``history``); a known run counts when its status
    changed, unless the API's own status did not (v4: FAILED whose last_error came later is a
    correction: the gauges follow, no transition is counted)."""
    if previous is None:
        moment = run.status_time
        return moment is None or moment >= history
    return previous[0] != run.status and (previous[1] != run.api_status or not previous[1])


def _view(run: Run, pushed: str | None = None) -> RunView:
    """A needs-action run as the page and the series show it: its error is the push's (a v3 Failed
    webhook's) when one came, else the one its listing gave."""
    error = run.error
    if error is None and not pushed:
        return RunView(run.uid, run.name, run.status, run.api_status, run.status_time)
    text = pushed or (error.text if error is not None else "")
    reason = error.reason if error is not None else ""
    return RunView(run.uid, run.name, run.status, run.api_status, run.status_time, text, reason)


def _latest_time(run: Run) -> float | None:
    """Which needs-action runs a workflow keeps when it has more than the limit: the latest moments."""
    return run.finish_time or run.start_time or run.scheduled_time


def _uid(run: Run) -> str:
    return run.uid


class WorkspaceState:
    #: Whether a read may take the bulk paths (tests/test_runstore.py compares them with the loop alone).
    bulk = True

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
        self.clock: Clock = SYSTEM_CLOCK  # the poller sets its own
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
        self.save_errors = 0  # saves of the state that failed (exporter/persist/saver.py)
        # Memory across polls.
        self.listed_once = False  # workflows of the first list are the baseline
        self.listed_at: float | None = None  # when the last workflow list was applied
        self.workflows: dict[str, WorkflowState] = {}  # in list order
        #: Workflows missing from the last list(s), remembered a while (FORGET_MISSING_WORKFLOWS_*).
        self.missing: dict[str, WorkflowState] = {}
        #: Every run it remembers, listed or vanished, each in the block of the workflow it is counted
        #: under (listed or missing): the block of a run is its owner.
        self.store = RunStore()
        # Workflow uids changed or removed since the state saver last took them (exporter/persist/).
        self.changed: set[str] = set()
        self.removed: set[str] = set()
        self.workflows_tracked: int | None = None  # split by workflow: the whole workspace's count
        # push: called (in the sink's thread) with the uid of each run whose status change a poll
        # counted, to tell the missed pushes (exporter/push/missed.py); None when push is off.
        self.on_polled_change: Callable[[str], None] | None = None
        # The snapshots of the workflows in uid order, rebuilt only where they changed: a workspace of
        # many workflows applies one at a time, and each apply must not cost all of them.
        self._order: list[str] | None = None  # None: the set of workflows changed
        self._snapshots: list[WorkflowSnapshot] = []
        self._index: dict[str, int] = {}
        self._dirty: set[str] = set()
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
        self._read: set[str] = set()  # workflows read or found deleted (404)
        self._found = False  # some workflow was read
        self._snapshot = self._build()

    # The sink's operations (each returns the new snapshot).

    def begin_poll(self) -> None:
        self._listed = False
        self._failures = {}
        self._read = set()
        self._found = False

    def workflows_listed(
        self, workflows: Sequence[Workflow], now: float | None = None, in_all: int | None = None
    ) -> WorkspaceSnapshot:
        """The complete current list (after the filter and the cap); ``in_all``: how many the whole
        workspace tracks, when this shard tracks only its own part of them (split by workflow)."""
        self.workflows_tracked = in_all
        now = self.clock.time() if now is None else now
        listed = {workflow.uid: workflow for workflow in workflows}
        for uid in [uid for uid in self.missing if uid not in listed]:
            gone = self.missing[uid]
            gone.absent += 1
            if (
                gone.absent >= FORGET_MISSING_WORKFLOWS_LISTS
                and now - gone.absent_since >= FORGET_MISSING_WORKFLOWS_AFTER
            ):
                self._forget(self.missing.pop(uid))
                self.changed.discard(uid)
                self.removed.add(uid)
            else:
                self.changed.add(uid)  # saved as missing: a restart remembers it too
        for uid in [uid for uid in self.workflows if uid not in listed]:
            gone = self.workflows[uid]
            gone.absent, gone.absent_since = 1, now
            self.missing[uid] = gone
            self.changed.add(uid)
        current: dict[str, WorkflowState] = {}
        for workflow in listed.values():
            tracked = self.workflows.get(workflow.uid)
            if tracked is None:
                tracked = self._resumed(workflow.uid)
            if tracked is None:
                baseline = not self.listed_once
                # New since the last list: what happened before that list is history.
                since = None if baseline else (self.listed_at if self.listed_at is not None else now)
                tracked = self.new_workflow(workflow.uid, workflow.name, baseline, since)
                self.changed.add(workflow.uid)
            if tracked.name != workflow.name:
                tracked.name = workflow.name
                tracked.snapshot = None
                self.changed.add(workflow.uid)
            if tracked.snapshot is None:
                self._dirty.add(workflow.uid)
            current[workflow.uid] = tracked
        if current.keys() != self.workflows.keys():
            self._order = None
        self.workflows = current
        self.listed_once = True
        self.listed_at = now
        self._listed = True
        return self._build(now)

    def _resumed(self, uid: str) -> WorkflowState | None:
        """A missing workflow that is back (listed, or pushed), with its memory; None if none is."""
        tracked = self.missing.pop(uid, None)
        if tracked is not None:
            tracked.absent = 0
            tracked.snapshot = None
            self.changed.add(uid)
            self.removed.discard(uid)
        return tracked

    def new_workflow(self, uid: str, name: str, baseline: bool, since: float | None = None) -> WorkflowState:
        """A workflow whose runs this workspace's store keeps (the caller adds it)."""
        return WorkflowState(uid, name, baseline, since, self.store.block(uid))

    def owner_of(self, uid: str) -> str | None:
        """The uid of the workflow run ``uid`` is counted under (listed or missing), if any."""
        block = self.store.holder(uid)
        return None if block is None else block.workflow

    def _forget(self, gone: WorkflowState) -> None:
        self.store.drop(gone.runs)

    def _holder(self, uid: str) -> WorkflowState | None:
        return self.workflows.get(uid) or self.missing.get(uid)

    def _owner_lists(self, owner: str, uid: str) -> bool:
        """Whether run ``uid``'s owner is listed and lists it: the run is counted there."""
        other = self.workflows.get(owner)
        return other is not None and other.runs.lists(uid)

    def _take_over(self, owner: str, uid: str) -> tuple[str, str] | None:
        """Run ``uid``'s owner no longer lists it (or is missing): another workflow takes it over; what
        its owner knew of it."""
        other = self._holder(owner)
        if other is None:
            return None
        known = other.release(uid)
        self._touch(other)
        return known

    def runs_read(
        self,
        workflow: Workflow,
        parsed: Parsed[Run],
        complete: bool = True,
        now: float | None = None,
        read_started: int | None = None,
    ) -> WorkspaceSnapshot:
        """``read_started``: the read's place in the order reads started (``StateSink.read_started``);
        None: a read newer than every other."""
        now = self.clock.time() if now is None else now
        if not self._read_runs(workflow, parsed, complete, now, read_started):  # not listed (any more)
            return self._snapshot
        return self._build(now)

    def runs_read_many(
        self,
        reads: Sequence[tuple[Workflow, Parsed[Run]]],
        complete: bool = True,
        now: float | None = None,
        read_started: int | None = None,
    ) -> WorkspaceSnapshot:
        """``runs_read`` of each, with one snapshot at the end (v4: many actions from one listing)."""
        now = self.clock.time() if now is None else now
        for workflow, parsed in reads:
            self._read_runs(workflow, parsed, complete, now, read_started)
        return self._build(now)

    def _read_runs(
        self,
        workflow: Workflow,
        parsed: Parsed[Run],
        complete: bool,
        now: float,
        read_started: int | None = None,
    ) -> bool:
        tracked = self.workflows.get(workflow.uid)
        if tracked is None:
            return False
        if tracked.pushed:  # push
            parsed = self._after_pushes(tracked, parsed, read_started)
        self.runs_skipped.update(parsed.skipped)
        counting = tracked.read or not tracked.baseline
        if tracked.since is None and not tracked.read and tracked.baseline:
            tracked.since = now  # a baseline workflow is watched from its first read
        history = -math.inf if tracked.since is None else tracked.since - CLOCK_MARGIN
        runs = tracked.runs
        block = runs.id << BLOCK_SHIFT
        store = self.store
        find, blocks, listed_workflows = store.find, store.blocks, self.workflows
        statuses, api_statuses = STATUSES.codes, API_STATUSES.codes
        is_uuid, fromhex = UUID_MATCH, bytes.fromhex
        start, finish, scheduled, extra = runs.start, runs.finish, runs.scheduled, runs.extra
        column_status, column_api, column_position = runs.status, runs.api, runs.position
        last_status_time = tracked.last_status_time
        listed_before = len(runs)
        touched = bytearray(listed_before)  # the listed slots this read lists (appended ones too)
        # A uid listed twice in one read compares with what this workflow knew before the read (as the
        # first time did): what the first time overwrote, or moved from vanished, is kept here.
        before: dict[Key, tuple[int, int]] = {}
        position = 0  # complete: the order of the listing
        duplicates = 0
        own_keys, hint = runs.keys, 0  # the listed slot the next run likely has
        # Most of a poll's runs are applied in bulk (same effect as this loop): a workflow's first
        # listing, or the runs listed again in the order the last read listed them after a few new ones
        # (``fresh``: the runs before them, through the loop).
        items, fresh = parsed.items, -1
        packed = (
            packed_keys(list(map(_UID, items)))
            if self.bulk and complete and items and not runs.others
            else None
        )
        if packed is not None and not listed_before and not runs.vanished_count:
            first = self._read_new(tracked, items, packed, counting, history)
            if first is not None:
                duplicates, position, items = first, len(runs), []
        elif packed is not None:
            fresh = self._fresh(runs, items, packed)
        for run in items[:fresh] if fresh >= 0 else items:
            uid = run.uid
            key: Key = fromhex(uid.replace("-", "")) if len(uid) == 36 and is_uuid(uid) is not None else uid
            status = statuses.get(run.status)
            if status is None:
                status = STATUSES.code(run.status)
            api = api_statuses.get(run.api_status)
            if api is None:
                api = API_STATUSES.code(run.api_status)
            if key.__class__ is bytes and own_keys[hint << 4 : (hint << 4) + 16] == key and key != NO_KEY:
                # Listed where the last run read was followed by this one: a poll lists as the last did.
                location = block | hint
            else:
                location = find(key)
            slot = gone = -1
            previous: tuple[int, int] | None = None  # (status, api) codes
            if location != EMPTY:
                if location >> BLOCK_SHIFT << BLOCK_SHIFT == block:
                    if location & VANISHED:  # listed again: moved from vanished once appended
                        gone = location & SLOT
                        previous = before[key] = (runs.vanished_status[gone], runs.vanished_api[gone])
                    else:
                        slot = location & SLOT
                        hint = slot + 1
                        if not touched[slot]:
                            previous = (column_status[slot], column_api[slot])
                        elif key in before:
                            previous = before[key]
                        elif slot < listed_before:
                            previous = (column_status[slot], column_api[slot])
                else:
                    owner = blocks[location >> BLOCK_SHIFT]
                    assert owner is not None
                    if not location & VANISHED and owner.workflow in listed_workflows:
                        duplicates += 1  # listed by its owner too: counted there
                        continue
                    known = self._take_over(owner.workflow, uid)
                    if known is not None:
                        previous = (STATUSES.code(known[0]), API_STATUSES.code(known[1]))
            moment = run.status_time
            if counting:
                if previous is None:
                    transition = moment is None or moment >= history
                else:
                    transition = previous[0] != status and (previous[1] != api or not previous[1])
                if transition:
                    self._count(tracked, run)
                    if self.on_polled_change is not None:  # push
                        self.on_polled_change(uid)
            if slot < 0:
                if complete:
                    place = position
                    position += 1
                else:
                    place = runs.take_position()
                runs.append(key, run, status, api, place, new=gone < 0)
                touched.append(1)
                if gone >= 0:
                    runs.remove_vanished(gone)
            else:
                if not touched[slot]:
                    touched[slot] = 1
                    if complete:
                        column_position[slot] = position
                        position += 1
                if (
                    (column_status[slot] != status or column_api[slot] != api)
                    and slot < listed_before
                    and key not in before
                ):  # its first change in this read: what it was before, for a uid listed again
                    before[key] = (column_status[slot], column_api[slot])
                if (
                    column_status[slot] == status
                    and column_api[slot] == api
                    and runs.postponed is None
                    and run.postponed_until is None
                    and status not in NEEDS_ACTION_CODES
                ):  # the common case, inline: times only
                    value = run.start_time
                    start[slot] = NAN if value is None else value
                    value = run.finish_time
                    finish[slot] = NAN if value is None else value
                    value = run.scheduled_time
                    scheduled[slot] = NAN if value is None else value
                    extra[slot] = None
                else:
                    runs.write(slot, run, status, api)
            if moment is not None and math.isfinite(moment):
                last = last_status_time.get(run.status)
                if last is None or moment > last:
                    last_status_time[run.status] = moment
        if duplicates:
            self.runs_skipped[DUPLICATE_UID] += duplicates
        if fresh >= 0:
            again = len(items) - fresh
            self._read_again(tracked, items[fresh:], counting, position)
            touched[:again] = b"\x01" * again
            position += again
        if complete:  # an upsert keeps every run
            gone = touched.rfind(0)
            while gone >= 0:
                runs.vanish(gone, now)
                gone = touched.rfind(0, 0, gone)
            runs.next_position = position
        if runs.vanished_count:
            runs.forget_vanished(now, FORGET_VANISHED_RUNS_AFTER)
        if tracked.push_errors:  # push
            tracked.push_errors = {uid: e for uid, e in tracked.push_errors.items() if runs.lists(uid)}
        tracked.read = True
        tracked.read_at = now
        tracked.last_success = now
        tracked.last_error = ""
        tracked.last_attempt = self.clock.monotonic()
        if read_started is not None and read_started > tracked.polled:
            tracked.polled = read_started
        self._touch(tracked)
        self._read.add(tracked.uid)
        self._found = True
        return True

    def _after_pushes(
        self, tracked: WorkflowState, parsed: Parsed[Run], read_started: int | None
    ) -> Parsed[Run]:
        """push: a poll's read of ``tracked`` that started before a push's read of a run it lists must
        not undo what the push applied (docs/counting.md): that run is read as the state has it (not
        counted, not vanished). The pushes older than this read are forgotten."""
        pushed = tracked.pushed
        newer = {} if read_started is None else {uid: at for uid, at in pushed.items() if at > read_started}
        tracked.pushed = newer
        if not newer:
            return parsed
        runs = tracked.runs
        items = [run if run.uid not in newer else runs.run(run.uid) or run for run in parsed.items]
        listed = {run.uid for run in parsed.items}
        items.extend(kept for uid in newer if uid not in listed and (kept := runs.run(uid)) is not None)
        return Parsed[Run](items, parsed.skipped, parsed.first_skip)

    # push: one run read back after a push event.

    def run_pushed(
        self,
        workflow_uid: str,
        run: Run,
        error: str | None,
        add_workflow: bool = False,
        read_started: int | None = None,
    ) -> tuple[WorkspaceSnapshot, bool]:
        """Apply one run read by its uid, as a poll that listed only it would (an upsert, under the
        same counting rule): a status the state does not know yet counts once, a later poll reading the
        same status counts nothing. ``workflow_uid`` is the API's answer; a workflow not tracked (not
        listed, or filtered out) is ignored unless ``add_workflow`` (v4: an action is known by its
        runs). ``error`` is the push's own error text (kept with the run). ``read_started``: the read's
        place in the order reads started (``StateSink.read_started``): a read that started before the
        workflow's last applied poll read that lists the run, or before another push's read of it, is
        older than what the state has and changes nothing (docs/counting.md). Returns the snapshot and
        whether the status changed."""
        tracked = self.workflows.get(workflow_uid)
        if tracked is None:
            if not (add_workflow and self.listed_once):
                return self._snapshot, False
            tracked = self._resumed(workflow_uid)  # missing from the last list(s): it resumes
            if tracked is None:
                since = self.listed_at if self.listed_at is not None else self.clock.time()
                tracked = self.new_workflow(workflow_uid, workflow_uid, baseline=False, since=since)
            self.workflows[workflow_uid] = tracked
            self._order = None
            self._read.add(workflow_uid)  # read now: a poll in progress did not list it, and need not
        if read_started is not None and self._stale_push(tracked, run.uid, read_started):
            return self._snapshot, False
        owner = self.owner_of(run.uid)
        previous = tracked.known(run.uid)
        if owner is not None and owner != tracked.uid:
            if self._owner_lists(owner, run.uid):
                return self._snapshot, False  # listed by another workflow: the poll counts it there
            # Its owner no longer lists it: taken over with what was known, as a poll would.
            previous = self._take_over(owner, run.uid) or previous
        counting = tracked.read or not tracked.baseline
        history = -math.inf if tracked.since is None else tracked.since - CLOCK_MARGIN
        changed = previous is None or previous[0] != run.status
        if counting and _is_transition(run, previous, history):
            self._count(tracked, run)
        if error:
            tracked.push_errors[run.uid] = error
        if read_started is not None:
            self._note_push(tracked, run.uid, read_started)
        if tracked.runs.same(run.uid, run) and not changed and not error:
            return self._snapshot, False
        tracked.runs.put(run)
        moment = run.status_time
        if moment is not None and math.isfinite(moment):
            last = tracked.last_status_time.get(run.status)
            tracked.last_status_time[run.status] = moment if last is None else max(last, moment)
        self._touch(tracked)
        return self._build(), changed

    @staticmethod
    def _stale_push(tracked: WorkflowState, uid: str, read_started: int) -> bool:
        """Whether a push's read of run ``uid`` started before what the state has of it was read."""
        if read_started < tracked.pushed.get(uid, 0):
            return True
        return read_started < tracked.polled and tracked.runs.lists(uid)

    @staticmethod
    def _note_push(tracked: WorkflowState, uid: str, read_started: int) -> None:
        pushed = tracked.pushed
        pushed.pop(uid, None)
        pushed[uid] = read_started
        if len(pushed) > MAX_PUSHED_RUNS:
            del pushed[next(iter(pushed))]

    def _touch(self, tracked: WorkflowState) -> None:
        """``tracked`` changed: its snapshot is rebuilt and its record saved."""
        tracked.snapshot = None
        self._dirty.add(tracked.uid)
        self.changed.add(tracked.uid)

    # The bulk paths of a read (same effect as the loop of _read_runs, run by run, for the reads that
    # are most of a poll's runs): a listing read again as it was, and a workflow's first listing.

    def _fresh(self, runs: RunBlock, items: list[Run], packed: bytes) -> int:
        """How many runs come before the runs this workflow listed first, listed again in the same order
        to the end of ``items`` (keys ``packed``); -1 when it does not list so, or when a run before
        them is one of them (a uid listed twice: the loop's rule)."""
        keys = runs.keys
        if not keys:
            return -1
        at = packed.find(keys[:16])
        if at < 0 or at % 16 or len(packed) - at > len(keys) or keys[: len(packed) - at] != packed[at:]:
            return -1
        fresh = at // 16
        again = len(items) - fresh
        block = runs.id
        find = self.store.find
        for key_at in range(0, at, 16):
            location = find(packed[key_at : key_at + 16])
            if location >> BLOCK_SHIFT == block and not location & VANISHED and location & SLOT < again:
                return -1
        return fresh

    def _read_again(self, tracked: WorkflowState, items: list[Run], counting: bool, position: int) -> None:
        """``items`` are the runs of listed slots 0, 1, … (in this order), listed again from
        ``position`` on: their columns are the read's; those whose codes or times differ go through the
        counting rule one by one (the others were applied as they are: last_status_time holds their
        moments already)."""
        runs = tracked.runs
        count = len(items)
        columns = _columns(items, runs.postponed is not None)
        codes, api, start, finish, scheduled, postponed = columns
        changed = set(_differ(runs.status, codes, 1))
        changed.update(_differ(runs.api, api, 2))
        changed.update(_differ(runs.start, start, 8))
        changed.update(_differ(runs.finish, finish, 8))
        changed.update(_differ(runs.scheduled, scheduled, 8))
        if postponed is not None:
            if runs.postponed is None:
                runs.postponed = array("d", [NAN]) * len(runs)
            changed.update(_differ(runs.postponed, postponed, 8))
            runs.postponed[:count] = postponed
        old_status, old_api = runs.status, runs.api
        for slot in sorted(changed):
            run = items[slot]
            was, was_api = old_status[slot], old_api[slot]
            if counting and was != codes[slot] and (was_api != api[slot] or not was_api):
                self._count(tracked, run)
                if self.on_polled_change is not None:  # push
                    self.on_polled_change(run.uid)
            _latest(tracked.last_status_time, run)
        runs.status[:count] = array("B", codes)
        runs.api[:count] = api
        runs.start[:count] = start
        runs.finish[:count] = finish
        runs.scheduled[:count] = scheduled
        runs.extra[:count] = _extra(items, codes)
        runs.position[:count] = array("I", range(position, position + count))

    def _read_new(
        self, tracked: WorkflowState, items: list[Run], packed: bytes, counting: bool, history: float
    ) -> int | None:
        """A workflow's first listing (nothing known of it): one probe a run, the columns at once; a
        run another workflow held is taken over (or skipped when its owner lists it). None: a uid is
        listed twice (the loop's rule applies)."""
        keys = [packed[at : at + 16] for at in range(0, len(packed), 16)]
        if len(set(keys)) != len(keys):
            return None
        runs = tracked.runs
        store = self.store
        store.reserve(len(keys))
        block = runs.id << BLOCK_SHIFT
        blocks, listed_workflows = store.blocks, self.workflows
        kept: list[int] | None = None  # the runs appended, when one is skipped
        duplicates = 0
        table, marks = store.table, store.marks
        mask = len(table) - 1
        for index_of_run, key in enumerate(keys):
            previous: tuple[int, int] | None = None
            home = hash(key)
            index, mark = home & mask, home >> MARK_SHIFT & 255
            while True:
                location = table[index]
                if location == EMPTY:
                    break
                if marks[index] == mark:
                    holder = blocks[location >> BLOCK_SHIFT]
                    at = (location & SLOT) << 4
                    column = holder.vanished_keys if location & VANISHED else holder.keys  # type: ignore[union-attr]
                    if column[at : at + 16] == key:
                        break
                index = (index + 1) & mask
            run = items[index_of_run]
            if location != EMPTY:  # another workflow's (this one had none, and no uid is listed twice)
                owner = blocks[location >> BLOCK_SHIFT]
                assert owner is not None
                if not location & VANISHED and owner.workflow in listed_workflows:
                    duplicates += 1  # listed by its owner too: counted there
                    if kept is None:
                        kept = list(range(index_of_run))
                    continue
                known = self._take_over(owner.workflow, run.uid)
                if known is not None:
                    previous = (STATUSES.code(known[0]), API_STATUSES.code(known[1]))
                index = home & mask  # the take-over shifted entries: the first empty one now
                while table[index] != EMPTY:
                    index = (index + 1) & mask
            table[index] = block | (index_of_run if kept is None else len(kept))
            marks[index] = mark
            if kept is not None:
                kept.append(index_of_run)
            if counting:
                if previous is None:
                    moment = run.status_time
                    transition = moment is None or moment >= history
                else:
                    status = STATUSES.code(run.status)
                    api = API_STATUSES.code(run.api_status)
                    transition = previous[0] != status and (previous[1] != api or not previous[1])
                if transition:
                    self._count(tracked, run)
                    if self.on_polled_change is not None:  # push
                        self.on_polled_change(run.uid)
        if kept is not None:
            items = [items[index] for index in kept]
            packed = b"".join(keys[index] for index in kept)
        store.inserted(len(items))
        columns = _columns(items, runs.postponed is not None)
        codes, runs.api, runs.start, runs.finish, runs.scheduled, runs.postponed = columns
        runs.keys[:] = packed
        runs.status = array("B", codes)
        runs.extra = _extra(items, codes)
        runs.position = array("I", range(len(items)))
        _latest_of_columns(tracked.last_status_time, columns)
        return duplicates

    def _count(self, tracked: WorkflowState, run: Run) -> None:
        tracked.status_changes[run.status] += 1
        if run.status in NEEDS_ACTION_STATUSES:  # run errors: and why
            key = (run.status, run.error.reason if run.error is not None else OTHER_REASON)
            tracked.failures[key] = tracked.failures.get(key, 0) + 1
        duration = run.duration
        if run.status in TERMINAL_STATUSES and duration is not None:
            tracked.durations[run.status].observe(duration)

    def workflow_failed(self, workflow: Workflow, reason: str, message: str) -> WorkspaceSnapshot:
        tracked = self.workflows.get(workflow.uid)
        if tracked is not None:
            tracked.last_error = f"{reason}: {message}"
            tracked.last_attempt = self.clock.monotonic()
            tracked.snapshot = None
            self._dirty.add(tracked.uid)
        self._failures.setdefault(reason, message)
        return self._build()

    def workflow_vanished(self, workflow: Workflow) -> WorkspaceSnapshot:
        """404 on its runs: deleted since it was listed (the next list drops it), or a path the API
        does not serve. Counted as ``not_found``; the poll stays up unless no workflow could be read."""
        tracked = self.workflows.get(workflow.uid)
        message = f"{workflow.uid}: its runs answered 404"
        if tracked is not None:
            tracked.last_error = f"{NOT_FOUND}: its runs answered 404"
            tracked.last_attempt = self.clock.monotonic()
            tracked.snapshot = None
            self._dirty.add(tracked.uid)
            self._read.add(workflow.uid)
        self._failures.setdefault(NOT_FOUND, message)
        return self._build()

    def skipped(self, counts: Mapping[str, int]) -> None:
        self.runs_skipped.update(counts)

    def truncated(self, workflow: Workflow, message: str) -> None:
        """Pagination of ``workflow`` stopped early (page cap, repeated page): counted, poll stays up."""
        self._failures.setdefault(PAGE_CAP, f"{workflow.uid}: {message}")

    def over_limit(self, message: str) -> None:
        """Workflows (v3) or actions (v4) past the configured cap were left out: counted, poll stays up."""
        self._failures.setdefault(OVER_LIMIT, message)

    def poll_failed(self, reason: str, message: str) -> None:
        """The poll could not go on (the workflow list failed, no progress, an internal error)."""
        self._failures.setdefault(reason, message)

    def end_poll(self, duration: float, now: float | None = None) -> WorkspaceSnapshot:
        now = self.clock.time() if now is None else now
        for reason in self._failures:
            self.poll_errors[reason] += 1
        failed = {reason: text for reason, text in self._failures.items() if reason not in _COUNTED_ONLY}
        everything = all(uid in self._read for uid in self.workflows)
        self.up = self._listed and not failed and everything and (self._found or not self.workflows)
        if self.up:
            self.last_success = now
        if failed:
            reason, message = next(iter(failed.items()))
            self.last_error = f"{reason}: {message}"
        elif not everything:
            unread = sum(1 for uid in self.workflows if uid not in self._read)
            self.last_error = f"{unread} workflow(s) not read in this poll"
        elif not self.up and NOT_FOUND in self._failures:
            self.last_error = f"{NOT_FOUND}: no workflow could be read ({self._failures[NOT_FOUND]})"
        elif not self.up:
            self.last_error = "the workflow list was not read"
        else:
            noted = [reason for reason in _COUNTED_ONLY if reason in self._failures]
            self.last_error = f"{noted[0]}: {self._failures[noted[0]]}" if noted else ""
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
            for reason in SIDE_ERROR_REASONS:
                if reason != PAGE_CAP:  # an accounts page cap is logged, the values read are kept
                    self.side_errors.setdefault((read, reason), 0)
            for reason in SIDE_SKIP_REASONS if read == ACCOUNTS else (INVALID_VALUE,):
                self.side_skipped.setdefault((read, reason), 0)
        self._build()

    def credits_read(
        self, credits: Credits, skipped: Counter[str], now: float | None = None
    ) -> WorkspaceSnapshot:
        now = self.clock.time() if now is None else now
        self.credits = credits
        if credits.remaining is not None:
            self.credit_history.add(now, credits.remaining)
        self._skipped(CREDITS, skipped)
        self.side_last_error[CREDITS] = ""
        return self._build(now)

    def accounts_read(
        self,
        listings: dict[str, tuple[list[Account], bool]],
        skipped: Counter[str],
        limit: int | None = None,
    ) -> WorkspaceSnapshot:
        """Each integration's accounts; a complete listing replaces the last one (an account no longer
        listed loses its series), an incomplete one updates the accounts it lists and keeps the others.
        At most ``limit`` accounts in all (accounts.max_accounts): those kept from earlier reads go first,
        the oldest first, so incomplete listings that list other accounts each time cannot pile up."""
        for integration, (accounts, complete) in listings.items():
            if complete:
                self.accounts[integration] = tuple(accounts)
            else:
                merged = {account.uid: account for account in self.accounts.get(integration, ())}
                merged.update((account.uid, account) for account in accounts)
                self.accounts[integration] = tuple(merged.values())
        self.accounts = {name: self.accounts[name] for name in listings if name in self.accounts}
        if limit is not None:
            self._cap_accounts(listings, limit)
        self._skipped(ACCOUNTS, skipped)
        self.side_last_error[ACCOUNTS] = ""
        return self._build()

    def _cap_accounts(self, listings: dict[str, tuple[list[Account], bool]], limit: int) -> None:
        over = sum(map(len, self.accounts.values())) - limit
        for integration, (accounts, complete) in listings.items():
            if over <= 0:
                return
            if complete or integration not in self.accounts:
                continue
            read = {account.uid for account in accounts}
            kept = []
            for account in self.accounts[integration]:
                if over > 0 and account.uid not in read:
                    over -= 1
                else:
                    kept.append(account)
            self.accounts[integration] = tuple(kept)

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
        now = self.clock.time() if now is None else now
        limit = self.needs_action_limit
        if self._order is None or len(self._order) != len(self.workflows):
            self._order = sorted(self.workflows)
            self._index = {uid: index for index, uid in enumerate(self._order)}
            self._snapshots = [
                self.workflows[uid].snapshot or self.workflows[uid].build_snapshot(limit, now)
                for uid in self._order
            ]
        else:
            for uid in self._dirty:
                tracked = self.workflows.get(uid)
                index = self._index.get(uid)
                if tracked is not None and index is not None:
                    self._snapshots[index] = tracked.snapshot or tracked.build_snapshot(limit, now)
        self._dirty = set()
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
            state_save_errors=self.save_errors,
            api=self.api.snapshot(),
            needs_action_limit=self.needs_action_limit,
            workflows=tuple(self._snapshots),
            workflows_tracked=self.workflows_tracked,
            credits=self.credits,
            forecast=self.credit_history.forecast(self.credits.period_end if self.credits else None),
            accounts=tuple(account for accounts in self.accounts.values() for account in accounts),
            side_errors=dict(self.side_errors),
            side_skipped=dict(self.side_skipped),
            side_last_error=dict(self.side_last_error),
        )
        return self._snapshot

    def reindex(self) -> None:
        """``workflows`` was filled from outside (a restore): rebuild every snapshot at the next build."""
        self._order = None


#: Poll error reasons that are counted but leave the poll up.
_COUNTED_ONLY: Final = (PAGE_CAP, NOT_FOUND, OVER_LIMIT)
