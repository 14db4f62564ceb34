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
thing. Every knob (the job selector, thresholds, windows and ``for:`` durations, the runbook base URL) has
its default in ``exporter/conventions.yaml``, is a field of :class:`deploy.knobs.Knobs`, a command-line
flag of the same name and a ``_config`` key of the mixin; ``docs/alerts.md`` documents them.

For the mixin it also writes ``mixin/rules.libsonnet`` (the same rules, every knob read from ``$._config``)
and ``mixin/config.libsonnet`` (the ``_config`` defaults): see ``deploy/mixin_rules.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python deploy/generate.py` from a checkout, without installing the package
    sys.path.insert(0, str(REPO))

from deploy import mixin_rules  # noqa: E402
from deploy.knobs import KNOB_FIELDS, Knobs, changed, is_int, knob_values, symbolic  # noqa: E402
from deploy.model import Alert, Recording, Runbook  # noqa: E402
from deploy.runbook_page import render_runbooks  # noqa: E402
from deploy.textgen import PLACEHOLDER, fill, load_yaml, write_or_check  # noqa: E402
from exporter import conventions  # noqa: E402
from exporter.guide import API_CALLS, GUIDE, StatusGuide  # noqa: E402

RULES_FILE = "captaindata-alerts.rules.yml"
PROMETHEUS_RULE_FILE = "prometheusrule.yaml"
RUNBOOKS_FILE = "runbooks.md"
MIXIN_RULES_FILE = "rules.json"
MIXIN_RULES_LIBSONNET = "rules.libsonnet"
MIXIN_CONFIG = "config.libsonnet"

#: Where the committed files live, relative to the repository root.
COMMITTED: dict[str, Path] = {
    RULES_FILE: Path("deploy/prometheus") / RULES_FILE,
    PROMETHEUS_RULE_FILE: Path("deploy/kubernetes") / PROMETHEUS_RULE_FILE,
    RUNBOOKS_FILE: Path("docs") / RUNBOOKS_FILE,
    MIXIN_RULES_FILE: Path("mixin") / MIXIN_RULES_FILE,
    MIXIN_RULES_LIBSONNET: Path("mixin") / MIXIN_RULES_LIBSONNET,
    MIXIN_CONFIG: Path("mixin") / MIXIN_CONFIG,
}
#: The runbook_base_url knob's default (its home is exporter/conventions.yaml).
DEFAULT_RUNBOOK_BASE_URL = conventions.RUNBOOK_BASE_URL

# --- The model: rules with their runbook sections, read from deploy/alerts.yaml ----------------------------

SPEC_FILE = REPO / "deploy" / "alerts.yaml"
GROUPS = {
    "runs": "captaindata-runs",
    "health": "captaindata-health",  # credits and account health (issue 17)
    "exporter": "captaindata-exporter",
}
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
CALLS = API_CALLS
RUNBOOK_FIELDS = frozenset(f.name for f in dataclasses.fields(Runbook))


def template_values(knobs: Knobs) -> dict[str, Any]:
    """Every name a template may use: the knobs (durations also in seconds), the guide, the API calls, the
    alert names of exporter/conventions.yaml."""
    values = knob_values(knobs)
    values["alert.running_too_long"] = conventions.RUNNING_TOO_LONG_ALERT
    for status, guide in GUIDE.items():
        values.update(_guide_values(f"guide.{status}", guide))
    for name, call in CALLS.items():
        values[f"call.{name}"] = call.render()
    # Run errors: the description's quote of the run's error and the runbooks' note on it.
    for name, text in _spec()["run_errors"].items():
        values[name] = fill(text, values)
    return values


def _guide_values(prefix: str, guide: StatusGuide) -> dict[str, Any]:
    values = {f"{prefix}.{name}": getattr(guide, name) for name in GUIDE_FIELDS}
    values[f"{prefix}.alert"] = conventions.status_alert(guide.title)
    return values


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
                    by_cause=bool(rb.get("by_cause", False)),
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
    lines = [
        "Generated by deploy/generate.py from deploy/alerts.yaml and exporter/status_guide.yaml. Do not",
        "edit: change those and run `python deploy/generate.py` (docs/alerts.md lists the knobs).",
    ]
    if changed(knobs):
        lines.append("Knobs changed from the defaults: " + ", ".join(changed(knobs)))
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


def render_all(knobs: Knobs) -> dict[str, str]:
    knobs.validate()
    return {
        RULES_FILE: render_rules(knobs),
        PROMETHEUS_RULE_FILE: render_prometheus_rule(knobs),
        RUNBOOKS_FILE: render_runbooks(
            all_alerts(knobs), knobs, _header(knobs, "").strip().replace("\n ", " ")
        ),
        MIXIN_RULES_FILE: render_mixin_rules(knobs),
        MIXIN_RULES_LIBSONNET: mixin_rules.render_rules(rule_groups(symbolic())),
        MIXIN_CONFIG: mixin_rules.render_config(knobs),
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
        help="write the files flat into this directory instead of their places in the repository",
    )
    knobs = parser.add_argument_group("knobs (see docs/alerts.md)")
    for f in KNOB_FIELDS:
        knobs.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=f.default,
            type=int if is_int(f) else str,
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
