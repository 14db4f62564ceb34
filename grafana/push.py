"""The Overview dashboard's Push row (#16): push events by outcome, missed pushes, apply latency."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries

from grafana.library import (
    QUANTILES,
    WORKSPACE,
    dedup,
    graph,
    query,
    sel,
)


# push (#16)
def push_panels() -> list[timeseries.Panel]:
    """Push events by outcome, missed pushes and apply latency (empty when push is off)."""
    events = graph(
        "Push events by outcome",
        "reqps",
        [
            query(
                "sum by (outcome) ("
                + dedup(
                    "workspace, outcome",
                    f"rate(captaindata_push_requests_total{sel(WORKSPACE)}[$__rate_interval])",
                )
                + ")",
                "{{outcome}}",
            )
        ],
        width=8,
    )
    missed = graph(
        "Missed pushes",
        "short",
        [
            query(
                "max by (workspace) (increase(captaindata_push_missed_total"
                f"{sel(WORKSPACE)}[$__rate_interval]))",
                "{{workspace}}",
            )
        ],
        width=8,
        bars=True,
    )
    latency = graph(
        "Push apply latency",
        "s",
        [
            query(
                f"histogram_quantile({q}, sum by (le) ("
                + dedup(
                    "workspace, le",
                    f"rate(captaindata_push_apply_seconds_bucket{sel(WORKSPACE)}[$__rate_interval])",
                )
                + "))",
                f"p{round(q * 100)}",
                ref=ref,
            )
            for ref, q in QUANTILES
        ],
        width=8,
    )
    return [events, missed, latency]
