"""A finding of the soak (docs/soak.md): a page of runs read before a pushed change, and applied after
the push's read of that change, undoes it, and the next poll counts the change a second time.

The simulator's ``late`` fault answers a workflow's page as of the moment it is asked and delivers it
half a second later (a large page on a slow network), so the push's targeted read of the run, made
after the change, is applied first. Real pushes race polls this way whenever a page takes longer to
arrive and parse than a push's one-run read: the bigger the workspace, the wider the window.
Expected by the counting rule: the run entered ``finished`` once. The state used to have no way to
know that the page is older than what it already applied, so the late page turned the run back to
``running`` (counted) and the next poll counted ``finished`` again. Each read now hands over when it
started (``StateSink.read_started``): a poll's read that started before a push's read of a run keeps
what the push applied, and a push's read that started before the last poll's read changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import exporter.state as state_module
from exporter.parsing import Parsed, Run, Workflow, new_run
from exporter.push.apply import PushApplier
from exporter.push.body import PushEvent
from exporter.simulator import Simulator
from exporter.state import WorkspaceState

W = "wf-stale"
JOBS = f"/v3/workflows/{W}/jobs"
CHANGES = "captaindata_run_status_changes_total"
T = 1_764_633_600.0


def answered(sim: Simulator, path: str) -> int:
    """The requests for ``path`` the simulator has answered (delivered or not)."""
    with sim.lock:
        return sum(1 for entry in sim.request_log if entry["path"] == path and "status" in entry)


async def until_answered(sim: Simulator, path: str, before: int) -> None:
    while answered(sim, path) == before:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_a_page_read_before_a_pushed_change_does_not_undo_it(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(W, "Stale")
    harness = harness_for()
    poller = harness.pollers[0]
    await harness.poll()  # W's baseline: no runs
    run = sim.add_run(W, "running")
    assert (await harness.poll()).value(CHANGES, workflow_uid=W, status="running") == 1

    sim.add_fault("late", count=1, delay=0.5, path_contains=f"/{W}/jobs")
    before = answered(sim, JOBS)
    poll = asyncio.create_task(poller.poll_once())
    # the page is answered (run: running) by the simulator's thread, not delivered yet
    await until_answered(sim, JOBS, before)
    sim.update_run(run, "finished")
    assert await PushApplier(poller)(PushEvent("v3", run, W, "succeeded"))  # reads finished
    assert (await harness.exposition()).value(CHANGES, workflow_uid=W, status="finished") == 1
    assert not poll.done()  # the page is still on its way
    await poll  # the late page (running) is applied after the push's read
    after = await harness.poll()

    counted = [after.value(CHANGES, workflow_uid=W, status=status) for status in ("running", "finished")]
    assert counted == [1, 1], f"running and finished counted {counted} times"
    assert after.value("captaindata_runs", workflow_uid=W, status="finished") == 1


async def test_a_push_read_before_a_polled_change_does_not_undo_it(sim: Simulator, harness_for: Any) -> None:
    """The other way round: the push's one-run read is answered before the change and delivered after
    a poll applied it; the push changes nothing."""
    sim.add_workflow(W, "Stale")
    harness = harness_for()
    poller = harness.pollers[0]
    await harness.poll()
    run = sim.add_run(W, "running")
    assert (await harness.poll()).value(CHANGES, workflow_uid=W, status="running") == 1

    path = f"/v3/jobs/{run}"
    sim.add_fault("late", count=1, delay=1.0, path_contains=path)
    before = answered(sim, path)
    push = asyncio.create_task(PushApplier(poller)(PushEvent("v3", run, W, "succeeded")))
    await until_answered(sim, path, before)  # answered: running, not delivered yet
    sim.update_run(run, "finished")
    assert (await harness.poll()).value(CHANGES, workflow_uid=W, status="finished") == 1
    assert not push.done()  # the push's read is still on its way
    assert await push  # read (running), older than the poll's: applied as nothing
    after = await harness.poll()

    counted = [after.value(CHANGES, workflow_uid=W, status=status) for status in ("running", "finished")]
    assert counted == [1, 1], f"running and finished counted {counted} times"


# The rule on the state itself (exporter/state.py), with the read order made explicit.


def listed_state() -> WorkspaceState:
    state = WorkspaceState("acme")
    state.workflows_listed([WORKFLOW], now=T)
    state.runs_read(WORKFLOW, Parsed([]), now=T, read_started=1)
    return state


def running(uid: str) -> Run:
    return new_run(uid, "", "running", "running", T + 10, None, None)


def finished(uid: str) -> Run:
    return new_run(uid, "", "finished", "finished", T + 10, T + 20, None)


WORKFLOW = Workflow(W, "Stale")


def changes(state: WorkspaceState) -> dict[str, int]:
    counted = state.workflows[W].status_changes
    return {status: counted[status] for status in ("running", "finished")}


def test_a_complete_read_that_started_before_a_push_keeps_the_pushed_run_listed() -> None:
    state = listed_state()
    state.runs_read(WORKFLOW, Parsed([running("a")]), now=T + 30, read_started=2)
    state.run_pushed(W, finished("a"), None, read_started=4)
    state.run_pushed(W, running("b"), None, read_started=5)  # new since the page was read
    state.runs_read(WORKFLOW, Parsed([running("a")]), now=T + 40, read_started=3)  # neither in it
    tracked = state.workflows[W]
    assert tracked.known("a") == ("finished", "finished")
    assert tracked.runs.lists("a")  # not vanished
    assert tracked.runs.lists("b")
    assert changes(state) == {"running": 2, "finished": 1}
    assert tracked.pushed == {"a": 4, "b": 5}  # still newer than every poll read applied
    state.runs_read(WORKFLOW, Parsed([finished("a")]), now=T + 50, read_started=6)
    assert tracked.pushed == {}  # a read that started later was applied: nothing to keep
    assert not tracked.runs.lists("b")  # that read does not list it: it left
    assert changes(state) == {"running": 2, "finished": 1}


def test_a_read_that_started_after_the_push_applies_as_always() -> None:
    state = listed_state()
    state.runs_read(WORKFLOW, Parsed([running("a")]), now=T + 30, read_started=2)
    state.run_pushed(W, running("a"), None, read_started=3)
    state.runs_read(WORKFLOW, Parsed([finished("a")]), now=T + 40, read_started=4)
    assert state.workflows[W].known("a") == ("finished", "finished")
    assert changes(state) == {"running": 1, "finished": 1}


def test_a_push_read_older_than_the_last_poll_read_or_push_read_changes_nothing() -> None:
    state = listed_state()
    state.runs_read(WORKFLOW, Parsed([finished("a")]), now=T + 30, read_started=5)
    snapshot = state.snapshot
    assert state.run_pushed(W, running("a"), None, read_started=4) == (snapshot, False)
    state.run_pushed(W, running("b"), None, read_started=7)
    assert state.run_pushed(W, running("b"), None, read_started=3) == (state.snapshot, False)
    state.run_pushed(W, finished("b"), None, read_started=8)
    assert state.run_pushed(W, running("b"), None, read_started=6) == (state.snapshot, False)
    assert state.workflows[W].known("b") == ("finished", "finished")
    assert state.workflows[W].known("a") == ("finished", "finished")
    assert changes(state) == {"running": 1, "finished": 2}  # a: finished; b: running, then finished


def test_the_runs_remembered_as_pushed_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_PUSHED_RUNS", 3)
    state = listed_state()
    for number in range(5):
        state.run_pushed(W, running(f"r{number}"), None, read_started=10 + number)
    assert state.workflows[W].pushed == {"r2": 12, "r3": 13, "r4": 14}


def test_reads_without_an_order_are_the_newest() -> None:
    state = listed_state()
    state.run_pushed(W, finished("a"), None, read_started=3)
    state.runs_read(WORKFLOW, Parsed([running("a")]), now=T + 30)
    assert state.workflows[W].pushed == {}
    assert state.workflows[W].known("a") == ("running", "running")


def test_the_v4_apply_of_many_actions_keeps_the_order_of_reads() -> None:
    state = WorkspaceState("acme", api_version="v4")
    action = Workflow(W, W)
    state.workflows_listed([action], now=T)
    state.runs_read_many([(action, Parsed([]))], complete=True, now=T, read_started=1)
    run = new_run("r1", "", "running", "running", T + 10, None, None)
    state.runs_read_many([(action, Parsed([run]))], complete=True, now=T + 60, read_started=2)
    done = new_run("r1", "", "finished", "finished", T + 10, T + 70, None)
    state.run_pushed(W, done, None, read_started=4)
    state.runs_read_many([(action, Parsed([run]))], complete=True, now=T + 90, read_started=3)  # older
    state.runs_read_many([(action, Parsed([done]))], complete=True, now=T + 120, read_started=5)
    counted = state.workflows[W].status_changes
    assert (counted["running"], counted["finished"]) == (1, 1)
