"""A workspace's state as the records its journal keeps, and a state rebuilt from them.

The record shapes are part of the state format (docs/configuration.md, ``FORMAT_VERSION`` in
journal.py): a change that files already on disk cannot take is a new format version. What a restored
state remembers and what it forgets is decided here; the domain model (exporter/state.py) knows nothing
of files."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from exporter.apistats import ApiStats
from exporter.families import (
    API_STATUS_LABEL_VALUES,
    RUN_FAILURE_REASONS,
    SIDE_ERROR_REASONS,
    SIDE_READS,
    SIDE_SKIP_REASONS,
)
from exporter.histogram import REQUEST_DURATION_BUCKETS, RUN_DURATION_BUCKETS, Histogram
from exporter.runstore import API_STATUSES, STATUSES, key_of
from exporter.state import FORGET_MISSING_WORKFLOWS_LISTS, WorkspaceState
from exporter.statuses import NEEDS_ACTION_STATUSES, STATUS_LABEL_VALUES

_API_COUNTERS = ("requests", "failures", "rate_limited")
_API_STATUSES = {value: value for value in API_STATUS_LABEL_VALUES}  # interned as the parsers make them


def export_workspace(state: WorkspaceState) -> dict[str, Any]:
    """The workspace's record, without its API counters (``export_api`` adds them when it is saved)."""
    return {
        "listed_once": state.listed_once,
        "listed_at": state.listed_at,  # added in #19 (absent: unknown)
        "last_success": state.last_success,
        "poll_errors": dict(state.poll_errors),
        "runs_skipped": dict(state.runs_skipped),
        "workflows": list(state.workflows),
        # Credits and account health (issue 17): the side reads' counters (their values are re-read).
        "side_errors": [[*key, value] for key, value in state.side_errors.items()],
        "side_skipped": [[*key, value] for key, value in state.side_skipped.items()],
    }


def export_workflow(state: WorkspaceState, uid: str) -> dict[str, Any]:
    """The record of a listed workflow, or of one missing from the last list(s) (``state.missing``)."""
    tracked = state.workflows.get(uid) or state.missing[uid]
    records = list(tracked.runs.records())  # listed, then vanished
    record = {
        "uid": tracked.uid,
        "name": tracked.name,
        "baseline": tracked.baseline,
        "read": tracked.read,
        "since": tracked.since,  # added in #19 (absent: unknown)
        "runs": [[uid, status] for uid, status, _ in records],
        # Added in #19, in the order of "runs" (absent: unknown): a later change of the derived status
        # alone is then a correction, not a transition.
        "api_statuses": [api_status for _, _, api_status in records],
        # Added in #20, in the order of "runs": when a run left its workflow's list (null: listed), so
        # that a restart does not start its day again (absent: left at the restart, as before).
        "vanished_at": [None] * len(tracked.runs) + list(tracked.runs.vanished_when),
        "status_changes": dict(tracked.status_changes),
        # run errors: [status, reason, count]; a record without it (written before) restores as zeros
        "failures": [[status, reason, count] for (status, reason), count in tracked.failures.items()],
        "durations": {status: h.export() for status, h in tracked.durations.items()},
        "last_status_time": dict(tracked.last_status_time),
        "last_success": tracked.last_success,
    }
    if uid not in state.workflows:
        # Added within version 1: missing from this many lists in a row (beyond the count that
        # forgets, no matter how many), since when. A record without it is a listed workflow's.
        record["absent"] = min(tracked.absent, FORGET_MISSING_WORKFLOWS_LISTS)
        record["absent_since"] = tracked.absent_since
    return record


def take_changes(state: WorkspaceState) -> tuple[set[str], set[str]]:
    """The uids of the workflows changed and of those removed since the last call (whose records are
    out of date on disk), and forgets them."""
    changed, state.changed = state.changed, set()
    removed, state.removed = state.removed, set()
    return changed, removed


def restore_workspace(
    name: str,
    workspace_record: Mapping[str, Any],
    workflow_records: Iterable[Mapping[str, Any]],
    needs_action_limit: int = 50,
    api_version: str = "v3",
    endpoints: Sequence[str] | None = None,
    now: float | None = None,
) -> WorkspaceState:
    """A state that continues from saved records. Restored runs are remembered, not listed: the
    next read counts a changed status once and a run new since the save as new."""
    now = time.time() if now is None else now
    state = WorkspaceState(name, needs_action_limit, api_version, endpoints)
    state.listed_once = bool(workspace_record.get("listed_once", False))
    state.listed_at = _finite(workspace_record.get("listed_at"))
    state.last_success = _finite(workspace_record.get("last_success"))
    _restore_counts(state.poll_errors, workspace_record.get("poll_errors"))
    _restore_counts(state.runs_skipped, workspace_record.get("runs_skipped"))
    _restore_pairs(state.side_errors, workspace_record.get("side_errors"), SIDE_ERROR_REASONS)
    _restore_pairs(state.side_skipped, workspace_record.get("side_skipped"), SIDE_SKIP_REASONS)
    in_list = workspace_record.get("workflows")
    listed = {uid for uid in in_list if isinstance(uid, str)} if isinstance(in_list, list) else set()
    for record in workflow_records:
        uid, wf_name = record.get("uid"), record.get("name")
        if not isinstance(uid, str) or not isinstance(wf_name, str):
            continue
        baseline = bool(record.get("baseline", False))
        earlier = state.workflows.pop(uid, None) or state.missing.pop(uid, None)
        if earlier is not None:  # a workflow's record given twice: the last one is its state
            state.store.drop(earlier.runs)
        tracked = state.new_workflow(uid, wf_name, baseline, _finite(record.get("since")))
        tracked.read = bool(record.get("read", False))
        runs = record.get("runs")
        runs = runs if isinstance(runs, list) else []
        api_statuses = record.get("api_statuses")
        if not isinstance(api_statuses, list) or len(api_statuses) != len(runs):
            api_statuses = [""] * len(runs)
        left = record.get("vanished_at")
        if not isinstance(left, list) or len(left) != len(runs):
            left = [None] * len(runs)
        for item, api_status, when in zip(runs, api_statuses, left, strict=True):
            if (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[1] in STATUS_LABEL_VALUES
            ):
                known = _API_STATUSES.get(api_status, "") if isinstance(api_status, str) else ""
                # Only a run's owner saves it (a duplicate is skipped): ownership survives a restart.
                # A uid saved twice (not by this exporter) is the last record's.
                holder = state.store.holder(item[0])
                if holder is not None:
                    holder.release(item[0])
                codes = STATUSES.code(item[1]), API_STATUSES.code(known)
                tracked.runs.remember(key_of(item[0]), *codes, _left(when, now))
        _restore_counts(tracked.status_changes, record.get("status_changes"), STATUS_LABEL_VALUES)
        _restore_failures(tracked.failures, record.get("failures"))
        durations = record.get("durations")
        if isinstance(durations, dict):
            for status in list(tracked.durations):  # every terminal status
                saved = durations.get(status)
                if isinstance(saved, dict):
                    tracked.durations[status] = Histogram.restore(RUN_DURATION_BUCKETS, saved)
        times = record.get("last_status_time")
        if isinstance(times, dict):
            for status, moment in times.items():
                if status in STATUS_LABEL_VALUES and (value := _finite(moment)) is not None:
                    tracked.last_status_time[status] = value
        tracked.last_success = _finite(record.get("last_success"))
        absent = record.get("absent")
        if uid not in listed and _is_count(absent) and absent > 0:
            # Missing from the last list(s) when saved: remembered as missing, its lists and time go on.
            tracked.absent = absent
            tracked.absent_since = _finite(record.get("absent_since")) or now
            state.missing[uid] = tracked
        else:
            state.workflows[uid] = tracked
    state.reindex()
    state.refresh(now)
    return state


def export_api(api: ApiStats) -> dict[str, Any]:
    exported: dict[str, Any] = {
        name: [[*key, value] for key, value in dict(getattr(api, name)).items()] for name in _API_COUNTERS
    }
    exported["durations"] = {endpoint: h.export() for endpoint, h in dict(api.durations).items()}
    return exported


def restore_api(api: ApiStats, saved: object) -> None:
    if not isinstance(saved, dict):
        return
    for name in _API_COUNTERS:
        target: Counter[tuple[str, str]] = getattr(api, name)
        for item in saved.get(name) or ():
            if (
                isinstance(item, list)
                and len(item) == 3
                and item[0] in api.endpoints
                and isinstance(item[1], str)
                and len(item[1]) <= 32
                and _is_count(item[2])
            ):
                target[(item[0], item[1])] = item[2]
    durations = saved.get("durations")
    if isinstance(durations, dict):
        for endpoint in api.endpoints:
            record = durations.get(endpoint)
            if isinstance(record, dict):
                api.durations[endpoint] = Histogram.restore(REQUEST_DURATION_BUCKETS, record)


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _left(value: object, now: float) -> float:
    """When a restored run left its list: its saved time, or ``now`` for a listed run, a record
    written before the time was saved, and a time that is not one (not finite, in the future)."""
    moment = _finite(value)
    return now if moment is None or moment > now else moment


def _is_count(value: object) -> TypeGuard[int]:
    """Whether a value read back from a state file is a counter value (an int, not a bool, >= 0)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _restore_failures(target: dict[tuple[str, str], int], saved: object) -> None:
    """Run errors: ``[status, reason, count]`` items of known statuses and reasons; others are dropped."""
    if not isinstance(saved, list):
        return
    for item in saved:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and item[0] in NEEDS_ACTION_STATUSES
            and item[1] in RUN_FAILURE_REASONS
            and _is_count(item[2])
        ):
            target[(item[0], item[1])] = item[2]


def _restore_pairs(target: Counter[tuple[str, str]], saved: object, reasons: Sequence[str]) -> None:
    """Counters keyed by (side read, reason), saved as [read, reason, count] items."""
    for item in saved if isinstance(saved, list) else ():
        if (
            isinstance(item, list)
            and len(item) == 3
            and item[0] in SIDE_READS
            and item[1] in reasons
            and _is_count(item[2])
        ):
            target[(item[0], item[1])] = item[2]


def _restore_counts(target: dict[str, int], saved: object, allowed: Iterable[str] | None = None) -> None:
    keys = set(target if allowed is None else allowed)
    if isinstance(saved, dict):
        for key, value in saved.items():
            if key in keys and _is_count(value):
                target[key] = value
