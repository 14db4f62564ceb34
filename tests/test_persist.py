"""The state directory's file layer: format, incremental saves, compaction, damaged and foreign files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.api.v4 import RUNS_ENDPOINT as V4_RUNS_ENDPOINT
from exporter.persist.journal import (
    CORRUPT_SUFFIX,
    MISMATCH_SUFFIX,
    StateDirectory,
    StateDirectoryError,
    WorkspaceIdentity,
    WorkspaceJournal,
)
from exporter.persist.saver import WorkspaceSaver
from exporter.state import WorkspaceState

IDENTITY = WorkspaceIdentity("acme", "5b7c6a0e", "http://127.0.0.1:1", "v3")


def workflow_record(runs: int, status: str = "running") -> dict[str, Any]:
    return {"name": "wf", "runs": [[f"run-{i}", status] for i in range(runs)], "status_changes": {}}


def journal(directory: Path, identity: WorkspaceIdentity = IDENTITY) -> WorkspaceJournal:
    return WorkspaceJournal(directory, identity)


def test_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    assert journal(tmp_path).load() is None


def test_saved_records_come_back_the_last_one_winning(tmp_path: Path) -> None:
    first = journal(tmp_path)
    first.save({"poll_errors": {"timeout": 1}}, {"wf-a": workflow_record(2), "wf-b": workflow_record(1)})
    first.save({"poll_errors": {"timeout": 2}}, {"wf-a": workflow_record(2, "success")})
    first.save(None, {"wf-b": None})

    loaded = journal(tmp_path).load()
    assert loaded is not None
    assert loaded.workspace == {"poll_errors": {"timeout": 2}}
    assert loaded.workflows == {"wf-a": workflow_record(2, "success")}


def test_a_record_that_is_not_json_is_left_out_alone(tmp_path: Path) -> None:
    store = journal(tmp_path)
    skipped = store.save({}, {"good": workflow_record(1), "nan": {"x": float("nan")}, "set": {"x": {1}}})
    assert skipped == {"nan", "set"}
    loaded = journal(tmp_path).load()
    assert loaded is not None
    assert set(loaded.workflows) == {"good"}


def test_a_save_appends_only_what_changed(tmp_path: Path) -> None:
    store = journal(tmp_path)
    store.save({}, {f"wf-{i}": workflow_record(500) for i in range(20)})
    before = store.path.stat().st_size
    store.save({}, {"wf-3": workflow_record(500, "success")})
    grown = store.path.stat().st_size - before
    assert 0 < grown < before / 10


def test_the_journal_is_compacted_below_three_times_its_live_size(tmp_path: Path) -> None:
    store = journal(tmp_path)
    store.save({}, {f"wf-{i}": workflow_record(200) for i in range(10)})
    for poll in range(200):
        store.save({"polls": poll}, {f"wf-{poll % 10}": workflow_record(200, f"s{poll}")})
        assert store.path.stat().st_size <= 3 * store.live_bytes
    assert store.compactions > 1
    loaded = journal(tmp_path).load()
    assert loaded is not None
    assert loaded.workspace == {"polls": 199}
    assert loaded.workflows["wf-9"] == workflow_record(200, "s199")


def test_a_torn_last_record_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    store = journal(tmp_path)
    store.save({}, {"wf-a": workflow_record(3)})
    store.save(None, {"wf-a": workflow_record(3, "success")})
    content = store.path.read_bytes()
    store.path.write_bytes(content[:-7])  # kill -9 in the middle of the last append

    reopened = journal(tmp_path)
    loaded = reopened.load()
    assert loaded is not None
    assert loaded.workflows == {"wf-a": workflow_record(3)}
    reopened.save({}, {"wf-b": workflow_record(1)})  # the next save starts on a clean line
    again = journal(tmp_path).load()
    assert again is not None
    assert set(again.workflows) == {"wf-a", "wf-b"}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data.replace(b"run-7", b"run-X", 1), "line 2"),  # damage before the last commit
        (lambda data: b"\x00" * len(data), "header"),
        (lambda data: data.replace(b'"version":1', b'"version":9', 1), "header"),
    ],
)
def test_a_damaged_file_is_set_aside_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any, reason: str
) -> None:
    store = journal(tmp_path)
    for index in range(5):
        store.save({}, {f"wf-{index}": workflow_record(50)})
    damaged = damage(store.path.read_bytes())
    store.path.write_bytes(damaged)

    with caplog.at_level(logging.WARNING, logger="exporter.persist.journal"):
        assert journal(tmp_path).load() is None
    kept = store.path.with_name(store.path.name + CORRUPT_SUFFIX)
    assert kept.read_bytes() == damaged
    assert not store.path.exists()
    assert any(reason in str(getattr(r, "reason", "")) for r in caplog.records)


def test_a_truncated_file_keeps_its_complete_saves(tmp_path: Path) -> None:
    store = journal(tmp_path)
    for index in range(5):
        store.save({"saves": index}, {f"wf-{index}": workflow_record(50)})
    content = store.path.read_bytes()
    store.path.write_bytes(content[: len(content) // 2])

    loaded = journal(tmp_path).load()
    assert loaded is not None
    assert loaded.workspace is not None
    saves = loaded.workspace["saves"]
    assert 0 <= saves < 4
    assert set(loaded.workflows) == {f"wf-{index}" for index in range(saves + 1)}


def test_a_file_cut_inside_its_first_save_is_a_fresh_start(tmp_path: Path) -> None:
    store = journal(tmp_path)
    store.save({}, {"wf": workflow_record(500)})
    store.path.write_bytes(store.path.read_bytes()[:-200])
    assert journal(tmp_path).load() is None
    assert store.path.with_name(store.path.name + CORRUPT_SUFFIX).exists()


def test_a_version_bump_is_named_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = journal(tmp_path)
    store.save({}, {})
    store.path.write_bytes(store.path.read_bytes())
    header, _, rest = store.path.read_bytes().partition(b"\n")
    import json
    import zlib

    body = json.loads(header[9:])
    body["version"] = 2
    data = json.dumps(body).encode()
    store.path.write_bytes(b"%08x %s\n" % (zlib.crc32(data), data) + rest)
    with caplog.at_level(logging.WARNING, logger="exporter.persist.journal"):
        assert journal(tmp_path).load() is None
    assert any("format version 2" in str(getattr(r, "reason", "")) for r in caplog.records)


def test_a_file_of_another_workspace_is_ignored(tmp_path: Path) -> None:
    journal(tmp_path).save({"mine": False}, {"wf": workflow_record(1)})
    other = WorkspaceIdentity("acme", "another-uid", IDENTITY.base_url, "v3")
    assert journal(tmp_path, other).load() is None
    assert (tmp_path / (journal(tmp_path).path.name + MISMATCH_SUFFIX)).exists()


def test_no_secret_and_no_world_access(tmp_path: Path) -> None:
    store = journal(tmp_path)
    store.save({}, {"wf": workflow_record(1)})
    assert store.path.stat().st_mode & 0o077 == 0


def test_the_directory_is_locked_for_one_process(tmp_path: Path) -> None:
    first = StateDirectory(tmp_path / "state")
    first.open()
    try:
        assert (tmp_path / "state").stat().st_mode & 0o077 == 0
        with pytest.raises(StateDirectoryError, match="in use"):
            StateDirectory(tmp_path / "state").open()
    finally:
        first.close()
    second = StateDirectory(tmp_path / "state")
    second.open()
    second.close()


def test_an_unwritable_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirectoryError):
        StateDirectory(tmp_path / "file" / "state").open()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(content=st.binary(max_size=2000))
def test_random_bytes_load_or_start_fresh(tmp_path: Path, content: bytes) -> None:
    directory = tmp_path / f"fuzz-{os.urandom(4).hex()}"
    directory.mkdir()
    store = journal(directory)
    store.path.write_bytes(content)
    store.load()


def _valid_journal(directory: Path) -> bytes:
    store = journal(directory)
    store.save({"a": 1}, {"wf-a": workflow_record(3)})
    store.save({"a": 2}, {"wf-b": workflow_record(2), "wf-a": None})
    return store.path.read_bytes()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_mutated_journals_load_or_start_fresh(tmp_path: Path, data: st.DataObject) -> None:
    directory = tmp_path / f"fuzz-{os.urandom(4).hex()}"
    directory.mkdir()
    content = bytearray(_valid_journal(directory))
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(content) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            content[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del content[position:]
            if not content:
                break
        else:
            content[position:position] = data.draw(st.binary(min_size=1, max_size=20))
    store = journal(directory)
    store.path.write_bytes(bytes(content))
    loaded = store.load()
    if loaded is not None:  # whatever it kept is a record that was saved
        assert loaded.workspace in (None, {"a": 1}, {"a": 2})
        for uid, record in loaded.workflows.items():
            assert record == {"wf-a": workflow_record(3), "wf-b": workflow_record(2)}[uid]
        store.save({"a": 3}, {})  # and it goes on saving
        assert journal(directory).load() is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
workflow_like = st.fixed_dictionaries(
    {},
    optional={
        "uid": st.text(max_size=5) | json_values,
        "name": st.text(max_size=5) | json_values,
        "baseline": json_values,
        "read": json_values,
        "runs": st.lists(
            st.lists(st.sampled_from(["r1", "running", "warning", ""]) | json_values, max_size=3)
        )
        | json_values,
        "status_changes": st.dictionaries(st.sampled_from(["running", "warning", "x"]), json_values)
        | json_values,
        "durations": st.dictionaries(st.sampled_from(["finished", "failed"]), json_values) | json_values,
        "last_status_time": st.dictionaries(st.sampled_from(["running", "warning"]), json_values)
        | json_values,
        "last_success": json_values,
    },
)
workspace_like = st.fixed_dictionaries(
    {},
    optional={
        "listed_once": json_values,
        "last_success": json_values,
        "poll_errors": st.dictionaries(st.sampled_from(["timeout", "x"]), json_values) | json_values,
        "runs_skipped": json_values,
        "workflows": st.lists(st.text(max_size=3) | json_values, max_size=3) | json_values,
        "api": json_values,
    },
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(workspace=workspace_like, workflows=st.dictionaries(st.text(min_size=1, max_size=4), workflow_like))
def test_odd_records_restore_or_start_fresh(
    tmp_path: Path, workspace: dict[str, Any], workflows: dict[str, dict[str, Any]]
) -> None:
    directory = tmp_path / f"fuzz-{os.urandom(4).hex()}"
    directory.mkdir()
    journal(directory).save(workspace, workflows)
    state = WorkspaceSaver(journal(directory)).restore()
    if state is not None:
        assert state.snapshot.name == IDENTITY.name


def test_a_v4_workspace_restores_its_own_api_counters(tmp_path: Path) -> None:
    identity = WorkspaceIdentity("acme", "", "http://127.0.0.1:1", "v4")
    state = WorkspaceState("acme", api_version="v4")
    state.api.record_response(V4_RUNS_ENDPOINT, 200, 0.1)
    state.api.record_failure(V4_RUNS_ENDPOINT, "timeout")
    WorkspaceSaver(journal(tmp_path, identity)).save(state, force=True)

    restored = WorkspaceSaver(journal(tmp_path, identity)).restore()
    assert restored is not None
    assert restored.api.endpoints == (V4_RUNS_ENDPOINT,)
    assert restored.api.requests[(V4_RUNS_ENDPOINT, "200")] == 1
    assert restored.api.failures[(V4_RUNS_ENDPOINT, "timeout")] == 1
