"""Serve a :class:`Simulator` on loopback from a background thread, so tests can script it directly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

from exporter.simulator import Simulator, start_simulator
from tests.support.loop_thread import serving_in_thread


def running_simulator(sim: Simulator, host: str = "127.0.0.1") -> AbstractContextManager[str]:
    """Yield the simulator's base URL while it serves in its own thread and event loop."""

    async def start() -> tuple[str, Callable[[], Awaitable[None]]]:
        runner, url = await start_simulator(sim, host, 0)

        async def close() -> None:
            # A request held by a "slow" fault would keep cleanup() (and the test's teardown) waiting for
            # the rest of its delay: the client that sent it is gone or done, so end it now.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await runner.cleanup()

        return url, close

    return serving_in_thread(start, "simulator", "simulator")
