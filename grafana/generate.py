"""Generate the Captain Data Grafana dashboards (and their Kubernetes ConfigMap) as code.

Usage::

    python grafana/generate.py            # write the files below
    python grafana/generate.py --check    # exit 1 if a committed file differs from what would be generated

Writes:

- ``grafana/dashboards/captaindata-overview.json`` and ``grafana/dashboards/captaindata-workflow.json``
- ``deploy/kubernetes/grafana-dashboards-configmap.yaml`` (both dashboards, label ``grafana_dashboard: "1"``)

The dashboards are built with grafana-foundation-sdk (a dev dependency, never needed at runtime). The words
(dashboard, variable and panel descriptions) live in ``grafana/panels.yaml``, looked up by panel title. Status
colours live here; status meanings and recommended actions come from ``exporter/statuses.py``, so the
needs-action table's "Recommended action" column always says what the status guide says. Runbook links
point at ``${runbook_base_url}#<alertname lowercased>``, the sections of docs/runbooks.md; the variable's
default is the alert rules' runbook knob (``deploy/generate.py``'s ``DEFAULT_RUNBOOK_BASE_URL``), and
``--runbook-base-url`` changes it here as ``deploy/generate.py --runbook-base-url`` does for the alerts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import bargauge, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python grafana/generate.py`` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

from deploy.generate import DEFAULT_RUNBOOK_BASE_URL  # noqa: E402  (the alert rules' runbook knob)
from deploy.textgen import fill, load_yaml, write_or_check  # noqa: E402
from exporter import statuses  # noqa: E402
from exporter.guide import GUIDE  # noqa: E402

OVERVIEW_UID = "captaindata-overview"
WORKFLOW_UID = "captaindata-workflow"
OVERVIEW_PATH = ROOT / "grafana" / "dashboards" / "captaindata-overview.json"
WORKFLOW_PATH = ROOT / "grafana" / "dashboards" / "captaindata-workflow.json"
CONFIGMAP_PATH = ROOT / "deploy" / "kubernetes" / "grafana-dashboards-configmap.yaml"
MIXIN_DASHBOARDS = ROOT / "mixin" / "dashboards"
CONFIGMAP_NAME = "captaindata-grafana-dashboards"
TAGS = ["captaindata", "captaindata-exporter"]

#: The datasource every panel, target, variable and annotation uses: the ``datasource`` variable.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: Grafana colours that match each status's meaning: blue for work in progress, green for success,
#: orange/red/yellow for the statuses that need action, grey for a manual stop, purple for the unexpected.
STATUS_COLOURS: dict[str, str] = {
    statuses.RUNNING: "blue",
    statuses.PENDING: "light-blue",
    statuses.FINISHED: "green",
    statuses.WARNING: "orange",
    statuses.SHUTDOWN: "red",
    statuses.STOPPED: "text",
    statuses.PAUSED: "yellow",
    statuses.UNKNOWN: "purple",
}
#: Statuses whose count is bad news when above zero (green at zero, their colour otherwise).
ALERTING_STATUSES = statuses.NEEDS_ACTION_STATUSES | {statuses.UNKNOWN}

# Label selectors, from the exporter scrape down to one workflow.
EXPORTER = 'job=~"$job", instance=~"$instance"'
WORKSPACE = EXPORTER + ', workspace=~"$workspace"'
# The workflow variable's value is the workflow uid (its text the name): same-named workflows never merge.
WORKFLOWS = WORKSPACE + ', workflow_uid=~"$workflow"'  # Overview: multi-value workflow variable
ONE_WORKFLOW = WORKSPACE + ', workflow_uid="$workflow"'  # Workflow dashboard: exactly one workflow
# Recording rules keep no job/instance (they merge replicas already).
RECORDED_WORKFLOWS = 'workspace=~"$workspace", workflow_uid=~"$workflow"'
RECORDED_ONE_WORKFLOW = 'workspace=~"$workspace", workflow_uid="$workflow"'
#: Replicas of the exporter export the same series: every query first merges them with ``max by`` over the
#: series' own labels (as the alert rules do), and only then adds up across workflows or workspaces.
PER_WORKFLOW = "workspace, workflow_uid, workflow"
RUNS_PER_HOUR = "suffix: runs/h"
#: The duration quantiles the graphs draw, each with its query's ref id.
QUANTILES = (("A", 0.5), ("B", 0.9), ("C", 0.99))


OVERVIEW_SCOPE = "the selected workspaces and workflows"
WORKFLOW_SCOPE = "this workflow"
#: Dashboard, variable and panel descriptions (panels by title), with ${scope} and the status guide's words.
WORDS: dict[str, dict[str, str]] = load_yaml(ROOT / "grafana" / "panels.yaml")
STATUS_BY_TITLE = {guide.title: guide for guide in GUIDE.values()}


def describe(title: str, scope: str) -> str:
    guide = STATUS_BY_TITLE.get(title)
    if guide:
        values = {"title": guide.title, "meaning": guide.meaning, "action": guide.action}
        return fill(WORDS["panels"]["Status"], values)
    return fill(WORDS["panels"][title], {"scope": scope})


def dedup(by: str, expr: str) -> str:
    """``expr`` with exporter replicas merged: ``max by (<the series' labels>)``, never ``sum``."""
    return f"max by ({by}) ({expr})"


def alert_name(status: str) -> str:
    """The alert that fires for runs in ``status`` (CaptainDataRunWarning, ...): one runbook section each."""
    return f"CaptainDataRun{GUIDE[status].title}"


def sel(base: str, **extra: str) -> str:
    matchers = [base] + [f'{name}="{value}"' for name, value in extra.items()]
    return "{" + ", ".join(matchers) + "}"


def query(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    *,
    instant: bool = False,
    fmt: PromQueryFormat | None = None,
) -> prom.Dataquery:
    target = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).legend_format(legend)
    target = target.instant() if instant else target.range()
    if fmt is not None:
        target = target.format(fmt)
    return target


#: A threshold's lower bound (None: from minus infinity) and its colour.
ThresholdStep = tuple[float | None, str]


def thresholds(*steps: ThresholdStep) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=colour) for value, colour in steps])
    )


def fixed_colour(colour: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})


def status_colour_overrides(panel: timeseries.Panel) -> timeseries.Panel:
    """Colour each ``{{status}}`` series with its status colour."""
    for status in statuses.STATUS_LABEL_VALUES:
        panel = panel.override_by_name(status, [fixed_colour(STATUS_COLOURS[status])])
    return panel


def legend(panel: timeseries.Panel, *calcs: str) -> timeseries.Panel:
    options = (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE if calcs else common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )
    tooltip = (
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )
    return panel.legend(options).tooltip(tooltip)


def graph(
    title: str,
    unit: str,
    targets: Sequence[prom.Dataquery],
    *,
    width: int,
    height: int = 8,
    bars: bool = False,
    by_status: bool = False,
    minimum: float | None = 0,
    calcs: Sequence[str] = ("lastNotNull", "max"),
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(60 if bars else 10)
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if by_status:
        panel = status_colour_overrides(panel)
    return legend(panel, *calcs)


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str,
    expr: str,
    legend_format: str,
    *,
    unit: str,
    span: int,
    height: int,
    steps: Sequence[ThresholdStep] = (),
    colour: str = "text",
    color_mode: common.BigValueColorMode = common.BigValueColorMode.NONE,
    text_mode: common.BigValueTextMode | None = None,
    decimals: int | None = None,
    no_value: str | None = None,
) -> stat.Panel:
    """The last value of an instant query, coloured by threshold ``steps``, or in ``colour`` without steps."""
    panel = (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend_format, instant=True))
        .unit(unit)
        .color_mode(color_mode)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(last_value())
        .span(span)
        .height(height)
    )
    if steps:
        panel = panel.thresholds(thresholds(*steps)).color_scheme(
            dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)
        )
    else:
        panel = panel.color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color(colour))
    if text_mode is not None:
        panel = panel.text_mode(text_mode)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if no_value is not None:
        panel = panel.no_value(no_value)
    return panel


def workflow_bar_gauge(title: str, expr: str, *, steps: Sequence[ThresholdStep], span: int) -> bargauge.Panel:
    """Seconds per workflow as horizontal bars, each linking to its workflow's dashboard."""
    return (
        bargauge.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{workflow}}", instant=True))
        .unit("s")
        .min(0)
        .thresholds(thresholds(*steps))
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .data_links([LinkBuilder(workflow_dashboard_link_for_series("workflow"))])
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(last_value())
        .span(span)
        .height(8)
    )


def status_stat(status: str, selector: str) -> stat.Panel:
    guide = GUIDE[status]
    colour = STATUS_COLOURS[status]
    steps: tuple[ThresholdStep, ...] = (
        ((None, "green"), (1, colour)) if status in ALERTING_STATUSES else ((None, colour),)
    )
    return stat_panel(
        guide.title,
        f"sum({dedup(PER_WORKFLOW, 'captaindata_runs' + sel(selector, status=status))})",
        guide.title,
        unit="short",
        span=3,
        height=4,
        steps=steps,
        color_mode=common.BigValueColorMode.BACKGROUND,
        text_mode=common.BigValueTextMode.VALUE,
        decimals=0,
    ).justify_mode(common.BigValueJustifyMode.CENTER)


def status_stats(selector: str) -> list[stat.Panel]:
    return [status_stat(status, selector) for status in statuses.STATUS_LABEL_VALUES]


def runs_by_status(selector: str, scope: str) -> timeseries.Panel:
    return graph(
        "Runs by status",
        "short",
        [
            query(
                f"sum by (status) ({dedup(PER_WORKFLOW + ', status', 'captaindata_runs' + sel(selector))})",
                "{{status}}",
            )
        ],
        width=12,
        by_status=True,
    )


def status_changes(recorded: str, scope: str) -> timeseries.Panel:
    return graph(
        "Status changes per hour",
        RUNS_PER_HOUR,
        [
            query(
                f"sum by (status) (workflow:captaindata_run_status_changes:increase1h{{{recorded}}})",
                "{{status}}",
            )
        ],
        width=12,
        by_status=True,
    )


def value_map(results: dict[str, model.ValueMappingResult]) -> list[model.ValueMapping]:
    return [model.ValueMap(options=results)]


def needs_action_table(selector: str, scope: str, width: int = 24) -> table.Panel:
    """Runs in warning/shutdown/paused with the recommended action and a runbook link per status.

    The "action" and "runbook" columns are copies of the status label (label_replace) that value mappings,
    generated from exporter/statuses.py, turn into the recommended action and the alert's name.
    """
    needs_action = sorted(statuses.NEEDS_ACTION_STATUSES, key=statuses.STATUS_LABEL_VALUES.index)
    by = "workspace, workflow_uid, workflow, run_name, run_uid, status"
    expr = (
        "label_replace(label_replace(max by (" + by + ") "
        "(captaindata_run_needs_action" + sel(selector) + "), "
        '"action", "$1", "status", "(.*)"), "runbook", "$1", "status", "(.*)")'
    )
    status_mappings = value_map(
        {
            status: model.ValueMappingResult(
                text=GUIDE[status].title, color=STATUS_COLOURS[status], index=index
            )
            for index, status in enumerate(statuses.STATUS_LABEL_VALUES)
        }
    )
    action_mappings = value_map(
        {
            status: model.ValueMappingResult(text=GUIDE[status].action, index=index)
            for index, status in enumerate(needs_action)
        }
    )
    runbook_mappings = value_map(
        {
            status: model.ValueMappingResult(text=f"{alert_name(status)} runbook", index=index)
            for index, status in enumerate(needs_action)
        }
    )
    workflow_link = model.DashboardLink(
        title="Open the ${__value.raw} workflow dashboard",
        url=workflow_dashboard_url("__data.fields"),
    )
    runbook_link = model.DashboardLink(
        title="Runbook: what to do about ${__value.text}",
        url="${runbook_base_url}#captaindatarun${__value.raw}",
        target_blank=True,
    )
    columns = ["workspace", "workflow", "run_name", "run_uid", "status", "action", "runbook"]
    names = ["Workspace", "Workflow", "Run name", "Run uid", "Status", "Recommended action", "Runbook"]
    widths = [120, 180, 200, 200, 100, 0, 230]
    panel = (
        table.Panel()
        .title("Needs action")
        .datasource(DATASOURCE)
        .with_target(query(expr, ref="A", instant=True, fmt=PromQueryFormat.TABLE))
        .unit("none")
        .no_value("Nothing needs action")
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .footer(common_builders.TableFooterOptions().show(False).reducer(["count"]).count_rows(True))
        .sort_by([common_builders.TableSortByFieldState().display_name("Status")])
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True, "workflow_uid": True},
                    "indexByName": {name: index for index, name in enumerate(columns)},
                },
            )
        )
        .span(width)
        .height(10)
    )
    for column, name, width_px in zip(columns, names, widths, strict=True):
        properties = [model.DynamicConfigValue(id_val="displayName", value=name)]
        if width_px:
            properties.append(model.DynamicConfigValue(id_val="custom.width", value=width_px))
        if column == "status":
            properties += [
                model.DynamicConfigValue(id_val="mappings", value=status_mappings),
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ]
        elif column == "action":
            properties += [
                model.DynamicConfigValue(id_val="mappings", value=action_mappings),
                model.DynamicConfigValue(id_val="custom.inspect", value=True),
            ]
        elif column == "runbook":
            properties += [
                model.DynamicConfigValue(id_val="mappings", value=runbook_mappings),
                model.DynamicConfigValue(id_val="links", value=[runbook_link]),
            ]
        elif column == "workflow":
            properties.append(model.DynamicConfigValue(id_val="links", value=[workflow_link]))
        panel = panel.override_by_name(column, properties)
    return panel


def duration_quantiles(selector: str, scope: str, by: str, width: int) -> timeseries.Panel:
    extra_by = f", {by}" if by else ""
    legend_suffix = f" {{{{{by}}}}}" if by else ""
    targets = [
        query(
            f"histogram_quantile({q}, sum by (le{extra_by}) ("
            + dedup(
                f"{PER_WORKFLOW}, status, le",
                f"rate(captaindata_run_duration_seconds_bucket{sel(selector)}[$__rate_interval])",
            )
            + "))",
            f"p{round(q * 100)}{legend_suffix}",
            ref=ref,
        )
        for ref, q in QUANTILES[: 2 if by else 3]
    ]
    return graph(
        "Completed-run duration quantiles" + (" by outcome" if by else ""),
        "s",
        targets,
        width=width,
    )


def duration_heatmap(selector: str, scope: str, width: int) -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title("Completed-run duration distribution")
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (le) ("
                + dedup(
                    f"{PER_WORKFLOW}, status, le",
                    f"increase(captaindata_run_duration_seconds_bucket{sel(selector)}[$__rate_interval])",
                )
                + ")",
                "{{le}}",
                fmt=PromQueryFormat.HEATMAP,
            )
        )
        .unit("short")
        .calculate(False)
        .cell_gap(1)
        .y_axis(heatmap.YAxisConfig().unit("s").axis_placement(common.AxisPlacement.LEFT))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .cell_values(heatmap.CellValues().unit("short").decimals(1))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_models.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_models.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
            .fill("dark-orange")
        )
        .show_legend()
        .show_tooltip()
        .span(width)
        .height(8)
    )


def workflow_dashboard_link_for_series(label: str) -> model.DashboardLink:
    return model.DashboardLink(
        title="Open the ${__field.labels." + label + "} workflow dashboard",
        url=workflow_dashboard_url("__field.labels"),
    )


def workflow_dashboard_url(fields: str) -> str:
    """The workflow dashboard for the ``workspace`` and ``workflow_uid`` found under Grafana's ``fields``
    variable (``__data.fields``, ``__field.labels``), keeping data source, job, instance and time range."""
    return (
        f"/d/{WORKFLOW_UID}/captaindata-workflow?${{datasource:queryparam}}&${{job:queryparam}}"
        f"&${{instance:queryparam}}&var-workspace=${{{fields}.workspace}}"
        f"&var-workflow=${{{fields}.workflow_uid}}&${{__url_time_range}}"
    )


def row(title: str) -> dash.Row:
    return dash.Row(title).collapsed(False)


# Variables -----------------------------------------------------------------------------------------------


def variables(*, multi_workflow: bool, runbook_base_url: str) -> list[Builder[model.VariableModel]]:
    def label_values(name: str, label: str, expr: str, *, multi: bool = True) -> dash.QueryVariable:
        return (
            dash.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(f"label_values({expr}, {name})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(multi)
            .include_all(multi)
        )

    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("job", "Job", "captaindata_exporter_build_info"),
        label_values("instance", "Instance", 'captaindata_exporter_build_info{job=~"$job"}'),
        label_values("workspace", "Workspace", 'captaindata_up{job=~"$job", instance=~"$instance"}'),
        workflow_variable(multi_workflow),
        dash.TextBoxVariable("runbook_base_url")
        .label("Runbooks")
        .default_value(runbook_base_url)
        .current(model.VariableOption(selected=True, text=runbook_base_url, value=runbook_base_url))
        .hide(model.VariableHide.HIDE_VARIABLE),
    ]


def workflow_variable(multi: bool) -> dash.QueryVariable:
    """Selects by ``workflow_uid`` and shows the name: the regex's named groups give Grafana the value and
    the text of each ``{workflow="...", workflow_uid="..."}`` result (labels come sorted by name)."""
    source = 'captaindata_runs{job=~"$job", instance=~"$instance", workspace=~"$workspace", status="running"}'
    return (
        dash.QueryVariable("workflow")
        .label("Workflow")
        .datasource(DATASOURCE)
        .query(f"query_result(max by (workflow, workflow_uid) ({source}))")
        .regex(r'/workflow="(?<text>.*)",\s*workflow_uid="(?<value>[^"]*)"/')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(multi)
        .include_all(multi)
    )


def alert_annotation() -> dash.AnnotationQuery:
    return (
        dash.AnnotationQuery()
        .name("Captain Data alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color("red")
        .expr('ALERTS{alertname=~"CaptainData.+", alertstate="firing"}')
    )


def dashboard_links(runbooks: bool = True) -> list[Builder[model.DashboardLink]]:
    links: list[Builder[model.DashboardLink]] = [
        dash.DashboardLink("Captain Data")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(["captaindata"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True),
    ]
    if runbooks:
        links.append(
            dash.DashboardLink("Runbooks")
            .type(model.DashboardLinkType.LINK)
            .url("${runbook_base_url}")
            .icon("doc")
            .tooltip("What to do about each Captain Data alert")
            .target_blank(True)
        )
    return links


def base_dashboard(title: str, uid: str, *, multi_workflow: bool, runbook_base_url: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .tags(TAGS)
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .variables(variables(multi_workflow=multi_workflow, runbook_base_url=runbook_base_url))
        .annotation(alert_annotation())
        .links(dashboard_links())
    )


# Overview ------------------------------------------------------------------------------------------------


def overview(runbook_base_url: str) -> dash.Dashboard:
    scope = OVERVIEW_SCOPE
    board = base_dashboard(
        "Captain Data / Overview",
        OVERVIEW_UID,
        multi_workflow=True,
        runbook_base_url=runbook_base_url,
    )
    board = board.with_row(row("Runs by status"))
    for panel in status_stats(WORKFLOWS):
        board = board.with_panel(panel)
    board = board.with_panel(runs_by_status(WORKFLOWS, scope)).with_panel(
        status_changes(RECORDED_WORKFLOWS, scope)
    )

    board = board.with_row(row("Needs action")).with_panel(needs_action_table(WORKFLOWS, scope))

    longest = workflow_bar_gauge(
        "Longest-running run per workflow",
        "sort_desc(max by (workspace, workflow_uid, workflow) "
        f"(captaindata_running_run_max_age_seconds{sel(WORKFLOWS)}))",
        steps=((None, "blue"), (3600, "orange"), (4 * 3600, "red")),
        span=8,
    )
    board = (
        board.with_row(row("Time in Running"))
        .with_panel(longest)
        .with_panel(duration_quantiles(WORKFLOWS, scope, "", 8))
        .with_panel(duration_heatmap(WORKFLOWS, scope, 8))
    )

    board = (
        board.with_row(row("Captain Data API"))
        .with_panel(
            graph(
                "429 responses (rate limited)",
                "reqps",
                [
                    query(
                        "max by (workspace, endpoint, limit_type) (rate(captaindata_api_rate_limited_total"
                        f"{sel(WORKSPACE)}[$__rate_interval]))",
                        "{{workspace}} {{endpoint}} {{limit_type}}",
                    )
                ],
                width=6,
            )
        )
        .with_panel(
            graph(
                "API requests by code",
                "reqps",
                [
                    query(
                        "sum by (code) ("
                        + dedup(
                            "workspace, endpoint, code",
                            f"rate(captaindata_api_requests_total{sel(WORKSPACE)}[$__rate_interval])",
                        )
                        + ")",
                        "{{code}}",
                    )
                ],
                width=6,
            )
            .override_by_regexp("2..", [fixed_colour("green")])
            .override_by_name("429", [fixed_colour("orange")])
            .override_by_regexp("5..", [fixed_colour("red")])
        )
        .with_panel(
            graph(
                "API latency",
                "s",
                [
                    query(
                        f"histogram_quantile({q}, sum by (le, endpoint) ("
                        + dedup(
                            "workspace, endpoint, le",
                            "rate(captaindata_api_request_duration_seconds_bucket"
                            f"{sel(WORKSPACE)}[$__rate_interval])",
                        )
                        + "))",
                        f"p{round(q * 100)} {{{{endpoint}}}}",
                        ref=ref,
                    )
                    for ref, q in QUANTILES
                ],
                width=6,
            )
        )
        .with_panel(
            graph(
                "Retry-After",
                "s",
                [
                    query(
                        f"max by (workspace) (captaindata_api_retry_after_seconds{sel(WORKSPACE)})",
                        "{{workspace}}",
                    )
                ],
                width=6,
            )
        )
    )

    board = board.with_row(row("Exporter health"))
    for health_panel in health_panels():
        board = board.with_panel(health_panel)
    return board


def health_panels() -> list[Builder[model.Panel]]:
    up = stat_panel(
        "Workspace up",
        f"max by (workspace) (captaindata_up{sel(WORKSPACE)})",
        "{{workspace}}",
        unit="none",
        span=4,
        height=6,
        steps=((None, "red"), (1, "green")),
        color_mode=common.BigValueColorMode.BACKGROUND,
        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
    ).mappings(
        value_map(
            {
                "0": model.ValueMappingResult(text="Down", color="red", index=0),
                "1": model.ValueMappingResult(text="Up", color="green", index=1),
            }
        )
    )
    since = stat_panel(
        "Time since last successful poll",
        f"time() - max by (workspace) (captaindata_last_poll_success_timestamp_seconds{sel(WORKSPACE)})",
        "{{workspace}}",
        unit="s",
        span=4,
        height=6,
        steps=((None, "green"), (300, "orange"), (900, "red")),
        color_mode=common.BigValueColorMode.VALUE,
        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
    )
    duration = graph(
        "Poll duration",
        "s",
        [query(f"max by (workspace) (captaindata_poll_duration_seconds{sel(WORKSPACE)})", "{{workspace}}")],
        width=5,
        height=6,
    )
    errors = graph(
        "Poll errors by reason",
        "cps",
        [
            query(
                "sum by (reason) ("
                + dedup(
                    "workspace, reason",
                    f"rate(captaindata_poll_errors_total{sel(WORKSPACE)}[$__rate_interval])",
                )
                + ")",
                "{{reason}}",
            )
        ],
        width=5,
        height=6,
    )
    workflows = stat_panel(
        "Tracked workflows",
        f"max by (workspace) (captaindata_workflows{sel(WORKSPACE)})",
        "{{workspace}}",
        unit="short",
        span=3,
        height=6,
        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
        decimals=0,
    )
    version = stat_panel(
        "Exporter version",
        f"max by (instance, version, python_version) (captaindata_exporter_build_info{sel(EXPORTER)})",
        "{{version}} (Python {{python_version}})",
        unit="none",
        span=3,
        height=6,
        text_mode=common.BigValueTextMode.NAME,
    )
    stale = workflow_bar_gauge(
        "Workflows read longest ago",
        "topk(10, time() - "
        + dedup(PER_WORKFLOW, f"captaindata_workflow_last_success_timestamp_seconds{sel(WORKFLOWS)}")
        + ")",
        steps=((None, "green"), (900, "orange"), (3600, "red")),
        span=10,
    )
    skipped = graph(
        "Runs skipped by reason",
        "cps",
        [
            query(
                "sum by (reason) ("
                + dedup(
                    "workspace, reason",
                    f"rate(captaindata_runs_skipped_total{sel(WORKSPACE)}[$__rate_interval])",
                )
                + ")",
                "{{reason}}",
            )
        ],
        width=8,
    )
    internal = stat_panel(
        "Internal errors",
        "sum("
        + dedup(
            "workspace",
            f"increase(captaindata_poll_errors_total{sel(WORKSPACE, reason='internal')}[$__range])",
        )
        + ")",
        "Internal errors",
        unit="short",
        span=6,
        height=8,
        steps=((None, "green"), (1, "red")),
        color_mode=common.BigValueColorMode.BACKGROUND,
        decimals=0,
    )
    return [up, since, duration, errors, workflows, version, stale, skipped, internal]


# Workflow ------------------------------------------------------------------------------------------------


def api_status_panels() -> list[Builder[model.Panel]]:
    """The workflow's runs by the API's own status (v3 or v4), its postponed runs, and its last read."""
    by_api_status = graph(
        "Runs by API status",
        "short",
        [
            query(
                "max by (api_status) (captaindata_runs_by_api_status" + sel(ONE_WORKFLOW) + ")",
                "{{api_status}}",
            )
        ],
        width=12,
    )
    postponed = stat_panel(
        "Postponed runs",
        f"max(captaindata_runs_postponed{sel(ONE_WORKFLOW)})",
        "Postponed",
        unit="short",
        span=4,
        height=8,
        decimals=0,
        no_value="0",
    )
    last_read = stat_panel(
        "Runs last read",
        f"max(captaindata_workflow_last_success_timestamp_seconds{sel(ONE_WORKFLOW)}) * 1000",
        "Last read",
        unit="dateTimeFromNow",
        span=8,
        height=8,
        no_value="Never",
    )
    return [by_api_status, postponed, last_read]


def workflow(runbook_base_url: str) -> dash.Dashboard:
    scope = WORKFLOW_SCOPE
    board = base_dashboard(
        "Captain Data / Workflow",
        WORKFLOW_UID,
        multi_workflow=False,
        runbook_base_url=runbook_base_url,
    )
    board = board.with_row(row("Runs by status"))
    for panel in status_stats(ONE_WORKFLOW):
        board = board.with_panel(panel)

    completed = dedup(
        f"{PER_WORKFLOW}, status",
        f"rate(captaindata_run_duration_seconds_count{sel(ONE_WORKFLOW)}[$__rate_interval])",
    )
    ratio_stat = (
        stat_panel(
            "Success ratio (24h)",
            f"max(workflow:captaindata_run_success_ratio:increase1d{{{RECORDED_ONE_WORKFLOW}}})",
            "Success ratio",
            unit="percentunit",
            span=4,
            height=8,
            steps=((None, "red"), (0.8, "orange"), (0.95, "green")),
            color_mode=common.BigValueColorMode.VALUE,
            decimals=1,
        )
        .min(0)
        .max(1)
    )
    board = (
        board.with_row(row("Outcomes"))
        .with_panel(ratio_stat)
        .with_panel(
            graph(
                "Success ratio over time",
                "percentunit",
                [
                    query(
                        f"max(workflow:captaindata_run_success_ratio:increase1h{{{RECORDED_ONE_WORKFLOW}}})",
                        "Success ratio (1h)",
                    )
                ],
                width=10,
                calcs=("mean", "min"),
            ).max(1)
        )
        .with_panel(
            graph(
                "Completed runs per hour by outcome",
                RUNS_PER_HOUR,
                [
                    query(
                        f"sum by (status) ({completed}) * 3600",
                        "{{status}}",
                    )
                ],
                width=10,
                by_status=True,
            )
        )
        .with_panel(runs_by_status(ONE_WORKFLOW, scope))
        .with_panel(status_changes(RECORDED_ONE_WORKFLOW, scope))
    )

    board = board.with_row(row("Needs action")).with_panel(needs_action_table(ONE_WORKFLOW, scope))
    board = board.with_row(row("What the API says"))
    for api_panel in api_status_panels():
        board = board.with_panel(api_panel)

    oldest = stat_panel(
        "Oldest Running run started",
        "min by (workspace) (captaindata_running_run_oldest_start_timestamp_seconds"
        f"{sel(ONE_WORKFLOW)}) * 1000",
        "{{workspace}}",
        unit="dateTimeFromNow",
        span=4,
        height=8,
        colour=STATUS_COLOURS[statuses.RUNNING],
        color_mode=common.BigValueColorMode.VALUE,
        no_value="No run is Running",
    )
    last_seen = stat_panel(
        "Last run per status",
        f"max by (status) (captaindata_workflow_last_status_timestamp_seconds{sel(ONE_WORKFLOW)}) * 1000",
        "{{status}}",
        unit="dateTimeFromNow",
        span=8,
        height=8,
        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
    ).orientation(common.VizOrientation.HORIZONTAL)
    board = (
        board.with_row(row("Time in Running and run durations"))
        .with_panel(
            graph(
                "Longest-running run",
                "s",
                [
                    query(
                        f"max by (workspace) (captaindata_running_run_max_age_seconds{sel(ONE_WORKFLOW)})",
                        "{{workspace}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(oldest)
        .with_panel(last_seen)
        .with_panel(duration_quantiles(ONE_WORKFLOW, scope, "status", 8))
        .with_panel(
            graph(
                "Mean completed-run duration by outcome",
                "s",
                [
                    query(
                        "sum by (status) ("
                        + dedup(
                            f"{PER_WORKFLOW}, status",
                            f"rate(captaindata_run_duration_seconds_sum{sel(ONE_WORKFLOW)}[$__rate_interval])",
                        )
                        + f") / sum by (status) ({completed})",
                        "{{status}}",
                    )
                ],
                width=8,
                by_status=True,
            )
        )
        .with_panel(duration_heatmap(ONE_WORKFLOW, scope, 8))
    )
    return board


# Output --------------------------------------------------------------------------------------------------


class LinkBuilder(Builder[model.DashboardLink]):
    """Wraps a ready DashboardLink for builder methods that only take builders."""

    def __init__(self, link: model.DashboardLink) -> None:
        self._link = link

    def build(self) -> model.DashboardLink:
        return self._link


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


def render_all(runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> dict[Path, str]:
    """Every generated file and its content."""
    rendered = {
        OVERVIEW_PATH: render_json(to_dict(overview(runbook_base_url), "overview", OVERVIEW_SCOPE)),
        WORKFLOW_PATH: render_json(to_dict(workflow(runbook_base_url), "workflow", WORKFLOW_SCOPE)),
    }
    rendered[CONFIGMAP_PATH] = render_configmap({path.name: text for path, text in rendered.items()})
    # the monitoring mixin vendors mixin/ alone (jsonnet-bundler), so it holds its own copies
    for path in (OVERVIEW_PATH, WORKFLOW_PATH):
        rendered[MIXIN_DASHBOARDS / path.name] = rendered[path]
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
        default=DEFAULT_RUNBOOK_BASE_URL,
        help="default of the dashboards' runbook_base_url variable (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return write_or_check(
        render_all(args.runbook_base_url), check=args.check, root=ROOT, command="python grafana/generate.py"
    )


if __name__ == "__main__":
    raise SystemExit(main())
