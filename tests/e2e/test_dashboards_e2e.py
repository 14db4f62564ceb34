"""Truth test for the Grafana dashboards: every panel query returns data from a real Prometheus.

The demo scenario of the simulator (every status present, a short run launched every two seconds, runs stuck
in Running for hours) is served in-process; the real exporter polls it every second as a subprocess; a real
Prometheus (Debian's package) scrapes the exporter every second. The dashboards' variables are resolved the
way Grafana does it (their ``label_values`` queries, chained), the remaining template variables get the
values Grafana would give them, and every panel target is run through Prometheus's HTTP API: it must parse
and return at least one finite sample. A dashboard query that returns nothing is a bug.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import build_demo_simulator
from tests.support.exporter_proc import fast_config, running_exporter, workspace_config
from tests.support.promstack import Prometheus, PrometheusQueryError, running_prometheus
from tests.support.sim_server import running_simulator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
RULES_JOB = "captaindata-exporter"  # the job the alert rules select on
OVERVIEW = ROOT / "grafana" / "dashboards" / "captaindata-overview.json"
WORKFLOW = ROOT / "grafana" / "dashboards" / "captaindata-workflow.json"
SCRAPE_SECONDS = 1
STEP_SECONDS = 2  # $__interval: a dashboard over the last few minutes at a usual panel width
# Grafana: $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
RATE_INTERVAL = f"{max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"
DEADLINE_SECONDS = 150.0
CHAINED = ("job", "instance", "workspace")
#: Pinned by this round's contract, emitted once the engine's branch is merged. Until the exporter emits one,
#: panels that read it may come back empty; once it is emitted they must return data like every other
#: panel. The lead empties this set after the merge (listed in the operator helper's report).
NOT_YET_EMITTED = frozenset(
    {
        "captaindata_workflow_last_success_timestamp_seconds",
        "captaindata_runs_skipped_total",
        "captaindata_runs_by_api_status",
        "captaindata_runs_postponed",
        'captaindata_poll_errors_total{reason="internal"}',
    }
)
#: Push (#16) is off in this exporter (no push: section), and its families are rendered only when push is
#: on: the Push row's panels are the only ones allowed to stay empty here.
PUSH_ONLY = frozenset(
    {
        "captaindata_push_requests_total",
        "captaindata_push_applied_total",
        "captaindata_push_missed_total",
        "captaindata_push_last_event_timestamp_seconds",
        "captaindata_push_apply_seconds",
    }
)
_REGEX_SPECIAL = re.compile(r"[\\$^*{}\[\]'+?.()|]")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def regex_escape(value: str) -> str:
    """Grafana's escaping of a multi-value variable's values inside a PromQL regex string."""
    return _REGEX_SPECIAL.sub(lambda match: "\\\\" + match.group(), value)


@dataclass
class Variables:
    """Resolved template variables: the chosen values of each, and whether it is multi-valued."""

    values: dict[str, list[str]]
    multi: dict[str, bool]

    def text(self, name: str) -> str:
        chosen = self.values[name]
        if self.multi[name]:  # "All" (or several values): Grafana joins the escaped values as (a|b|c)
            escaped = [regex_escape(value) for value in chosen]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        return chosen[0]


def interpolate(expr: str, variables: Variables, range_seconds: int) -> str:
    builtins = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": f"{STEP_SECONDS}s",
        "__range": f"{range_seconds}s",
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in builtins:
            return builtins[name]
        if name in variables.values:
            return variables.text(name)
        if name.isdigit():  # label_replace's "$1" is not a Grafana variable
            return match.group()
        raise AssertionError(f"unknown template variable ${name} in {expr}")

    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)
    assert "$__" not in text, text
    return text


def label_values(prom: Prometheus, selector: str, label: str) -> list[str]:
    now = time.time()
    series = prom.api("series", {"match[]": selector, "start": str(now - 600), "end": str(now)})
    return sorted({item[label] for item in series if label in item})


def resolve_variables(prom: Prometheus, board: dict[str, Any], workflow: str | None) -> Variables:
    """Run each chained ``label_values`` variable query with the earlier ones substituted (as Grafana does);
    pick All for multi-value variables, else ``workflow`` (or the first value)."""
    resolved = Variables(values={}, multi={})
    by_name = {var["name"]: var for var in board["templating"]["list"]}
    for name in CHAINED:
        var = by_name[name]
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"])
        assert match, var["query"]
        selector = interpolate(match.group(1), resolved, 60)
        values = label_values(prom, selector, match.group(2))
        assert values, f"variable {name}: {selector} has no {match.group(2)} values"
        resolved.multi[name] = bool(var["multi"] or var["includeAll"])
        if not resolved.multi[name]:
            values = [workflow] if name == "workflow" and workflow in values else values[:1]
        resolved.values[name] = values
    # The workflow variable: query_result(...) and a regex whose named groups give the value (the uid) and
    # the text (the name), over Grafana's text for each result: {workflow="...",workflow_uid="..."} v ts.
    var = by_name["workflow"]
    match = re.fullmatch(r"query_result\((.+)\)", var["query"])
    assert match, var["query"]
    pattern = re.compile(var["regex"].strip("/").replace("?<", "?P<"))
    data = prom.api("query", {"query": interpolate(match.group(1), resolved, 60), "time": str(time.time())})
    uids = []
    for item in data["result"]:
        labels = ",".join(f'{key}="{value}"' for key, value in sorted(item["metric"].items()))
        found = pattern.search("{" + labels + "} " + item["value"][1])
        assert found, labels
        uids.append(found.group("value"))
    assert uids, "variable workflow: no workflows"
    resolved.multi["workflow"] = bool(var["multi"] or var["includeAll"])
    if not resolved.multi["workflow"]:
        uids = [workflow] if workflow in uids else uids[:1]
    resolved.values["workflow"] = sorted(uids)
    return resolved


def finite_samples(data: dict[str, Any]) -> int:
    if data["resultType"] == "vector":
        values = [item["value"][1] for item in data["result"]]
    elif data["resultType"] == "matrix":
        values = [value for item in data["result"] for _, value in item["values"]]
    else:
        values = [data["result"][1]]
    return sum(1 for value in values if math.isfinite(float(value)))


@dataclass
class Outcome:
    title: str
    ref: str
    query: str
    error: str | None
    series: int
    finite: int
    result: list[dict[str, Any]]


def run_panels(
    prom: Prometheus, board: dict[str, Any], variables: Variables, start: float, end: float
) -> Iterator[Outcome]:
    range_seconds = max(int(end - start), STEP_SECONDS)
    for panel in data_panels(board):
        for target in panel["targets"]:
            expr = interpolate(target["expr"], variables, range_seconds)
            try:
                if target.get("instant"):
                    data = prom.api("query", {"query": expr, "time": str(end)})
                else:
                    data = prom.query_range(expr, start, end, f"{STEP_SECONDS}s")
            except PrometheusQueryError as error:
                yield Outcome(panel["title"], target["refId"], expr, str(error), 0, 0, [])
                continue
            result = data["result"] if isinstance(data["result"], list) else []
            yield Outcome(
                panel["title"], target["refId"], expr, None, len(result), finite_samples(data), result
            )


def reads(query: str, selector: str) -> bool:
    """Whether ``query`` reads the series of ``selector`` (a metric name, maybe with one matcher)."""
    name, _, matcher = selector.partition("{")
    return name in query and matcher.rstrip("}") in query


def pending_metrics(prom: Prometheus) -> set[str]:
    """The NOT_YET_EMITTED metrics this exporter really does not emit."""
    return {name for name in NOT_YET_EMITTED if not prom.api("series", {"match[]": name})}


def problems(outcomes: list[Outcome], pending: frozenset[str] = frozenset()) -> list[str]:
    found = []
    for o in outcomes:
        if not o.error and any(reads(o.query, selector) for selector in pending):
            continue  # reads a metric the exporter does not emit yet
        if o.error or not o.finite:
            why = o.error or ("no series" if not o.series else "only NaN/Inf samples")
            found.append(f"{o.title} [{o.ref}]: {why}\n    {o.query}")
    return found


@dataclass
class Checked:
    overview: list[Outcome]
    workflow: list[Outcome]
    workflow_name: str
    annotation_errors: list[str]
    broken: list[str]
    elapsed: float
    pending: frozenset[str]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checked]:
    workdir = tmp_path_factory.mktemp("dashboards-e2e")
    sim = build_demo_simulator(seed=0)
    workspace = next(iter(sim.workspaces.values()))
    began = time.monotonic()
    with running_simulator(sim) as base_url:
        # Credits and accounts (issue 17) read every second: the demo's credits burn within the test.
        demo = {
            **workspace_config("demo", base_url, workspace.uid, workspace.api_key),
            "credits": {"interval": "1s"},
            "accounts": {"interval": "1s"},
        }
        config = fast_config([demo], "1s")
        with (
            running_exporter(config, workdir) as exporter,
            running_prometheus(
                workdir,
                [exporter.address],
                rule_files=[RULES] if RULES.exists() else [],
                scrape_interval=f"{SCRAPE_SECONDS}s",
                job=RULES_JOB,
            ) as prom,
        ):
            prom.wait_for("captaindata_up == 1", timeout=30)
            start = time.time() - 1
            overview, workflow = load(OVERVIEW), load(WORKFLOW)
            # The workflow with a run stuck in Running for hours (the demo has two): the Workflow dashboard
            # then has something in every panel, as it would for the workflow an operator drills into.
            stuck = prom.wait_for("topk(1, captaindata_running_run_max_age_seconds > 3600)", timeout=30)[0][
                "metric"
            ]["workflow_uid"]
            not_emitted = frozenset(pending_metrics(prom))
            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:
                end = time.time()
                overview_vars = resolve_variables(prom, overview, None)
                workflow_vars = resolve_variables(prom, workflow, stuck)
                results = (
                    list(run_panels(prom, overview, overview_vars, start, end)),
                    list(run_panels(prom, workflow, workflow_vars, start, end)),
                )
                excused = not_emitted | PUSH_ONLY
                if not problems(results[0] + results[1], excused) or time.monotonic() > deadline:
                    break
                time.sleep(3)
            annotation_errors = []
            for board in (overview, workflow):
                for annotation in board["annotations"]["list"]:
                    expr = interpolate(annotation["expr"], overview_vars, 60)
                    try:
                        prom.query_range(expr, start, end, annotation.get("step", "1m"))
                    except PrometheusQueryError as error:
                        annotation_errors.append(f"{board['uid']} {annotation['name']}: {error}")
                        continue
                    if RULES.exists():
                        # Every for: is minutes long, so alerts are still pending here: drop the firing
                        # filter and check the alertname matcher selects the project's real alerts.
                        pending = expr.replace(', alertstate="firing"', "")
                        assert pending != expr
                        try:
                            prom.wait_for(pending, timeout=30)
                        except TimeoutError as error:
                            annotation_errors.append(f"{board['uid']} {annotation['name']}: {error}")
            # The same machinery on deliberately broken targets: a typo'd metric, a wrong label, bad syntax.
            broken_board = {
                "panels": [
                    {
                        "type": "stat",
                        "title": title,
                        "targets": [{"refId": "A", "expr": expr, "instant": True}],
                    }
                    for title, expr in (
                        ("typo", 'sum(captaindata_runz{job=~"$job"})'),
                        ("label", 'sum(captaindata_runs{job=~"$job", status="done"})'),
                        ("syntax", "sum(rate(captaindata_api_requests_total[$__rate_interval])"),
                    )
                ]
            }
            broken = problems(list(run_panels(prom, broken_board, overview_vars, start, time.time())))
            elapsed = time.monotonic() - began
            yield Checked(results[0], results[1], stuck, annotation_errors, broken, elapsed, not_emitted)


def test_every_overview_query_returns_data(checked: Checked) -> None:
    found = problems(checked.overview, checked.pending | PUSH_ONLY)
    assert not found, "Overview panels without data:\n" + "\n".join(found)
    excused = {o.title for o in checked.overview if any(reads(o.query, name) for name in PUSH_ONLY)}
    assert excused == {"Push events by outcome", "Missed pushes", "Push apply latency"}, excused
    assert len(checked.overview) >= 25


def test_every_workflow_query_returns_data(checked: Checked) -> None:
    found = problems(checked.workflow, checked.pending | PUSH_ONLY)
    assert not found, f"Workflow panels ({checked.workflow_name}) without data:\n" + "\n".join(found)
    assert len(checked.workflow) >= 20


def test_stats_count_the_runs_the_simulator_lists(checked: Checked) -> None:
    """The per-status stats add up to real runs: the demo keeps warning, shutdown and paused runs."""
    stats = {o.title: o for o in checked.overview}
    for title in ("Warning", "Shutdown", "Paused", "Finished", "Running", "Pending"):
        (item,) = stats[title].result
        assert float(item["value"][1]) >= 1, f"{title} stat is {item['value'][1]}"
    (unknown,) = stats["Unknown"].result
    assert float(unknown["value"][1]) == 0


def test_needs_action_rows_carry_every_table_column(checked: Checked) -> None:
    """Each row has the labels the table shows, and its status has a recommended-action mapping."""
    board = load(OVERVIEW)
    (table,) = [p for p in data_panels(board) if p["type"] == "table" and p["title"] == "Needs action"]
    mapped = {}
    for override in table["fieldConfig"]["overrides"]:
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                mapped[override["matcher"]["options"]] = set(prop["value"][0]["options"])
    (outcome,) = [o for o in checked.overview if o.title == "Needs action"]
    assert outcome.result
    statuses_seen = set()
    for row in outcome.result:
        labels = row["metric"]
        for column in ("workspace", "workflow", "run_name", "run_uid", "status", "action", "runbook"):
            assert labels.get(column), f"needs-action row without {column}: {labels}"
        assert labels["action"] == labels["status"] == labels["runbook"]
        assert labels["action"] in mapped["action"], f"no recommended action for {labels['action']}"
        assert labels["runbook"] in mapped["runbook"]
        statuses_seen.add(labels["status"])
    assert statuses_seen == {"warning", "shutdown", "paused"}


def test_alert_annotation_queries_select_the_alerts(checked: Checked) -> None:
    """The annotation queries parse, and without their firing filter they select the rules' alerts."""
    assert not checked.annotation_errors


def test_no_panel_is_excused(checked: Checked) -> None:
    """The engine emits every metric of this round's contract now: no panel reading one may come back empty
    (NOT_YET_EMITTED only matters on a branch without the engine)."""
    assert checked.pending == frozenset()


def test_broken_queries_are_caught(checked: Checked) -> None:
    assert len(checked.broken) == 3, checked.broken


def test_it_stays_quick(checked: Checked) -> None:
    assert checked.elapsed < 180, f"the dashboards truth test took {checked.elapsed:.0f}s"
