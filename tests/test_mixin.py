"""mixin/mixin.libsonnet, evaluated by the real jsonnet: with its `_config` defaults it gives exactly the
generated rules and dashboards, and with overrides the rules deploy/generate.py writes for the same knobs,
which promtool accepts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import _jsonnet  # type: ignore[import-untyped]  # the `jsonnet` package: the C++ jsonnet's binding
import pytest
import yaml

from exporter.conventions import KNOBS, config_key
from tests.support.promstack import PROMTOOL

ROOT = Path(__file__).resolve().parent.parent
MIXIN = ROOT / "mixin" / "mixin.libsonnet"
README = ROOT / "mixin" / "README.md"
RULES = ROOT / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"
GENERATOR = ROOT / "deploy" / "generate.py"

#: Overrides of each kind `_config` offers: the job selector, a threshold, a count, windows, `for:`
#: durations (one to zero, one from zero), the runbook and the dashboard base URLs.
OVERRIDES: dict[str, str | int] = {
    "selector": 'job="cd", env="prod"',
    "running_too_long": "2h",
    "shutdowns_persisting_count": 5,
    "recent_window": "12h",
    "warning_for": "0s",
    "shutdowns_persisting_for": "1m30s",
    "paused_for": "30m",
    "runbook_base_url": "https://runbooks.example/captaindata.md",
    "grafana_url": "https://grafana.example",
}


def evaluate(field: str, config: dict[str, Any] | None = None) -> Any:
    mixin = f"(import {json.dumps(str(MIXIN))})"
    if config is not None:
        mixin += f" + {{ _config+:: {json.dumps(config)} }}"
    return json.loads(_jsonnet.evaluate_snippet("mixin-test", f"({mixin}).{field}"))


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return loaded


def overrides() -> dict[str, Any]:
    return {config_key(name): value for name, value in OVERRIDES.items()}


def rules_by_name(rule_groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule.get("alert") or rule["record"]: rule for group in rule_groups for rule in group["rules"]}


def test_alerts_are_the_generated_alert_groups() -> None:
    alerts = evaluate("prometheusAlerts")
    expected = [group for group in groups() if any("alert" in rule for rule in group["rules"])]
    assert alerts == {"groups": expected}
    assert len(expected) == 3  # runs, health (credits and accounts, issue 17), exporter


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


def test_config_defaults_are_the_conventions() -> None:
    config = evaluate("_config")
    assert config == {config_key(name): knob.default for name, knob in KNOBS.items()}


def test_every_config_key_is_documented() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [key for key in evaluate("_config") if f"`{key}`" not in readme]
    assert not missing, f"mixin/README.md does not document {missing}"


def test_overrides_give_the_rules_the_generator_writes_for_the_same_knobs(tmp_path: Path) -> None:
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in OVERRIDES.items()]
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--output-dir", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    variant = yaml.safe_load((tmp_path / "captaindata-alerts.rules.yml").read_text(encoding="utf-8"))
    rendered = evaluate("prometheusRules", overrides())["groups"]
    rendered += evaluate("prometheusAlerts", overrides())["groups"]
    assert rendered == variant["groups"]
    assert rendered != groups()


def test_overrides_take_effect_and_promtool_accepts_them(tmp_path: Path) -> None:
    rule_groups = evaluate("prometheusRules", overrides())["groups"]
    rule_groups += evaluate("prometheusAlerts", overrides())["groups"]
    rules_file = tmp_path / "mixin.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False), encoding="utf-8")
    argv = [PROMTOOL, "check", "rules", str(rules_file)]
    check = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"SUCCESS: \d+ rules found", check.stdout + check.stderr)

    rules = rules_by_name(rule_groups)
    assert "> 7200" in rules["CaptainDataRunRunningTooLong"]["expr"]
    assert "more than 2h" in rules["CaptainDataRunRunningTooLong"]["annotations"]["summary"]
    assert ">= 5" in rules["CaptainDataRunShutdownsPersisting"]["expr"]
    assert "offset 12h" in rules["CaptainDataRunWarning"]["expr"]
    assert "for" not in rules["CaptainDataRunWarning"]
    assert rules["CaptainDataRunShutdownsPersisting"]["for"] == "1m30s"
    assert rules["CaptainDataRunPaused"]["for"] == "30m"
    assert rules["CaptainDataRunShutdown"]["for"] == "5m"  # not overridden: the default stays
    for name, rule in rules.items():
        assert 'job="captaindata-exporter"' not in rule["expr"], name
        if re.search(r"\bcaptaindata_\w+\{", rule["expr"]):
            assert 'job="cd", env="prod"' in rule["expr"], name
        if "alert" in rule:
            annotations = rule["annotations"]
            assert annotations["runbook_url"] == f"https://runbooks.example/captaindata.md#{name.lower()}"
            assert annotations["dashboard_url"].startswith("https://grafana.example/d/captaindata-"), name


def test_dashboards_link_to_the_configured_runbooks() -> None:
    url = "https://runbooks.example/captaindata.md"
    for name, board in evaluate("grafanaDashboards", {"runbookBaseUrl": url}).items():
        [variable] = [v for v in board["templating"]["list"] if v["name"] == "runbook_base_url"]
        assert variable["query"] == url, name
        assert variable["current"] == {"selected": True, "text": url, "value": url}, name
        default = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
        assert {k: v for k, v in board.items() if k != "templating"} == {
            k: v for k, v in default.items() if k != "templating"
        }


def test_dashboards_move_their_alert_thresholds_with_the_config() -> None:
    config = {"pollStaleThreshold": "30m", "workflowStaleThreshold": "2h"}
    board = evaluate("grafanaDashboards", config)["captaindata-overview.json"]
    default = json.loads((DASHBOARDS / "captaindata-overview.json").read_text(encoding="utf-8"))

    def red_steps(panels: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            panel["title"]: panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"]
            for panel in panels
            if "thresholds" in panel.get("fieldConfig", {}).get("defaults", {})
        }

    moved, before = red_steps(board["panels"]), red_steps(default["panels"])
    assert before["Time since last successful poll"] == 900
    assert moved["Time since last successful poll"] == 1800
    assert before["Workflows read longest ago"] == 3600
    assert moved["Workflows read longest ago"] == 7200
    unmoved = set(before) - {"Time since last successful poll", "Workflows read longest ago"}
    assert unmoved
    assert {title: moved[title] for title in unmoved} == {title: before[title] for title in unmoved}


@pytest.mark.parametrize("duration", ["5 minutes", "5", "m5", "5x"])
def test_a_duration_that_is_not_one_is_refused(duration: str) -> None:
    with pytest.raises(RuntimeError, match="duration"):
        evaluate("prometheusAlerts", {"runningTooLong": duration})
