"""The persistence hooks: a state exported as JSON and restored continues counting exactly."""

from __future__ import annotations

import json
import time
from typing import Any

from exporter.persist.codec import export_workflow, export_workspace, restore_workspace, take_changes
from exporter.poller import Poller
from exporter.simulator import Simulator
from tests.support.metrics import ScrapedMetrics

WF = "wf-1"


def changes(exposition: ScrapedMetrics, status: str) -> float:
    return exposition.value("captaindata_run_status_changes_total", workflow_uid=WF, status=status)


async def test_a_restored_state_counts_each_change_once(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(WF, "A")
    steady = sim.add_run(WF, "finished", start_time=time.time() - 100, finish_time=time.time() - 50)
    moving = sim.add_run(WF, "pending")
    harness = harness_for()
    await harness.poll()  # baseline
    sim.add_run(WF, "shutdown", start_time=time.time() - 100, finish_time=time.time())
    before = await harness.poll()
    assert changes(before, "shutdown") == 1
    state = harness.pollers[0].state
    assert take_changes(state) == ({WF}, set())
    workspace_record = json.loads(json.dumps(export_workspace(state)))
    workflow_records = [json.loads(json.dumps(export_workflow(state, uid))) for uid in state.workflows]

    # "Restart": a new poller on a restored state, publishing to the same place.
    restored = restore_workspace("acme", workspace_record, workflow_records)
    poller = Poller(harness.config.workspaces[0], harness.config, harness.published.publish, state=restored)
    try:
        sim.update_run(moving, "running", start_time=time.time())  # changed while "down"
        sim.add_run(WF, "paused")  # new since the save
        await poller.poll_once()
        after = ScrapedMetrics((await harness.published.exposition(openmetrics=False, gzip=False)).decode())
    finally:
        await poller.aclose()
    assert changes(after, "shutdown") == 1  # continued, not recounted
    assert changes(after, "running") == 1
    assert changes(after, "paused") == 1
    assert changes(after, "finished") == 0  # the steady run is not new
    assert after.value("captaindata_run_duration_seconds_count", workflow_uid=WF, status="shutdown") == 1
    assert after.value("captaindata_runs", workflow_uid=WF, status="finished") == 1
    assert steady in {record[0] for record in workflow_records[0]["runs"]}
