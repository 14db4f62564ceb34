"""Parsing API payloads: tolerant of what does not matter, strict about identity and shape."""

from __future__ import annotations

import pytest

from exporter.model import BadResponse, parse_runs, parse_workflows
from exporter.ratelimit import Backoff, retry_after_seconds
from exporter.statuses import UnknownStatuses
from exporter.timestamps import parse_timestamp


def test_workflows_listed_twice_count_once_and_names_fall_back_to_uids() -> None:
    parsed = parse_workflows([{"uid": "a", "name": "A"}, {"uid": "a", "name": "again"}, {"uid": 7}])
    assert [(w.uid, w.name) for w in parsed.items] == [("a", "A"), ("7", "7")]
    assert not parsed.skipped


def test_only_a_payload_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="expected a JSON array of runs, got object"):
        parse_runs({"data": []}, UnknownStatuses())
    with pytest.raises(BadResponse, match="expected a JSON array of workflows, got null"):
        parse_workflows(None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00.123456", 1767225600.123456),
        ("2026-01-01T01:00:00+01:00", 1767225600.0),
        ("2026-01-01T00:00:00Z", 1767225600.0),
        (1767225600, 1767225600.0),
        (1767225600000, 1767225600.0),
        ("1767225600", 1767225600.0),
        (None, None),
        ("", None),
        ("yesterday", None),
        (True, None),
    ],
)
def test_timestamps(value: object, expected: float | None) -> None:
    assert parse_timestamp(value) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}, 30.0),
        ({"x-ratelimit-reset": "1767225645"}, 45.0),  # epoch seconds
        ({"x-ratelimit-reset": "1767225612000"}, 12.0),  # epoch milliseconds
        ({"x-ratelimit-reset": "20"}, 20.0),  # delta seconds
        ({"retry-after": "soon", "x-ratelimit-reset": "5"}, 5.0),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=1767225600.0) == expected


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, cap=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
