"""Issue #20 §4: a simulated day in minutes. The real exporter process (``python -m exporter``) polls the
simulator on loopback and receives its pushes, both on one clock the test moves (exporter/fileclock.py,
``--test.clock-file``): steady run churn, three 429 storms, a 30-minute API outage, a SIGTERM restart
and a kill -9 with ``state.path``, workflows created, renamed and deleted (tests/support/soak_plan.py;
the driver is tests/support/soak_driver.py; docs/soak.md says what it shows).

At the end: every counter equals the simulator's truth; a deleted workflow has no series and, after the
documented forget delay, no saved memory; RSS grows by at most 5 % after each process's second hour;
the state directory stays under 3 x its live size; the simulator's request log and push deliveries
stay bounded. The hour-by-hour figures go to ``soak.csv`` in the test's directory, or to
``$SOAK_CSV`` (``SOAK_CSV=docs/soak.csv``, then ``python -m bench.soak_plot docs/soak.csv``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.fileclock import ClockFile
from exporter.persist.journal import COMPACT_MIN_BYTES
from exporter.simulator import Simulator
from exporter.simulator.model import REQUEST_LOG_LIMIT
from exporter.simulator.push import DELIVERIES_KEPT
from exporter.statuses import KNOWN_STATUSES
from tests.support.sim_server import running_simulator
from tests.support.soak_driver import API_KEY, WORKSPACE, WORKSPACE_UID, Soak, read_journal, soak
from tests.support.soak_plan import START, make_plan

pytestmark = pytest.mark.soak

CHANGES = "captaindata_run_status_changes_total"
FAILURES = "captaindata_run_failures_total"
RSS_GROWTH = 1.05
SETTLED_AFTER = 2  # hours into a process's life before its RSS is the reference


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    workdir = tmp_path_factory.mktemp("soak")
    clock = ClockFile(workdir / "clock", START)
    sim = Simulator(seed=20, page_size=20, clock=clock)
    sim.add_workspace(WORKSPACE_UID, API_KEY)
    plan = make_plan(seed=20)
    with running_simulator(sim) as url, soak(plan, sim, url, workdir, clock) as running:
        running.run()
        running.write_csv(Path(os.environ.get("SOAK_CSV", workdir / "soak.csv")))
        yield running
    clock.close()


def test_every_counter_equals_the_simulators_truth(day: Soak) -> None:
    assert day.final is not None
    deleted = day.plan.deleted()
    live = {uid: workflow.name for uid, workflow in day.sim.workflows.items()}
    counted = {
        (series.label("workflow_uid"), series.label("status")): series.value
        for series in day.final.find(CHANGES, workspace=WORKSPACE)
    }
    truth = {
        (workflow, status): float(day.sim.changes[workflow, status])
        for workflow in live
        for status in KNOWN_STATUSES
    }
    assert sum(truth.values()) > 1000, "the day made too few changes to show anything"
    assert {workflow for workflow, _ in counted} == set(live)
    wrong = {key: (counted.get(key), value) for key, value in truth.items() if counted.get(key) != value}
    assert not wrong, f"(workflow, status): (counted, truth): {wrong}"
    for series in day.final.find(CHANGES, workspace=WORKSPACE):
        assert series.label("workflow") == live[series.label("workflow_uid")]  # renames followed
    failures = {
        (series.label("workflow_uid"), series.label("status"), series.label("reason")): series.value
        for series in day.final.find(FAILURES, workspace=WORKSPACE)
        if series.value
    }
    expected = {key: float(n) for key, n in day.plan.failures.items() if key[0] not in deleted and n}
    assert failures == expected
    assert deleted
    assert not deleted & set(live)


def test_a_deleted_workflow_leaves_no_series_and_is_forgotten(day: Soak) -> None:
    """Its series go at the first list without it; its memory (runs, counters) after it has been missing
    from 3 lists and for an hour (docs/counting.md). The last deletion is 3 simulated hours before the
    end, so by then none is in the journal's live records."""
    assert day.final is not None
    saved = read_journal(day.state, day.identity).live_keys
    assert len(saved) > 5  # the live workflows' records, and the workspace's
    for workflow in day.plan.deleted():
        assert workflow not in day.final.text
        assert workflow not in saved


def test_rss_grows_at_most_5_percent_after_each_process_s_second_hour(day: Soak) -> None:
    rows = day.rows
    for pid, started in day.segments:
        mine = [row for row in rows if row["exporter_pid"] == pid and row["hour"] >= started + SETTLED_AFTER]
        if len(mine) < 2:
            continue
        reference = mine[0]["rss_mib"]
        peak = max(row["rss_mib"] for row in mine)
        assert peak <= reference * RSS_GROWTH, (
            f"exporter {pid} (started at hour {started:.1f}): {reference} MiB at hour {mine[0]['hour']}, "
            f"{peak} MiB later"
        )
    assert len(day.segments) == 3  # two restarts


def test_the_state_directory_stays_under_3_times_its_live_size(day: Soak) -> None:
    """Compaction starts past 2 x the live records and COMPACT_MIN_BYTES: a state smaller than half of
    that floor may reach the floor, so the bound is 3 x max(live, COMPACT_MIN_BYTES / 2)."""
    for row in day.rows[1:]:
        live = max(row["live_bytes"], COMPACT_MIN_BYTES / 2)
        assert row["state_dir_bytes"] < 3 * live, row


def test_the_simulators_logs_stay_bounded(day: Soak) -> None:
    last = day.rows[-1]
    assert last["requests_total"] > REQUEST_LOG_LIMIT  # long enough to have dropped some
    assert all(row["request_log_length"] <= REQUEST_LOG_LIMIT * 1.25 for row in day.rows)
    assert all(row["push_deliveries_kept"] <= DELIVERIES_KEPT * 1.25 for row in day.rows)
    # the simulator's runs follow the churn (retired), not the day
    assert max(row["simulator_runs"] for row in day.rows[12:]) <= 2 * max(
        row["simulator_runs"] for row in day.rows[3:6]
    )


def test_the_exporter_polled_every_hour(day: Soak) -> None:
    """A poll loop that stalls (a sleep that never ends, a lost wake-up) shows as an hour without
    workflow lists; a poll a minute is 60 an hour, fewer in a 429 storm (polls back to back)."""
    for row in day.rows[1:]:
        assert row["workflow_lists_hour"] >= 30, row


def test_the_day_had_its_incidents(day: Soak) -> None:
    """A soak whose storms, outage or pushes did not happen would prove nothing."""
    rows = day.rows
    assert sum(row["answered_429_hour"] for row in rows) > 10
    assert sum(row["answered_5xx_hour"] for row in rows) > 10
    assert rows[-1]["pushes_total"] > 1000
    assert day.final is not None
    assert day.final.value("captaindata_push_applied_total", workspace=WORKSPACE) > 100
    # the push queue is bounded (push.queue_size): no push was turned away at this pace
    assert day.final.value("captaindata_push_requests_total", workspace=WORKSPACE, outcome="overloaded") == 0
