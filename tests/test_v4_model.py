"""The v4 status mapping (its one table, its FAILED rule, its documentation) and the v4 run parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from exporter.api.v4.parser import failed_on_input, parse_v4_runs, parse_v4_runs_body, v4_status
from exporter.api.v4.statuses import V4_API_STATUS_VALUES, V4_STATUS_MAP
from exporter.errorbody import summarize_error_body
from exporter.parsing import BadResponse
from exporter.simulator.v4 import DEFAULT_ERRORS, V4_STATUSES
from exporter.statuses import STATUS_LABEL_VALUES
from exporter.unknown_statuses import UnknownStatuses

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
NOW = 1_780_000_000.0


def test_the_table_covers_exactly_the_ten_statuses() -> None:
    assert set(V4_STATUS_MAP) == set(V4_STATUSES)
    assert set(V4_STATUS_MAP.values()) <= set(STATUS_LABEL_VALUES)
    assert {status.lower() for status in V4_STATUSES} | {"unknown"} == set(V4_API_STATUS_VALUES)


@pytest.mark.parametrize(
    ("raw", "status", "api_status"),
    [
        ("RUNNING", "running", "running"),
        ("CREATED", "pending", "created"),
        ("QUEUED", "pending", "queued"),
        ("SCHEDULED", "pending", "scheduled"),
        ("SUCCEEDED", "finished", "succeeded"),
        ("PARTIAL_SUCCEEDED", "finished", "partial_succeeded"),
        ("INVALID", "warning", "invalid"),
        ("FAILED", "shutdown", "failed"),
        ("STOPPED", "stopped", "stopped"),
        ("BLOCKED", "paused", "blocked"),
        (" succeeded ", "finished", "succeeded"),
        ("running", "running", "running"),  # v3 spelling of a shared name: case does not matter
        ("finished", "unknown", "unknown"),  # a v3-only value is not a v4 status
        ("EXPLODED", "unknown", "unknown"),
        ("", "unknown", "unknown"),
        (None, "unknown", "unknown"),
        (42, "unknown", "unknown"),
        ({"s": 1}, "unknown", "unknown"),
    ],
)
def test_each_status(raw: object, status: str, api_status: str) -> None:
    unknown = UnknownStatuses()
    assert v4_status(raw, None, unknown) == (status, api_status)
    assert len(unknown.values) == (1 if status == "unknown" else 0)


@pytest.mark.parametrize(
    ("last_error", "on_input"),
    [
        ({"label": "INVALID_INPUT", "message": "The provided input is invalid."}, True),
        ({"label": "MISSING_PARAMETER", "message": "company_domain is required"}, True),
        ({"label": "VALIDATION_ERROR", "message": "x"}, True),
        ({"label": "ERROR", "scope": "input", "message": "x"}, True),
        ({"label": "ERROR", "error_scope": "param", "message": "x"}, True),
        ({"label": "ERROR", "message": "Missing input: linkedin_profile_url"}, True),
        ({"label": "ERROR", "message": "The input page could not be loaded"}, False),
        ({"label": "ERROR", "message": "Invalid parameters: limit must be positive"}, True),
        ({"label": "EXTERNAL_API_ERROR", "message": "The third-party API did not answer."}, False),
        ({"label": "ERROR", "error_scope": "server", "message": "Timeout while scraping"}, False),
        ({"label": "LIMIT_REACHED", "scope": "auth", "message": "Cookie expired"}, False),
        ({"label": 5, "message": ["invalid input"]}, False),
        ("invalid input", False),
        (None, False),
        ({}, False),
    ],
)
def test_failed_is_warning_only_when_the_error_points_at_input(last_error: object, on_input: bool) -> None:
    assert failed_on_input(last_error) is on_input
    expected = "warning" if on_input else "shutdown"
    assert v4_status("FAILED", last_error, UnknownStatuses())[0] == expected


def test_the_simulator_errors_map_as_documented() -> None:
    assert failed_on_input(DEFAULT_ERRORS["INVALID"])
    assert not failed_on_input(DEFAULT_ERRORS["FAILED"])


def test_docs_show_the_same_table() -> None:
    text = DOC.read_text()
    section = text[text.index("### v4 status mapping") :]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `?([a-z]+)`?", section, re.MULTILINE))
    assert rows == V4_STATUS_MAP


def run(**fields: object) -> dict[str, object]:
    item: dict[str, object] = {
        "id": 1,
        "uid": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "action_name": "enrich_company",
        "status": "SUCCEEDED",
        "last_error": None,
        "postponed_until": None,
        "started_at": "2026-05-01T10:00:00Z",
        "finished_at": "2026-05-01T10:05:00.500Z",
        "created_at": "2026-05-01T09:59:00Z",
        "updated_at": "2026-05-01T10:05:01Z",
    }
    item.update(fields)
    return item


def test_a_run_becomes_a_run_of_its_action() -> None:
    parsed = parse_v4_runs([run()], UnknownStatuses(), NOW)
    (item,) = parsed.items
    assert item.action == "enrich_company"
    assert item.run.status == "finished"
    assert item.run.api_status == "succeeded"
    assert item.run.duration == 300.5
    assert item.run.scheduled_time is not None
    assert item.updated_at == item.run.finish_time + 0.5  # type: ignore[operator]
    blocked = parse_v4_runs(
        [run(status="BLOCKED", finished_at=None, postponed_until="2026-05-02T00:00:00Z")],
        UnknownStatuses(),
        NOW,
    ).items[0]
    assert blocked.run.status == "paused"
    assert blocked.run.postponed_until is not None
    invalid = parse_v4_runs([run(status="INVALID", finished_at=None)], UnknownStatuses(), NOW).items[0]
    assert invalid.run.finish_time == invalid.updated_at  # a final status without finished_at


def test_hostile_items_are_skipped_one_by_one() -> None:
    payload = [
        run(uid="ok-1"),
        "a string",
        run(uid=None),
        run(uid={"a": 1}),
        run(uid="x" * 201),
        run(uid="ok-2", action_name=None),
        run(uid="ok-3", updated_at={"when": 1}),
        run(uid="ok-4", started_at="yesterday-ish"),
        run(uid="ok-5", started_at=1e300, updated_at=None, finished_at=None, created_at=None),
        run(uid="ok-6", action_name="a\u0000b"),
    ]
    parsed = parse_v4_runs(payload, UnknownStatuses(), NOW)
    assert [item.run.uid for item in parsed.items] == ["ok-1", "ok-5"]
    assert parsed.items[1].updated_at is None  # no time at all: kept, never stops a listing
    assert dict(parsed.skipped) == {
        "invalid_item": 3,
        "invalid_uid": 3,
        "invalid_timestamp": 2,
    }


def test_a_body_that_is_not_a_list_is_a_bad_response() -> None:
    assert parse_v4_runs_body(json.dumps([run()]).encode(), UnknownStatuses(), NOW).items
    for body in (b'{"data": []}', b"[{", b"\xff"):
        with pytest.raises(BadResponse):
            parse_v4_runs_body(body, UnknownStatuses(), NOW)


def test_error_bodies_are_summarised_safely() -> None:
    body = {
        "error_label": "RATE_LIMIT_EXCEEDED",
        "error_scope": "server",
        "error_ref": "ERR-1",
        "message": "Too many\nrequests",
        "status_code": 429,
    }
    assert summarize_error_body(json.dumps(body).encode()) == "RATE_LIMIT_EXCEEDED/server: Too many requests"
    assert summarize_error_body(b'{"message": "Unauthorized", "status_code": 401}') == "Unauthorized"
    assert summarize_error_body(b'{"error_label": "X"}') == "X"
    for junk in (b"", b"<html>502</html>", b"[1, 2]", b'{"message": 5}', b"\xff\xfe", b"[" * 100_000):
        assert summarize_error_body(junk) == ""
    echoed = json.dumps({"message": "bad key sk-12345678 \u0007" + "x" * 500}).encode()
    summary = summarize_error_body(echoed, ["sk-12345678"])
    assert "sk-12345678" not in summary
    assert "\u0007" not in summary
    assert len(summary) <= 200
    key = "sk-" + "a" * 40  # cut by the message's length limit: no part of it may show
    cut = summarize_error_body(json.dumps({"message": "x" * 180 + " " + key}).encode(), [key])
    assert "sk-a" not in cut
