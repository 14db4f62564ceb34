"""A clock tests move by hand, so that timelines, ``updated_at`` and lookbacks need no sleeps."""

from __future__ import annotations

import threading
import time


class ManualClock:
    """Callable like ``time.time``; only :meth:`advance` and :meth:`set` move it."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

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
