"""The Overview dashboard's credits and accounts panels (#17): the credits burn-down with its forecast,
when credits run out, and each account's validity and limit use."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from exporter.conventions import KNOBS
from grafana.library import (
    DATASOURCE,
    graph,
    query,
    sel,
    stat_panel,
    value_map,
)

# Credits and account health (issue 17): the credits burn-down with its forecast, and the accounts.

#: The recording rule of the credits' burn rate (deploy/alerts.yaml), per workspace.
CREDITS_BURN_RATE = "workspace:captaindata_workspace_credits_burn_rate:deriv"


def credits_burn_down(selector: str) -> timeseries.Panel:
    """Credits left, and where they will be at the period's end at the current burn rate (below 0: they
    run out before it)."""
    left = f"max by (workspace) (captaindata_workspace_credits_remaining{sel(selector)})"
    period_end = (
        f"max by (workspace) (captaindata_workspace_credits_period_end_timestamp_seconds{sel(selector)})"
    )
    burn = CREDITS_BURN_RATE + '{workspace=~"$workspace"}'
    return graph(
        "Credits burn-down",
        "short",
        [
            query(left, "{{workspace}} credits left"),
            query(
                f"{left} - {burn} * ({period_end} - time())", "{{workspace}} forecast at period end", ref="B"
            ),
        ],
        width=12,
        minimum=None,
    ).override_by_regexp(
        ".*forecast.*",
        [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})],
    )


def credits_run_out(selector: str) -> stat.Panel:
    left = f"max by (workspace) (captaindata_workspace_credits_remaining{sel(selector)})"
    return stat_panel(
        "Credits run out in",
        f'{left} / ({CREDITS_BURN_RATE}{{workspace=~"$workspace"}} > 0)',
        "{{workspace}}",
        unit="s",
        span=4,
        height=8,
        steps=((None, "red"), (86400, "orange"), (7 * 86400, "green")),
        color_mode=common.BigValueColorMode.VALUE,
        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
    )


def accounts_table(selector: str, width: int = 8) -> table.Panel:
    """Each integration account: valid or not, and the use of each of its limits."""
    account = "workspace, integration, account_uid"
    valid = f"max by ({account}, account) (captaindata_account_valid{sel(selector)})"
    use = (
        f"max by ({account}, limit) (captaindata_account_limit_used{sel(selector)})"
        f" / (max by ({account}, limit) (captaindata_account_limit{sel(selector)}) > 0)"
    )
    validity = value_map(
        {
            "0": model.ValueMappingResult(text="Invalid: refresh its cookies", color="red", index=0),
            "1": model.ValueMappingResult(text="Valid", color="green", index=1),
        }
    )
    panel = (
        table.Panel()
        .title("Accounts")
        .datasource(DATASOURCE)
        .with_target(query(valid, ref="A", instant=True, fmt=PromQueryFormat.TABLE))
        .with_target(query(use, ref="B", instant=True, fmt=PromQueryFormat.TABLE))
        .unit("none")
        .no_value("No account read (accounts are read for v3 workspaces)")
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value #A": "Session", "Value #B": "Limit used"},
                },
            )
        )
        .span(width)
        .height(8)
    )
    panel = panel.override_by_name(
        "Value #A",
        [
            model.DynamicConfigValue(id_val="mappings", value=validity),
            model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
        ],
    )
    return panel.override_by_name(
        "Value #B",
        [
            model.DynamicConfigValue(id_val="unit", value="percentunit"),
            model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            model.DynamicConfigValue(
                id_val="thresholds",
                value={
                    "mode": "absolute",
                    "steps": [
                        {"value": None, "color": "green"},
                        {"value": 0.75, "color": "orange"},
                        {"value": int(KNOBS["account_limit_percent"].default) / 100, "color": "red"},
                    ],
                },
            ),
        ],
    )
