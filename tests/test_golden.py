"""The golden test: what the exporter shows an operator, byte for byte, for one fixed scenario.

A restructuring must leave these unchanged: ``/metrics`` (text and OpenMetrics) and ``/api/v1/status``
after three polls of a v3 and a v4 workspace on a seeded simulator, and every generated asset (rules,
dashboards, runbooks, the mixin's data). Values that follow the wall clock (request latencies, when a
poll ended) are masked; run timestamps are written relative to the simulator's start, T0.

An intended change regenerates the golden files: ``GOLDEN_UPDATE=1 python -m pytest tests/test_golden.py``,
and the diff of ``tests/golden/`` is then part of the change, to be read like code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from exporter.api.v3.side import CreditsReader
from exporter.api.v4.source import V4Source
from exporter.config import parse_config
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.scenarios import populate_demo
from exporter.simulator.v4demo import add_demo_v4_workspace
from exporter.status_view import build_status
from tests.support.exporter_proc import fast_config, workspace_config
from tests.support.sim_server import running_simulator

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"

V3_UID = "0d4f3c2a-8b1e-4f6a-9c7d-1e2f3a4b5c6d"
V3_KEY = "g0lden" + "7e" * 29
#: Families whose values follow the wall clock of the exporter, not the API's data.
VOLATILE = (
    "captaindata_api_request_duration_seconds",
    "captaindata_poll_duration_seconds",
    "captaindata_last_poll_success_timestamp_seconds",
    "captaindata_workflow_last_success_timestamp_seconds",
    "captaindata_running_run_max_age_seconds",
    "captaindata_exporter_build_info",
)
VOLATILE_KEYS = ("last_success", "generated_at", "version")
#: Every generated file a restructuring must not change.
ASSETS = (
    "deploy/prometheus/captaindata-alerts.rules.yml",
    "deploy/kubernetes/prometheusrule.yaml",
    "deploy/kubernetes/grafana-dashboards-configmap.yaml",
    "docs/runbooks.md",
    "grafana/dashboards/captaindata-overview.json",
    "grafana/dashboards/captaindata-workflow.json",
    "mixin/rules.json",
    "mixin/dashboards/captaindata-overview.json",
    "mixin/dashboards/captaindata-workflow.json",
    "mixin/rules.libsonnet",
    "mixin/config.libsonnet",
    "mixin/dashboard_thresholds.json",
)
_SAMPLE = re.compile(r"^(?P<series>[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (?P<value>\S+)$")
_WINDOW = 60 * 86400.0  # a value this close to T0 is a timestamp


def _relative(value: float, t0: float) -> str | None:
    if math.isfinite(value) and abs(value - t0) < _WINDOW:
        return f"T0{value - t0:+.3f}"
    return None


def normalize_exposition(text: str, t0: float) -> str:
    lines = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if line.startswith("#") or match is None:
            lines.append(line)
            continue
        series, value = match["series"], match["value"]
        if series.startswith(VOLATILE):
            lines.append(f"{series} <masked>")
            continue
        try:
            shown = _relative(float(value), t0) or value
        except ValueError:
            shown = value
        lines.append(f"{series} {shown}")
    return "\n".join(lines) + "\n"


def normalize_status(data: Any, t0: float) -> Any:
    if isinstance(data, dict):
        return {
            key: "<masked>" if key in VOLATILE_KEYS else normalize_status(value, t0)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [normalize_status(item, t0) for item in data]
    if isinstance(data, float | int) and not isinstance(data, bool):
        return _relative(float(data), t0) or data
    return data


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from tests/golden/{name} (GOLDEN_UPDATE=1 rewrites it)"


async def test_metrics_and_status_are_unchanged_for_a_fixed_scenario() -> None:
    t0 = float(int(time.time()))
    clock = ManualClock(t0)
    sim = Simulator(seed=3, page_size=5, clock=clock)
    sim.add_workspace(V3_UID, V3_KEY)
    populate_demo(sim, V3_UID)
    # Credits and account health (issue 17); fixed cookies, so the seeded runs stay the same.
    sim.set_credits(5000, workspace_uid=V3_UID)
    sim.add_account(
        "Golden account", uid="acct-golden", workspace_uid=V3_UID, cookies={"li_at": "AQEDgolden"}, queued=2
    )
    v4_key = add_demo_v4_workspace(sim)
    with running_simulator(sim) as url:
        v4 = {
            "name": "golden-v4",
            "api_version": "v4",
            "api_key": v4_key,
            "base_url": url,
            "v4": {"page_size": 20, "lookback": "3d"},
        }
        config = parse_config(fast_config([workspace_config("golden", url, V3_UID, V3_KEY), v4]))
        published, pollers = build(config)
        try:
            for poller in pollers:
                if isinstance(poller.source, V4Source):
                    poller.source.clock = clock
                for loop in poller.side_loops:  # the credits forecast times its readings
                    if isinstance(loop.reader, CreditsReader):
                        loop.reader.clock = clock
            for step in (0.0, 30.0, 45.0):
                clock.advance(step)
                for poller in pollers:
                    assert await poller.poll_once(), poller.state.last_error
                    for loop in poller.side_loops:
                        assert await loop.read_once(), poller.state.side_last_error
            text = (await published.exposition(openmetrics=False, gzip=False)).decode()
            openmetrics = (await published.exposition(openmetrics=True, gzip=False)).decode()
            status = build_status(published.workspaces(), now=clock())
        finally:
            for poller in pollers:
                await poller.aclose()
    _check("metrics.txt", normalize_exposition(text, t0))
    _check("metrics.openmetrics.txt", normalize_exposition(openmetrics, t0))
    _check("status.json", json.dumps(normalize_status(status, t0), indent=1, sort_keys=True) + "\n")


def test_generated_assets_are_unchanged() -> None:
    digests = "".join(
        f"{hashlib.sha256((ROOT / name).read_bytes()).hexdigest()}  {name}\n" for name in ASSETS
    )
    _check("assets.sha256", digests)
