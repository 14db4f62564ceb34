"""The Workflow dashboard: one workflow's runs, outcomes, durations and what the API says about it."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from exporter import statuses
from grafana.library import (
    ONE_WORKFLOW,
    PER_WORKFLOW,
    RECORDED_ONE_WORKFLOW,
    RUNS_PER_HOUR,
    STATUS_COLOURS,
    WORKFLOW_UID,
    dedup,
    graph,
    query,
    row,
    sel,
    stat_panel,
)
from grafana.sections import (
    base_dashboard,
    duration_heatmap,
    duration_quantiles,
    needs_action_table,
    runs_by_status,
    status_changes,
    status_stats,
)

#: What the words of grafana/panels.yaml call what this dashboard shows (their ${scope}).
SCOPE = "this workflow"


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


def dashboard(runbook_base_url: str) -> dash.Dashboard:
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
        .with_panel(runs_by_status(ONE_WORKFLOW))
        .with_panel(status_changes(RECORDED_ONE_WORKFLOW))
    )

    board = board.with_row(row("Needs action")).with_panel(needs_action_table(ONE_WORKFLOW))
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
        .with_panel(duration_quantiles(ONE_WORKFLOW, "status", 8))
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
        .with_panel(duration_heatmap(ONE_WORKFLOW, 8))
    )
    return board
