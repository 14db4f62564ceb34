"""A finding of the soak (docs/soak.md): a page of runs read before a pushed change, and applied after
the push's read of that change, undoes it, and the next poll counts the change a second time.

The simulator's ``late`` fault answers a workflow's page as of the moment it is asked and delivers it
half a second later (a large page on a slow network), so the push's targeted read of the run, made
after the change, is applied first. Real pushes race polls this way whenever a page takes longer to
arrive and parse than a push's one-run read: the bigger the workspace, the wider the window.
Expected by the counting rule: the run entered ``finished`` once. The state (exporter/state.py) has no
way to know that the page is older than what it already applied (no read time per run), so the late
page turns the run back to ``running`` (counted) and the next poll counts ``finished`` again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.push.apply import PushApplier
from exporter.push.body import PushEvent
from exporter.simulator import Simulator

W = "wf-stale"
CHANGES = "captaindata_run_status_changes_total"


def jobs_reads(sim: Simulator) -> int:
    with sim.lock:
        return sum(1 for entry in sim.request_log if entry["path"] == f"/v3/workflows/{W}/jobs")


async def test_a_page_read_before_a_pushed_change_does_not_undo_it(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow(W, "Stale")
    harness = harness_for()
    poller = harness.pollers[0]
    await harness.poll()  # W's baseline: no runs
    run = sim.add_run(W, "running")
    assert (await harness.poll()).value(CHANGES, workflow_uid=W, status="running") == 1

    sim.add_fault("late", count=1, delay=0.5, path_contains=f"/{W}/jobs")
    before = jobs_reads(sim)
    poll = asyncio.create_task(poller.poll_once())
    # the page is answered (run: running) by the simulator's thread, not delivered yet
    while jobs_reads(sim) == before:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    sim.update_run(run, "finished")
    assert await PushApplier(poller)(PushEvent("v3", run, W, "succeeded"))  # reads finished
    assert (await harness.exposition()).value(CHANGES, workflow_uid=W, status="finished") == 1
    assert not poll.done()  # the page is still on its way
    await poll  # the late page (running) is applied after the push's read
    after = await harness.poll()

    counted = [after.value(CHANGES, workflow_uid=W, status=status) for status in ("running", "finished")]
    if counted != [1, 1]:
        pytest.xfail(f"known defect (see the docstring): running and finished counted {counted} times")
