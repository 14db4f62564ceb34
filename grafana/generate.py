"""Generate the Captain Data Grafana dashboards (and their Kubernetes ConfigMap) as code.

Usage::

    python grafana/generate.py            # write the files below
    python grafana/generate.py --check    # exit 1 if a committed file differs from what would be generated

Writes:

- ``grafana/dashboards/captaindata-overview.json`` and ``grafana/dashboards/captaindata-workflow.json``
- ``deploy/kubernetes/grafana-dashboards-configmap.yaml`` (both dashboards, label ``grafana_dashboard: "1"``)

The dashboards are built with grafana-foundation-sdk (a dev dependency, never needed at runtime): the panel
library in ``grafana/library.py``, what both dashboards share in ``grafana/sections.py``, one module per
dashboard (``grafana/overview.py``, ``grafana/workflow.py``), and here their output. The words (dashboard,
variable and panel descriptions) live in ``grafana/panels.yaml``, looked up by panel title. Status colours
live in the library; status meanings and recommended actions come from ``exporter/statuses.py``, so the
needs-action table's "Recommended action" column always says what the status guide says. Runbook links
point at ``${runbook_base_url}#<alertname lowercased>``, the sections of docs/runbooks.md; the alert names,
the variable's default and the staleness thresholds come from ``exporter/conventions.yaml`` as for the
alert rules, and ``--runbook-base-url`` changes the default here as ``deploy/generate.py
--runbook-base-url`` does for the alerts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python grafana/generate.py`` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

from deploy.textgen import fill, load_yaml, write_or_check  # noqa: E402
from exporter.conventions import RUNBOOK_BASE_URL, config_key  # noqa: E402
from exporter.guide import GUIDE  # noqa: E402
from grafana import overview, workflow  # noqa: E402
from grafana.library import AlertThreshold  # noqa: E402

OVERVIEW_PATH = ROOT / "grafana" / "dashboards" / "captaindata-overview.json"
WORKFLOW_PATH = ROOT / "grafana" / "dashboards" / "captaindata-workflow.json"
CONFIGMAP_PATH = ROOT / "deploy" / "kubernetes" / "grafana-dashboards-configmap.yaml"
MIXIN_DASHBOARDS = ROOT / "mixin" / "dashboards"
MIXIN_THRESHOLDS = ROOT / "mixin" / "dashboard_thresholds.json"
CONFIGMAP_NAME = "captaindata-grafana-dashboards"
#: Dashboard, variable and panel descriptions (panels by title), with ${scope} and the status guide's words.
WORDS: dict[str, dict[str, str]] = load_yaml(ROOT / "grafana" / "panels.yaml")
STATUS_BY_TITLE = {guide.title: guide for guide in GUIDE.values()}


def describe(title: str, scope: str) -> str:
    guide = STATUS_BY_TITLE.get(title)
    if guide:
        values = {"title": guide.title, "meaning": guide.meaning, "action": guide.action}
        return fill(WORDS["panels"]["Status"], values)
    return fill(WORDS["panels"][title], {"scope": scope})


def to_dict(board: dash.Dashboard, name: str, scope: str) -> dict[str, Any]:
    """The dashboard as plain JSON data, with stable panel ids, the words of panels.yaml and the Prometheus
    annotation's labels."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    data["description"] = WORDS["dashboards"][name]
    for variable in data["templating"]["list"]:
        variable["description"] = WORDS["variables"][variable["name"]]
    for index, panel in enumerate(iter_panels(data["panels"]), start=1):
        panel["id"] = index
        if panel["type"] != "row":
            panel["description"] = describe(panel["title"], scope)
    for annotation in data["annotations"]["list"]:
        annotation.update(
            {
                "titleFormat": "{{alertname}}",
                "textFormat": "{{workflow}} {{status}}",
                "tagKeys": "severity,workspace",
                "step": "1m",
            }
        )
    return data


def alert_thresholds(board: dash.Dashboard) -> list[dict[str, Any]]:
    """Each threshold step that is an alert threshold (:class:`AlertThreshold`): the panel's title, the step's
    index and the knob's ``_config`` key, so the mixin moves the step when ``_config`` changes the knob."""
    found = []
    for panel in board.build().panels or []:
        defaults = getattr(getattr(panel, "field_config", None), "defaults", None)
        steps = defaults.thresholds.steps if defaults and defaults.thresholds else []
        for index, step in enumerate(steps):
            if isinstance(step.value, AlertThreshold):
                found.append({"panel": panel.title, "step": index, "knob": config_key(step.value.knob)})
    return found


def iter_panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _LiteralDumper(yaml.SafeDumper):
    pass


def _literal_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _literal_str)


def render_configmap(files: dict[str, str]) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "labels": {
                "app.kubernetes.io/name": "captaindata-exporter",
                "app.kubernetes.io/component": "dashboards",
                "grafana_dashboard": "1",
            },
            "annotations": {"grafana_folder": "Captain Data"},
        },
        "data": files,
    }
    header = "# Generated by grafana/generate.py from grafana/dashboards/*.json. Do not edit by hand.\n"
    body = yaml.dump(manifest, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=4096)
    return header + body


def render_all(runbook_base_url: str = RUNBOOK_BASE_URL) -> dict[Path, str]:
    """Every generated file and its content."""
    boards = {
        OVERVIEW_PATH: (overview.dashboard(runbook_base_url), "overview", overview.SCOPE),
        WORKFLOW_PATH: (workflow.dashboard(runbook_base_url), "workflow", workflow.SCOPE),
    }
    rendered = {path: render_json(to_dict(*board)) for path, board in boards.items()}
    rendered[CONFIGMAP_PATH] = render_configmap({path.name: text for path, text in rendered.items()})
    # the monitoring mixin vendors mixin/ alone (jsonnet-bundler), so it holds its own copies
    for path in boards:
        rendered[MIXIN_DASHBOARDS / path.name] = rendered[path]
    thresholds = {path.name: alert_thresholds(board) for path, (board, _, _) in boards.items()}
    rendered[MIXIN_THRESHOLDS] = json.dumps(thresholds, indent=2) + "\n"
    return rendered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any generated file differs from the committed one",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=RUNBOOK_BASE_URL,
        help="default of the dashboards' runbook_base_url variable (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return write_or_check(
        render_all(args.runbook_base_url), check=args.check, root=ROOT, command="python grafana/generate.py"
    )


if __name__ == "__main__":
    raise SystemExit(main())
