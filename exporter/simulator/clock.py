"""A clock tests move by hand, so that timelines, ``updated_at``, lookbacks and waits need no sleeps."""

from __future__ import annotations

import asyncio
import math
import threading
import time


class ManualClock:
    """A :class:`~exporter.clock.Clock` that only :meth:`advance`, :meth:`set` and :meth:`sleep` move.

    ``sleep(seconds)`` does not wait: it moves the clock to the sleeper's deadline (if it is not there
    yet) and returns, so a wait of minutes takes no real time. Sleepers that start together each move
    the clock to their own deadline, never by the sum. :meth:`monotonic` is :meth:`time` (the clock
    never goes back). Callable like ``time.time`` too. Thread-safe: a simulator serving from another
    thread reads it."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()
        self.slept: list[float] = []  # every sleep asked for, in order

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def __call__(self) -> float:
        return self.time()

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            deadline = self._now + max(0.0, seconds)
            if seconds > 0:  # a sleep shorter than the float's resolution still moves the clock
                deadline = max(deadline, math.nextafter(self._now, math.inf))
            self.slept.append(seconds)
        await asyncio.sleep(0)  # sleepers that start at the same moment all read the same "now"
        with self._lock:
            self._now = max(self._now, deadline)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock does not go back")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, moment: float) -> float:
        with self._lock:
            if moment < self._now:
                raise ValueError("the clock does not go back")
            self._now = float(moment)
            return self._now
