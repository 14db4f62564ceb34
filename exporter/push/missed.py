"""Missed pushes: with push on for a workspace, a status change that a poll finds first and that no
push announced in the ``2 x poll.interval`` before it. Each push event (whatever became of it: read,
merged as a duplicate, refused as overloaded) announces its run; the poll asks when it counts a change."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

#: Runs remembered as announced, per workspace (the oldest are forgotten first).
MAX_ANNOUNCED: Final = 100_000
#: The window, in poll intervals, in which a push must have announced a change the poll finds.
WINDOW_INTERVALS: Final = 2.0


class Announcements:
    """Runs announced by push, with when (monotonic), bounded in count and in age. Thread-safe: the
    event loop announces, the workspace's worker thread asks."""

    def __init__(
        self,
        window: float,
        on_missed: Callable[[], None],
        *,
        capacity: int = MAX_ANNOUNCED,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._on_missed = on_missed
        self._capacity = capacity
        self._monotonic = monotonic
        self._announced: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def announce(self, run_uid: str) -> None:
        now = self._monotonic()
        with self._lock:
            self._announced.pop(run_uid, None)
            self._announced[run_uid] = now
            while len(self._announced) > self._capacity:
                self._announced.popitem(last=False)

    def polled_change(self, run_uid: str) -> None:
        """A poll counted a status change of ``run_uid``: missed unless announced within the window."""
        now = self._monotonic()
        with self._lock:
            while self._announced:  # forget what is older than the window
                oldest, when = next(iter(self._announced.items()))
                if now - when <= self.window:
                    break
                del self._announced[oldest]
            announced = run_uid in self._announced
        if not announced:
            self._on_missed()
