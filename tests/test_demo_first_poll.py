"""--demo shows every needs-action kind on its first poll, every time (issue #19 item 19): each of its
workspaces, polled once on its own, has a Warning, a Shutdown, a Paused and a Running-too-long row."""

from __future__ import annotations

import pytest

from exporter.config import parse_config
from exporter.poller import build
from exporter.simulator import build_demo_simulator
from exporter.simulator.v4demo import add_demo_v4_workspace
from exporter.status_view import build_status
from tests.support.exporter_proc import fast_config, workspace_config
from tests.support.sim_server import running_simulator

KINDS = {"warning", "shutdown", "paused", "running_too_long"}


@pytest.mark.parametrize("seed", range(4))
async def test_each_demo_workspace_shows_every_kind_on_its_first_poll(seed: int) -> None:
    sim = build_demo_simulator(seed=seed)
    v3 = next(iter(sim.workspaces.values()))
    v4_key = add_demo_v4_workspace(sim)
    with running_simulator(sim) as url:
        v4 = {"name": "demo-v4", "api_version": "v4", "api_key": v4_key, "base_url": url}
        config = parse_config(fast_config([workspace_config("demo", url, v3.uid, v3.api_key), v4]))
        published, pollers = build(config)
        try:
            for poller in pollers:
                assert await poller.poll_once(), poller.state.last_error
            status = build_status(published.workspaces())
        finally:
            for poller in pollers:
                await poller.aclose()
    shown = {
        name: {row["status"] for row in status["needs_action"] if row["workspace"] == name}
        for name in ("demo", "demo-v4")
    }
    assert shown == {"demo": KINDS, "demo-v4": KINDS}
    assert status["needs_action_total"] <= len(status["needs_action"])  # none cut off the page
