"""A simulator of the Captain Data v3 API, for tests and ``--demo``. See docs/simulator.md."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web

from exporter.simulator.app import create_simulator_app
from exporter.simulator.model import Simulator
from exporter.simulator.scenarios import build_demo_simulator

__all__ = [
    "Simulator",
    "build_demo_simulator",
    "create_simulator_app",
    "serve_until_stopped",
    "start_simulator",
]


async def start_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve ``sim`` on ``host:port`` (0: any free port); returns the runner and the base URL."""
    runner = web.AppRunner(create_simulator_app(sim), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    return runner, f"http://{host}:{bound_port}"


async def serve_until_stopped(sim: Simulator, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``sim`` on ``host:port``, call ``announce`` with the base URL, and stop at SIGTERM or SIGINT."""
    runner, url = await start_simulator(sim, host, port)
    announce(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
