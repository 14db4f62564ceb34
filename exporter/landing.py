"""The landing page: version, each workspace's health, and runs by status with what to do about them."""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Sequence
from html import escape

from exporter import __version__
from exporter.snapshot import WorkspaceSnapshot
from exporter.statuses import GUIDE, STATUS_LABEL_VALUES

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.35rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f3f3}.up{color:#176d2c}.down{color:#a4161a;font-weight:bold}
.n{text-align:right}code{background:#f3f3f3;padding:0 .2rem}
"""


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
    return f"{stamp} ({max(0.0, now - moment):.0f}s ago)"


def render_landing_page(states: Sequence[WorkspaceSnapshot], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = []
    totals: Counter[str] = Counter()
    for state in states:
        for workflow in state.workflows:
            totals.update(workflow.runs_by_status)
        if not state.attempted:
            health = '<span class="down">first poll in progress</span>'
        elif state.up:
            health = '<span class="up">up</span>'
        else:
            health = f'<span class="down">down</span> — {escape(state.last_error)}'
        rows.append(
            f"<tr><td>{escape(state.name)}</td><td>{health}</td><td>{len(state.workflows)}</td>"
            f"<td>{escape(_when(state.last_success, now))}</td></tr>"
        )
    status_rows = []
    for status in STATUS_LABEL_VALUES:
        guide = GUIDE[status]
        status_rows.append(
            f"<tr><td>{escape(guide.title)}</td><td class=n>{totals.get(status, 0)}</td>"
            f"<td>{escape(guide.meaning)}</td><td>{escape(guide.action)}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Captain Data exporter</title><style>{_STYLE}</style></head>
<body>
<h1>Captain Data exporter</h1>
<p>Version {escape(__version__)} on Python {escape(platform.python_version())}.
<a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
<h2>Workspaces</h2>
<table><tr><th>Workspace</th><th>Last poll</th><th>Workflows</th><th>Last successful poll</th></tr>
{"".join(rows)}
</table>
<h2>Runs by status</h2>
<table><tr><th>Status</th><th>Runs</th><th>What it means</th><th>What to do</th></tr>
{"".join(status_rows)}
</table>
</body></html>
"""
