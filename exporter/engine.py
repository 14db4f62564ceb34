"""The seam between what a poll reads (a PollSource: v3, v4) and the workspace's state: the sink
applies each piece in a worker thread as soon as it is read, and publishes the new snapshot."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from exporter.model import Parsed, Run, Workflow
from exporter.snapshot import WorkspaceSnapshot
from exporter.state import WorkspaceState

T = TypeVar("T")
#: Test hook: called with a point name where a test may raise to simulate a bug in our own code:
#: "loop" (each iteration of a workspace's loop, outside a poll attempt), "poll" (start of an attempt),
#: "apply" (each state update, in the worker thread).
Checkpoint = Callable[[str], None]


class StateSink:
    """Given to a PollSource for one workspace. Calls may come from concurrent tasks: each applies
    under one lock in a worker thread, so the event loop never runs anything that grows with runs."""

    def __init__(
        self,
        state: WorkspaceState,
        publish: Callable[[WorkspaceSnapshot], None],
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.state = state
        self._publish = publish
        self._checkpoint = checkpoint
        self._mutex = threading.Lock()
        self._published = 0

    def _locked(self, apply: Callable[..., T], *args: object) -> T:
        with self._mutex:
            if self._checkpoint is not None:
                self._checkpoint("apply")
            return apply(*args)

    async def call(self, apply: Callable[..., T], *args: object) -> T:
        """``apply(*args)`` on the state in a worker thread, under the sink's lock."""
        return await asyncio.to_thread(self._locked, apply, *args)

    def publish(self, snapshot: WorkspaceSnapshot) -> None:
        if snapshot.version > self._published:  # threads may finish out of order
            self._published = snapshot.version
            self._publish(snapshot)

    async def _apply(self, apply: Callable[..., WorkspaceSnapshot], *args: object) -> None:
        self.publish(await self.call(apply, *args))

    async def workflows_listed(self, workflows: Sequence[Workflow]) -> None:
        """The complete current list, after the config's filter."""
        await self._apply(self.state.workflows_listed, list(workflows))

    async def runs_read(self, workflow: Workflow, parsed: Parsed[Run], complete: bool = True) -> None:
        await self._apply(self.state.runs_read, workflow, parsed, complete)

    async def workflow_failed(self, workflow: Workflow, reason: str, message: str) -> None:
        await self._apply(self.state.workflow_failed, workflow, reason, message)

    async def workflow_vanished(self, workflow: Workflow) -> None:
        await self._apply(self.state.workflow_vanished, workflow)

    async def truncated(self, workflow: Workflow, message: str) -> None:
        await self.call(self.state.truncated, workflow, message)

    def stalest_first(self, workflows: Sequence[Workflow]) -> list[Workflow]:
        return self.state.stalest_first(workflows)


class PollSource(Protocol):
    """What one poll of one workspace reads. v3 and v4 implement it."""

    async def poll(self, sink: StateSink) -> None:
        """Read and hand everything to ``sink``; raise RequestFailed when the poll cannot go on."""
        ...
