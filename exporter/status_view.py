"""What the landing page and /api/v1/status show: runs that need action now, with the action and the
exact API call, and each workflow's state. Built from the published snapshots only (no lock, no I/O).

Both views carry the same content and the same caps, so a page for 1,000 workflows stays small: the
most recent needs-action runs first, then workflows with an error or runs waiting for someone first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from exporter import __version__
from exporter.api import adapter
from exporter.coming_up import build_coming_up
from exporter.conventions import RUNBOOK_BASE_URL, RUNNING_TOO_LONG_ALERT, alert_name, threshold_seconds
from exporter.failures import REASONS
from exporter.guide import GUIDE, StatusGuide
from exporter.needs_action import newest_first
from exporter.snapshot import WorkspaceSnapshot
from exporter.statuses import NEEDS_ACTION_STATUSES, RUNNING, STATUS_LABEL_VALUES

if TYPE_CHECKING:
    from exporter.push.stats import PushFigures

#: docs/runbooks.md as published; each alert has a section whose anchor is its lowercased name.
RUNBOOKS_URL = RUNBOOK_BASE_URL
#: Rows of each table (and of the JSON lists); the totals say how many there are in all.
NEEDS_ACTION_CAP = 100
WORKFLOWS_CAP = 100
#: A run Running longer than this is listed with the runs that need action (the alert's default).
RUNNING_TOO_LONG = threshold_seconds("running_too_long")


def _call(guide: StatusGuide, api_version: str, run_uid: str, run_name: str, workflow_uid: str) -> str:
    """The API call to make for this run, in the workspace's API version ("" when there is none)."""
    calls = adapter(api_version).api_calls(guide)
    if not calls:
        return ""
    values = {"job_uid": run_uid, "run_uid": run_uid, "job_name": run_name, "workflow_uid": workflow_uid}
    text = calls[0].render()
    for key, value in values.items():
        text = text.replace("{" + key + "}", quote(value, safe=""))
    return text


def _action(guide: StatusGuide, api_version: str) -> str:
    return adapter(api_version).action(guide)


def _push(push: PushFigures, name: str) -> dict[str, Any]:
    """push (#16): whether pushes reach the workspace, the last one's time, what they did."""
    counts = {outcome: n for (workspace, outcome), n in push.requests.items() if workspace == name}
    return {
        "enabled": push.enabled.get(name, False),
        "last_event": push.last_event.get(name),
        "events": counts.get("accepted", 0) + counts.get("duplicate", 0),
        "applied": push.applied.get(name, 0),
        "missed": push.missed.get(name, 0),
        "fetch_failed": counts.get("fetch_failed", 0),
        "refused": sum(
            n for outcome, n in counts.items() if outcome not in ("accepted", "duplicate", "fetch_failed")
        ),
    }


def build_status(
    snapshots: Sequence[WorkspaceSnapshot], now: float | None = None, push: PushFigures | None = None
) -> dict[str, Any]:
    """The status board as plain data (JSON-able); the landing page renders exactly this. ``push``:
    the push figures when push is on (each workspace then says what push did)."""
    now = time.time() if now is None else now
    needs_action: list[dict[str, Any]] = []
    workflows: list[dict[str, Any]] = []
    workspaces: list[dict[str, Any]] = []
    for ws in snapshots:
        workspaces.append(
            {
                "name": ws.name,
                "api_version": ws.api_version,
                "up": ws.up,
                "attempted": ws.attempted,
                "last_success": ws.last_success,
                "last_error": ws.last_error,
                "workflows": len(ws.workflows),
            }
        )
        if push is not None:
            workspaces[-1]["push"] = _push(push, ws.name)
        for wf in ws.workflows:
            where = {"workspace": ws.name, "workflow": wf.name, "workflow_uid": wf.uid}
            for run in wf.needs_action:
                guide = GUIDE[run.status]
                needs_action.append(
                    {
                        **where,
                        "run_name": run.name,
                        "run_uid": run.uid,
                        "status": run.status,
                        "api_status": run.api_status,
                        "since": run.since,
                        # run errors: what the API says went wrong, its cause and what to do about it
                        "error": run.error,
                        "reason": run.reason,
                        "reason_action": REASONS[run.reason].action if run.reason in REASONS else "",
                        "action": _action(guide, ws.api_version),
                        "api_call": _call(guide, ws.api_version, run.uid, run.name, wf.uid),
                        "runbook": f"{RUNBOOKS_URL}#{alert_name(run.status).lower()}",
                    }
                )
            start = wf.oldest_running_start
            if start is not None and now - start > RUNNING_TOO_LONG:
                guide = GUIDE[RUNNING]
                needs_action.append(
                    {
                        **where,
                        "run_name": "",
                        "run_uid": "",
                        "status": "running_too_long",
                        "api_status": "running",
                        "since": start,
                        "error": "",
                        "reason": "",
                        "reason_action": "",
                        "action": _action(guide, ws.api_version),
                        "api_call": "",
                        "runbook": f"{RUNBOOKS_URL}#{RUNNING_TOO_LONG_ALERT.lower()}",
                    }
                )
            workflows.append(
                {
                    **where,
                    "runs_by_status": {
                        status: wf.runs_by_status.get(status, 0) for status in STATUS_LABEL_VALUES
                    },
                    "needs_action": sum(wf.runs_by_status.get(s, 0) for s in NEEDS_ACTION_STATUSES),
                    "last_success": wf.last_success,
                    "last_error": wf.last_error,
                }
            )
    # Most recent first (a run whose time the API did not give last); then the ones to look at first.
    shown = newest_first(needs_action, NEEDS_ACTION_CAP, lambda row: row["since"])
    workflows.sort(key=lambda row: (not row["last_error"], -row["needs_action"], row["workflow"].lower()))
    coming_up, coming_up_total = build_coming_up(snapshots)
    return {
        "version": __version__,
        "generated_at": now,
        "workspaces": workspaces,
        # Credits and account health (issue 17): what will pause runs before it does.
        "coming_up_total": coming_up_total,
        "coming_up": coming_up,
        "needs_action_total": len(needs_action),
        "needs_action": shown,
        "workflows_total": len(workflows),
        "workflows": workflows[:WORKFLOWS_CAP],
        "runbooks": RUNBOOKS_URL,
    }
