"""Structure checks for the generated Grafana dashboards.

These are the useful rules of grafana's dashboard-linter (not installable here), checked in Python against
the committed JSON: the datasource variable everywhere, only contract metrics in PromQL, job/instance
matchers on every selector, ``$__rate_interval`` in rates, fixed and unique uids, units and descriptions;
plus what this project adds: status colours and recommended actions from exporter/guide.py, links,
alert annotations, provisioning files, the Kubernetes ConfigMap, and byte-identical regeneration.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import statuses
from exporter.guide import GUIDE

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
OVERVIEW = DASHBOARD_DIR / "captaindata-overview.json"
WORKFLOW = DASHBOARD_DIR / "captaindata-workflow.json"
UIDS = {OVERVIEW: "captaindata-overview", WORKFLOW: "captaindata-workflow"}
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "grafana-dashboards-configmap.yaml"
DATASOURCES_PROVISIONING = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARDS_PROVISIONING = ROOT / "grafana" / "provisioning" / "dashboards" / "captaindata.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
CONTRACT = ROOT / "docs" / "CONTRACT-for-helpers.md"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
COUNTER_SUFFIXES = ("_total", *HISTOGRAM_SUFFIXES)
CHAINED_VARIABLES = ("job", "instance", "workspace")


# Helpers -------------------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows excluded)."""
    return [panel for panel in all_panels(board["panels"]) if panel["type"] != "row"]


def targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [v for v in board["templating"]["list"] if v["name"] == name]
    assert len(matches) == 1, f"{board['uid']}: expected one variable {name!r}"
    found: dict[str, Any] = matches[0]
    return found


def overrides(panel: dict[str, Any], field: str) -> dict[str, Any]:
    """The override properties for ``field`` (matched by name), as id -> value."""
    matcher = {"id": "byName", "options": field}
    found = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"] == matcher]
    assert len(found) == 1, f"{panel['title']}: expected one override for field {field!r}"
    return {prop["id"]: prop["value"] for prop in found[0]["properties"]}


def mapping_texts(mappings: list[dict[str, Any]]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for mapping in mappings:
        assert mapping["type"] == "value"
        texts.update({value: result.get("text", value) for value, result in mapping["options"].items()})
    return texts


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
_SELECTOR = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call or an aggregation
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def selectors(expr: str) -> list[tuple[str, str]]:
    """Each vector selector as (metric name, label matchers) — strings and label lists stripped first."""
    text = _LABEL_LIST.sub(" ", expr)
    found = []
    for match in _SELECTOR.finditer(text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in metric_names(expr):
            found.append((name, matchers))
    return found


def contract_metrics() -> set[str]:
    """Metric names from docs/metrics.md's table rows (backticked), else from the helpers' contract."""
    if METRICS_DOC.exists():
        names = {
            name
            for line in METRICS_DOC.read_text(encoding="utf-8").splitlines()
            if line.lstrip().startswith("|")
            for name in re.findall(r"`(captaindata_[a-z0-9_]+)", line)
        }
        source = METRICS_DOC
    else:
        names = set(re.findall(r"^- (captaindata_[a-z0-9_]+)", CONTRACT.read_text(encoding="utf-8"), re.M))
        source = CONTRACT
    assert len(names) >= 15, f"could not read the metric list from {source}: {sorted(names)}"
    return names


def base_name(metric: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


@pytest.fixture(params=[OVERVIEW, WORKFLOW], ids=lambda path: path.stem)
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return load(path)


# Generation ----------------------------------------------------------------------------------------------


def test_regenerating_changes_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"generated files are stale:\n{result.stderr}"


def test_check_fails_when_a_dashboard_differs(tmp_path: Path) -> None:
    """``--check`` compares byte for byte: a copy of the generator next to an edited dashboard fails."""
    modules = [str(path.relative_to(ROOT)) for path in (ROOT / "grafana").glob("*.py")]
    for relative in (
        *modules,
        "grafana/panels.yaml",
        "deploy/textgen.py",
        "grafana/dashboards/captaindata-overview.json",
        "grafana/dashboards/captaindata-workflow.json",
        "deploy/kubernetes/grafana-dashboards-configmap.yaml",
        "mixin/dashboards/captaindata-overview.json",
        "mixin/dashboards/captaindata-workflow.json",
        "mixin/dashboard_thresholds.json",
    ):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / relative).read_bytes())
    # the generator reads the status guide and the conventions of this checkout, not an installed one
    shutil.copytree(ROOT / "exporter", tmp_path / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    argv = [sys.executable, str(tmp_path / "grafana" / "generate.py"), "--check"]
    unchanged = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert unchanged.returncode == 0, unchanged.stderr
    edited = tmp_path / "grafana" / "dashboards" / "captaindata-workflow.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace('"refresh": "1m"', '"refresh": "5m"'))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "captaindata-workflow.json" in result.stderr


# Identity ------------------------------------------------------------------------------------------------


def test_uids_are_fixed_and_unique() -> None:
    boards = {path: load(path) for path in UIDS}
    for path, uid in UIDS.items():
        assert boards[path]["uid"] == uid
        assert len(uid) <= 40
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    assert len({board["title"] for board in boards.values()}) == len(boards)


def test_panel_ids_and_titles(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {board['uid']}"
    for panel in panels(board):
        assert panel["title"].strip(), f"panel {panel['id']} has no title"
        assert panel["gridPos"]["x"] >= 0
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_tags(board: dict[str, Any]) -> None:
    assert "captaindata" in board["tags"]


# Datasource and variables --------------------------------------------------------------------------------


def test_datasource_variable(board: dict[str, Any]) -> None:
    ds = variable(board, "datasource")
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"
    assert ds["label"] == "Data source"
    assert board["templating"]["list"][0]["name"] == "datasource"


def test_every_panel_and_target_uses_the_datasource_variable(board: dict[str, Any]) -> None:
    for panel in panels(board):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, panel["title"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    for annotation in board["annotations"]["list"]:
        assert annotation["datasource"] == DATASOURCE, annotation["name"]


def test_variables_are_chained_with_label_values(board: dict[str, Any]) -> None:
    for index, name in enumerate(CHAINED_VARIABLES):
        var = variable(board, name)
        assert var["type"] == "query"
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"])
        assert match, f"{name}: {var['query']!r} is not label_values(selector, label)"
        assert match.group(2) == name
        for earlier in CHAINED_VARIABLES[:index]:
            assert f'{earlier}=~"${earlier}"' in match.group(1), f"{name} is not chained to {earlier}"
        assert metric_names(match.group(1)) <= contract_metrics()
        assert var["refresh"] == 2, f"{name} should refresh on time range change"


def test_workflow_variable_selects_by_uid_and_shows_the_name(board: dict[str, Any]) -> None:
    """Two workflows with the same name never merge: the value is the uid, the text the name."""
    var = variable(board, "workflow")
    match = re.fullmatch(r"query_result\(max by \(workflow, workflow_uid\) \((.+)\)\)", var["query"])
    assert match, var["query"]
    for earlier in CHAINED_VARIABLES:
        assert f'{earlier}=~"${earlier}"' in match.group(1), f"workflow is not chained to {earlier}"
    pattern = re.compile(var["regex"].strip("/").replace("?<", "?P<"))
    # Grafana's query_result text: labels sorted by name, joined by commas, values raw (quotes unescaped)
    result = '{workflow="Extract "EU", leads",workflow_uid="wf-1"} 1 1700000000000'
    found = pattern.search(result)
    assert found
    assert found.group("value") == "wf-1"
    assert found.group("text") == 'Extract "EU", leads'
    assert var["refresh"] == 2
    for panel, target in targets(board):
        assert 'workflow="$workflow"' not in target["expr"], panel["title"]
        assert 'workflow=~"$workflow"' not in target["expr"], panel["title"]


def test_workflow_variable_selects_one_workflow_on_the_workflow_dashboard() -> None:
    assert variable(load(WORKFLOW), "workflow")["multi"] is False
    assert variable(load(WORKFLOW), "workflow")["includeAll"] is False
    assert variable(load(OVERVIEW), "workflow")["multi"] is True


# PromQL --------------------------------------------------------------------------------------------------


def test_metric_parser_sees_metrics_and_skips_the_rest() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, status) (rate(foo_bucket{job=~"$job", a="x y"}'
        "[$__rate_interval]))) / on (job) group_left bar or vector(1) and time() - baz offset 5m"
    )
    assert metric_names(expr) == {"foo_bucket", "bar", "baz"}
    assert metric_names('label_replace(up{a="b"}, "action", "$1", "status", "(.*)")') == {"up"}


def test_promql_names_only_documented_metrics(board: dict[str, Any]) -> None:
    allowed = contract_metrics()
    seen = set()
    for panel, target in targets(board):
        names = metric_names(target["expr"])
        assert names, f"{panel['title']}: no metric in {target['expr']!r}"
        for name in names:
            seen.add(name)
            if ":" in name:  # a recording rule: generated, and documented in docs/metrics.md
                assert name in recording_rules(), f"{panel['title']}: no recording rule {name}"
                assert name.rsplit(":", 1)[0] in METRICS_DOC.read_text(encoding="utf-8"), name
                continue
            assert base_name(name) in allowed or name in allowed, (
                f"{panel['title']}: {name} is not in {METRICS_DOC.name}: {target['expr']}"
            )
    for annotation in board["annotations"]["list"]:
        assert metric_names(annotation["expr"]) == {"ALERTS"}
    assert len(seen) >= 8


def test_every_selector_is_scoped_by_the_variables(board: dict[str, Any]) -> None:
    """job and instance on every selector; workspace on every per-workspace metric; workflow on runs."""
    exporter_level = {"captaindata_exporter_build_info"}
    workspace_level = {"captaindata_runs_skipped_total"}
    for panel, target in targets(board):
        found = selectors(target["expr"])
        assert found, target["expr"]
        for name, matchers in found:
            where = f"{panel['title']}: {name}{matchers}"
            if ":" in name:  # a recording rule: replicas merged already, no job/instance left
                assert name in recording_rules(), where
                assert 'workspace=~"$workspace"' in matchers, where
                if name.startswith("workflow:"):  # workspace: rules (credits, issue 17) have no workflow
                    assert re.search(r'workflow_uid=~?"\$workflow"', matchers), where
                continue
            assert 'job=~"$job"' in matchers, where
            assert 'instance=~"$instance"' in matchers, where
            if name not in exporter_level:
                assert 'workspace=~"$workspace"' in matchers, where
            if name.startswith(("captaindata_run", "captaindata_workflow_")) and name not in workspace_level:
                assert re.search(r'workflow_uid=~?"\$workflow"', matchers), where


_OPERATORS = r"\b(sum|max|min|avg|count|group|stddev|topk|bottomk|quantile)"
_AGGREGATION_BY = re.compile(_OPERATORS + r"\s*(?:by|without)\s*\([^)]*\)\s*$")
_AGGREGATION = re.compile(_OPERATORS + r"\s*$")


def innermost_aggregations(expr: str) -> list[tuple[str, str | None]]:
    """Each metric selector of ``expr`` with the aggregation operator nearest around it (None if none)."""
    names = metric_names(expr)
    found: list[tuple[str, str | None]] = []
    stack: list[str | None] = []  # per open paren: its aggregation, "" for a label list, None otherwise
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            string = _STRING.match(expr, i)
            assert string, expr[i:]
            i = string.end()
            continue
        if char in "{[":
            i = expr.index("}" if char == "{" else "]", i) + 1
            continue
        if char == "(":
            before = expr[:i]
            aggregation = _AGGREGATION_BY.search(before) or _AGGREGATION.search(before)
            label_list = re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*$", before)
            stack.append("" if label_list else aggregation.group(1) if aggregation else None)
        elif char == ")":
            stack.pop()
        else:
            starts = i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:.$")
            name = _IDENTIFIER.match(expr, i) if starts else None
            if name:
                if name.group() in names and "" not in stack:
                    nearest = next((agg for agg in reversed(stack) if agg), None)
                    found.append((name.group(), nearest))
                i = name.end()
                continue
        i += 1
    return found


def recording_rules() -> set[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "captaindata-alerts.rules.yml").read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def test_innermost_aggregation_parser() -> None:
    expr = 'sum by (status) (max by (workspace, status) (rate(a_total{x="sum by (y) (b)"}[5m]))) / sum(c)'
    assert innermost_aggregations(expr) == [("a_total", "max"), ("c", "sum")]
    assert innermost_aggregations("topk(10, time() - max by (w) (d))") == [("d", "max")]
    assert innermost_aggregations("e * 1000") == [("e", None)]


def test_replicas_are_merged_with_max_never_summed(board: dict[str, Any]) -> None:
    """Exporter replicas export the same series: like the alert rules, every query merges them with
    ``max by`` / ``min by`` right around the metric (a recording rule has merged them already); ``sum``
    only adds up what is already merged."""
    recorded = recording_rules()
    for panel, target in targets(board):
        for name, aggregation in innermost_aggregations(target["expr"]):
            if name in recorded:
                continue
            where = f"{panel['title']}: {name} under {aggregation}: {target['expr']}"
            assert aggregation in {"max", "min"}, where


def test_success_ratio_is_the_recording_rule() -> None:
    """One definition of the success ratio: the recording rules (docs/metrics.md explains them)."""
    ratio_panels = [p for p in panels(load(WORKFLOW)) if p["title"].startswith("Success ratio")]
    assert len(ratio_panels) == 2
    for panel in ratio_panels:
        (target,) = panel["targets"]
        assert re.search(r"workflow:captaindata_run_success_ratio:increase1[hd]\{", target["expr"])
    doc = METRICS_DOC.read_text(encoding="utf-8")
    assert "workflow:captaindata_run_success_ratio:increase1d" in doc
    assert "stopped" in doc.split("workflow:captaindata_run_success_ratio", 1)[1][:2000]


def test_rates_use_rate_interval(board: dict[str, Any]) -> None:
    """Every range is ``$__rate_interval``; ``$__range`` only in increase() of instant (whole-range) stats."""
    for panel, target in targets(board):
        expr = target["expr"]
        for window in re.findall(r"\[([^\]]*)\]", _STRING.sub('""', expr)):
            if window == "$__range":
                assert target.get("instant") is True, f"{panel['title']}: $__range in a range query"
                assert "increase(" in expr
            else:
                assert window == "$__rate_interval", f"{panel['title']}: [{window}] in {expr}"
        for function, metric in re.findall(r"\b(rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)", expr):
            assert metric.endswith(COUNTER_SUFFIXES), f"{panel['title']}: {function}() over {metric}"


def test_histogram_quantiles_aggregate_by_le(board: dict[str, Any]) -> None:
    for panel, target in targets(board):
        if "histogram_quantile" in target["expr"]:
            assert re.search(r"sum by \(le\b", target["expr"]), panel["title"]
            assert "_bucket" in target["expr"], panel["title"]


# Presentation --------------------------------------------------------------------------------------------


def test_every_panel_has_a_unit_and_a_description(board: dict[str, Any]) -> None:
    for panel in panels(board):
        assert panel.get("description", "").strip(), f"{panel['title']}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert panel.get("options"), f"{panel['title']}: no options"


def test_one_stat_per_status_in_its_colour(board: dict[str, Any]) -> None:
    stats = {panel["title"]: panel for panel in panels(board) if panel["type"] == "stat"}
    colours = set()
    for status in statuses.STATUS_LABEL_VALUES:
        guide = GUIDE[status]
        panel = stats[guide.title]
        assert f'status="{status}"' in panel["targets"][0]["expr"]
        assert guide.meaning in panel["description"]
        assert guide.action in panel["description"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        colour = steps[-1]["color"]
        colours.add(colour)
        if status in statuses.NEEDS_ACTION_STATUSES:
            assert steps[0]["color"] == "green", guide.title
            assert steps[-1]["value"] == 1, guide.title
        if status == statuses.FINISHED:
            assert colour == "green"
        if status == statuses.SHUTDOWN:
            assert colour == "red"
    assert len(colours) == len(statuses.STATUS_LABEL_VALUES), "two statuses share a colour"


def test_needs_action_table_shows_the_status_guides_actions(board: dict[str, Any]) -> None:
    (panel,) = [p for p in panels(board) if p["type"] == "table" and p["title"] == "Needs action"]
    expr = panel["targets"][0]["expr"]
    assert "captaindata_run_needs_action" in expr
    assert panel["targets"][0]["format"] == "table"
    by = re.search(r"max by \(([^)]*)\)", expr)
    assert by
    labels = {label.strip() for label in by.group(1).split(",")}
    assert {"workflow", "run_name", "run_uid", "status"} <= labels
    needs_action = statuses.NEEDS_ACTION_STATUSES
    actions = mapping_texts(overrides(panel, "action")["mappings"])
    assert actions == {status: GUIDE[status].action for status in needs_action}
    runbook = overrides(panel, "runbook")
    assert set(mapping_texts(runbook["mappings"])) == set(needs_action)
    (link,) = runbook["links"]
    assert link["url"] == "${runbook_base_url}#captaindatarun${__value.raw}"
    assert set(mapping_texts(overrides(panel, "status")["mappings"])) == set(statuses.STATUS_LABEL_VALUES)
    (workflow_link,) = overrides(panel, "workflow")["links"]
    assert workflow_link["url"].startswith(f"/d/{UIDS[WORKFLOW]}/")
    organize = [t for t in panel["transformations"] if t["id"] == "organize"]
    assert organize
    assert organize[0]["options"]["excludeByName"] == {"Time": True, "Value": True, "workflow_uid": True}
    assert "var-workflow=${__data.fields.workflow_uid}" in workflow_link["url"]


def test_runbook_sections_exist_for_the_linked_alerts() -> None:
    """Each needs-action status links to ``#captaindatarun<status>``: docs/runbooks.md must have it."""
    if not RUNBOOKS.exists():
        pytest.skip("docs/runbooks.md is written by the alerts helper")
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+\s+(.*)$", RUNBOOKS.read_text(encoding="utf-8"), re.M)
    }
    for status in statuses.NEEDS_ACTION_STATUSES:
        assert f"captaindatarun{status}" in anchors, f"no runbook section CaptainDataRun{status.title()}"


def test_links_between_dashboards_and_to_runbooks(board: dict[str, Any]) -> None:
    links = {link["title"]: link for link in board["links"]}
    dashboards = [link for link in links.values() if link["type"] == "dashboards"]
    assert dashboards
    assert all(set(link["tags"]) <= set(board["tags"]) for link in dashboards)
    assert any(link["includeVars"] and link["keepTime"] for link in dashboards)
    assert links["Runbooks"]["url"] == "${runbook_base_url}"
    assert variable(board, "runbook_base_url")["query"].startswith("http")


def test_runbook_base_url_is_the_alert_rules_knob(board: dict[str, Any]) -> None:
    from exporter.conventions import KNOBS

    assert variable(board, "runbook_base_url")["query"] == KNOBS["runbook_base_url"].default


def test_overview_links_to_the_workflow_dashboard() -> None:
    text = OVERVIEW.read_text(encoding="utf-8")
    assert f"/d/{UIDS[WORKFLOW]}/" in text
    assert "var-workflow=" in text


def test_alert_annotations_from_alerts_series(board: dict[str, Any]) -> None:
    (annotation,) = board["annotations"]["list"]
    assert annotation["enable"] is True
    assert annotation["expr"].startswith("ALERTS{")
    assert 'alertstate="firing"' in annotation["expr"]


def test_overview_has_the_issue_panels() -> None:
    titles = {panel["title"] for panel in panels(load(OVERVIEW))}
    for title in (
        "Runs by status",
        "Status changes per hour",
        "Needs action",
        "Longest-running run per workflow",
        "Completed-run duration distribution",
        "429 responses (rate limited)",
        "API requests by code",
        "API latency",
        "Workspace up",
        "Time since last successful poll",
        "Poll duration",
    ):
        assert title in titles


def test_workflow_has_the_issue_panels() -> None:
    titles = {panel["title"] for panel in panels(load(WORKFLOW))}
    for title in (
        "Runs by status",
        "Success ratio (24h)",
        "Success ratio over time",
        "Needs action",
        "Longest-running run",
        "Completed-run duration quantiles by outcome",
        "Completed-run duration distribution",
    ):
        assert title in titles


# Provisioning and Kubernetes -----------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    config = yaml.safe_load(DATASOURCES_PROVISIONING.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"].startswith("http")
    assert re.fullmatch(r"\d+[smh]", source["jsonData"]["timeInterval"])


def test_dashboards_provisioning() -> None:
    config = yaml.safe_load(DASHBOARDS_PROVISIONING.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/captaindata"
    assert provider["folder"]


def test_configmap_holds_both_dashboards() -> None:
    text = CONFIGMAP.read_text(encoding="utf-8")
    manifest = yaml.safe_load(text)
    assert manifest["kind"] == "ConfigMap"
    assert manifest["apiVersion"] == "v1"
    assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert manifest["data"] == {path.name: path.read_text(encoding="utf-8") for path in UIDS}
    # kubectl's client-side apply keeps a copy in an annotation limited to 256 KiB.
    assert len(text.encode()) < 256 * 1024


def test_configmap_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    manifest = yaml.safe_load(CONFIGMAP.read_text(encoding="utf-8"))
    kubernetes_validate.validate(manifest, "1.30", strict=True)
