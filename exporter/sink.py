"""The seam between what a poll reads (a PollSource: v3, v4) and the workspace's state: the sink
applies each piece in a worker thread as soon as it is read, and publishes the new snapshot."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.health import Account, Credits
from exporter.parsing import Parsed, Run, Workflow
from exporter.snapshot import WorkspaceSnapshot
from exporter.state import WorkspaceState

T = TypeVar("T")
#: During a poll, snapshots are published at most this often (the newest one wins): each publish makes
#: the next scrape re-render, so a workspace of many workflows must not publish after every one.
PUBLISH_EVERY = 1.0
#: Test hook: called with a point name where a test may raise to simulate a bug in our own code:
#: "loop" (each iteration of a workspace's loop, outside a poll attempt), "poll" (start of an attempt),
#: "apply" (each state update, in the worker thread).
Checkpoint = Callable[[str], None]


class StateSink:
    """Given to a PollSource for one workspace. Calls may come from concurrent tasks: each applies
    under one lock in the workspace's worker thread, so the event loop never runs anything that grows
    with runs. One thread per workspace (also used to parse its bodies): more threads would only take
    the GIL from the event loop more often."""

    def __init__(
        self,
        state: WorkspaceState,
        publish: Callable[[WorkspaceSnapshot], None],
        checkpoint: Checkpoint | None = None,
        after_apply: Callable[[WorkspaceState], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.state = state
        self._clock = clock
        self._progress = progress  # an apply that finished is progress (poll.timeout), like a request
        self._after_apply = after_apply  # the state saver: runs under the lock, before publishing
        self._publish = publish
        self._checkpoint = checkpoint
        self._mutex = threading.Lock()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"workspace {state.name}")
        self._published = 0  # version of the newest snapshot handed over (or pending)
        self._pending: WorkspaceSnapshot | None = None
        self._last_publish = float("-inf")  # clock.monotonic()
        self._timer: asyncio.Task[None] | None = None
        self._reads = itertools.count(1)  # read_started()

    def _locked(self, apply: Callable[..., T], *args: object) -> T:
        with self._mutex:
            if self._checkpoint is not None:
                self._checkpoint("apply")
            result = apply(*args)
            if self._after_apply is not None:
                self._after_apply(self.state)
            return result

    async def call(self, apply: Callable[..., T], *args: object) -> T:
        """``apply(*args)`` on the state in a worker thread, under the sink's lock."""
        result = await self._run(apply, *args)
        if self._progress is not None:
            self._progress(0.0)
        return result

    async def _run(self, apply: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(self._locked, apply, *args)
        )

    def publish(self, snapshot: WorkspaceSnapshot, now: bool = False) -> None:
        """Hand ``snapshot`` over now if ``now`` or none was in the last PUBLISH_EVERY seconds, else
        when that time is up. Event loop only."""
        if snapshot.version <= self._published:  # threads may finish out of order
            return
        self._published = snapshot.version
        self._pending = snapshot
        wait = self._last_publish + PUBLISH_EVERY - self._clock.monotonic()
        if now or wait <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_after(wait))

    async def _flush_after(self, wait: float) -> None:
        await self._clock.sleep(wait)
        self._timer = None  # flush() must not cancel the task it runs in
        self.flush()

    def close(self) -> None:
        self.flush()
        self.executor.shutdown(wait=False)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None:
            snapshot, self._pending = self._pending, None
            self._last_publish = self._clock.monotonic()
            self._publish(snapshot)

    async def _apply(self, apply: Callable[..., WorkspaceSnapshot], *args: object) -> None:
        self.publish(await self.call(apply, *args))

    async def workflows_listed(
        self, workflows: Sequence[Workflow], listed_at: float | None = None, tracked: int | None = None
    ) -> None:
        """The complete current list, after the config's filter; ``listed_at``: when the listing it
        comes from started (default: now). A workflow first listed by the next list is watched from
        then (docs/counting.md). ``tracked``: the whole workspace's count, when this shard tracks only
        its part of a workspace split by workflow."""
        await self._apply(self.state.workflows_listed, list(workflows), listed_at, tracked)

    def read_started(self) -> int:
        """A read of runs (a poll's, a push's) is about to send its first request: its place in the
        order reads started, handed back with what it read (docs/counting.md, a page read before a
        pushed change). A count, not a clock: an injected clock may not move while reads overlap."""
        return next(self._reads)

    async def runs_read(
        self, workflow: Workflow, parsed: Parsed[Run], complete: bool = True, read_started: int | None = None
    ) -> None:
        await self._apply(self.state.runs_read, workflow, parsed, complete, None, read_started)

    async def runs_read_many(
        self, reads: Sequence[tuple[Workflow, Parsed[Run]]], complete: bool, read_started: int | None = None
    ) -> None:
        """Several workflows' runs in one apply (one thread hop, one snapshot)."""
        await self._apply(self.state.runs_read_many, list(reads), complete, None, read_started)

    async def workflow_failed(self, workflow: Workflow, reason: str, message: str) -> None:
        await self._apply(self.state.workflow_failed, workflow, reason, message)

    async def workflow_vanished(self, workflow: Workflow) -> None:
        await self._apply(self.state.workflow_vanished, workflow)

    async def skipped(self, counts: Mapping[str, int]) -> None:
        """Items of a list (not of a workflow's runs) skipped, by reason."""
        await self.call(self.state.skipped, counts)

    async def over_limit(self, message: str) -> None:
        await self.call(self.state.over_limit, message)

    async def truncated(self, workflow: Workflow, message: str) -> None:
        await self.call(self.state.truncated, workflow, message)

    # Credits and account health (issue 17): what the side reads hand over. Not progress of the runs
    # poll (poll.timeout), as their requests are not either.

    async def _apply_side(self, apply: Callable[..., WorkspaceSnapshot], *args: object) -> None:
        self.publish(await self._run(apply, *args))

    async def credits_read(self, credits: Credits, skipped: Counter[str], now: float | None = None) -> None:
        await self._apply_side(self.state.credits_read, credits, skipped, now)

    async def accounts_read(
        self,
        listings: dict[str, tuple[list[Account], bool]],
        skipped: Counter[str],
        limit: int | None = None,
    ) -> None:
        await self._apply_side(self.state.accounts_read, listings, skipped, limit)

    async def side_failed(self, read: str, reason: str, message: str) -> None:
        await self._apply_side(self.state.side_failed, read, reason, message)

    def stalest_first(self, workflows: Sequence[Workflow]) -> list[Workflow]:
        return self.state.stalest_first(workflows)


class PollSource(Protocol):
    """What one poll of one workspace reads. v3 and v4 implement it."""

    async def poll(self, sink: StateSink) -> None:
        """Read and hand everything to ``sink``; raise RequestFailed when the poll cannot go on."""
        ...
