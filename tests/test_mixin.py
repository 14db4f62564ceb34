"""mixin/mixin.libsonnet, evaluated by the real jsonnet, gives exactly the generated rules and dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _jsonnet  # type: ignore[import-untyped]  # the `jsonnet` package: the C++ jsonnet's binding
import yaml

ROOT = Path(__file__).resolve().parent.parent
MIXIN = ROOT / "mixin" / "mixin.libsonnet"
RULES = ROOT / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"


def evaluate(field: str) -> Any:
    snippet = f"(import {json.dumps(str(MIXIN))}).{field}"
    return json.loads(_jsonnet.evaluate_snippet("mixin-test", snippet))


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return loaded


def test_alerts_are_the_generated_alert_groups() -> None:
    alerts = evaluate("prometheusAlerts")
    expected = [group for group in groups() if any("alert" in rule for rule in group["rules"])]
    assert alerts == {"groups": expected}
    assert len(expected) == 2


def test_recording_rules_are_the_generated_recording_group() -> None:
    recorded = evaluate("prometheusRules")
    assert recorded == {"groups": [group for group in groups() if group["name"] == "captaindata-recording"]}


def test_dashboards_are_the_generated_dashboards() -> None:
    dashboards = evaluate("grafanaDashboards")
    assert set(dashboards) == {"captaindata-overview.json", "captaindata-workflow.json"}
    for name, board in dashboards.items():
        assert board == json.loads((DASHBOARDS / name).read_text(encoding="utf-8")), name


def test_a_mixin_that_drops_a_group_is_caught() -> None:
    broken = f"local m = import {json.dumps(str(MIXIN))}; m {{ prometheusAlerts: {{ groups: [] }} }}"
    evaluated = json.loads(_jsonnet.evaluate_snippet("broken", broken + ".prometheusAlerts"))
    assert evaluated != {"groups": [g for g in groups() if any("alert" in r for r in g["rules"])]}
