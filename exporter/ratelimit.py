"""Staying within Captain Data's limits: a request budget, 429 wait hints and retry backoff."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from exporter.clock import SYSTEM_CLOCK, Clock

_EPOCH_THRESHOLD: Final = 1e9  # X-RateLimit-Reset values above this are epoch seconds, below it delta-seconds
_EPOCH_MILLIS_THRESHOLD: Final = 1e12


class TokenBucket:
    """At most ``rate`` requests a second on average, with bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._clock.sleep((1 - self._tokens) / self.rate)


#: The longest wait a header may ask for; a longer (finite) hint is cut to this. The engine clamps
#: further to ``api.max_retry_after``.
MAX_HINT_SECONDS: Final = 86400.0

#: ``X-RateLimit-Type`` spellings -> the ``limit_type`` label (anything else is ``other``).
_LIMIT_TYPES: Final = {
    "second": "second",
    "sec": "second",
    "s": "second",
    "minute": "minute",
    "min": "minute",
    "hour": "hour",
    "h": "hour",
    "hourly": "hour",
    "day": "day",
    "d": "day",
    "daily": "day",
    "month": "month",
    "monthly": "month",
}
_PER: Final = re.compile(r"^(?:per[-_ ]?|requests?[-_ ]per[-_ ]?|rate[-_ ]?)")


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, stripped ("" when absent); ``name`` is lower-case. Case-insensitive even
    for a plain dict."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), "")
    return value.strip()


def _bounded(seconds: float) -> float | None:
    """A wait hint as the exporter uses it: ``None`` unless finite and not negative, at most
    ``MAX_HINT_SECONDS``."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_HINT_SECONDS)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _http_date_delay(text: str, now: float) -> float | None:
    """Seconds from ``now`` until an HTTP date (0 when it is past). Every zone spelling is read as
    the date says: ``GMT``, ``UTC``, ``+0000`` and ``-0000`` (RFC 2822's "unknown zone", which
    Python reads as naive local time) are UTC; other offsets are honoured. The process's TZ plays
    no part."""
    try:
        moment = parsedate_to_datetime(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _bounded(max(0.0, moment.timestamp() - now))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a 429 asks us to wait, or ``None`` when no header gives a usable hint.

    ``Retry-After`` (delta-seconds or HTTP date) first, else ``X-RateLimit-Reset`` (delta-seconds,
    epoch seconds or epoch milliseconds, or an HTTP date). A value that is not a finite, non-negative
    number (``inf``, ``nan``, ``-5``) is no hint; a finite one above ``MAX_HINT_SECONDS`` (``1e12``)
    is cut to it. The result is always finite, ``0 <= result <= MAX_HINT_SECONDS``."""
    now = time.time() if now is None else now
    retry_after = _header(headers, "retry-after")
    if retry_after:
        number = _number(retry_after)
        delay = _bounded(number) if number is not None else _http_date_delay(retry_after, now)
        if delay is not None:
            return delay
    reset = _header(headers, "x-ratelimit-reset")
    if reset:
        value = _number(reset)
        if value is None:
            return _http_date_delay(reset, now)
        if not math.isfinite(value) or value < 0:
            return None
        if value > _EPOCH_MILLIS_THRESHOLD:
            return _bounded(max(0.0, value / 1000 - now))
        if value > _EPOCH_THRESHOLD:
            return _bounded(max(0.0, value - now))
        return _bounded(value)
    return None


def rate_limit_type(headers: Mapping[str, str]) -> str:
    """The ``limit_type`` label of a 429: its ``X-RateLimit-Type`` as one of ``families.LIMIT_TYPES``
    (``none`` when absent or empty, ``other`` when not a window the exporter knows)."""
    raw = _header(headers, "x-ratelimit-type").lower()
    if not raw:
        return "none"
    word = _PER.sub("", raw[:32]).strip()
    return _LIMIT_TYPES.get(word) or _LIMIT_TYPES.get(word.removesuffix("s"), "other")


#: A supervised loop that failed on its own (a bug) restarts after 1 s, doubling up to 1 min.
RESTART_BACKOFF: Final = (1.0, 60.0)


class Backoff:
    """Exponential backoff with equal jitter: attempt n waits between half and all of
    ``min(cap, initial * 2**(n-1))``."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.initial * 2 ** max(0, attempt - 1))
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))
