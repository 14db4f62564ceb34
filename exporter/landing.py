"""The landing page: what needs action now (with the action, the exact API call and the runbook), each
workflow's runs by status, last successful read and error, and each workspace's health.

It renders :func:`exporter.status_view.build_status`, the same content as ``/api/v1/status``. Everything
that comes from the API or the configuration is escaped. The page refreshes itself (a meta refresh, no
JavaScript).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from exporter import __version__
from exporter.failures import REASONS
from exporter.families import OTHER_REASON
from exporter.guide import GUIDE
from exporter.snapshot import WorkspaceSnapshot
from exporter.status_view import build_status
from exporter.statuses import STATUS_LABEL_VALUES
from exporter.text import INVISIBLE, invisible_escape

if TYPE_CHECKING:
    from exporter.push.stats import PushFigures

REFRESH_SECONDS = 30
#: push: changes arrive within a second, so the page refreshes more often.
PUSH_REFRESH_SECONDS = 2

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}.n{text-align:right}
.up{color:#176d2c}.down{color:#a4161a;font-weight:bold}.err{color:#a4161a}
.s-warning{background:#fff1e0}.s-shutdown{background:#fde4e4}.s-paused{background:#fff9d6}
.s-running_too_long{background:#e6f0ff}code{background:#f3f3f3;padding:0 .2rem;word-break:break-all}
.muted{color:#666}.inv{color:#a4161a;background:#fde4e4;font-family:monospace}.reason{font-weight:bold}
.c-credits_exhausted,.c-account_invalid{background:#fde4e4}.c-credits_soon,.c-account_limit{background:#fff1e0}
"""
_STATUS_TITLES = {**{s: GUIDE[s].title for s in STATUS_LABEL_VALUES}, "running_too_long": "Running too long"}


def _h(value: str) -> str:
    """``value`` escaped for HTML, each invisible or reordering character (bidi overrides, zero-width
    spaces; exporter.text.INVISIBLE) shown as a marked escape such as ``\\u202e``."""
    if value.isascii():
        return escape(value)
    return INVISIBLE.sub(
        lambda match: f'<span class="inv">{invisible_escape(match.group())}</span>',
        escape(value),  # escape() leaves these characters alone, and adds none
    )


def _ago(moment: float | None, now: float) -> str:
    if moment is None:
        return "unknown"
    days, rest = divmod(max(0, int(now - moment)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h ago"
    if hours:
        return f"{hours}h {minutes}m ago"
    return f"{minutes}m {seconds}s ago" if minutes else f"{seconds}s ago"


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
    return f'<span title="{stamp}">{escape(_ago(moment, now))}</span>'


def _more(shown: int, total: int, what: str) -> str:
    if total <= shown:
        return ""
    return (
        f'<p class="muted">Showing {shown} of {total} {what}; '
        '<a href="/api/v1/status">/api/v1/status</a> has the same rows, and the dashboards all of them.</p>'
    )


def _workflow_cell(row: dict[str, Any]) -> str:
    """The workflow's name, and its uid below when they differ (a v4 action's name is its uid)."""
    if row["workflow"] == row["workflow_uid"]:
        return _h(row["workflow"])
    return f"{_h(row['workflow'])}<br><code>{_h(row['workflow_uid'])}</code>"


def _run_cell(row: dict[str, Any]) -> str:
    """The run's name and uid (a v4 run has no name); a Running-too-long row names no run."""
    if not row["run_uid"]:
        return '<span class="muted">oldest Running run</span>'
    uid = f"<code>{_h(row['run_uid'])}</code>"
    return f"{_h(row['run_name'])}<br>{uid}" if row["run_name"] else uid


def _error_cell(row: dict[str, Any]) -> str:
    """Run errors: the run's cause and its error, as the API gave it (cleaned and redacted)."""
    if not row["reason"]:
        return '<span class="muted">-</span>'
    title = REASONS[row["reason"]].title if row["reason"] in REASONS else row["reason"]
    cause = f'<span class="reason">{escape(title)}</span>'
    return f'{cause}<br><span class="error">{escape(row["error"])}</span>' if row["error"] else cause


def _what_to_do(row: dict[str, Any]) -> str:
    """The status guide's action; run errors: preceded by the cause's own when the cause is known."""
    if row["reason_action"] and row["reason"] != OTHER_REASON:
        return f'{escape(row["reason_action"])}<br><span class="muted">{escape(row["action"])}</span>'
    return escape(row["action"])


def _needs_action(status: dict[str, Any], now: float) -> str:
    rows = []
    for row in status["needs_action"]:
        run = _run_cell(row)
        call = f"<code>{_h(row['api_call'])}</code>" if row["api_call"] else '<span class="muted">-</span>'
        rows.append(
            f'<tr class="s-{escape(row["status"])}"><td>{escape(_STATUS_TITLES[row["status"]])}</td>'
            f"<td>{_h(row['workspace'])}</td>"
            f"<td>{_workflow_cell(row)}</td>"
            f"<td>{run}</td><td>{_when(row['since'], now)}</td><td>{_error_cell(row)}</td>"
            f"<td>{_what_to_do(row)}</td>"
            f'<td>{call}</td><td><a href="{escape(row["runbook"])}">runbook</a></td></tr>'
        )
    if not rows:
        return (
            '<p id="needs-action-empty">Nothing needs action: no run is in Warning, Shutdown or Paused, '
            "and none has been Running too long.</p>"
        )
    return (
        '<table id="needs-action"><tr><th>Status</th><th>Workspace</th><th>Workflow</th><th>Run</th>'
        "<th>Entered it</th><th>Why</th><th>What to do</th><th>API call</th><th>Runbook</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
        + _more(len(rows), status["needs_action_total"], "runs that need action")
    )


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.0f}"


def _until(moment: float | None, now: float) -> str:
    """When a future moment comes: "in 2h 5m (2026-12-02 03:00 UTC)"."""
    if moment is None:
        return "unknown"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))
    left = max(0, int(moment - now))
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        span = f"{days}d {hours}h"
    elif hours:
        span = f"{hours}h {minutes}m"
    else:
        span = f"{minutes}m {seconds}s"
    return f"in {span} ({stamp})"


def _coming_up_what(row: dict[str, Any], now: float) -> str:
    """The row's facts: credits and their forecast, the account, or the limit's use."""
    if row["kind"].startswith("credits"):
        left = f"{_number(row['remaining'])} of {_number(row['limit'])} credits left"
        if row["burn_per_hour"] is None:
            rate = "burn rate not measured yet"
        elif row["runs_out_at"] is None:
            rate = "none used lately (burn rate 0)"
        else:
            rate = f"{_number(row['burn_per_hour'])}/h: run out {_until(row['runs_out_at'], now)}"
        renews = f"period renews {_until(row['period_end'], now)}"
        return escape(f"{left}; {rate}; {renews}")
    account = f"{row['account'] or row['account_uid']} ({row['integration']}, {row['account_uid']})"
    if row["kind"] == "account_invalid":
        return escape(f"{account}: session invalid") + f"<br><code>{escape(row['api_call'])}</code>"
    share = row["used"] / row["value"]
    queued = "unknown" if row["queued"] is None else _number(row["queued"])
    return escape(
        f"{account}: {row['limit']} {_number(row['used'])} of {_number(row['value'])} ({share:.0%}), "
        f"{queued} input(s) queued; resets {_until(row['reset'], now)}"
    )


def _coming_up(status: dict[str, Any], now: float) -> str:
    rows = [
        f'<tr class="c-{escape(row["kind"])}"><td>{escape(row["title"])}</td>'
        f"<td>{escape(row['workspace'])}</td><td>{_coming_up_what(row, now)}</td>"
        f'<td>{escape(row["action"])}</td><td><a href="{escape(row["runbook"])}">runbook</a></td></tr>'
        for row in status["coming_up"]
    ]
    if not rows:
        return (
            '<p id="coming-up-empty">Nothing coming up: no credits or accounts read yet, or none to show '
            "(the credits and accounts reads are on for v3 workspaces).</p>"
        )
    return (
        '<table id="coming-up"><tr><th>What</th><th>Workspace</th><th>Details</th><th>What to do</th>'
        "<th>Runbook</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
        + _more(len(rows), status["coming_up_total"], "rows")
    )


def _workflows(status: dict[str, Any], now: float) -> str:
    head = "".join(f"<th>{escape(GUIDE[s].title)}</th>" for s in STATUS_LABEL_VALUES)
    rows = []
    for row in status["workflows"]:
        counts = "".join(f"<td class=n>{row['runs_by_status'][s]}</td>" for s in STATUS_LABEL_VALUES)
        error = f'<span class="err">{_h(row["last_error"])}</span>' if row["last_error"] else ""
        rows.append(
            f"<tr><td>{_h(row['workspace'])}</td>"
            f"<td>{_workflow_cell(row)}</td>{counts}"
            f"<td>{_when(row['last_success'], now)}</td><td>{error}</td></tr>"
        )
    return (
        f'<table id="workflows"><tr><th>Workspace</th><th>Workflow</th>{head}'
        "<th>Last read</th><th>Error</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
        + _more(len(rows), status["workflows_total"], "workflows")
    )


def _workspaces(status: dict[str, Any], now: float) -> str:
    rows = []
    for ws in status["workspaces"]:
        if not ws["attempted"]:
            health = '<span class="down">first poll in progress</span>'
        elif ws["up"]:
            health = '<span class="up">up</span>'
        else:
            health = '<span class="down">down</span>'
        error = f'<span class="err">{_h(ws["last_error"])}</span>' if ws["last_error"] else ""
        rows.append(
            f"<tr><td>{_h(ws['name'])}</td><td>{escape(ws['api_version'])}</td><td>{health}</td>"
            f"<td class=n>{ws['workflows']}</td><td>{_when(ws['last_success'], now)}</td>"
            f"<td>{error}</td>{_push_cells(ws, now)}</tr>"
        )
    push_head = (
        "<th>Push</th><th>Last push</th><th>Pushes</th><th>Applied</th><th>Missed pushes</th>"
        if any("push" in ws for ws in status["workspaces"])
        else ""
    )
    return (
        '<table id="workspaces"><tr><th>Workspace</th><th>API</th><th>Last poll</th><th>Workflows</th>'
        f"<th>Last successful poll</th><th>Error</th>{push_head}</tr>\n" + "\n".join(rows) + "\n</table>"
    )


# push (#16)
def _push_cells(ws: dict[str, Any], now: float) -> str:
    push = ws.get("push")
    if push is None:
        return ""
    state = '<span class="up">on</span>' if push["enabled"] else '<span class="muted">off (no token)</span>'
    missed = push["missed"]
    missed_cell = f'<span class="err">{missed}</span>' if missed else "0"
    return (
        f"<td>{state}</td><td>{_when(push['last_event'], now)}</td><td class=n>{push['events']}</td>"
        f"<td class=n>{push['applied']}</td><td class=n>{missed_cell}</td>"
    )


def _guide() -> str:
    rows = "".join(
        f"<tr><td>{escape(GUIDE[s].title)}</td><td>{escape(GUIDE[s].meaning)}</td>"
        f"<td>{escape(GUIDE[s].action)}</td></tr>"
        for s in STATUS_LABEL_VALUES
    )
    return (
        f'<table id="guide"><tr><th>Status</th><th>What it means</th><th>What to do</th></tr>{rows}</table>'
    )


def render_landing_page(
    snapshots: Sequence[WorkspaceSnapshot], now: float | None = None, push: PushFigures | None = None
) -> str:
    now = time.time() if now is None else now
    status = build_status(snapshots, now, push)
    refresh = REFRESH_SECONDS if push is None else PUSH_REFRESH_SECONDS
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Captain Data exporter</title><style>{_STYLE}</style></head>
<body>
<h1>Captain Data exporter</h1>
<p>Version {escape(__version__)} on Python {escape(platform.python_version())}. This page refreshes every
{refresh}s. <a href="/metrics">Metrics</a> · <a href="/api/v1/status">Status as JSON</a> ·
<a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a> ·
<a href="{escape(status["runbooks"])}">Runbooks</a></p>
<h2>Needs action now</h2>
{_needs_action(status, now)}
<h2>Coming up</h2>
{_coming_up(status, now)}
<h2>Workflows</h2>
{_workflows(status, now)}
<h2>Workspaces</h2>
{_workspaces(status, now)}
<h2>Run statuses</h2>
{_guide()}
</body></html>
"""
