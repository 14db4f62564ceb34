"""What both dashboards show alike: the status stats and graphs, the needs-action table, the run
durations, the variables, the annotation and links, and the dashboard frame."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from exporter import statuses
from exporter.conventions import alert_name, status_alert
from exporter.failures import REASONS
from exporter.guide import GUIDE
from grafana.library import (
    ALERTING_STATUSES,
    DATASOURCE,
    PER_WORKFLOW,
    QUANTILES,
    RUNS_PER_HOUR,
    STATUS_COLOURS,
    TAGS,
    ThresholdStep,
    dedup,
    graph,
    last_value,
    query,
    sel,
    stat_panel,
    thresholds,
    value_map,
    workflow_dashboard_url,
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


def runs_by_status(selector: str) -> timeseries.Panel:
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


def status_changes(recorded: str) -> timeseries.Panel:
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


def needs_action_table(selector: str, width: int = 24) -> table.Panel:
    """Runs in warning/shutdown/paused with the recommended action and a runbook link per status.

    The "action" and "runbook" columns are copies of the status label (label_replace) that value mappings,
    generated from exporter/statuses.py, turn into the recommended action and the alert's name.
    """
    needs_action = sorted(statuses.NEEDS_ACTION_STATUSES, key=statuses.STATUS_LABEL_VALUES.index)
    by = "workspace, workflow_uid, workflow, run_name, run_uid, status, error"
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
        # the status label is the alert's title in lower case, and so is the runbook anchor
        url="${runbook_base_url}#" + status_alert("${__value.raw}").lower(),
        target_blank=True,
    )
    # Run errors: the error column is the run's error as the exporter exports it (redacted, 200 characters).
    columns = ["workspace", "workflow", "run_name", "run_uid", "status", "error", "action", "runbook"]
    names = [
        "Workspace",
        "Workflow",
        "Run name",
        "Run uid",
        "Status",
        "Error",
        "Recommended action",
        "Runbook",
    ]
    widths = [120, 180, 200, 200, 100, 300, 0, 230]
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
        elif column == "error":
            properties.append(model.DynamicConfigValue(id_val="custom.inspect", value=True))
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


# Run errors (issue 17): the causes of the runs that entered warning, shutdown or paused.
def top_failure_reasons(selector: str, width: int = 12) -> bargauge.Panel:
    """Runs that entered warning, shutdown or paused in the time range, by cause, most first; each bar
    is named by the cause's title (exporter/failures.yaml)."""
    expr = (
        "sort_desc(sum by (reason) ("
        + dedup(
            f"{PER_WORKFLOW}, status, reason",
            f"increase(captaindata_run_failures_total{sel(selector)}[$__range])",
        )
        + "))"
    )
    panel = (
        bargauge.Panel()
        .title("Top failure reasons")
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{reason}}", instant=True))
        .unit("short")
        .decimals(0)
        .min(0)
        .no_value("No run entered Warning, Shutdown or Paused")
        .thresholds(thresholds((None, "orange")))
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(last_value())
        .span(width)
        .height(8)
    )
    for reason, entry in REASONS.items():
        panel = panel.override_by_name(
            reason, [model.DynamicConfigValue(id_val="displayName", value=entry.title)]
        )
    return panel


def duration_quantiles(selector: str, by: str, width: int) -> timeseries.Panel:
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


def duration_heatmap(selector: str, width: int) -> heatmap.Panel:
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
