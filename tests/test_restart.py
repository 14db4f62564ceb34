"""Restarts with state.path: the real exporter (a subprocess, stopped or killed -9) polling the simulator.

What the issue asks: counters continue (no reset), transitions during the downtime are counted once,
runs that appeared during the downtime count as new, nothing is counted twice after kill -9 in a poll
or a save, and a damaged or foreign state file only costs a fresh baseline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.persist.journal import CORRUPT_SUFFIX, JOURNAL_SUFFIX, MISMATCH_SUFFIX, WorkspaceJournal
from exporter.persist.saver import WorkspaceSaver, identity
from exporter.poller import Poller
from exporter.simulator import Simulator
from tests.conftest import API_KEY, ConfigFactory
from tests.support.exporter_proc import exporter_argv, running_exporter
from tests.support.metrics import ScrapedMetrics
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail

CHANGES = "captaindata_run_status_changes_total"
A, B, C = "wf-a", "wf-b", "wf-c"


@contextmanager
def exporter(
    config: dict[str, Any], workdir: Path, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with running_exporter(config, workdir, name=name) as running:
        yield running.process, running.url


def scrape(url: str) -> ScrapedMetrics:
    return ScrapedMetrics(httpx.get(f"{url}/metrics", timeout=10).text)


def changes(url: str, workflow: str, status: str) -> float:
    return scrape(url).value(CHANGES, workflow_uid=workflow, status=status)


def jobs_reads(sim: Simulator, workflow: str) -> int:
    with sim.lock:
        return sum(1 for entry in sim.request_log if f"/{workflow}/jobs" in entry["path"])


def after_polls(sim: Simulator, workflow: str, polls: int = 2) -> None:
    """Wait until ``workflow``'s runs were read ``polls`` more times (so any double count would show)."""
    start = jobs_reads(sim, workflow)
    wait_until(lambda: jobs_reads(sim, workflow) >= start + 2 * polls, 30, "more polls")


def counters(exposition: ScrapedMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, s.labels): s.value
        for s in exposition.series
        if s.name.endswith(("_total", "_count", "_sum", "_bucket"))
    }


def journal(state: Path) -> Path:
    (found,) = [path for path in state.iterdir() if path.name.endswith(JOURNAL_SUFFIX)]
    return found


def count_a_warning_then_stop(sim: Simulator, config: dict[str, Any], tmp_path: Path) -> None:
    """A first exporter (``first``) sees A's run turn to warning, counts it, and stops (SIGTERM)."""
    sim.add_workflow(A, "A")
    run = sim.add_run(A, "running", start_time=time.time() - 60)
    with exporter(config, tmp_path, "first") as (_, url):
        sim.update_run(run, "warning", finish_time=time.time())
        wait_until(lambda: changes(url, A, "warning") == 1, 30, "the warning to be counted")


@pytest.fixture
def with_state(config_dict: ConfigFactory, tmp_path: Path) -> dict[str, Any]:
    return config_dict(state={"path": str(tmp_path / "state")})


def test_downtime_transitions_and_new_runs_are_counted_once_and_counters_continue(
    sim: Simulator, with_state: dict[str, Any], tmp_path: Path
) -> None:
    now = time.time()
    sim.add_workflow(A, "A")
    r1 = sim.add_run(A, "running", start_time=now - 300)
    r2 = sim.add_run(A, "running", start_time=now - 200)
    r3 = sim.add_run(A, "pending")
    sim.add_run(A, "finished", start_time=now - 900, finish_time=now - 800)
    with exporter(with_state, tmp_path, "first") as (_, url):
        sim.update_run(r1, "warning", finish_time=time.time())
        wait_until(lambda: changes(url, A, "warning") == 1, 30, "the warning to be counted")
        assert changes(url, A, "finished") == 0  # the first poll was the baseline
        before = scrape(url)
    # Down (SIGTERM): a run finishes, one starts, one warns, a new one appears and finishes.
    sim.update_run(r2, "finished", finish_time=time.time())
    sim.update_run(r3, "running", start_time=time.time())
    sim.update_run(r1, "finished", finish_time=time.time())
    sim.add_run(A, "finished", start_time=time.time() - 120, finish_time=time.time())
    sim.add_run(A, "warning", start_time=time.time() - 60, finish_time=time.time())

    with exporter(with_state, tmp_path, "second") as (_, url):
        first = scrape(url)
        for key, value in counters(before).items():
            assert counters(first).get(key, 0) >= value, (
                f"{key} went from {value} back to {counters(first).get(key)}"
            )
        after_polls(sim, A)
        after = scrape(url)
    assert after.value(CHANGES, workflow_uid=A, status="finished") == 3  # r2, r1, the new one
    assert after.value(CHANGES, workflow_uid=A, status="warning") == 2  # r1 before, the new one
    assert after.value(CHANGES, workflow_uid=A, status="running") == 1  # r3
    assert after.value("captaindata_run_duration_seconds_count", workflow_uid=A, status="finished") == 3


@pytest.mark.parametrize("torn_save", [False, True])
def test_kill_9_during_a_poll_counts_nothing_twice(
    sim: Simulator, with_state: dict[str, Any], tmp_path: Path, torn_save: bool
) -> None:
    now = time.time()
    runs = {}
    for workflow in (A, B, C):
        sim.add_workflow(workflow, workflow.upper())
        runs[workflow] = sim.add_run(workflow, "running", start_time=now - 60)
    with exporter(with_state, tmp_path, "first") as (proc, url):
        sim.add_fault("slow", delay=30.0, path_contains=f"/{C}/jobs")  # the poll hangs on C
        sim.update_run(runs[A], "warning", finish_time=time.time())
        sim.update_run(runs[C], "finished", finish_time=time.time())
        wait_until(lambda: changes(url, A, "warning") == 1, 30, "A's warning to be counted")
        assert changes(url, C, "finished") == 0
        before = scrape(url)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    sim.clear_faults()
    if torn_save:  # as if the kill had cut the last save short
        path = journal(tmp_path / "state")
        path.write_bytes(path.read_bytes()[:-5])

    with exporter(with_state, tmp_path, "second") as (_, url):
        first = counters(scrape(url))
        for key, value in counters(before).items():
            if not key[0].startswith("captaindata_api_"):  # those are saved once per poll
                assert first.get(key, 0) >= value, f"{key} went from {value} back to {first.get(key)}"
        wait_until(lambda: changes(url, C, "finished") == 1, 30, "C's finish to be counted")
        after_polls(sim, A)
        after = scrape(url)
        log = (tmp_path / "second.log").read_text()
    assert after.value(CHANGES, workflow_uid=A, status="warning") == 1
    assert after.value(CHANGES, workflow_uid=C, status="finished") == 1
    assert after.total(CHANGES, workflow_uid=B) == 0
    assert ("incomplete record" in log) == torn_save, log_tail(tmp_path / "second.log")


def test_a_truncated_or_garbage_file_is_kept_aside_and_a_fresh_baseline_taken(
    sim: Simulator, with_state: dict[str, Any], tmp_path: Path
) -> None:
    count_a_warning_then_stop(sim, with_state, tmp_path)
    path = journal(tmp_path / "state")
    damaged = path.read_bytes()[:30]  # cut inside the header
    path.write_bytes(damaged)
    sim.add_run(A, "warning")

    with exporter(with_state, tmp_path, "second") as (_, url):
        after_polls(sim, A)
        assert changes(url, A, "warning") == 0  # a fresh baseline: nothing counted, nothing crashed
    assert path.with_name(path.name + CORRUPT_SUFFIX).read_bytes() == damaged
    log = (tmp_path / "second.log").read_text()
    assert "saved state not used" in log
    assert "Traceback" not in log


def test_a_file_of_another_workspace_is_ignored(
    sim: Simulator, config_dict: ConfigFactory, with_state: dict[str, Any], tmp_path: Path
) -> None:
    count_a_warning_then_stop(sim, with_state, tmp_path)

    other_uid = "0e0e0e0e-0000-4000-8000-000000000002"
    sim.add_workspace(other_uid, API_KEY + "2")
    sim.add_workflow(A, "A elsewhere", workspace_uid=other_uid)
    sim.add_run(A, "warning", start_time=time.time() - 60)
    other = config_dict(
        state={"path": str(tmp_path / "state")},
        workspace={"workspace_uid": other_uid, "api_key": API_KEY + "2"},
    )
    with exporter(other, tmp_path, "second") as (_, url):
        assert changes(url, A, "warning") == 0  # the other workspace's count is not carried over
    assert (
        journal(tmp_path / "state").with_name(journal(tmp_path / "state").name + MISMATCH_SUFFIX)
    ).exists()
    assert "another workspace" in (tmp_path / "second.log").read_text()


def test_the_state_file_holds_no_secret(sim: Simulator, with_state: dict[str, Any], tmp_path: Path) -> None:
    sim.add_workflow(A, "A")
    sim.add_run(A, "running")
    with exporter(with_state, tmp_path, "first"):
        pass
    content = b"".join(path.read_bytes() for path in (tmp_path / "state").iterdir())
    assert API_KEY.encode() not in content
    assert b"running" in content


def test_the_image_default_is_used_and_a_second_process_is_refused(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(A, "A")
    sim.add_run(A, "running")
    state = tmp_path / "from-env"
    plain = config_dict()  # no state.path: the environment's default applies
    env = {"CAPTAINDATA_EXPORTER_STATE_PATH": str(state)}
    with running_exporter(plain, tmp_path, env=env, name="env") as first:
        assert journal(state).exists()
        second = subprocess.run(
            exporter_argv(first.config_path, f"{LOOPBACK}:{free_port()}"),
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode == 2
    assert "in use by another exporter process" in second.stderr + second.stdout


async def test_only_reads_that_change_what_is_counted_are_written(
    sim: Simulator, harness_for: Any, tmp_path: Path
) -> None:
    sim.add_workflow(A, "A")
    run = sim.add_run(A, "running", start_time=time.time() - 60)
    harness = harness_for()
    workspace = harness.config.workspaces[0]
    saver = WorkspaceSaver(WorkspaceJournal(tmp_path, identity(workspace)))
    poller = Poller(workspace, harness.config, harness.published.publish, saver=saver)

    def workflow_records() -> int:
        return saver.journal.path.read_bytes().count(b'"kind":"workflow"')

    try:
        await poller.poll_once()  # listed (a record), then read (another)
        first = workflow_records()
        await poller.poll_once()  # the same runs: only the workspace's record (its last success)
        assert workflow_records() == first
        sim.update_run(run, "warning", finish_time=time.time())
        await poller.poll_once()
        assert workflow_records() == first + 1
    finally:
        await poller.aclose()
