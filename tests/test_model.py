"""Parsing API payloads and headers: a bad item is skipped and counted, never the page; nothing
non-finite, unencodable or unbounded comes out."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import fields

import pytest

from exporter.api.v3.parser import parse_runs, parse_runs_body, parse_workflows, parse_workflows_body
from exporter.api.v3.statuses import API_STATUS_VALUES, normalize_status
from exporter.families import SKIP_REASONS
from exporter.parsing import BadResponse, Run, new_run
from exporter.ratelimit import MAX_HINT_SECONDS, Backoff, rate_limit_type, retry_after_seconds
from exporter.text import NAME_MAX_CHARS, clean_identifier, clean_text
from exporter.timestamps import EARLIEST, InvalidTimestamp, parse_timestamp, read_timestamp
from exporter.unknown_statuses import UNKNOWN_LOGGED, UNKNOWN_REMEMBERED, UnknownStatuses

NOW = 1767225600.0  # 2026-01-01T00:00:00Z
T = NOW - 3600  # a sane timestamp


def runs(*items: object, unknown: UnknownStatuses | None = None) -> tuple[list[Run], dict[str, int]]:
    parsed = parse_runs(list(items), UnknownStatuses() if unknown is None else unknown, now=NOW)
    return parsed.items, dict(parsed.skipped)


def test_new_run_builds_the_same_run_as_the_dataclass() -> None:
    values = {field.name: f"{field.name} value" for field in fields(Run)}
    built = new_run(**values)  # type: ignore[arg-type]
    assert built == Run(**values)  # type: ignore[arg-type]
    assert [getattr(built, name) for name in values] == list(values.values())


def test_workflows_listed_twice_count_once_and_names_fall_back_to_uids() -> None:
    parsed = parse_workflows([{"uid": "a", "name": "A"}, {"uid": "a", "name": "again"}, {"uid": 7}])
    assert [(w.uid, w.name) for w in parsed.items] == [("a", "A"), ("7", "7")]
    assert not parsed.skipped


def test_a_workflow_without_a_usable_uid_is_skipped_and_counted() -> None:
    parsed = parse_workflows(
        [{"uid": None}, {"uid": {"a": 1}}, {"name": "x"}, "wf", {"uid": "ok", "name": "\ud800 Leads\n"}]
    )
    assert [(w.uid, w.name) for w in parsed.items] == [("ok", "\ufffd Leads\ufffd")]
    assert parsed.skipped == {"invalid_uid": 3, "invalid_item": 1}
    assert parsed.first_skip == "invalid_uid: workflow 0 has no usable uid"


def test_only_a_payload_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="expected a JSON array of runs, got object"):
        parse_runs({"data": []}, UnknownStatuses())
    with pytest.raises(BadResponse, match="expected a JSON array of workflows, got null"):
        parse_workflows(None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"uid": "a"', "invalid JSON: Expecting ',' delimiter at line 1 column 13"),
        (b"", "invalid JSON: Expecting value"),
        (b'[{"uid": "\xff"}]', r"the body is not UTF-8 \(byte 10\)"),
        (b'{"runs": []}', "expected a JSON array of runs, got object"),
        (b'"runs"', "expected a JSON array of runs, got string"),
        # Python's limits (an integer's digits, nesting) on what is not an array at all:
        (b"1" * 5000, "invalid JSON: nested too deeply, or a number has too many digits"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "invalid JSON: nested too deeply, or a number"),
        (b'[{"uid": "a"}, ' + b"[" * 5000 + b"]" * 5000 + b", ]", "invalid JSON: Expecting value"),
    ],
)
def test_a_body_that_is_not_a_json_array_is_a_bad_response(body: bytes, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        parse_runs_body(body, UnknownStatuses())


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (b"1" * 5000, "a number with too many digits"),  # Python's int limit
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"uid": "b", "parameters": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"uid": "b", "retry_count": ' + b"9" * 5000 + b"}", "a number with too many digits"),
    ],
)
def test_an_item_past_pythons_json_limits_is_skipped_not_the_page(item: bytes, why: str) -> None:
    # Issue #19: one such run used to fail the whole page (bad_response).
    body = b'[{"uid": "a", "status": "finished"}, ' + item + b', {"uid": "c", "status": "finished"}]'
    parsed = parse_runs_body(body, UnknownStatuses())
    assert [run.uid for run in parsed.items] == ["a", "c"]
    assert parsed.skipped == {"invalid_item": 1}
    assert parsed.first_skip == f"invalid_item: run 1 is {why}"


def test_a_string_left_open_after_pythons_limits_is_read_in_linear_time() -> None:
    # Past an integer too long for json, the array is read item by item: every quote of a run of escaped
    # quotes left open (or broken by a backslash-newline) used to start another scan to the end.
    for tail in (b'\\"' * (1 << 15), b'\\"' * (1 << 15) + b"\\\n"):
        body = b'[{"uid": "a", "n": ' + b"9" * 5000 + b'}, "' + tail
        started = time.perf_counter()
        with pytest.raises(BadResponse, match="the array does not end"):
            parse_runs_body(body, UnknownStatuses())
        assert time.perf_counter() - started < 1.0  # milliseconds; quadratic was seconds


def test_bodies_parse_with_or_without_a_byte_order_mark() -> None:
    body = json.dumps([{"uid": "wf", "name": "Leads"}]).encode()
    assert parse_workflows_body(body).items == parse_workflows_body(b"\xef\xbb\xbf" + body).items
    assert [w.uid for w in parse_workflows_body(body).items] == ["wf"]


@pytest.mark.parametrize(
    "uid",
    [None, {"id": "r"}, ["r"], True, 1.5, "", "   ", "r" * 201, "r\n1", "r\x001", "\ud800", 10**401],
)
def test_a_run_without_a_usable_uid_is_skipped_the_rest_kept(uid: object) -> None:
    kept, skipped = runs({"uid": uid, "status": "running"}, {"uid": "good", "status": "running"})
    assert [run.uid for run in kept] == ["good"]
    assert skipped == {"invalid_uid": 1}


def test_integer_uids_are_identifiers() -> None:
    kept, _ = runs({"uid": 12, "status": "finished"}, {"uid": 10**199, "status": "finished"})
    assert [run.uid for run in kept] == ["12", str(10**199)]


def test_a_non_object_run_is_an_invalid_item() -> None:
    kept, skipped = runs("r1", 7, None, [{"uid": "x"}], {"uid": "good"})
    assert [run.uid for run in kept] == ["good"]
    assert skipped == {"invalid_item": 4}


@pytest.mark.parametrize(
    "value",
    [
        int("9" * 401),  # a 401-digit number: no float holds it
        {"seconds": T},
        [T],
        True,
        "yesterday",
        "2026-13-45T00:00:00",
        "2026-01-01T00:00:00" + " " * 60 + "x",
    ],
)
def test_an_unreadable_timestamp_skips_the_run_and_is_counted(value: object) -> None:
    for key in ("start_time", "finish_time", "scheduled_time"):
        parsed = parse_runs(
            [{"uid": "bad", "status": "finished", key: value}, {"uid": "good", "status": "finished"}],
            UnknownStatuses(),
            now=NOW,
        )
        assert [run.uid for run in parsed.items] == ["good"]
        assert parsed.skipped == {"invalid_timestamp": 1}
        assert parsed.first_skip.startswith(f"invalid_timestamp: run 0's {key} is ")


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        -T,
        -1,
        0,
        1000.0,  # 1970
        "9999-12-31T23:59:59",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "2014-12-31T23:59:59Z",
        NOW + 86400 + 1,  # more than a day ahead
        10**30,
        1e308,
    ],
)
def test_non_finite_and_out_of_range_timestamps_are_missing_and_the_run_kept(value: object) -> None:
    kept, skipped = runs({"uid": "r", "status": "finished", "start_time": value, "finish_time": value})
    assert (kept[0].start_time, kept[0].finish_time, kept[0].duration, kept[0].status_time) == (None,) * 4
    assert skipped == {}


def test_nan_and_infinity_literals_in_a_body_never_reach_a_run() -> None:
    body = b'[{"uid": "r", "status": "finished", "start_time": NaN, "finish_time": Infinity}]'
    run = parse_runs_body(body, UnknownStatuses(), now=NOW).items[0]
    assert (run.start_time, run.finish_time) == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00.123456", NOW + 0.123456),
        ("2026-01-01T01:00:00+01:00", NOW),
        ("2026-01-01T00:00:00Z", NOW),
        ("2026-01-01 00:00:00", NOW),
        ("  2025-12-31T19:00:00-05:00 ", NOW),
        (1767225600, NOW),
        (1767225600.5, NOW + 0.5),
        (1767225600000, NOW),  # epoch milliseconds
        ("1767225600", NOW),
        ("1767225600000", NOW),
        (NOW + 86400, NOW + 86400),  # a day ahead is still sane
        (EARLIEST, EARLIEST),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_timestamps(value: object, expected: float | None) -> None:
    assert read_timestamp(value, now=NOW) == (pytest.approx(expected) if expected is not None else None)


def test_unreadable_timestamps_raise_for_the_parser_and_are_none_for_everyone_else() -> None:
    unreadable: list[object] = ["yesterday", True, {}, [], 10**401]
    for value in unreadable:
        with pytest.raises(InvalidTimestamp):
            read_timestamp(value, now=NOW)
        assert parse_timestamp(value, now=NOW) is None


def test_the_future_bound_follows_the_current_time_by_default() -> None:
    assert read_timestamp(time.time() + 3600) is not None
    assert read_timestamp(time.time() + 2 * 86400) is None


def test_names_are_valid_utf8_without_control_characters_and_bounded() -> None:
    kept, _ = runs(
        {"uid": "a", "name": "\ud800"},
        {"uid": "b", "name": "x\udfff\ud83dy"},
        {"uid": "c", "name": "tab\there\x7f\x85"},
        {"uid": "d", "name": "Prospection \u00e9t\u00e9 \U0001f680"},
        {"uid": "e", "name": "n" * 100_000},
        {"uid": "f", "name": None},
        {"uid": "g", "name": {"first": "x"}},
    )
    names = [run.name for run in kept]
    assert names[:4] == [
        "\ufffd",
        "x\ufffd\ufffdy",
        "tab\ufffdhere\ufffd\ufffd",
        "Prospection \u00e9t\u00e9 \U0001f680",
    ]
    assert names[4] == "n" * (NAME_MAX_CHARS - 1) + "\u2026"
    assert names[5:] == ["", ""]
    for name in names:
        name.encode("utf-8")


def test_clean_text_and_identifiers() -> None:
    assert clean_text("plain name") == "plain name"
    assert clean_text("abcdef", limit=4) == "abc\u2026"
    assert clean_identifier("run-1") == "run-1"
    assert clean_identifier("r\u00e9sum\u00e9") == "r\u00e9sum\u00e9"
    assert clean_identifier("r\u0085") is None  # a C1 control character


def test_statuses_map_to_the_guide_and_keep_the_api_value() -> None:
    unknown = UnknownStatuses()
    kept, _ = runs(
        *(
            {"uid": str(i), "status": status}
            for i, status in enumerate(["finished", "Completed", " RUNNING ", "Teleported", None, 3])
        ),
        unknown=unknown,
    )
    assert [(run.status, run.api_status) for run in kept] == [
        ("finished", "finished"),
        ("finished", "completed"),
        ("running", "running"),
        ("unknown", "unknown"),
        ("unknown", "unknown"),
        ("unknown", "unknown"),
    ]
    assert unknown.values == {"'Teleported'", "None", "3"}
    assert all(any(run.api_status is value for value in API_STATUS_VALUES) for run in kept)


def test_one_unknown_status_per_run_with_50k_unique_values_is_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unknown = UnknownStatuses("acme")
    body = json.dumps([{"uid": f"r{i}", "status": f"Status {i}"} for i in range(50_000)]).encode()
    with caplog.at_level(logging.WARNING, logger="exporter.unknown_statuses"):
        parsed = parse_runs_body(body, unknown, now=NOW)
        parse_runs_body(body, unknown, now=NOW)  # the next poll: nothing new is said
    assert len(parsed.items) == 50_000
    assert {run.status for run in parsed.items} == {"unknown"}
    assert len(unknown.values) == UNKNOWN_REMEMBERED
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:2] == [
        "unknown run status 'Status 0' counted as 'unknown'",
        "unknown run status 'Status 1' counted as 'unknown'",
    ]
    assert messages[UNKNOWN_LOGGED:] == [
        f"more than {UNKNOWN_LOGGED} distinct unknown run statuses; not logging further ones"
    ]
    assert {getattr(record, "workspace", None) for record in caplog.records} == {"acme"}


def test_unknown_statuses_are_per_workspace(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="exporter.unknown_statuses"):
        for workspace in ("acme", "globex", "acme"):
            normalize_status("Teleported", UnknownStatuses(workspace))
    assert len(caplog.records) == 3  # a registry per workspace (a new one here each time)
    shared = UnknownStatuses()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exporter.unknown_statuses"):
        for _ in range(3):
            normalize_status("x" * 10_000, shared)
    assert len(caplog.records) == 1
    assert len(caplog.records[0].getMessage()) < 200


def test_skip_messages_never_carry_item_content() -> None:
    secret = "sk_live_do_not_log"
    parsed = parse_runs(
        [{"uid": {"token": secret}}, {"uid": "r", "start_time": secret}],
        UnknownStatuses(),
        now=NOW,
    )
    assert parsed.skipped == {"invalid_uid": 1, "invalid_timestamp": 1}
    assert secret not in parsed.first_skip
    assert set(parsed.skipped) <= set(SKIP_REASONS)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 31 Dec 2025 23:00:00 GMT"}, 0.0),  # in the past
        ({"x-ratelimit-reset": "1767225645"}, 45.0),  # epoch seconds
        ({"x-ratelimit-reset": "1767225612000"}, 12.0),  # epoch milliseconds
        ({"x-ratelimit-reset": "20"}, 20.0),  # delta seconds
        ({"X-RateLimit-Reset": "Thu, 01 Jan 2026 00:00:09 GMT"}, 9.0),
        ({"retry-after": "soon", "x-ratelimit-reset": "5"}, 5.0),
        # Not a finite, non-negative number: no hint (the engine backs off); huge: cut to a day.
        ({"retry-after": "inf"}, None),
        ({"retry-after": "Infinity"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "inf", "x-ratelimit-reset": "3"}, 3.0),
        ({"x-ratelimit-reset": "nan"}, None),
        ({"retry-after": "1e12"}, MAX_HINT_SECONDS),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_HINT_SECONDS),
        ({"x-ratelimit-reset": "99999999999999999999"}, MAX_HINT_SECONDS),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


@pytest.fixture
def eastern_time() -> Iterator[None]:
    """The process runs in TZ=EST+5 (5 hours behind UTC), then goes back to its own zone."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST+5"
    time.tzset()
    try:
        assert time.timezone == 5 * 3600  # the zone took effect
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("eastern_time")
@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Thu, 01 Jan 2026 00:00:02 GMT", 2.0),
        ("Thu, 01 Jan 2026 00:00:02 UTC", 2.0),
        ("Thu, 01 Jan 2026 00:00:02 +0000", 2.0),
        ("Thu, 01 Jan 2026 00:00:02 -0000", 2.0),  # RFC 2822's "zone unknown": read as UTC, not local
        ("Thu, 01 Jan 2026 00:00:02", 2.0),  # no zone at all: UTC too
        ("Thu, 01 Jan 2026 02:00:02 +0200", 2.0),
        ("Wed, 31 Dec 2025 19:00:02 -0500", 2.0),
        ("Wed, 31 Dec 2025 19:00:02 EST", 2.0),
    ],
)
def test_http_dates_are_read_as_written_whatever_the_process_zone(date: str, expected: float) -> None:
    assert retry_after_seconds({"retry-after": date}, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("second", "second"),
        ("minute", "minute"),
        ("Minutes", "minute"),
        ("per-minute", "minute"),
        ("requests_per_hour", "hour"),
        ("HOUR", "hour"),
        ("daily", "day"),
        ("day", "day"),
        ("month", "month"),
        ("concurrency", "other"),
        ("x" * 10_000, "other"),
        ("", "none"),
        ("  ", "none"),
    ],
)
def test_rate_limit_type(value: str, expected: str) -> None:
    assert rate_limit_type({"X-RateLimit-Type": value}) == expected
    assert rate_limit_type({"x-ratelimit-type": value}) == expected


def test_rate_limit_type_is_none_without_the_header() -> None:
    assert rate_limit_type({"retry-after": "3"}) == "none"


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, cap=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
