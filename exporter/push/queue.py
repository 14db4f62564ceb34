"""A bounded queue of push events per workspace, and the workers that turn each into one targeted
read. Events for the same run share one read: while a run waits, later events merge into it; while
(or shortly after) it is read, an event with the same status hint adds nothing. Both count as
``duplicate``. A different hint after the read started queues a new read (callbacks arrive out of
order: the read decides). After a failed read, the same event is read again."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from exporter.push.body import PushEvent
from exporter.push.stats import ACCEPTED, DUPLICATE, FETCH_FAILED, OVERLOADED, PushStats

logger = logging.getLogger("exporter.push")

#: Reads the run named by the event through the workspace's transport and applies it to the state;
#: False (or an exception) when the read failed: the run is left to the next poll.
FetchAndApply = Callable[[PushEvent], Awaitable[bool]]
#: An event whose status hint matches a read started this recently is a duplicate of it (seconds).
COALESCE_WINDOW = 5.0
RESTART_DELAY = 1.0  # before a worker that failed on its own (a bug) is restarted


def _merge(waiting: PushEvent, later: PushEvent) -> PushEvent:
    """One event for both: the latest hint, the first receive time (the latency counts from it)."""
    return dataclasses.replace(
        later,
        received_at=min(waiting.received_at, later.received_at),
        error=later.error if later.error is not None else waiting.error,
        workflow_uid=later.workflow_uid or waiting.workflow_uid,
    )


class PushQueue:
    """At most ``capacity`` runs waiting for a read; :meth:`offer` never blocks."""

    def __init__(
        self,
        workspace: str,
        capacity: int,
        fetch_and_apply: FetchAndApply,
        stats: PushStats,
        *,
        concurrency: int = 1,
        coalesce_window: float = COALESCE_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        if capacity < 1 or concurrency < 1:
            raise ValueError("capacity and concurrency must be at least 1")
        self.workspace = workspace
        self.capacity = capacity
        self._fetch_and_apply = fetch_and_apply
        self._stats = stats
        self._concurrency = concurrency
        self._window = coalesce_window
        self._monotonic = monotonic
        self._waiting: OrderedDict[str, PushEvent] = OrderedDict()
        self._reading: set[str] = set()
        # run uid → (status hint, when its last read started), oldest first
        self._read: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.reads = 0  # calls of fetch_and_apply
        self.announce = announce  # told each event's run uid (missed pushes, exporter/push/missed.py)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def offer(self, event: PushEvent) -> str:
        """Queue ``event``; returns (and counts) accepted, duplicate or overloaded."""
        outcome = self._place(event)
        if self.announce is not None:
            self.announce(event.run_uid)
        self._stats.count(self.workspace, outcome)
        return outcome

    def _place(self, event: PushEvent) -> str:
        run = event.run_uid
        waiting = self._waiting.get(run)
        if waiting is not None:
            self._waiting[run] = _merge(waiting, event)
            return DUPLICATE
        self._forget_old_reads()
        read = self._read.get(run)
        if read is not None and read[0] == event.status:
            return DUPLICATE
        if len(self._waiting) >= self.capacity:
            return OVERLOADED
        self._waiting[run] = event
        self._idle.clear()
        self._wake.set()
        return ACCEPTED

    def _forget_old_reads(self) -> None:
        horizon = self._monotonic() - self._window
        while self._read:
            run, (_, started) = next(iter(self._read.items()))
            if started >= horizon or run in self._reading:
                break
            del self._read[run]

    def _take(self) -> PushEvent | None:
        """The oldest waiting event whose run is not being read (two reads of one run at once could
        be applied in the wrong order)."""
        for run in self._waiting:
            if run not in self._reading:
                event = self._waiting.pop(run)
                self._reading.add(run)
                self._read.pop(run, None)
                self._read[run] = (event.status, self._monotonic())
                return event
        return None

    async def _next(self) -> PushEvent:
        while True:
            event = self._take()
            if event is not None:
                return event
            self._wake.clear()
            await self._wake.wait()

    def _finished(self, event: PushEvent) -> None:
        self._reading.discard(event.run_uid)
        if event.run_uid in self._waiting:
            self._wake.set()  # a later event for this run waited for this read to end
        if not self._waiting and not self._reading:
            self._idle.set()

    async def _work(self) -> None:
        while True:
            event = await self._next()
            self.reads += 1
            try:
                ok = await self._fetch_and_apply(event)
            except Exception as error:  # the read or the apply failed: the next poll catches up
                logger.warning(
                    "push event not applied",
                    extra={"workspace": self.workspace, "run": event.run_uid, "error": type(error).__name__},
                )
                ok = False
            finally:
                self._finished(event)
            if not ok:
                self._stats.count(self.workspace, FETCH_FAILED)
                self._read.pop(event.run_uid, None)  # a redelivery of the same event may try again

    async def _supervised(self) -> None:
        while True:
            try:
                await self._work()
            except Exception as error:
                logger.error(
                    "push worker failed, restarting it",
                    extra={"workspace": self.workspace, "error": type(error).__name__},
                )
                await asyncio.sleep(RESTART_DELAY)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._supervised(), name=f"push {self.workspace}")
                for _ in range(self._concurrency)
            ]

    async def drained(self) -> None:
        """Wait until no event waits and no read is under way (for tests and benchmarks)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
