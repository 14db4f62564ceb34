"""The supervised loop of one side read (credits, accounts; issue 17) of one workspace: reads spaced by
its own interval, each bounded by ``poll.timeout``, through the workspace's transport. A failure is
logged and counted and keeps the last values; it never touches the runs poll. A bug in our own code
is logged with its traceback and the loop restarted after a backoff, as the poll loop does."""

from __future__ import annotations

import asyncio
import logging

from exporter.api.adapter import SideReader
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.families import INTERNAL, TIMEOUT
from exporter.ratelimit import RESTART_BACKOFF, Backoff
from exporter.sink import StateSink
from exporter.transport import RequestFailed

logger = logging.getLogger(__name__)


class SideLoop:
    def __init__(
        self,
        name: str,
        workspace: str,
        reader: SideReader,
        sink: StateSink,
        interval: float,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.workspace = workspace
        self.reader = reader
        self.sink = sink
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self._restarts = Backoff(*RESTART_BACKOFF)

    async def read_once(self) -> bool:
        """One read; True if it succeeded. Never raises (but for cancellation)."""
        log = {"workspace": self.workspace, "read": self.name}
        try:
            async with asyncio.timeout(self.timeout):
                await self.reader.read(self.sink)
        except RequestFailed as error:
            await self.sink.side_failed(self.name, error.reason, error.message)
            logger.warning(
                "side read failed; its last values are kept",
                extra={**log, "reason": error.reason, "error": error.message},
            )
            return False
        except TimeoutError:
            message = f"no answer within poll.timeout ({self.timeout:g}s)"
            await self.sink.side_failed(self.name, TIMEOUT, message)
            logger.warning("side read failed; its last values are kept", extra={**log, "reason": TIMEOUT})
            return False
        except Exception as error:
            # Only the type: an exception's text may quote what it was given.
            message = f"{type(error).__name__} (an exporter bug; the traceback is in the exporter's log)"
            await self.sink.side_failed(self.name, INTERNAL, message)
            logger.exception("side read failed: internal error (a bug in the exporter)", extra=log)
            return False
        return True

    async def run_forever(self) -> None:
        restarts = 0
        while True:
            try:
                while True:
                    started = self.clock.monotonic()
                    await self.read_once()
                    await self.clock.sleep(max(0.0, self.interval - (self.clock.monotonic() - started)))
            except asyncio.CancelledError:
                raise
            except Exception:
                restarts += 1
                logger.exception(
                    "side read loop failed: internal error (a bug in the exporter); restarting",
                    extra={"workspace": self.workspace, "read": self.name},
                )
                await self.clock.sleep(self._restarts.delay(restarts))
