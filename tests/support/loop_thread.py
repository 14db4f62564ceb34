"""Serve something on loopback from its own thread and event loop, so synchronous tests can use it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

#: Starts the server inside the thread's loop; returns its base URL and the coroutine that stops it.
Start = Callable[[], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]


@contextmanager
def serving_in_thread(start: Start, thread_name: str, what: str) -> Iterator[str]:
    """Yield the URL ``start`` returns while it serves in its own thread; on exit, await its close."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        url, close = await start()
        box["url"] = url
        started.set()
        await stop.wait()
        await close()

    def main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:
            box["error"] = error
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name=thread_name, daemon=True)
    thread.start()
    if not started.wait(15) or "error" in box:
        raise RuntimeError(f"{what} did not start: {box.get('error')}")
    try:
        yield str(box["url"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
