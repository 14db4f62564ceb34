"""Staying within Captain Data's limits: a request budget, 429 wait hints and retry backoff."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

_EPOCH_THRESHOLD = 1e9  # X-RateLimit-Reset values above this are epoch seconds, below it delta-seconds
_EPOCH_MILLIS_THRESHOLD = 1e12


class TokenBucket:
    """At most ``rate`` requests a second on average, with bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def _http_date_delay(text: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - now)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a 429 asks us to wait: ``Retry-After`` (delta-seconds or HTTP date), else
    ``X-RateLimit-Reset`` (delta-seconds, epoch seconds or epoch milliseconds, or an HTTP date),
    else ``None``."""
    now = time.time() if now is None else now
    retry_after = headers.get("retry-after", "").strip()
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            delay = _http_date_delay(retry_after, now)
            if delay is not None:
                return delay
    reset = headers.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            value = float(reset)
        except ValueError:
            return _http_date_delay(reset, now)
        if value > _EPOCH_MILLIS_THRESHOLD:
            return max(0.0, value / 1000 - now)
        if value > _EPOCH_THRESHOLD:
            return max(0.0, value - now)
        return max(0.0, value)
    return None


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
