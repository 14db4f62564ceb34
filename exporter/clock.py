"""Time as the exporter and the simulator see it: a monotonic clock for intervals and waits, the wall
clock for timestamps, and sleeping. Injected, so tests drive time instead of waiting for it."""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back: for intervals, deadlines, waits."""
        ...

    def time(self) -> float:
        """Unix time: for timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of :meth:`monotonic` time have passed."""
        ...


class SystemClock:
    """The real clocks and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Final[Clock] = SystemClock()
