"""The persistence hooks: a state exported as JSON and restored continues counting exactly."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from exporter.parsing import Parsed, Workflow, new_run
from exporter.persist.codec import export_workflow, export_workspace, restore_workspace, take_changes
from exporter.persist.journal import WorkspaceIdentity, WorkspaceJournal
from exporter.persist.saver import WorkspaceSaver
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


#: A state directory written by the exporter before runs were packed (main 821f680, by a script that
#: read the runs below in two polls): its file must keep loading, and the state continue from it.
STATE_821F680 = Path(__file__).parent / "data" / "state_821f680"
T0 = 1_764_633_600.0
U1 = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
U2 = "7d444840-9dc0-11d1-b245-5ffdce74fad2"
U3 = "00000000-0000-4000-8000-000000000001"
UPPER = "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F1"  # not a canonical UUID: kept as a string


def test_a_state_file_written_before_runs_were_packed_loads_and_continues(tmp_path: Path) -> None:
    shutil.copytree(STATE_821F680, tmp_path / "state")
    identity = WorkspaceIdentity("acme", "5b7c6a0e", "http://127.0.0.1:1", "v3")
    journal = WorkspaceJournal(tmp_path / "state", identity)
    loaded = journal.load()
    assert loaded is not None
    state = WorkspaceSaver(journal).restore(now=T0 + 120)
    assert state is not None
    assert list(state.workflows) == ["wf-a", "wf-b"]
    assert list(state.missing) == ["wf-c"]
    owners = {U1: "wf-a", U2: "wf-a", UPPER: "wf-a", "run-plain": "wf-a", U3: "wf-b", "c-1": "wf-c"}
    assert {uid: state.owner_of(uid) for uid in owners} == owners
    a = state.workflows["wf-a"]
    assert a.known(U1) == ("finished", "finished")
    assert a.known(U2) == ("warning", "warning")
    assert a.known(UPPER) == ("shutdown", "failed")
    assert a.known(U1.upper()) is None
    assert a.runs.vanished_at(U1) == T0 + 120  # restored runs are remembered, not listed
    assert state.workflows["wf-b"].known(U3) == ("pending", "pending")
    assert state.missing["wf-c"].known("c-1") == ("finished", "finished")
    for uid, saved in loaded.workflows.items():  # written back as it was read (in any order)
        again = export_workflow(state, uid)
        assert sorted(again["runs"]) == sorted(saved["runs"])
        assert sorted(zip(again["runs"], again["api_statuses"], strict=True)) == sorted(
            zip(saved["runs"], saved["api_statuses"], strict=True)
        )
        assert again["status_changes"] == saved["status_changes"]
    # The next poll counts what changed since, once; the rest is known.
    state.workflows_listed([Workflow("wf-a", "Alpha"), Workflow("wf-b", "Beta")], now=T0 + 180)
    read = [
        new_run(U1, "first", "finished", "finished", T0 - 60, T0 + 30, None),
        new_run(U2, "second", "shutdown", "failed", T0 - 600, T0 + 150, None),
        new_run(UPPER, "upper", "shutdown", "failed", T0 - 900, T0 - 800, None),
        # Its owner (wf-b) remembers it but no longer lists it: wf-a takes it over, its change counts.
        new_run(U3, "shared", "running", "running", T0 + 100, None, None),
    ]
    state.runs_read(Workflow("wf-a", "Alpha"), Parsed(read), now=T0 + 180)
    changes = state.workflows["wf-a"].status_changes
    assert changes["finished"] == 1  # before the restart; U1 finished already then
    assert changes["shutdown"] == 1
    assert changes["running"] == 1
    assert state.owner_of(U3) == "wf-a"
    assert state.workflows["wf-b"].known(U3) is None
    assert state.snapshot.runs_skipped["duplicate_uid"] == 1  # the one before the restart
