"""docs/runbooks.md: the runbook page's frame (deploy/runbooks/*.md) filled with one section per alert."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.knobs import KNOB_FIELDS, Knobs, fires_at_once
from deploy.model import Alert
from deploy.textgen import fill, load_yaml
from exporter import statuses as st
from exporter.failures import REASONS
from exporter.guide import API_CALLS, GUIDE, ApiCall

RUNBOOKS = Path(__file__).resolve().parent / "runbooks"
CURL = load_yaml(RUNBOOKS / "curl.yaml")
#: The body of each call that sends one, by the call's own name ("Retry a Run").
_BODIES = {API_CALLS[name].name: body for name, body in CURL["bodies"].items()}


def curl(call: ApiCall) -> str:
    """The API call as a copy-pasteable curl command (variables as in the runbooks' conventions)."""
    url = call.path
    for placeholder, variable in CURL["shell_vars"].items():
        url = url.replace("{" + placeholder + "}", variable)
    version = "v4" if "/v4/" in call.path else "v3"
    lines = [f'curl -sS -X {call.method} "{url}"', *(f"  {h}" for h in CURL["headers"][version])]
    body = _BODIES.get(call.name)
    if body:
        lines += [f"  {CURL['body_header']}", f"  {body}"]
    return " \\\n".join(lines)


def _by_cause() -> str:
    """Run errors: what each cause of exporter/failures.yaml means and what to do about it."""
    item = (RUNBOOKS / "cause.md").read_text(encoding="utf-8")
    causes = "".join(
        fill(item, {"name": r.name, "title": r.title, "meaning": r.meaning, "action": r.action})
        for r in REASONS.values()
    )
    return fill((RUNBOOKS / "causes.md").read_text(encoding="utf-8"), {"causes": causes}).rstrip("\n")


def _section(alert: Alert) -> str:
    rb = alert.runbook
    labels = ", ".join(f"`{k}={v}`" for k, v in {"severity": alert.severity, **alert.labels}.items())
    calls = "".join(
        f"\n\n{call.name}: `{call.render()}`{'; ' + call.note if call.note else ''}.\n\n"
        f"```bash\n{curl(call)}\n```"
        for call in rb.api_calls
    )
    return fill(
        (RUNBOOKS / "section.md").read_text(encoding="utf-8"),
        {
            "name": alert.name,
            "summary": alert.summary,
            "labels": labels,
            "for": "no `for:` (fires at once)" if fires_at_once(alert.for_) else f"`for: {alert.for_}`",
            "expr": alert.expr,
            "meaning": rb.meaning,
            "causes": "\n".join(f"- {cause}" for cause in rb.causes),
            "action": alert.action,
            "steps": "\n".join(f"{i}. {step}" for i, step in enumerate(rb.steps, 1)),
            "api_calls": calls,
            "by_cause": _by_cause() if rb.by_cause else "",
            "confirm": rb.confirm,
            "escalate": rb.escalate,
            "design": rb.design,
        },
    )


def render_runbooks(alerts: Sequence[Alert], knobs: Knobs, header: str) -> str:
    alert_rows = [
        f"| [{a.name}](#{a.name.lower()}) | {a.severity} | {'-' if fires_at_once(a.for_) else a.for_} "
        f"| {a.action} |"
        for a in alerts
    ]
    status_rows = [
        f"| `{status}` | {guide.meaning} | {guide.action} |"
        for status, guide in ((s, GUIDE[s]) for s in st.KNOWN_STATUSES)
    ]
    return fill(
        (RUNBOOKS / "page.md").read_text(encoding="utf-8"),
        {
            "header": header,
            "alert_rows": "\n".join(alert_rows),
            "status_rows": "\n".join(status_rows),
            "sections": "".join(_section(alert) for alert in alerts).rstrip("\n"),
            "knobs": ", ".join(f"`{f.name}`={getattr(knobs, f.name)}" for f in KNOB_FIELDS),
        },
    )
