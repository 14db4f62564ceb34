"""What the exporter counts about its own API traffic, per workspace."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.histogram import REQUEST_DURATION_BUCKETS, Histogram

WORKFLOWS_ENDPOINT = "/v3/workflows"
RUNS_ENDPOINT = "/v3/workflows/{workflow_uid}/jobs"
ENDPOINTS = (WORKFLOWS_ENDPOINT, RUNS_ENDPOINT)
FAILURE_REASONS = ("timeout", "network")


@dataclass
class ApiStats:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, code)
    failures: Counter[tuple[str, str]] = field(  # (endpoint, timeout|network), every pair present at 0
        default_factory=lambda: Counter({(e, r): 0 for e in ENDPOINTS for r in FAILURE_REASONS})
    )
    rate_limited: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(ENDPOINTS, 0)))
    durations: dict[str, Histogram] = field(default_factory=dict)
    retry_after: float = 0.0

    def record_response(self, endpoint: str, code: int, seconds: float) -> None:
        self.requests[(endpoint, str(code))] += 1
        self.durations.setdefault(endpoint, Histogram(REQUEST_DURATION_BUCKETS)).observe(seconds)
        if code == 429:
            self.rate_limited[endpoint] += 1
        elif 200 <= code < 300:
            self.retry_after = 0.0

    def record_failure(self, endpoint: str, reason: str) -> None:
        self.failures[(endpoint, reason)] += 1
