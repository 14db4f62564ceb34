"""A finding of the soak (docs/soak.md): a run that left its workflow's list is remembered for a day
(docs/counting.md), and a restart with ``state.path`` must not start that day again.

exporter/persist/codec.py used to save the remembered runs with their status only, not when they left,
and restored each with the restart's time; so an exporter restarted more often than once a day
(deploys, evictions, the soak's two restarts) never forgot a run: the state file and the memory grew
with every run the workspace ever had (a 48-simulated-hour soak ended with all 172 runs of a workflow
saved, where about 10 were listed). It saves when each run left (``vanished_at``) and restores it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from exporter.parsing import Parsed, Workflow
from exporter.persist.codec import export_workflow, export_workspace, restore_workspace
from exporter.persist.journal import WorkspaceIdentity, WorkspaceJournal
from exporter.persist.saver import WorkspaceSaver, identity
from exporter.poller import Poller
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock

W = "wf-left"
STATE_821F680 = Path(__file__).parent / "data" / "state_821f680"  # as tests/test_restore.py
HOUR = 3600.0


def saved_uids(poller: Poller) -> set[str]:
    return {str(item[0]) for item in export_workflow(poller.state, W)["runs"]}


async def test_a_run_that_left_the_list_is_forgotten_a_day_later_across_a_restart(
    sim: Simulator, clock: ManualClock, harness_for: Any, tmp_path: Path
) -> None:
    sim.add_workflow(W, "Left")
    harness = harness_for(clock=clock)
    workspace = harness.config.workspaces[0]

    def start() -> Poller:
        saver = WorkspaceSaver(WorkspaceJournal(tmp_path, identity(workspace)))
        return Poller(workspace, harness.config, harness.published.publish, saver=saver, clock=clock)

    first = start()
    await first.poll_once()
    run = sim.add_run(W, "finished", start_time=clock.time() - 60, finish_time=clock.time() - 30)
    await first.poll_once()
    sim.remove_run(run)
    await first.poll_once()  # it left the list: remembered for a day from now
    assert run in saved_uids(first)
    await first.aclose()

    clock.advance(12 * HOUR)  # restarted half a day later
    second = start()
    await second.poll_once()
    assert run in saved_uids(second)  # still within its day
    clock.advance(13 * HOUR)  # 25 hours after it left
    await second.poll_once()
    remembered = run in saved_uids(second)
    await second.aclose()
    assert not remembered, "the restart started the run's day again"


NOW = 1_764_633_600.0


@pytest.mark.parametrize(
    ("saved", "restored"),
    [
        (NOW - HOUR, NOW - HOUR),  # its own time
        (NOW + HOUR, NOW),  # in the future: now
        (float("nan"), NOW),
        (float("inf"), NOW),
        (float("-inf"), NOW),
        (None, NOW),  # listed when saved
        ("yesterday", NOW),
        (True, NOW),
    ],
)
def test_a_saved_time_a_run_left_is_restored_or_taken_as_now(saved: object, restored: float) -> None:
    record = {"uid": W, "name": "Left", "baseline": True, "read": True, "runs": [["r1", "finished"]]}
    state = restore_workspace(
        "acme", {"listed_once": True, "workflows": [W]}, [{**record, "vanished_at": [saved]}], now=NOW
    )
    assert state.workflows[W].runs.vanished_at("r1") == restored
    assert state.workflows[W].known("r1") == ("finished", "")


def test_a_record_without_the_times_or_with_a_list_of_another_length_restores_as_now() -> None:
    runs = [["r1", "finished"], ["r2", "running"]]
    base = {"uid": W, "name": "Left", "baseline": True, "read": True, "runs": runs}
    for record in (base, {**base, "vanished_at": [NOW - HOUR]}, {**base, "vanished_at": "x"}):
        state = restore_workspace("acme", {"listed_once": True, "workflows": [W]}, [record], now=NOW)
        assert [state.workflows[W].runs.vanished_at(uid) for uid in ("r1", "r2")] == [NOW, NOW]


def test_saved_times_round_trip_and_a_run_past_its_day_is_forgotten_at_the_next_read() -> None:
    record = {
        "uid": W,
        "name": "Left",
        "baseline": True,
        "read": True,
        "runs": [["old", "finished"], ["recent", "finished"]],
        "vanished_at": [NOW - 25 * HOUR, NOW - HOUR],
    }
    state = restore_workspace("acme", {"listed_once": True, "workflows": [W]}, [record], now=NOW)
    assert export_workflow(state, W)["vanished_at"] == record["vanished_at"]
    assert export_workspace(state)["workflows"] == [W]
    state.workflows_listed([Workflow(W, "Left")], now=NOW)
    state.runs_read(Workflow(W, "Left"), Parsed([]), now=NOW + 1)
    assert {item[0] for item in export_workflow(state, W)["runs"]} == {"recent"}


def test_a_state_file_written_before_the_times_were_saved_loads_with_now(tmp_path: Path) -> None:
    """tests/data/state_821f680 (written by main 821f680): its runs left at the restart, as before."""
    shutil.copytree(STATE_821F680, tmp_path / "state")
    identity = WorkspaceIdentity("acme", "5b7c6a0e", "http://127.0.0.1:1", "v3")
    state = WorkspaceSaver(WorkspaceJournal(tmp_path / "state", identity)).restore(now=NOW)
    assert state is not None
    for uid in (*state.workflows, *state.missing):
        record = export_workflow(state, uid)
        assert record["runs"]
        assert record["vanished_at"] == [NOW] * len(record["runs"])
