"""The state's side of push (#16): a run read back after a push is applied as a polled run would be
(WorkspaceState.run_pushed), and a poll that finds a change first tells the missed-push accounting."""

from __future__ import annotations

import time

import pytest

from exporter.api.v4 import source as v4_source
from exporter.config import parse_config
from exporter.parsing import Parsed, Run, Workflow, new_run
from exporter.poller import Poller, build
from exporter.push.missed import Announcements
from exporter.simulator import Simulator
from exporter.simulator.v4 import V4Api
from exporter.state import WorkspaceState
from tests.support.sim_server import running_simulator

WF = Workflow("wf-1", "One")


def run(uid: str, status: str) -> Run:
    """A run that entered its status now: new to the state, it counts (docs/counting.md)."""
    return new_run(uid, "Run", status, status, time.time(), None, None)


def listed(state: WorkspaceState, *runs: Run) -> None:
    state.workflows_listed([WF])
    state.runs_read(WF, Parsed(list(runs)))


def changes(state: WorkspaceState, status: str) -> int:
    return state.workflows[WF.uid].status_changes[status]


def test_a_pushed_change_counts_once_and_the_poll_reading_it_counts_nothing() -> None:
    state = WorkspaceState("acme")
    listed(state, run("r1", "running"))  # the baseline
    polled: list[str] = []
    state.on_polled_change = polled.append
    snapshot, changed = state.run_pushed(WF.uid, run("r1", "warning"), "boom")
    assert changed
    assert changes(state, "warning") == 1
    assert snapshot.workflows[0].needs_action[0].error == "boom"
    assert state.run_pushed(WF.uid, run("r1", "warning"), None)[1] is False  # a duplicate read
    state.runs_read(WF, Parsed([run("r1", "warning")]))
    assert changes(state, "warning") == 1
    assert polled == []
    state.runs_read(WF, Parsed([run("r1", "shutdown")]))  # found by the poll first
    assert changes(state, "shutdown") == 1
    assert polled == ["r1"]


def test_a_pushed_run_the_state_did_not_know_joins_its_workflow() -> None:
    state = WorkspaceState("acme")
    listed(state)
    snapshot, changed = state.run_pushed(WF.uid, run("new", "paused"), None)
    assert changed
    assert changes(state, "paused") == 1
    assert snapshot.workflows[0].runs_by_status["paused"] == 1


def test_a_workflow_not_tracked_is_ignored_unless_the_version_adds_it() -> None:
    state = WorkspaceState("acme", api_version="v4")
    assert state.run_pushed("action-a", run("r", "warning"), None)[1] is False  # nothing listed yet
    listed(state)
    assert state.run_pushed("action-b", run("r", "warning"), None)[1] is False
    assert "action-b" not in state.workflows
    snapshot, changed = state.run_pushed("action-b", run("r", "warning"), None, add_workflow=True)
    assert changed
    assert {w.uid for w in snapshot.workflows} == {"wf-1", "action-b"}


def test_a_baseline_workflow_not_read_yet_takes_a_pushed_run_without_counting_it() -> None:
    state = WorkspaceState("acme")
    state.workflows_listed([WF])  # the first list: a baseline, its runs not read yet
    assert state.run_pushed(WF.uid, run("r1", "warning"), None)[1] is True
    assert changes(state, "warning") == 0
    state.runs_read(WF, Parsed([run("r1", "warning")]))
    assert changes(state, "warning") == 0


def test_announcements_count_a_change_missed_unless_pushed_within_the_window() -> None:
    now = [0.0]
    missed: list[int] = []
    announced = Announcements(20.0, lambda: missed.append(1), capacity=2, monotonic=lambda: now[0])
    announced.announce("a")
    now[0] = 15.0
    announced.polled_change("a")  # pushed 15 s before: not missed
    assert missed == []
    now[0] = 25.0
    announced.polled_change("a")  # 25 s: outside the window
    assert len(missed) == 1
    for uid in ("x", "y", "z"):  # the capacity forgets the oldest
        announced.announce(uid)
    announced.polled_change("x")
    assert len(missed) == 2
    announced.polled_change("z")
    assert len(missed) == 2


def finished(state: WorkspaceState) -> dict[str, int]:
    return {w.uid: w.runs_by_status["finished"] for w in state.snapshot.workflows}


def counted(state: WorkspaceState, status: str) -> int:
    held = [*state.workflows.values(), *state.missing.values()]
    return sum(tracked.status_changes[status] for tracked in held)


def test_a_pushed_run_its_owner_no_longer_lists_is_taken_over_without_counting_it_again() -> None:
    a, b = Workflow("wf-a", "A"), Workflow("wf-b", "B")
    state = WorkspaceState("acme")
    state.workflows_listed([a, b])
    state.runs_read(a, Parsed([]))
    state.runs_read(b, Parsed([]))  # the baseline
    done = run("r1", "finished")
    state.runs_read(a, Parsed([done]))  # counted under A, its owner
    state.runs_read(a, Parsed([]))  # A no longer lists it: remembered there
    _, changed = state.run_pushed(b.uid, done, None)  # the API says it is B's now
    assert not changed
    assert counted(state, "finished") == 1  # as a poll of B would: taken over, not counted again
    assert finished(state) == {"wf-a": 0, "wf-b": 1}
    state.runs_read(a, Parsed([done]))  # A lists it again: B owns it now
    assert counted(state, "finished") == 1
    assert state.runs_skipped["duplicate_uid"] == 1


def test_a_pushed_run_of_a_missing_workflow_is_taken_over_as_a_poll_would() -> None:
    a, b = Workflow("wf-a", "A"), Workflow("wf-b", "B")
    state = WorkspaceState("acme")
    state.workflows_listed([a, b])
    state.runs_read(a, Parsed([]))
    state.runs_read(b, Parsed([]))
    done = run("r1", "finished")
    state.runs_read(a, Parsed([done]))
    state.workflows_listed([b])  # A is missing from this list; its memory is kept
    state.run_pushed(b.uid, done, None)
    assert counted(state, "finished") == 1
    assert finished(state) == {"wf-b": 1}


def test_a_pushed_action_missing_from_the_last_list_resumes_with_its_counters() -> None:
    action = Workflow("action-a", "action-a")
    state = WorkspaceState("acme", api_version="v4")
    state.workflows_listed([action])
    state.runs_read(action, Parsed([]))  # the baseline
    state.runs_read(action, Parsed([run("r1", "finished")]))
    state.workflows_listed([])  # its runs left the lookback: missing, remembered
    state.run_pushed(action.uid, run("r2", "warning"), None, add_workflow=True)
    assert action.uid not in state.missing
    counts = state.snapshot.workflows[0].status_changes
    assert (counts["finished"], counts["warning"]) == (1, 1)
    state.workflows_listed([action])
    assert counted(state, "finished") == 1


def test_an_action_a_push_adds_during_a_poll_does_not_fail_that_poll() -> None:
    """The poll read every action it listed; the one a push added meanwhile was read by the push."""
    action = Workflow("action-a", "action-a")
    state = WorkspaceState("acme", api_version="v4")

    def poll(pushed: bool) -> None:
        state.begin_poll()
        state.workflows_listed([action])
        state.runs_read(action, Parsed([]))
        if pushed:  # a push lands between the poll's last read and its end
            state.run_pushed("action-b", run("r", "warning"), None, add_workflow=True)
        snapshot = state.end_poll(1.0)
        assert snapshot.up, snapshot.last_error

    poll(pushed=False)
    poll(pushed=True)
    assert "action-b" in state.workflows


async def test_an_action_adopted_while_a_v4_poll_applies_its_batches_does_not_break_the_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A push's read adopts its action (V4Source.adopt) on the event loop, which runs while the poll
    awaits each batch's apply: the poll's loop over the actions must not see the list change."""
    monkeypatch.setattr(v4_source, "APPLY_BATCH", 1)  # every action is a batch: the poll awaits between
    sim = Simulator(seed=3)
    sim.add_workspace("ws", "4a7e" * 16)
    api = V4Api.of(sim)
    for action in ("alpha", "beta", "gamma"):
        api.add_run(action, "SUCCEEDED", updated_at=time.time() - 60)
    adopted: list[str] = []
    pollers: list[Poller] = []

    def checkpoint(point: str) -> None:
        if point == "apply" and pollers and not adopted and pollers[0].state.listed_once:
            source = pollers[0].source
            assert isinstance(source, v4_source.V4Source)
            adopted.append("pushed-action")  # as PushApplier does, between two of the poll's applies
            source.adopt("pushed-action")

    with running_simulator(sim) as url:
        workspace = {"name": "growth", "api_version": "v4", "api_key": "4a7e" * 16, "base_url": url}
        config = parse_config({"workspaces": [workspace], "api": {"requests_per_second": 500, "burst": 500}})
        _, found = build(config, checkpoint=checkpoint)
        pollers.extend(found)
        try:
            assert await pollers[0].poll_once(), pollers[0].state.last_error
        finally:
            await pollers[0].aclose()
    assert adopted
    assert pollers[0].state.poll_errors["internal"] == 0
    assert {"alpha", "beta", "gamma"} <= set(pollers[0].state.workflows)
