"""Serve a :class:`Simulator` on loopback from a background thread, so tests can script it directly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from exporter.simulator import Simulator, start_simulator


@contextmanager
def running_simulator(sim: Simulator, host: str = "127.0.0.1") -> Iterator[str]:
    """Yield the simulator's base URL while it serves in its own thread and event loop."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        runner, url = await start_simulator(sim, host, 0)
        box["url"] = url
        stop = asyncio.Event()
        box["stop"] = stop
        started.set()
        await stop.wait()
        # A request held by a "slow" fault would keep cleanup() (and the test's teardown) waiting for
        # the rest of its delay: the client that sent it is gone or done, so end it now.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await runner.cleanup()

    def main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:
            box["error"] = error
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="simulator", daemon=True)
    thread.start()
    if not started.wait(15) or "error" in box:
        raise RuntimeError(f"simulator did not start: {box.get('error')}")
    try:
        yield str(box["url"])
    finally:
        stop = box["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
