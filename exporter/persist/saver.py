"""Restart safety for one workspace: restore its state from its journal at start, and after each change
to the state (in the sink's worker thread, under its lock, before the new snapshot is published)
save the workflows whose counted data changed, with the workspace's record, as one committed batch."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.config import Config, WorkspaceConfig
from exporter.persist.codec import (
    export_api,
    export_workflow,
    export_workspace,
    restore_api,
    restore_workspace,
    take_changes,
)
from exporter.persist.journal import StateDirectory, WorkspaceIdentity, WorkspaceJournal
from exporter.state import WorkspaceState

logger = logging.getLogger(__name__)

#: Values that change at every read without changing what is counted: a record that differs only in
#: them is not rewritten (they are saved with the next record that changes).
_VOLATILE = ("last_success",)


def identity(workspace: WorkspaceConfig) -> WorkspaceIdentity:
    return WorkspaceIdentity(
        name=workspace.name,
        workspace_uid=str(getattr(workspace, "workspace_uid", "") or ""),
        base_url=workspace.base_url,
        api_version=workspace.api_version,
        part=f"workflows of shard {workspace.part.shard} of {workspace.part.total}"
        if workspace.part.split
        else "",
    )


_UNKNOWN = -1  # never a hash() value: compares unequal to every digest


_BULK = ("runs", "api_statuses", "vanished_at")  # per-run lists: hashed as tuples, not dumped as JSON


def _digest(record: Mapping[str, Any], volatile: tuple[str, ...] = _VOLATILE) -> int:
    """What a record counts, in one number, compared within this process only. The runs (the bulk)
    are hashed as tuples (their strings cache their hashes); the small rest as canonical JSON."""
    rest = {key: value for key, value in record.items() if key not in volatile and key not in _BULK}
    try:
        bulk = []
        for key in _BULK:
            items = record.get(key)
            if isinstance(items, list):
                bulk.append(hash(tuple(tuple(item) if isinstance(item, list) else item for item in items)))
            else:
                bulk.append(hash(repr(items)))
        return hash((*bulk, json.dumps(rest, sort_keys=True, default=str)))
    except (TypeError, ValueError):  # unhashable items in a record read back from disk
        return _UNKNOWN


class WorkspaceSaver:
    """Owns one workspace's journal. ``save`` is called only under the sink's lock."""

    def __init__(self, journal: WorkspaceJournal, needs_action_limit: int = 50) -> None:
        self.journal = journal
        self.needs_action_limit = needs_action_limit
        self._digests: dict[str, int] = {}
        self._workspace_digest = _UNKNOWN
        self._failing = False

    def restore(
        self, endpoints: Sequence[str] | None = None, now: float | None = None
    ) -> WorkspaceState | None:
        """The state to continue from, or None for a fresh baseline. Never raises. ``endpoints``
        default to those of the journal's API version; ``now``: the poller's clock (default: the
        system's)."""
        loaded = self.journal.load()
        if loaded is None or loaded.workspace is None:
            return None
        ident = self.journal.identity
        workspace = loaded.workspace
        records = dict(loaded.workflows)
        listed = workspace.get("workflows")
        for uid in listed if isinstance(listed, list) else ():
            if isinstance(uid, str) and uid not in records:
                # Listed but its record is lost (a damaged file): its next read is a baseline, so
                # nothing of it is counted twice.
                records[uid] = {"uid": uid, "name": "", "baseline": True, "read": False}
        try:
            state = restore_workspace(
                ident.name,
                workspace,
                records.values(),
                needs_action_limit=self.needs_action_limit,
                api_version=ident.api_version,
                endpoints=endpoints,
                now=now,
            )
            restore_api(state.api, workspace.get("api"))
        except Exception as error:  # a record the state cannot take: never stop the exporter
            self.journal.discard(f"{type(error).__name__}: {error}")
            return None
        for uid in (*state.workflows, *state.missing):
            saved = loaded.workflows.get(uid)
            if saved is not None:
                self._digests[uid] = _digest(saved)
        self._workspace_digest = _digest(workspace, volatile=())
        take_changes(state)  # what restore touched is on disk already
        return state

    def save(self, state: WorkspaceState, force: bool = False) -> None:
        """Write what changed since the last save (``force``: the workspace record with the API
        counters even when nothing counted changed, at shutdown). Errors are logged (once per
        streak), never raised: the journal rewrites itself whole at the next save that works."""
        try:
            # After a failure, every save writes (the journal rewrites itself whole): a save with
            # nothing new would otherwise "succeed" without anything on disk.
            wrote = self._save(state, force or self._failing)
        except OSError as error:
            state.save_errors += 1
            if not self._failing:
                logger.error(
                    "cannot save the state; counts since the last save would be lost by a restart",
                    extra={"workspace": state.name, "path": str(self.journal.path), "error": str(error)},
                )
            self._failing = True
        else:
            if self._failing and wrote:
                logger.info("saving the state works again", extra={"workspace": state.name})
                self._failing = False

    def _save(self, state: WorkspaceState, force: bool) -> bool:
        """Whether it wrote."""
        records: dict[str, dict[str, Any] | None] = {}
        changed, removed = take_changes(state)
        held = (state.workflows, state.missing)  # listed, or missing and remembered
        for uid in removed:
            if not any(uid in workflows for workflows in held):
                records[uid] = None
                self._digests.pop(uid, None)
        for uid in changed:
            if not any(uid in workflows for workflows in held):
                continue
            record = export_workflow(state, uid)
            digest = _digest(record)
            if digest == _UNKNOWN or self._digests.get(uid) != digest:
                self._digests[uid] = digest
                records[uid] = record
        workspace = export_workspace(state)
        # Its last_success changes once per poll: the API counters are saved at least that often.
        workspace_digest = _digest(workspace, volatile=())
        unchanged = workspace_digest == self._workspace_digest != _UNKNOWN
        if not records and unchanged and not force:
            return False
        workspace["api"] = export_api(state.api)
        self._workspace_digest = workspace_digest
        for key in self.journal.save(workspace, records):  # left out: tried again at its next change
            if key:
                self._digests.pop(key, None)
            else:
                self._workspace_digest = _UNKNOWN
        return True


def open_state(config: Config) -> tuple[StateDirectory | None, dict[str, WorkspaceSaver] | None]:
    """The locked state directory and one saver per workspace this shard polls, or (None, None) when
    ``state.path`` is unset. Journals of workspaces no longer configured are left alone; those of
    workspaces another shard polls now are set aside (exporter/sharding.py).
    Raises StateDirectoryError."""
    if config.state.path is None:
        return None, None
    directory = StateDirectory(config.state.path)
    directory.open()
    limit = config.metrics.needs_action_limit
    parts = config.parts()
    savers = {}
    for workspace in config.workspaces:
        part = parts.get(workspace.name)
        if part is None:  # another shard's workspace (exporter/sharding.py)
            shard = config.sharding.current
            reason = f"workspace {workspace.name} is polled by another of the {shard.total} shards"
            directory.journal(identity(workspace)).set_aside_moved(reason)
            continue
        journal = directory.journal(identity(dataclasses.replace(workspace, part=part)))
        savers[workspace.name] = WorkspaceSaver(journal, limit)
    return directory, savers
