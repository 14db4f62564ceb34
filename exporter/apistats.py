"""What the exporter counts about its own API traffic, per workspace."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from exporter.families import FAILURE_REASONS
from exporter.histogram import REQUEST_DURATION_BUCKETS, Histogram
from exporter.snapshot import ApiStatsSnapshot


@dataclass
class ApiStats:
    endpoints: tuple[str, ...] = ()  # the API version's (its adapter's), present at 0 from the start
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, code)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, timeout|network)
    rate_limited: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, limit_type)
    durations: dict[str, Histogram] = field(default_factory=dict)
    retry_after: float = 0.0  # what the exporter will actually wait after the latest 429

    def __post_init__(self) -> None:
        self._present(self.endpoints)

    def add_endpoints(self, endpoints: Sequence[str]) -> None:
        """More endpoints present at 0 (the side reads that are on)."""
        added = tuple(endpoint for endpoint in endpoints if endpoint not in self.endpoints)
        self.endpoints = (*self.endpoints, *added)
        self._present(added)

    def _present(self, endpoints: tuple[str, ...]) -> None:
        for endpoint in endpoints:
            self.rate_limited.setdefault((endpoint, "none"), 0)
            for reason in FAILURE_REASONS:  # present at 0, as the other counters are
                self.failures.setdefault((endpoint, reason), 0)

    def record_response(self, endpoint: str, code: int, seconds: float) -> None:
        self.requests[(endpoint, str(code))] += 1
        self.durations.setdefault(endpoint, Histogram(REQUEST_DURATION_BUCKETS)).observe(seconds)
        if 200 <= code < 300:
            self.retry_after = 0.0

    def record_rate_limited(self, endpoint: str, limit_type: str) -> None:
        self.rate_limited[(endpoint, limit_type)] += 1

    def record_failure(self, endpoint: str, reason: str) -> None:
        self.failures[(endpoint, reason)] += 1

    def snapshot(self) -> ApiStatsSnapshot:
        """Called in the worker thread while the event loop records: every mapping is copied in one
        step (dict() holds the GIL) before it is iterated, as the first answer of an endpoint adds
        its histogram."""
        durations = dict(self.durations)
        return ApiStatsSnapshot(
            requests=dict(self.requests),
            failures=dict(self.failures),
            rate_limited=dict(self.rate_limited),
            durations={endpoint: histogram.snapshot() for endpoint, histogram in durations.items()},
            retry_after=self.retry_after,
        )
