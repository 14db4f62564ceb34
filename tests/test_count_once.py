"""Issue #19, counting: a run's status change is counted once, and only when it happened.

The state is driven directly (its own ``now``), through the same calls the sink makes; a restart goes
through the state codec and JSON, as the journal does."""

from __future__ import annotations

import json
import time
from pathlib import Path

from exporter.api.v4.source import V4Source
from exporter.config import parse_config
from exporter.parsing import Parsed, Run, Workflow, new_run
from exporter.persist.codec import export_workflow, export_workspace, restore_workspace
from exporter.persist.journal import WorkspaceIdentity, WorkspaceJournal
from exporter.persist.saver import WorkspaceSaver, open_state
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.v4 import V4Api
from exporter.snapshot import WorkflowSnapshot
from exporter.state import WorkspaceState
from exporter.statuses import FINISHED, RUNNING, SHUTDOWN, WARNING
from tests.support.metrics import ScrapedMetrics
from tests.support.sim_server import running_simulator

T0 = 1_800_000_000.0
DAY = 86400.0
HOUR = 3600.0


def run(uid: str, status: str, finished: float | None = None, api_status: str | None = None) -> Run:
    started = None if finished is None else finished - 60
    return new_run(uid, "", status, api_status or status, started, finished, None)


def flow(uid: str) -> Workflow:
    return Workflow(uid, uid)


def read(state: WorkspaceState, workflow: str, runs: list[Run], now: float, complete: bool = True) -> None:
    state.runs_read(flow(workflow), Parsed(list(runs)), complete, now=now)


def listed(state: WorkspaceState, *workflows: str, now: float) -> None:
    state.workflows_listed([flow(uid) for uid in workflows], now=now)


def snapshot(state: WorkspaceState, workflow: str) -> WorkflowSnapshot:
    return next(w for w in state.snapshot.workflows if w.uid == workflow)


def counted(state: WorkspaceState, status: str | None = None) -> int:
    return sum(
        count
        for w in state.snapshot.workflows
        for s, count in w.status_changes.items()
        if status is None or s == status
    )


def gauges(state: WorkspaceState, status: str) -> dict[str, int]:
    return {w.uid: w.runs_by_status[status] for w in state.snapshot.workflows}


def restarted(state: WorkspaceState, now: float) -> WorkspaceState:
    """The state as a restart from its saved records (through JSON, as on disk) rebuilds it."""
    workspace = json.loads(json.dumps(export_workspace(state)))
    records = json.loads(json.dumps([export_workflow(state, uid) for uid in state.workflows]))
    return restore_workspace(state.name, workspace, records, now=now)


def baselined(*workflows: str, now: float = T0) -> WorkspaceState:
    state = WorkspaceState("acme")
    listed(state, *workflows, now=now)
    for uid in workflows:
        read(state, uid, [], now)
    return state


# 1. A run uid listed under two workflows counts once, owned by one workflow.


def shared_finished_run() -> tuple[WorkspaceState, Run]:
    """wf-a and wf-b baselined, then both list one finished run at T0 + 120: it counts once."""
    state = baselined("wf-a", "wf-b")
    shared = run("shared", FINISHED, T0 + 100)
    listed(state, "wf-a", "wf-b", now=T0 + 120)
    read(state, "wf-a", [shared], T0 + 120)
    read(state, "wf-b", [shared], T0 + 120)
    assert counted(state, FINISHED) == 1
    return state, shared


def test_a_shared_run_counts_once_when_its_first_owner_stops_listing_it() -> None:
    state, shared = shared_finished_run()
    listed(state, "wf-a", "wf-b", now=T0 + 180)
    read(state, "wf-a", [], T0 + 180)  # A no longer lists it; B still does, unchanged
    read(state, "wf-b", [shared], T0 + 180)
    assert counted(state, FINISHED) == 1
    assert sum(gauges(state, FINISHED).values()) == 1


def test_a_shared_run_counts_once_when_the_other_workflow_is_read_first_after_a_restart() -> None:
    state, shared = shared_finished_run()
    state = restarted(state, T0 + 200)
    listed(state, "wf-a", "wf-b", now=T0 + 240)
    read(state, "wf-b", [shared], T0 + 240)  # B's read lands first
    read(state, "wf-a", [shared], T0 + 240)
    assert counted(state, FINISHED) == 1
    assert sum(gauges(state, FINISHED).values()) == 1
    # A status change after that counts once, under its one owner.
    listed(state, "wf-a", "wf-b", now=T0 + 300)
    moved = run("shared", SHUTDOWN, T0 + 290)
    read(state, "wf-a", [moved], T0 + 300)
    read(state, "wf-b", [moved], T0 + 300)
    assert counted(state, SHUTDOWN) == 1
    assert sum(gauges(state, SHUTDOWN).values()) == 1


# 2. Runs first seen late whose status predates the baseline are history.


def test_old_runs_seen_late_in_a_baselined_workflow_are_history_with_or_without_a_restart() -> None:
    for restart in (False, True):
        state = baselined("wf-a")
        listed(state, "wf-a", now=T0 + 60)
        read(state, "wf-a", [run(f"new-{i}", FINISHED, T0 + 30) for i in range(2)], T0 + 60)
        assert counted(state) == 2
        if restart:
            state = restarted(state, T0 + 100)
        # api.max_pages raised: twenty 10-day-old Shutdown runs become visible, and one new run.
        listed(state, "wf-a", now=T0 + 120)
        history = [run(f"old-{i}", SHUTDOWN, T0 - 10 * DAY) for i in range(20)]
        fresh = run("fresh", SHUTDOWN, T0 + 110)
        again = [run(f"new-{i}", FINISHED, T0 + 30) for i in range(2)]
        read(state, "wf-a", [*again, *history, fresh], T0 + 120)
        assert counted(state, SHUTDOWN) == 1, f"restart={restart}"
        assert gauges(state, SHUTDOWN) == {"wf-a": 21}


def test_a_workflow_first_listed_later_counts_only_what_happened_since_the_previous_list() -> None:
    for restart in (False, True):
        state = baselined("wf-a")
        listed(state, "wf-a", now=T0 + 60)
        read(state, "wf-a", [], T0 + 60)
        if restart:
            state = restarted(state, T0 + 100)
        # A bigger v4.lookback (or a changed filter) shows an action with two-day-old runs.
        listed(state, "wf-a", "wf-late", now=T0 + 120)
        old = [run(f"old-{i}", SHUTDOWN, T0 - 2 * DAY) for i in range(5)]
        read(state, "wf-late", [*old, run("new", FINISHED, T0 + 90)], T0 + 120)
        assert counted(state, SHUTDOWN) == 0, f"restart={restart}"
        assert counted(state, FINISHED) == 1
        assert gauges(state, SHUTDOWN)["wf-late"] == 5


def test_runs_not_reached_by_a_truncated_first_listing_are_history() -> None:
    # v4: the API repeats a page during the first listing; the runs not reached come next poll.
    state = WorkspaceState("acme", api_version="v4")
    listed(state, "fresh", now=T0)
    read(state, "fresh", [run(f"f-{i}", FINISHED, T0 - HOUR) for i in range(10)], T0, complete=False)
    listed(state, "fresh", "old", now=T0 + 60)
    read(state, "fresh", [run(f"f-{i}", FINISHED, T0 - HOUR) for i in range(10)], T0 + 60)
    failed = [run(f"o-{i}", SHUTDOWN, T0 - DAY, api_status="failed") for i in range(6)]
    read(state, "old", failed, T0 + 60)
    assert counted(state) == 0
    assert gauges(state, SHUTDOWN)["old"] == 6


# 3. A change of the derived status without a change of the API's status is a correction.


def test_a_derived_status_correction_counts_no_transition() -> None:
    state = WorkspaceState("acme", api_version="v4")
    listed(state, "act", now=T0)
    read(state, "act", [], T0)
    listed(state, "act", now=T0 + 60)
    read(state, "act", [run("r1", SHUTDOWN, T0 + 30, api_status="failed")], T0 + 60, complete=False)
    assert counted(state, SHUTDOWN) == 1
    # Its last_error arrives: FAILED on input is warning. Same API status: recount, count nothing.
    listed(state, "act", now=T0 + 120)
    read(state, "act", [run("r1", WARNING, T0 + 30, api_status="failed")], T0 + 120, complete=False)
    assert counted(state) == 1
    assert snapshot(state, "act").runs_by_status[WARNING] == 1
    assert snapshot(state, "act").runs_by_status[SHUTDOWN] == 0
    # Retried and failing again is a real change, counted.
    listed(state, "act", now=T0 + 180)
    read(state, "act", [run("r1", RUNNING, None, api_status="running")], T0 + 180, complete=False)
    read(state, "act", [run("r1", WARNING, T0 + 200, api_status="failed")], T0 + 240, complete=False)
    assert counted(state, RUNNING) == 1
    assert counted(state, WARNING) == 1


def test_a_correction_after_a_restart_counts_no_transition() -> None:
    state = WorkspaceState("acme", api_version="v4")
    listed(state, "act", now=T0)
    read(state, "act", [], T0)
    read(state, "act", [run("r1", SHUTDOWN, T0 + 30, api_status="failed")], T0 + 60, complete=False)
    state = restarted(state, T0 + 90)
    listed(state, "act", now=T0 + 120)
    read(state, "act", [run("r1", WARNING, T0 + 30, api_status="failed")], T0 + 120)
    assert counted(state) == 1


# 4. A workflow missing from a workflow list keeps its memory for a while.


def test_a_workflow_missing_from_one_list_resumes_without_counting_its_history() -> None:
    state = WorkspaceState("acme")
    listed(state, "wf-a", "wf-b", now=T0)
    history = [run(f"old-{i}", SHUTDOWN, T0 - DAY + i) for i in range(5)]
    read(state, "wf-a", history, T0)
    read(state, "wf-b", [], T0)
    listed(state, "wf-b", now=T0 + 60)  # one flaky list
    assert [w.uid for w in state.snapshot.workflows] == ["wf-b"]  # its series are dropped
    listed(state, "wf-a", "wf-b", now=T0 + 120)
    # Without timestamps the time rule cannot tell: only the memory keeps them from counting.
    read(state, "wf-a", [new_run(r.uid, "", SHUTDOWN, SHUTDOWN, None, None, None) for r in history], T0 + 120)
    assert counted(state) == 0
    assert gauges(state, SHUTDOWN)["wf-a"] == 5


def test_a_missing_workflow_is_forgotten_after_three_lists_and_an_hour() -> None:
    state = WorkspaceState("acme")
    listed(state, "wf-a", "wf-b", now=T0)
    read(state, "wf-a", [new_run("r", "", SHUTDOWN, SHUTDOWN, None, None, None)], T0)
    read(state, "wf-b", [], T0)
    for minute in (1, 2, 3, 4):  # four lists without it, within the hour: still remembered
        listed(state, "wf-b", now=T0 + 60 * minute)
    assert "wf-a" in state.missing
    listed(state, "wf-b", now=T0 + HOUR + 60)  # an hour and more than three lists: forgotten
    assert "wf-a" not in state.missing
    assert state.owner_of("r") is None
    listed(state, "wf-b", now=T0 + HOUR + 120)
    listed(state, "wf-a", "wf-b", now=T0 + HOUR + 180)
    read(state, "wf-a", [new_run("r", "", SHUTDOWN, SHUTDOWN, None, None, None)], T0 + HOUR + 180)
    assert counted(state, SHUTDOWN) == 1  # a new workflow: its untimed run is new to it


def test_an_hour_without_three_lists_does_not_forget() -> None:
    state = WorkspaceState("acme")
    listed(state, "wf-a", "wf-b", now=T0)
    read(state, "wf-a", [], T0)
    listed(state, "wf-b", now=T0 + 60)
    listed(state, "wf-b", now=T0 + HOUR + 120)  # gone for more than an hour, but from two lists only
    assert "wf-a" in state.missing
    listed(state, "wf-b", now=T0 + HOUR + 180)
    assert "wf-a" not in state.missing


# End to end (v4 over loopback): the API repeats a page during the first listing.


def test_a_missing_workflow_is_remembered_across_a_restart(tmp_path: Path) -> None:
    """A workflow missing from the list before a restart keeps its memory through the saved state, as
    it would without the restart: back, it resumes its counters and counts nothing of its history."""
    identity = WorkspaceIdentity("acme", "", "http://127.0.0.1:1", "v3")
    saver = WorkspaceSaver(WorkspaceJournal(tmp_path, identity))
    state = baselined("wf-a", "wf-b")
    done = run("r1", FINISHED, T0 + 100)
    listed(state, "wf-a", "wf-b", now=T0 + 120)
    read(state, "wf-a", [done], T0 + 120)
    read(state, "wf-b", [], T0 + 120)
    saver.save(state)
    listed(state, "wf-b", now=T0 + 180)  # a flaky list: A is missing
    read(state, "wf-b", [], T0 + 180)
    saver.save(state)
    restored = WorkspaceSaver(WorkspaceJournal(tmp_path, identity)).restore()
    assert restored is not None
    assert set(restored.missing) == {"wf-a"}
    listed(restored, "wf-a", "wf-b", now=T0 + 240)  # back
    read(restored, "wf-a", [done], T0 + 240)
    assert counted(restored, FINISHED) == 1  # its counter resumed; its run not counted again
    assert snapshot(restored, "wf-a").runs_by_status[FINISHED] == 1


def test_a_restored_missing_workflow_is_still_forgotten_after_three_lists_and_an_hour(tmp_path: Path) -> None:
    identity = WorkspaceIdentity("acme", "", "http://127.0.0.1:1", "v3")
    state = baselined("wf-a", "wf-b")
    listed(state, "wf-b", now=T0 + 60)
    listed(state, "wf-b", now=T0 + 120)
    WorkspaceSaver(WorkspaceJournal(tmp_path, identity)).save(state)
    saver = WorkspaceSaver(WorkspaceJournal(tmp_path, identity))
    restored = saver.restore()
    assert restored is not None
    assert restored.missing["wf-a"].absent == 2
    listed(restored, "wf-b", now=T0 + 60 + HOUR)  # the third list, an hour after the first
    assert restored.missing == {}
    saver.save(restored)
    again = WorkspaceSaver(WorkspaceJournal(tmp_path, identity)).restore()
    assert again is not None
    assert (again.missing, set(again.workflows)) == ({}, {"wf-b"})


async def test_a_poller_restores_its_state_on_its_own_clock(tmp_path: Path) -> None:
    """The restored runs are remembered from the restore on the poller's clock (a day on that clock
    forgets them), not on the system's."""
    workspace = {
        "name": "acme",
        "workspace_uid": "5b7c6a0e",
        "api_key": "k" * 32,
        "base_url": "http://127.0.0.1:1",
    }
    config = parse_config({"workspaces": [workspace], "state": {"path": str(tmp_path)}})
    directory, savers = open_state(config)
    assert directory is not None
    assert savers is not None
    state = baselined("wf-a")
    read(state, "wf-a", [run("r1", FINISHED, T0 - 100)], T0 + 60)
    savers["acme"].save(state)
    directory.close()
    clock = ManualClock(T0 + 120)
    directory, savers = open_state(config)
    assert directory is not None
    assert savers is not None
    try:
        _, (poller,) = build(config, savers=savers, clock=clock)
        await poller.aclose()
    finally:
        directory.close()
    assert poller.state.workflows["wf-a"].runs.vanished_at("r1") == T0 + 120


async def test_v4_runs_not_reached_by_a_repeated_first_page_are_not_counted_next_poll() -> None:
    clock = ManualClock(time.time())
    sim = Simulator(seed=13, clock=clock)
    sim.add_workspace("ws", "4a7e" * 16)
    api = V4Api.of(sim)
    for index in range(10):
        api.add_run("fresh", "SUCCEEDED", updated_at=clock() - HOUR + index)
    for index in range(6):
        api.add_run("old", "FAILED", updated_at=clock() - DAY + index)
    sim.add_fault("ignore_page", count=2, path_contains="/v4/runs")  # offsets 0 and 10 both get page 0
    with running_simulator(sim) as url:
        workspace = {"name": "growth", "api_version": "v4", "api_key": "4a7e" * 16, "base_url": url}
        config = parse_config(
            {
                "workspaces": [{**workspace, "v4": {"page_size": 10}}],
                "api": {"requests_per_second": 500, "burst": 500},
            }
        )
        published, (poller,) = build(config)
        assert isinstance(poller.source, V4Source)
        poller.source.clock = clock
        try:
            assert await poller.poll_once()
            first = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
            assert first.value("captaindata_poll_errors_total", reason="page_cap") == 1
            clock.advance(60)
            assert await poller.poll_once()
            second = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
        finally:
            await poller.aclose()
    assert second.value("captaindata_runs", workflow_uid="old", status="shutdown") == 6
    assert second.total("captaindata_run_status_changes_total") == 0


async def test_a_v4_poll_reads_timestamps_against_its_own_clock() -> None:
    """Timestamps later than now + a day are dropped as hostile (exporter/timestamps.py); "now" is the
    poller's clock, as for v3, not the system's: a run that just finished on a clock 3 days ahead of it
    keeps its finish time."""
    clock = ManualClock(time.time() + 3 * DAY)
    sim = Simulator(seed=13, clock=clock)
    sim.add_workspace("ws", "4a7e" * 16)
    api = V4Api.of(sim)
    finished_at = float(int(clock() - 60))
    api.add_run(
        "fresh", "SUCCEEDED", updated_at=finished_at, started_at=finished_at - 60, finished_at=finished_at
    )
    with running_simulator(sim) as url:
        workspace = {"name": "growth", "api_version": "v4", "api_key": "4a7e" * 16, "base_url": url}
        config = parse_config({"workspaces": [workspace], "api": {"requests_per_second": 500, "burst": 500}})
        published, (poller,) = build(config, clock=clock)
        try:
            assert await poller.poll_once()
            scraped = ScrapedMetrics((await published.exposition(openmetrics=False, gzip=False)).decode())
        finally:
            await poller.aclose()
    last = scraped.value(
        "captaindata_workflow_last_status_timestamp_seconds", workflow_uid="fresh", status="finished"
    )
    assert last == finished_at
