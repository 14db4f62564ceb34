"""The Overview dashboard: every selected workspace and workflow at a glance, and the exporter's health."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from grafana.credits import accounts_table, credits_burn_down, credits_run_out
from grafana.library import (
    EXPORTER,
    OVERVIEW_UID,
    PER_WORKFLOW,
    QUANTILES,
    RECORDED_WORKFLOWS,
    WORKFLOWS,
    WORKSPACE,
    AlertThreshold,
    dedup,
    fixed_colour,
    graph,
    query,
    row,
    sel,
    stat_panel,
    value_map,
    workflow_bar_gauge,
)
from grafana.push import push_panels
from grafana.sections import (
    base_dashboard,
    duration_heatmap,
    duration_quantiles,
    needs_action_table,
    runs_by_status,
    status_changes,
    status_stats,
    top_failure_reasons,
)

#: What the words of grafana/panels.yaml call what this dashboard shows (their ${scope}).
SCOPE = "the selected workspaces and workflows"
# Sharding: a workspace split by workflow has one series per shard of its requests and polls, told apart
# by `shard` (families.PER_SHARD). Merging replicas by (workspace, shard) and then adding the shards (or
# taking the worst) gives one exporter's value; without the label (not split) it is the same query.
SHARD = "shard"


def dashboard(runbook_base_url: str) -> dash.Dashboard:
    board = base_dashboard(
        "Captain Data / Overview",
        OVERVIEW_UID,
        multi_workflow=True,
        runbook_base_url=runbook_base_url,
    )
    board = board.with_row(row("Runs by status"))
    for panel in status_stats(WORKFLOWS):
        board = board.with_panel(panel)
    board = board.with_panel(runs_by_status(WORKFLOWS)).with_panel(status_changes(RECORDED_WORKFLOWS))

    board = board.with_row(row("Needs action")).with_panel(needs_action_table(WORKFLOWS))
    # Run errors (issue 17): why runs need action.
    board = board.with_panel(top_failure_reasons(WORKFLOWS))

    # Credits and account health (issue 17): what will pause runs before it does.
    board = (
        board.with_row(row("Coming up: credits and accounts"))
        .with_panel(credits_burn_down(WORKSPACE))
        .with_panel(credits_run_out(WORKSPACE))
        .with_panel(accounts_table(WORKSPACE))
    )

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
        .with_panel(duration_quantiles(WORKFLOWS, "", 8))
        .with_panel(duration_heatmap(WORKFLOWS, 8))
    )

    board = (
        board.with_row(row("Captain Data API"))
        .with_panel(
            graph(
                "429 responses (rate limited)",
                "reqps",
                [
                    query(
                        "sum by (workspace, endpoint, limit_type) ("
                        + dedup(
                            f"workspace, {SHARD}, endpoint, limit_type",
                            f"rate(captaindata_api_rate_limited_total{sel(WORKSPACE)}[$__rate_interval])",
                        )
                        + ")",
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
                            f"workspace, {SHARD}, endpoint, code",
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
                            f"workspace, {SHARD}, endpoint, le",
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

    # push (#16)
    board = board.with_row(row("Push (webhooks and callbacks)"))
    for push_panel in push_panels():
        board = board.with_panel(push_panel)

    board = board.with_row(row("Exporter health"))
    for health_panel in health_panels():
        board = board.with_panel(health_panel)
    return board


def health_panels() -> list[Builder[model.Panel]]:
    up = stat_panel(
        "Workspace up",
        f"min by (workspace) ({dedup(f'workspace, {SHARD}', f'captaindata_up{sel(WORKSPACE)}')})",
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
        "time() - min by (workspace) ("
        + dedup(f"workspace, {SHARD}", f"captaindata_last_poll_success_timestamp_seconds{sel(WORKSPACE)}")
        + ")",
        "{{workspace}}",
        unit="s",
        span=4,
        height=6,
        steps=((None, "green"), (300, "orange"), (AlertThreshold("poll_stale_threshold"), "red")),
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
                    f"workspace, {SHARD}, reason",
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
        steps=((None, "green"), (900, "orange"), (AlertThreshold("workflow_stale_threshold"), "red")),
        span=10,
    )
    skipped = graph(
        "Runs skipped by reason",
        "cps",
        [
            query(
                "sum by (reason) ("
                + dedup(
                    f"workspace, {SHARD}, reason",
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
            f"workspace, {SHARD}",
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
