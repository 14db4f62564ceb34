"""The generated alert rules: promtool accepts them and their unit tests pass, regenerating them is a no-op,
every alert has a firing and a non-firing unit test and a runbook section, and every metric they use is
one the exporter emits."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import conventions
from exporter import statuses as st
from exporter.guide import API_CALLS, GUIDE
from tests.support.promstack import PROMTOOL

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "deploy" / "generate.py"
RULES = REPO / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
ALERTS_DOC = REPO / "docs" / "alerts.md"
METRICS_DOC = REPO / "docs" / "metrics.md"
UNIT_TESTS = sorted((REPO / "tests" / "rules").glob("*.test.yml"))

#: The metric contract: every series name the exporter emits (histograms with their suffixes), plus the
#: `up` series Prometheus writes for each target.
CONTRACT_METRICS = frozenset(
    {
        "captaindata_runs",
        "captaindata_run_status_changes_total",
        "captaindata_run_duration_seconds_bucket",
        "captaindata_run_duration_seconds_sum",
        "captaindata_run_duration_seconds_count",
        "captaindata_running_run_max_age_seconds",
        "captaindata_running_run_oldest_start_timestamp_seconds",
        "captaindata_workflow_last_status_timestamp_seconds",
        "captaindata_run_needs_action",
        "captaindata_api_requests_total",
        "captaindata_api_request_failures_total",
        "captaindata_api_rate_limited_total",
        "captaindata_api_request_duration_seconds_bucket",
        "captaindata_api_request_duration_seconds_sum",
        "captaindata_api_request_duration_seconds_count",
        "captaindata_api_retry_after_seconds",
        "captaindata_up",
        "captaindata_last_poll_success_timestamp_seconds",
        "captaindata_poll_duration_seconds",
        "captaindata_poll_errors_total",
        "captaindata_workflows",
        "captaindata_exporter_build_info",
        # added by this round's contract (§5)
        "captaindata_workflow_last_success_timestamp_seconds",
        "captaindata_runs_skipped_total",
        "captaindata_runs_by_api_status",
        "captaindata_runs_postponed",
        # push (#16), experimental: only when push is on
        "captaindata_push_requests_total",
        "captaindata_push_applied_total",
        "captaindata_push_missed_total",
        "captaindata_push_last_event_timestamp_seconds",
        "captaindata_push_apply_seconds_bucket",
        "captaindata_push_apply_seconds_sum",
        "captaindata_push_apply_seconds_count",
        # credits and account health (issue 17)
        "captaindata_workspace_credits_remaining",
        "captaindata_workspace_credits_period_end_timestamp_seconds",
        "captaindata_account_valid",
        "captaindata_account_limit_used",
        "captaindata_account_limit",
        "captaindata_account_inputs_queued",
        "up",
    }
)
#: Which run status each run alert is about: its `action` annotation must be that status's action.
STATUS_OF_ALERT = {
    "CaptainDataRunRunningTooLong": st.RUNNING,
    "CaptainDataRunWarning": st.WARNING,
    "CaptainDataRunShutdown": st.SHUTDOWN,
    "CaptainDataRunPaused": st.PAUSED,
    "CaptainDataRunStopped": st.STOPPED,
}
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = {"summary", "description", "action", "runbook_url", "dashboard_url"}
RUNBOOK_SUBSECTIONS = (
    "### What it means",
    "### Likely causes",
    "### What to do",
    "### How to confirm it is resolved",
    "### When to escalate",
    "### Why the expression looks like this",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), f"{PROMTOOL} is missing: apt-get install prometheus"
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60, check=False
    )


@cache
def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alert_rules()]


@cache
def unit_test_cases() -> list[tuple[str, dict[str, Any]]]:
    """(file name, alert_rule_test case) for every alert test in tests/rules/."""
    cases = []
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((path.name, case))
    return cases


def metric_names(text: str) -> set[str]:
    """Series names used in a PromQL expression or an annotation template's query."""
    names = set(re.findall(r"\b(captaindata_[a-z_]+)\b", text))
    names |= set(re.findall(r"(?<![\w:])(up)\s*\{", text))
    return names


# --- promtool -------------------------------------------------------------------------------------------


def test_promtool_checks_the_rule_files() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule_groups())
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_promtool_checks_the_prometheus_rule_groups(tmp_path: Path) -> None:
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    extracted = tmp_path / "from-prometheusrule.rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": spec["groups"]}))
    result = promtool("check", "rules", str(extracted))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no tests/rules/*.test.yml"
    result = promtool("test", "rules", *(str(path) for path in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests pin what the rules compute: the same tests against a rule file whose warning alert
    forgot its recency condition must fail."""
    recency = (
        'increase(captaindata_run_status_changes_total{job="captaindata-exporter", status="warning"}[24h])'
    )
    broken = RULES.read_text().replace(f"{recency} > 0", "vector(1)")
    assert broken != RULES.read_text()
    (tmp_path / "rules.yml").write_text(broken)
    suite = yaml.safe_load((REPO / "tests" / "rules" / "runs.test.yml").read_text())
    suite["rule_files"] = ["rules.yml"]
    suite["tests"] = [t for t in suite["tests"] if t["name"].startswith("warning alerts on the new ")]
    assert len(suite["tests"]) == 1
    test_file = tmp_path / "runs.test.yml"
    test_file.write_text(yaml.safe_dump(suite))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode != 0
    assert "CaptainDataRunWarning" in result.stdout + result.stderr


# --- generation -----------------------------------------------------------------------------------------


def test_regenerating_is_a_no_op() -> None:
    result = generate("--check")
    assert result.returncode == 0, f"committed files are out of date:\n{result.stdout}\n{result.stderr}"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert generate("--output-dir", str(tmp_path)).returncode == 0
    runbooks = tmp_path / "runbooks.md"
    runbooks.write_text(runbooks.read_text() + "\nhand edit\n")
    result = generate("--check", "--output-dir", str(tmp_path))
    assert result.returncode == 1
    assert "hand edit" in result.stdout
    assert "runbooks.md" in result.stderr


def test_prometheus_rule_holds_exactly_the_rule_groups() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"] == "captaindata-exporter"
    assert resource["spec"]["groups"] == rule_groups()


def test_knobs_produce_a_variant_elsewhere(tmp_path: Path) -> None:
    result = generate(
        "--output-dir",
        str(tmp_path),
        "--selector",
        'job="cd", env="prod"',
        "--running-too-long",
        "2h",
        "--warning-for",
        "0s",
        "--runbook-base-url",
        "https://runbooks.example/captaindata.md",
    )
    assert result.returncode == 0, result.stderr
    variant = yaml.safe_load((tmp_path / "captaindata-alerts.rules.yml").read_text())
    rules = {rule.get("alert"): rule for group in variant["groups"] for rule in group["rules"]}
    assert "> 7200" in rules["CaptainDataRunRunningTooLong"]["expr"]
    assert "for" not in rules["CaptainDataRunWarning"]
    for name, rule in rules.items():
        if name is None:
            continue
        assert rule["annotations"]["runbook_url"] == f"https://runbooks.example/captaindata.md#{name.lower()}"
        uses_exporter = [m for m in metric_names(rule["expr"]) if m != "up"]
        assert 'job="captaindata-exporter"' not in rule["expr"]
        if uses_exporter:
            assert 'job="cd", env="prod"' in rule["expr"]
    check = promtool("check", "rules", str(tmp_path / "captaindata-alerts.rules.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "running_too_long=2h" in (tmp_path / "runbooks.md").read_text()
    assert generate("--check").returncode == 0, "a variant must not touch the committed files"


@pytest.mark.parametrize(
    "args",
    [["--scrape-gap", "5 minutes"], ["--shutdowns-persisting-count", "0"], ["--selector", "job=`x`"]],
)
def test_bad_knobs_are_refused(args: list[str], tmp_path: Path) -> None:
    result = generate("--output-dir", str(tmp_path), *args)
    assert result.returncode != 0
    assert not list(tmp_path.iterdir())


def test_every_knob_is_documented() -> None:
    doc = ALERTS_DOC.read_text()
    help_text = generate("--help").stdout
    flags = re.findall(r"(--[a-z][a-z-]+)", help_text)
    knob_flags = [flag for flag in flags if flag not in {"--help", "--check", "--output-dir"}]
    assert len(knob_flags) >= 20
    missing = [flag for flag in knob_flags if f"`{flag}`" not in doc]
    assert not missing, f"docs/alerts.md does not document {missing}"


# --- the rules themselves -------------------------------------------------------------------------------


def test_expected_alerts_exist() -> None:
    assert set(alert_names()) >= {
        "CaptainDataRunRunningTooLong",
        "CaptainDataRunWarning",
        "CaptainDataRunShutdown",
        "CaptainDataRunShutdownsPersisting",
        "CaptainDataRunPaused",
        "CaptainDataRunStopped",
        "CaptainDataRateLimited",
        "CaptainDataExporterPollFailing",
        "CaptainDataExporterPollStale",
        "CaptainDataExporterUnauthorized",
        "CaptainDataExporterDown",
    }
    assert len(alert_names()) == len(set(alert_names()))


def test_the_rules_follow_the_conventions() -> None:
    """The alert names, the runbook URL and the thresholds are those of exporter/conventions.yaml, the file
    the landing page reads too (so its runbook links and its running-too-long row match the alerts)."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for status in (st.WARNING, st.SHUTDOWN, st.PAUSED, st.STOPPED):
        assert rules[conventions.alert_name(status)]["labels"]["status"] == status
    running = rules[conventions.RUNNING_TOO_LONG_ALERT]
    assert running["labels"]["status"] == st.RUNNING
    threshold = conventions.threshold_seconds("running_too_long")
    assert threshold == 6 * 3600
    assert running["expr"].endswith(f") > {int(threshold)}")
    for name, rule in rules.items():
        assert rule["annotations"]["runbook_url"] == conventions.runbook_url(name)
    doc = ALERTS_DOC.read_text()
    for name, knob in conventions.KNOBS.items():
        if name != "runbook_base_url":  # the doc says where it points rather than the long URL
            row = f"| `--{name.replace('_', '-')}` | `{knob.default}` |"
            assert row in doc, f"docs/alerts.md shows another default for --{name}"


@pytest.mark.parametrize("name", alert_names())
def test_alert_labels_and_annotations(name: str) -> None:
    rule = next(rule for rule in alert_rules() if rule["alert"] == name)
    assert re.fullmatch(r"CaptainData[A-Z][A-Za-z]+", name)
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) >= REQUIRED_ANNOTATIONS
    assert rule["annotations"]["runbook_url"].endswith(f"/docs/runbooks.md#{name.lower()}")
    dashboard_url = rule["annotations"]["dashboard_url"]
    if "workflow_uid" in rule["expr"] and "by (workspace)" not in rule["expr"]:
        assert dashboard_url.startswith("http://localhost:3000/d/captaindata-workflow/"), dashboard_url
        assert "var-workflow={{ $labels.workflow_uid | urlquery }}" in dashboard_url
    else:
        assert dashboard_url.startswith("http://localhost:3000/d/captaindata-overview/"), dashboard_url
    if "workspace" in rule["expr"]:
        assert "var-workspace={{ $labels.workspace | urlquery }}" in dashboard_url
    if name in STATUS_OF_ALERT:
        status = STATUS_OF_ALERT[name]
        assert rule["annotations"]["action"] == GUIDE[status].action
        assert rule["labels"]["status"] == status


@pytest.mark.parametrize("name", alert_names())
def test_alert_uses_only_contract_metrics(name: str) -> None:
    rule = next(rule for rule in alert_rules() if rule["alert"] == name)
    used = metric_names(rule["expr"]) | metric_names(" ".join(rule["annotations"].values()))
    assert used, f"{name} uses no metric"
    assert used <= CONTRACT_METRICS, f"{name} uses {sorted(used - CONTRACT_METRICS)}, not in the contract"
    documented = METRICS_DOC.read_text()
    assert all(f"`{metric}`" in documented for metric in used - {"up"})


def test_recording_rules_use_only_contract_metrics() -> None:
    recorded = {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}
    assert recorded
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                raw = set(re.findall(r"\b([a-z_:]+)\s*[{(\[]", rule["expr"]))
                series = {name for name in raw if name.startswith("captaindata_") or ":" in name}
                assert series <= CONTRACT_METRICS | recorded, rule


def test_the_exporter_emits_every_metric_the_rules_use() -> None:
    """Cross-check the pinned contract against the exporter's own metric families."""
    from exporter.families import FAMILIES

    declared = {family.name for family in FAMILIES}
    used = set().union(*(metric_names(rule["expr"]) for rule in alert_rules())) - {"up"}
    for metric in used:
        family = re.sub(r"_(total|bucket|sum|count)$", "", metric)
        assert family in declared, f"{metric} is not declared in exporter/families.py"


# --- unit-test coverage -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", alert_names())
def test_every_alert_has_a_firing_and_a_quiet_unit_test(name: str) -> None:
    cases = [case for _, case in unit_test_cases() if case["alertname"] == name]
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"{name} has no unit test where it fires"
    assert quiet, f"{name} has no unit test where it must not fire"
    rule = next(rule for rule in alert_rules() if rule["alert"] == name)
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
            annotations = expected["exp_annotations"]
            assert set(annotations) == set(rule["annotations"]), f"{name}: pin every annotation"
            assert annotations["runbook_url"] == rule["annotations"]["runbook_url"]


# --- runbooks -----------------------------------------------------------------------------------------


def runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {part.split("\n", 1)[0].strip(): part for part in parts[1:]}


@pytest.mark.parametrize("name", alert_names())
def test_every_alert_has_a_runbook_section(name: str) -> None:
    sections = runbook_sections()
    assert name in sections, f"docs/runbooks.md has no '## {name}'"
    section = sections[name]
    for heading in RUNBOOK_SUBSECTIONS:
        assert heading in section, f"{name}: missing {heading!r}"
    rule = next(rule for rule in alert_rules() if rule["alert"] == name)
    assert rule["annotations"]["action"] in section
    assert rule["expr"] in section


@pytest.mark.parametrize("status", [st.RUNNING, st.WARNING, st.SHUTDOWN, st.PAUSED, st.STOPPED])
def test_runbooks_give_each_status_api_call(status: str) -> None:
    text = RUNBOOKS.read_text()
    for call in GUIDE[status].api_calls:
        assert call.render() in text
        method_and_url = f"curl -sS -X {call.method} "
        assert method_and_url in text


def test_runbooks_give_the_v4_calls_too() -> None:
    """A paused run is v4's BLOCKED: resume it once the cause is fixed; a failed one has no retry in v4."""
    text = RUNBOOKS.read_text()
    assert API_CALLS["RESUME_A_RUN_V4"].render() in text
    assert API_CALLS["GET_A_RUN_V4"].render() in text
    assert f"API v4 workspaces: {GUIDE[st.PAUSED].v4_action}" in text
    paused = next(rule for rule in alert_rules() if rule["alert"] == "CaptainDataRunPaused")
    assert paused["annotations"]["api_call_v4"].endswith("/v4/runs/{{ $labels.run_uid }}/resume{{ end }}")
