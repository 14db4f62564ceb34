"""The supervised poll loop of each workspace: polls spaced by ``poll.interval`` (never overlapping),
each guarded against making no progress for ``poll.timeout``; any bug is logged, counted and the
loop restarted."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

from exporter.api import adapter
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import Config, WorkspaceConfig
from exporter.families import INTERNAL, TIMEOUT
from exporter.persist.saver import WorkspaceSaver
from exporter.published import Published
from exporter.ratelimit import RESTART_BACKOFF, Backoff
from exporter.sideloop import SideLoop
from exporter.sink import Checkpoint, StateSink
from exporter.snapshot import WorkspaceSnapshot
from exporter.state import WorkspaceState
from exporter.transport import ApiTransport, RequestFailed

logger = logging.getLogger(__name__)


class Poller:
    """Polls one workspace."""

    def __init__(
        self,
        workspace: WorkspaceConfig,
        config: Config,
        publish: Callable[[WorkspaceSnapshot], None],
        state: WorkspaceState | None = None,
        checkpoint: Checkpoint | None = None,
        saver: WorkspaceSaver | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.clock = clock
        api = adapter(workspace.api_version)
        # Credits and account health (issue 17): the adapter's side reads that the workspace turns on;
        # their endpoints are the workspace's too, so a restart restores their counters. A workspace
        # split by workflow reads them on its owner shard only (they hold the whole workspace's values).
        side_reads = [
            read for read in api.side_reads if workspace.side_read_enabled(read.name) and workspace.part.owner
        ]
        endpoints = [*api.endpoints, *(e for read in side_reads for e in read.endpoints)]
        if state is None and saver is not None:
            state = saver.restore(endpoints, clock.time())  # None: nothing usable saved, a fresh baseline
        self.state = state or WorkspaceState(
            workspace.name, config.metrics.needs_action_limit, workspace.api_version, endpoints
        )
        self.state.clock = clock
        self.checkpoint = checkpoint
        self.saver = saver
        self.sink = StateSink(
            self.state, publish, checkpoint, saver.save if saver else None, clock, self._progress
        )
        self.transport = ApiTransport(
            workspace.base_url,
            api.headers(workspace),
            config.api,
            self.state.api,
            self._progress,
            self.sink.executor,
            clock,
        )
        self.source = api.source(self.transport, workspace, config, clock.time)
        self.state.enable_side_reads(
            [read.name for read in side_reads], [e for read in side_reads for e in read.endpoints]
        )
        self.side_loops = [
            SideLoop(
                read.name,
                workspace.name,
                read.reader(self.transport, workspace),
                self.sink,
                workspace.side_read_interval(read.name),
                config.poll.timeout,
                clock,
            )
            for read in side_reads
        ]
        self._guard: asyncio.Timeout | None = None
        self._restarts = Backoff(*RESTART_BACKOFF)
        self._internal_streak = 0
        self._warned_interval = False
        # Health: when the loop last finished a poll attempt, and when the poll in progress last made
        # progress (a successful request, or the end of a 429 wait it is in).
        self.last_attempt_end = self.clock.monotonic()
        self.last_progress = self.last_attempt_end

    def _progress(self, extra: float) -> None:
        """A request succeeded or an apply finished (extra 0), or a 429 wait of ``extra`` seconds
        starts: the poll is alive."""
        self.last_progress = max(self.last_progress, self.clock.monotonic() + extra)
        if self._guard is not None:
            self._guard.reschedule(asyncio.get_running_loop().time() + self.config.poll.timeout + extra)

    async def poll_once(self) -> bool:
        """One poll attempt; True if it read the workflow list and every workflow. Never raises (but
        for cancellation): errors of our own code are logged with their traceback and counted."""
        started = self.clock.monotonic()
        log = {"workspace": self.workspace.name}
        try:
            await self.sink.call(self.state.begin_poll)
            if self.checkpoint is not None:
                self.checkpoint("poll")
            async with asyncio.timeout(self.config.poll.timeout) as guard:
                self._guard = guard
                try:
                    await self.source.poll(self.sink)
                finally:
                    self._guard = None
        except RequestFailed as error:
            await self.sink.call(self.state.poll_failed, error.reason, error.message)
            logger.warning("poll failed", extra={**log, "reason": error.reason, "error": error.message})
        except TimeoutError:
            message = f"no successful API request for poll.timeout ({self.config.poll.timeout:g}s)"
            await self.sink.call(self.state.poll_failed, TIMEOUT, message)
            logger.warning("poll failed", extra={**log, "reason": TIMEOUT, "error": message})
        except Exception as error:
            self._internal_streak += 1
            await self.sink.call(self.state.poll_failed, INTERNAL, _describe(error))
            logger.exception("poll failed: internal error (a bug in the exporter)", extra=log)
        else:
            self._internal_streak = 0
        snapshot = await self.sink.call(self.state.end_poll, self.clock.monotonic() - started)
        self.sink.publish(snapshot, now=True)
        self.last_attempt_end = self.clock.monotonic()
        return snapshot.up

    def _record_internal(self, error: BaseException) -> None:
        """Count a failure outside a poll attempt, without trusting the state's own code paths."""
        self.state.poll_errors[INTERNAL] += 1
        self.state.last_error = f"{INTERNAL}: {_describe(error)}"
        self.state.up = False
        try:
            self.sink.publish(self.state.refresh(), now=True)
        except Exception:
            logger.exception(
                "publishing after an internal error failed", extra={"workspace": self.workspace.name}
            )

    async def run_forever(self) -> None:
        """Poll (and run the side reads) until cancelled."""
        side = [
            asyncio.create_task(loop.run_forever(), name=f"{loop.name} {self.workspace.name}")
            for loop in self.side_loops
        ]
        try:
            await self._poll_forever()
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)

    async def _poll_forever(self) -> None:
        """Poll until cancelled; an exception anywhere restarts the loop after a backoff."""
        restarts = 0
        while True:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                restarts += 1
                logger.exception(
                    "poll loop failed: internal error (a bug in the exporter); restarting",
                    extra={"workspace": self.workspace.name},
                )
                self._record_internal(error)
                await self.clock.sleep(self._restarts.delay(restarts))

    async def _loop(self) -> None:
        interval = self.config.poll.interval
        while True:
            if self.checkpoint is not None:
                self.checkpoint("loop")
            started = self.clock.monotonic()
            await self.poll_once()
            elapsed = self.clock.monotonic() - started
            if elapsed > interval and not self._warned_interval:
                self._warned_interval = True
                logger.warning(
                    "a poll took longer than poll.interval; the next starts when it ends. Raise "
                    "api.requests_per_second (if your plan allows), track fewer workflows, or raise "
                    "poll.interval",
                    extra={
                        "workspace": self.workspace.name,
                        "poll_seconds": round(elapsed, 1),
                        "interval_seconds": interval,
                    },
                )
            pause = max(0.0, interval - elapsed)
            if self._internal_streak:
                pause = max(pause, self._restarts.delay(self._internal_streak))
            await self.clock.sleep(pause)

    def stalled_for(self) -> float:
        """Seconds past its allowance (<= 0: healthy). The allowance, max(3 x interval, poll.timeout),
        runs from the end of the last poll attempt, or from the last progress of the poll in flight
        (a successful request; a 429 wait counts until it ends): a long poll that keeps reading is
        alive, a loop that neither finishes attempts nor reads is not."""
        poll = self.config.poll
        allowance = max(3 * poll.interval, poll.timeout)
        return self.clock.monotonic() - max(self.last_attempt_end, self.last_progress) - allowance

    async def aclose(self) -> None:
        if self.saver is not None:  # the API counters too, so a clean restart continues every counter
            await self.sink.call(self.saver.save, self.state, True)
        await self.transport.aclose()
        self.sink.close()  # last: publishes what is pending and ends the workspace's worker thread


def _describe(error: BaseException) -> str:
    # Only the type: an exception's text may quote anything (a header, a payload); the log has the rest.
    return f"{type(error).__name__} (an exporter bug; the traceback is in the exporter's log)"


def build(
    config: Config,
    checkpoint: Checkpoint | None = None,
    savers: Mapping[str, WorkspaceSaver] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Published, list[Poller]]:
    """The pollers of the workspaces this shard takes part in (all of them unsharded); with ``savers``
    (state.path), each workspace continues from its saved state. A workspace split by workflow polls
    with this shard's share of the request budget."""
    parts = config.parts()
    published = Published(list(parts), parts=parts, sharding=config.sharding.current)
    savers = savers or {}
    pollers = []
    for workspace in config.workspaces:
        part = parts.get(workspace.name)
        if part is None:
            continue
        own = config
        if part.split:
            rate, burst = part.budget(config.api.requests_per_second, config.api.burst)
            own = dataclasses.replace(
                config, api=dataclasses.replace(config.api, requests_per_second=rate, burst=burst)
            )
        pollers.append(
            Poller(
                dataclasses.replace(workspace, part=part),
                own,
                published.publish,
                checkpoint=checkpoint,
                saver=savers.get(workspace.name),
                clock=clock,
            )
        )
    for poller in pollers:
        published.publish(poller.state.snapshot)
    return published, pollers


def unhealthy(pollers: Sequence[Poller]) -> list[str]:
    """Names of the workspaces whose loop has not finished a poll attempt in time."""
    return [poller.workspace.name for poller in pollers if poller.stalled_for() > 0]
