"""Generate the Captain Data alert rules, the PrometheusRule and the runbooks from data files.

Usage::

    python deploy/generate.py            # rewrite the committed files
    python deploy/generate.py --check    # exit 1 (and show a diff) if a committed file is out of date
    python deploy/generate.py --output-dir /tmp/rules --recent-window 10m --warning-for 0s
                                         # a variant with other knobs, written elsewhere

The words and expressions live beside this file: ``alerts.yaml`` (every alert and recording rule with its
runbook prose; near-twin alerts from one ``each:`` spec) and ``runbooks/*.md`` (the runbook page's frame).
The status knowledge (meaning, recommended action, steps, API calls) comes from the status guide
(``exporter/status_guide.yaml``), so the landing page, the alert annotations and the runbooks say the same
thing. Every knob (the job selector, thresholds, windows and ``for:`` durations, the runbook base URL) is a
field of :class:`Knobs` and a command-line flag of the same name; ``docs/alerts.md`` documents them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python deploy/generate.py` from a checkout, without installing the package
    sys.path.insert(0, str(REPO))

from deploy.textgen import PLACEHOLDER, fill, load_yaml, write_or_check  # noqa: E402
from exporter import statuses as st  # noqa: E402
from exporter.durations import parse_duration as seconds  # noqa: E402
from exporter.guide import API_CALLS, GUIDE, ApiCall, StatusGuide  # noqa: E402

RULES_FILE = "captaindata-alerts.rules.yml"
PROMETHEUS_RULE_FILE = "prometheusrule.yaml"
RUNBOOKS_FILE = "runbooks.md"
MIXIN_RULES_FILE = "rules.json"

#: Where the committed files live, relative to the repository root.
COMMITTED: dict[str, Path] = {
    RULES_FILE: Path("deploy/prometheus") / RULES_FILE,
    PROMETHEUS_RULE_FILE: Path("deploy/kubernetes") / PROMETHEUS_RULE_FILE,
    RUNBOOKS_FILE: Path("docs") / RUNBOOKS_FILE,
    MIXIN_RULES_FILE: Path("mixin") / MIXIN_RULES_FILE,
}

DEFAULT_RUNBOOK_BASE_URL = (
    "https://github.com/captaindata-exporter/captaindata-exporter/blob/main/docs/runbooks.md"
)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _knob(default: str | int, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Knobs:
    """The tunable parts of the rules. Each field is also a ``--flag`` (underscores become dashes)."""

    selector: str = _knob(
        'job="captaindata-exporter"', "PromQL label matchers selecting the exporter's series and its `up`"
    )
    runbook_base_url: str = _knob(
        DEFAULT_RUNBOOK_BASE_URL, "URL of docs/runbooks.md; each alert links to its section (#alertname)"
    )
    grafana_url: str = _knob(
        "http://localhost:3000", "Grafana's URL; each alert's dashboard_url opens its dashboard, filtered"
    )
    scrape_gap: str = _knob(
        "5m", "lookback that bridges missed scrapes (last_over_time/max_over_time); above 2 scrape intervals"
    )
    running_too_long: str = _knob("6h", "age of the oldest Running run that counts as too long")
    running_too_long_for: str = _knob("15m", "for: of CaptainDataRunRunningTooLong")
    recent_window: str = _knob(
        "24h", "a warning/shutdown run alerts for at most this long after it happened (never last month's)"
    )
    warning_for: str = _knob("5m", "for: of CaptainDataRunWarning")
    shutdown_for: str = _knob("5m", "for: of CaptainDataRunShutdown")
    shutdowns_persisting_count: int = _knob(3, "runs entering shutdown within the window that page")
    shutdowns_persisting_window: str = _knob("6h", "window of CaptainDataRunShutdownsPersisting")
    shutdowns_persisting_for: str = _knob("0s", "for: of CaptainDataRunShutdownsPersisting")
    paused_for: str = _knob("15m", "for: of CaptainDataRunPaused")
    stopped_window: str = _knob("1h", "CaptainDataRunStopped reports stops within this window")
    rate_limited_window: str = _knob("10m", "429s are counted over this window")
    rate_limited_for: str = _knob("20m", "for: of CaptainDataRateLimited (429s must keep arriving this long)")
    poll_failing_for: str = _knob("10m", "for: of CaptainDataExporterPollFailing")
    poll_errors_window: str = _knob(
        "15m", "window of captaindata_poll_errors_total that tells why polls fail (401/403, 429)"
    )
    poll_stale_threshold: str = _knob("15m", "age of the last successful poll that counts as stale")
    poll_stale_for: str = _knob("5m", "for: of CaptainDataExporterPollStale")
    unauthorized_for: str = _knob("5m", "for: of CaptainDataExporterUnauthorized")
    exporter_down_for: str = _knob("5m", "for: of CaptainDataExporterDown")
    workflow_stale_threshold: str = _knob("1h", "age of a workflow's last successful read that is stale")
    workflow_stale_for: str = _knob("10m", "for: of CaptainDataWorkflowStale")
    internal_errors_window: str = _knob(
        "1h", "CaptainDataExporterInternalError reports internal errors (exporter bugs) within this window"
    )

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in TEXT_KNOBS:
                if not value or "`" in value:
                    raise ValueError(f"{f.name} must be non-empty and free of backquotes")
            elif f.type in {"int", int}:
                if int(value) < 1:
                    raise ValueError(f"{f.name} must be at least 1")
            else:
                seconds(value)
        if seconds(self.scrape_gap) <= 0:
            raise ValueError("scrape_gap must be positive")


KNOB_FIELDS = tuple(dataclasses.fields(Knobs))
TEXT_KNOBS = frozenset({"selector", "runbook_base_url", "grafana_url"})

# --- The model: rules with their runbook sections, read from deploy/alerts.yaml ----------------------------

SPEC_FILE = REPO / "deploy" / "alerts.yaml"
RUNBOOK_PAGE = REPO / "deploy" / "runbooks" / "page.md"
RUNBOOK_SECTION = REPO / "deploy" / "runbooks" / "section.md"
GROUPS = {"runs": "captaindata-runs", "exporter": "captaindata-exporter"}
GROUP_RECORDING = "captaindata-recording"
ALERT_FIELDS = frozenset(
    {
        "name",
        "group",
        "severity",
        "for",
        "labels",
        "expr",
        "summary",
        "description",
        "action",
        "annotations",
        "runbook",
    }
)
CALLS: dict[str, ApiCall] = API_CALLS


@dataclass(frozen=True)
class Runbook:
    meaning: str
    causes: tuple[str, ...]
    steps: tuple[str, ...]
    confirm: str
    escalate: str
    design: str
    api_calls: tuple[ApiCall, ...] = ()


RUNBOOK_FIELDS = frozenset(f.name for f in dataclasses.fields(Runbook))


@dataclass(frozen=True)
class Alert:
    name: str
    group: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    action: str
    runbook: Runbook
    #: The dashboard_url annotation: the matching dashboard, filtered by the alert's labels.
    dashboard_url: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def rule(self, knobs: Knobs) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if seconds(self.for_) > 0:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "action": self.action,
            **self.annotations,
            "runbook_url": runbook_url(knobs, self.name),
            "dashboard_url": self.dashboard_url,
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    help: str


def runbook_url(knobs: Knobs, alert: str) -> str:
    return f"{knobs.runbook_base_url}#{alert.lower()}"


def template_values(knobs: Knobs) -> dict[str, Any]:
    """Every name a template may use: the knobs (durations also in seconds), the guide, the API calls."""
    values: dict[str, Any] = {}
    for f in KNOB_FIELDS:
        value = getattr(knobs, f.name)
        values[f.name] = value
        if f.name not in TEXT_KNOBS and f.type not in {"int", int}:
            values[f.name + "_seconds"] = _number(seconds(value))
    for status, guide in GUIDE.items():
        values.update(_guide_values(f"guide.{status}", guide))
    for name, call in CALLS.items():
        values[f"call.{name}"] = call.render()
    return values


def _guide_values(prefix: str, guide: StatusGuide) -> dict[str, Any]:
    return {f"{prefix}.{name}": getattr(guide, name) for name in GUIDE_FIELDS}


RUN_UID = "{{ $labels.run_uid }}"
GUIDE_FIELDS = ("title", "meaning", "action", "escalation", "steps", "api_calls", "v4_action", "v4_api_calls")


def _fill_string(text: str, values: dict[str, Any]) -> str:
    # ${call.X|run_uid}: the call with the alert's run in its path (Go template, filled by Prometheus)
    for name, call in CALLS.items():
        with_run = call.render().replace("{job_uid}", RUN_UID).replace("{run_uid}", RUN_UID)
        text = text.replace("${call." + name + "|run_uid}", with_run)
    return fill(text, values)


def _fill_list(items: list[Any], values: dict[str, Any]) -> list[Any]:
    """A list of templates; an item naming a guide list (``${guide.x.steps}``) splices it in."""
    out: list[Any] = []
    for item in items:
        match = PLACEHOLDER.fullmatch(item) if isinstance(item, str) else None
        spliced = values.get(match.group(1)) if match else None
        if isinstance(spliced, tuple):
            out.extend(spliced)
        elif isinstance(item, str) and item in CALLS:
            out.append(CALLS[item])
        else:
            out.append(_fill(item, values))
    return out


def _fill(data: Any, values: dict[str, Any]) -> Any:
    if isinstance(data, str):
        return _fill_string(data, values)
    if isinstance(data, list):
        return _fill_list(data, values)
    if isinstance(data, dict):
        return {key: _fill(value, values) for key, value in data.items()}
    return data


Spec = dict[str, Any]


def _expand(specs: list[Spec], values: dict[str, Any]) -> list[tuple[Spec, dict[str, Any]]]:
    """Each spec with its template values; an ``each:`` spec becomes one spec per item."""
    out: list[tuple[Spec, dict[str, Any]]] = []
    for spec in specs:
        if "each" not in spec:
            out.append((spec, values))
            continue
        for item in spec["each"]:
            one = {key: value for key, value in spec.items() if key != "each"}
            one["runbook"] = dict(one.get("runbook", {}))
            item_values = dict(values)
            if "status" in item:
                item_values.update(_guide_values("this", GUIDE[item["status"]]))
            for key, value in item.items():
                if key in ALERT_FIELDS:
                    one[key] = value
                elif key in RUNBOOK_FIELDS:
                    one["runbook"][key] = value
                item_values[key] = value
            out.append((one, item_values))
    return out


def _spec() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(SPEC_FILE)
    return data


def recording_rules(knobs: Knobs) -> list[Recording]:
    rules: list[Recording] = []
    for spec, values in _expand(_spec()["recording"], template_values(knobs)):
        for rule in spec["rules"]:
            filled = _fill(rule, values)
            rules.append(Recording(record=filled["record"], expr=filled["expr"], help=filled["help"]))
    return rules


def all_alerts(knobs: Knobs) -> list[Alert]:
    alerts: list[Alert] = []
    spec_file = _spec()
    for spec, values in _expand(spec_file["alerts"], template_values(knobs)):
        a = _fill(spec, values)
        rb = a["runbook"]
        alerts.append(
            Alert(
                name=a["name"],
                group=GROUPS[a["group"]],
                expr=a["expr"],
                for_=a["for"],
                severity=a["severity"],
                summary=a["summary"],
                description=a["description"],
                action=a["action"],
                dashboard_url=_fill(spec_file["dashboard_urls"][a["dashboard"]], values),
                labels=a.get("labels", {}),
                annotations=a.get("annotations", {}),
                runbook=Runbook(
                    meaning=rb["meaning"],
                    causes=tuple(rb["causes"]),
                    steps=tuple(rb["steps"]),
                    api_calls=tuple(rb.get("api_calls", ())),
                    confirm=rb["confirm"],
                    escalate=rb["escalate"],
                    design=rb["design"],
                ),
            )
        )
    return alerts


# --- Rendering ----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with indented sequences and multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def _yaml(data: Any) -> str:
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    return text


def rule_groups(knobs: Knobs) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = [
        {
            "name": GROUP_RECORDING,
            "rules": [{"record": r.record, "expr": r.expr} for r in recording_rules(knobs)],
        }
    ]
    for group in GROUPS.values():
        groups.append(
            {"name": group, "rules": [a.rule(knobs) for a in all_alerts(knobs) if a.group == group]}
        )
    return groups


def _header(knobs: Knobs, comment: str) -> str:
    changed = [
        f"{f.name}={getattr(knobs, f.name)}" for f in KNOB_FIELDS if getattr(knobs, f.name) != f.default
    ]
    lines = [
        "Generated by deploy/generate.py from deploy/alerts.yaml and exporter/status_guide.yaml. Do not",
        "edit: change those and run `python deploy/generate.py` (docs/alerts.md lists the knobs).",
    ]
    if changed:
        lines.append("Knobs changed from the defaults: " + ", ".join(changed))
    return "".join(f"{comment} {line}\n" for line in lines)


def render_rules(knobs: Knobs) -> str:
    return _header(knobs, "#") + _yaml({"groups": rule_groups(knobs)})


def render_mixin_rules(knobs: Knobs) -> str:
    """The rule groups as JSON for mixin/mixin.libsonnet (jsonnet imports JSON, not YAML)."""
    return json.dumps({"groups": rule_groups(knobs)}, indent=2, ensure_ascii=False) + "\n"


def render_prometheus_rule(knobs: Knobs) -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "captaindata-exporter",
            "labels": {
                "app.kubernetes.io/name": "captaindata-exporter",
                "app.kubernetes.io/component": "alerting-rules",
                # kube-prometheus-stack selects PrometheusRules by its Helm release name (ruleSelector), like
                # the ServiceMonitor beside this file: set it to yours.
                "release": "kube-prometheus-stack",
            },
        },
        "spec": {"groups": rule_groups(knobs)},
    }
    return _header(knobs, "#") + _yaml(resource)


_SHELL_VARS = {
    "job_uid": "$RUN_UID",
    "run_uid": "$RUN_UID",
    "job_name": "$RUN_NAME_URLENCODED",
    "workflow_uid": "$WORKFLOW_UID",
    "integration_uid": "$INTEGRATION_UID",
}
_BODIES = {
    API_CALLS["RETRY_A_RUN"].name: "--data @launch-payload.json",
    API_CALLS["LAUNCH_WORKFLOW"].name: "--data @launch-payload.json",
    API_CALLS["RESUME_A_RUN_V4"].name: "--data '{}'",
    API_CALLS["UPDATE_INTEGRATION_ACCOUNT"].name: (
        '--data \'{"account": {"uid": "ACCOUNT_UID", "cookies": {"li_at": "NEW_SESSION_COOKIE"}}, '
        '"resume_paused_jobs": true}\''
    ),
}


def curl(call: ApiCall) -> str:
    """The API call as a copy-pasteable curl command (variables as in the runbooks' conventions)."""
    url = call.path
    for placeholder, variable in _SHELL_VARS.items():
        url = url.replace("{" + placeholder + "}", variable)
    if "/v4/" in call.path:  # v4: one header, no workspace id
        lines = [f'curl -sS -X {call.method} "{url}"', '  -H "X-API-Key: $CAPTAINDATA_API_KEY"']
    else:
        lines = [
            f'curl -sS -X {call.method} "{url}"',
            '  -H "Authorization: x-api-key $CAPTAINDATA_API_KEY"',
            '  -H "x-project-id: $WORKSPACE_UID"',
        ]
    body = _BODIES.get(call.name)
    if body:
        lines += ['  -H "Content-Type: application/json"', f"  {body}"]
    return " \\\n".join(lines)


def _knob_table(knobs: Knobs) -> list[str]:
    return [f"`{f.name}`={getattr(knobs, f.name)}" for f in KNOB_FIELDS]


def _runbook_section(alert: Alert) -> str:
    rb = alert.runbook
    labels = ", ".join(f"`{k}={v}`" for k, v in {"severity": alert.severity, **alert.labels}.items())
    calls = "".join(
        f"\n\n{call.name}: `{call.render()}`{'; ' + call.note if call.note else ''}.\n\n"
        f"```bash\n{curl(call)}\n```"
        for call in rb.api_calls
    )
    return fill(
        RUNBOOK_SECTION.read_text(encoding="utf-8"),
        {
            "name": alert.name,
            "summary": alert.summary,
            "labels": labels,
            "for": f"`for: {alert.for_}`" if seconds(alert.for_) > 0 else "no `for:` (fires at once)",
            "expr": alert.expr,
            "meaning": rb.meaning,
            "causes": "\n".join(f"- {cause}" for cause in rb.causes),
            "action": alert.action,
            "steps": "\n".join(f"{i}. {step}" for i, step in enumerate(rb.steps, 1)),
            "api_calls": calls,
            "confirm": rb.confirm,
            "escalate": rb.escalate,
            "design": rb.design,
        },
    )


def render_runbooks(knobs: Knobs) -> str:
    alerts = all_alerts(knobs)
    alert_rows = [
        f"| [{a.name}](#{a.name.lower()}) | {a.severity} | {a.for_ if seconds(a.for_) > 0 else '-'} "
        f"| {a.action} |"
        for a in alerts
    ]
    status_rows = [
        f"| `{status}` | {guide.meaning} | {guide.action} |"
        for status, guide in ((s, GUIDE[s]) for s in st.KNOWN_STATUSES)
    ]
    return fill(
        RUNBOOK_PAGE.read_text(encoding="utf-8"),
        {
            "header": _header(knobs, "").strip().replace("\n ", " "),
            "alert_rows": "\n".join(alert_rows),
            "status_rows": "\n".join(status_rows),
            "sections": "".join(_runbook_section(alert) for alert in alerts).rstrip("\n"),
            "knobs": ", ".join(_knob_table(knobs)),
        },
    )


def render_all(knobs: Knobs) -> dict[str, str]:
    knobs.validate()
    return {
        RULES_FILE: render_rules(knobs),
        PROMETHEUS_RULE_FILE: render_prometheus_rule(knobs),
        RUNBOOKS_FILE: render_runbooks(knobs),
        MIXIN_RULES_FILE: render_mixin_rules(knobs),
    }


# --- Command line -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generate the alert rules, the PrometheusRule and docs/runbooks.md from statuses.py.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write the three files flat into this directory instead of their places in the repository",
    )
    knobs = parser.add_argument_group("knobs (see docs/alerts.md)")
    for f in KNOB_FIELDS:
        knobs.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=f.default,
            type=int if f.type in {"int", int} else str,
            help=f"{f.metadata['help']} (default: {f.default})",
        )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in KNOB_FIELDS})
    try:
        files = render_all(knobs)
    except ValueError as error:
        print(f"generate.py: {error}", file=sys.stderr)
        return 2
    root = args.output_dir if args.output_dir else REPO
    targets = {
        (root / name if args.output_dir else REPO / COMMITTED[name]): text for name, text in files.items()
    }
    return write_or_check(targets, check=args.check, root=root, command="python deploy/generate.py")


if __name__ == "__main__":
    raise SystemExit(main())
