"""Issue #19 item 14, a disk that fails: "saving the state works again" only after a save that wrote,
and every failed save counted in captaindata_state_save_errors_total."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from exporter.parsing import Parsed, Workflow, new_run
from exporter.persist.journal import WorkspaceIdentity, WorkspaceJournal
from exporter.persist.saver import WorkspaceSaver
from exporter.render import render
from exporter.state import WorkspaceState

IDENTITY = WorkspaceIdentity("acme", "5b7c6a0e", "http://127.0.0.1:1", "v3")
AGAIN = "saving the state works again"


def break_disk(path: Path) -> None:
    """Writes to the journal fail (appending to a directory, replacing a non-empty one)."""
    path.unlink(missing_ok=True)
    path.mkdir()
    (path / "full").write_bytes(b"")


def test_works_again_is_said_only_after_a_save_that_wrote(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = WorkspaceJournal(tmp_path, IDENTITY)
    saver = WorkspaceSaver(journal)
    state = WorkspaceState("acme")
    flow = Workflow("wf-a", "A")
    state.workflows_listed([flow], now=1000.0)
    state.runs_read(flow, Parsed([new_run("r1", "", "running", "running", 900.0, None, None)]), now=1000.0)
    saver.save(state)
    assert journal.path.is_file()

    break_disk(journal.path)
    with caplog.at_level(logging.INFO, logger="exporter.persist.saver"):
        done = new_run("r1", "", "finished", "finished", 900.0, 990.0, None)
        state.runs_read(flow, Parsed([done]), now=1010.0)
        saver.save(state)  # fails
        saver.save(state)  # nothing new to write: still not on disk, so still failing
        assert AGAIN not in caplog.text
        assert state.save_errors == 2
        assert b'captaindata_state_save_errors_total{workspace="acme"} 2' in render(
            [state.refresh(1020.0)], openmetrics=False
        )

        shutil.rmtree(journal.path)
        saver.save(state)  # nothing changed since the failure, yet this one writes it all
        assert AGAIN in caplog.text
    assert state.save_errors == 2
    restored = WorkspaceSaver(WorkspaceJournal(tmp_path, IDENTITY)).restore()
    assert restored is not None
    assert restored.workflows["wf-a"].status_changes["finished"] == 1
