"""Credits and account health (issue 17): what the side reads keep of the workspace's credits and its
integration accounts, and the credits forecast.

Only these fields are kept. The accounts endpoint answers session cookies (``li_at``, ``JSESSIONID``)
and may answer ``api_key``/``password``: the parsers copy the fields below out of each item and drop
the rest, so a raw response is never stored, logged or written to the state directory.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

#: The burn rate of the forecast is measured over this window (the alert's 6 h).
BURN_WINDOW: Final = 6 * 3600.0
#: Credit readings kept for the burn rate (one per credits.interval, the oldest dropped first).
MAX_READINGS: Final = 4096
#: Longest account and limit name kept in a label.
LABEL_MAX_CHARS: Final = 100


@dataclass(frozen=True, slots=True)
class Credits:
    """GET /v3/workspace: each value finite and not negative, else None."""

    remaining: float | None = None  # tasks_left
    limit: float | None = None  # tasks_max
    used: float | None = None  # tasks_used
    period_start: float | None = None  # current_month_start
    period_end: float | None = None  # current_month_end
    plan: str = ""  # plan_name ("" when absent)


@dataclass(frozen=True, slots=True)
class AccountLimit:
    name: str  # limit_name (or its permalink), a label value
    used: float | None  # item_scraped
    value: float | None  # limit_value
    reset: float | None  # end_time_range


@dataclass(frozen=True, slots=True)
class Account:
    integration: str
    uid: str
    name: str
    valid: bool | None  # is_valid; None when the API did not say
    limits: tuple[AccountLimit, ...] = ()
    queued: float | None = None  # the largest nbr_inputs_queued_next_seven_days of its limits


@dataclass
class AccountsPage:
    """One page of an integration's accounts."""

    accounts: list[Account] = field(default_factory=list)
    next_page: bool = False  # next_page_exist
    total: int | None = None  # number_total_acounts (sic)
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Forecast:
    """When the credits run out at the burn rate of the last BURN_WINDOW."""

    burn_per_hour: float  # credits per hour; 0 when nothing was used
    runs_out_at: float | None  # None when the rate is 0 (or unknown)
    before_period_end: bool  # runs out before the period renews


def count_value(value: object) -> float | None:
    """``value`` when it is a finite JSON number that is not negative (and not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class CreditHistory:
    """The credits left at each read, for the burn rate. A rise (a new period, credits bought) starts
    over: the rate measures spending only."""

    def __init__(self) -> None:
        self._readings: deque[tuple[float, float]] = deque(maxlen=MAX_READINGS)

    def add(self, moment: float, remaining: float) -> None:
        if self._readings and remaining > self._readings[-1][1]:
            self._readings.clear()
        self._readings.append((moment, remaining))
        while self._readings and moment - self._readings[0][0] > BURN_WINDOW:
            self._readings.popleft()

    def forecast(self, period_end: float | None) -> Forecast | None:
        """None until two readings some time apart exist."""
        if len(self._readings) < 2:
            return None
        (start, first), (end, last) = self._readings[0], self._readings[-1]
        if end <= start:
            return None
        rate = max(0.0, (first - last) / (end - start))
        if rate <= 0:
            return Forecast(0.0, None, False)
        runs_out = end + last / rate
        return Forecast(rate * 3600.0, runs_out, period_end is None or runs_out < period_end)
