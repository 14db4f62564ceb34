"""A plain cumulative histogram (buckets, sum, count) that metric families are built from."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from exporter.snapshot import HistogramSnapshot

#: Run durations: 1 minute to 24 hours.
RUN_DURATION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)
#: API request latency.
REQUEST_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: push: receipt to visible in /metrics (the goal is under 1 s).
PUSH_APPLY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramSnapshot:
        running = 0
        cumulative = []
        for count in self.counts:
            running += count
            cumulative.append(running)
        return HistogramSnapshot(self.bounds, tuple(cumulative), self.total, running)

    def export(self) -> dict[str, object]:
        """JSON-able, for the state file."""
        return {"counts": list(self.counts), "sum": self.total}

    @classmethod
    def restore(cls, bounds: tuple[float, ...], record: dict[str, object]) -> Histogram:
        counts = record.get("counts")
        total = record.get("sum")
        if (
            isinstance(counts, list)
            and len(counts) == len(bounds) + 1
            and all(isinstance(c, int) and c >= 0 for c in counts)
            and isinstance(total, int | float)
            and math.isfinite(total)
        ):
            return cls(bounds, list(counts), float(total))
        return cls(bounds)
