"""The panel library of the Grafana dashboards: data source, selectors, queries and the panel builders
both dashboards use (grafana-foundation-sdk), with the project's defaults."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from exporter import statuses
from exporter.conventions import threshold_seconds

OVERVIEW_UID = "captaindata-overview"
WORKFLOW_UID = "captaindata-workflow"
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


def dedup(by: str, expr: str) -> str:
    """``expr`` with exporter replicas merged: ``max by (<the series' labels>)``, never ``sum``."""
    return f"max by ({by}) ({expr})"


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


class AlertThreshold(int):
    """An alert threshold of exporter/conventions.yaml in whole seconds, as a panel's threshold step (the
    panel turns red where the alert fires). It remembers its knob, so the mixin moves the step with
    ``_config`` (grafana/generate.py lists them in mixin/dashboard_thresholds.json)."""

    knob: str

    def __new__(cls, knob: str) -> AlertThreshold:
        value = super().__new__(cls, int(threshold_seconds(knob)))
        value.knob = knob
        return value


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


def value_map(results: dict[str, model.ValueMappingResult]) -> list[model.ValueMapping]:
    return [model.ValueMap(options=results)]


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


class LinkBuilder(Builder[model.DashboardLink]):
    """Wraps a ready DashboardLink for builder methods that only take builders."""

    def __init__(self, link: model.DashboardLink) -> None:
        self._link = link

    def build(self) -> model.DashboardLink:
        return self._link
