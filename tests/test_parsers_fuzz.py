"""Property-based tests of the parsers: whatever the API sends, a page gives runs and counted skips,
or a ``BadResponse``; never another exception, and nothing non-finite, unencodable or unbounded."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.api.v3.parser import parse_runs, parse_runs_body, parse_workflows, parse_workflows_body
from exporter.api.v3.statuses import API_STATUS_VALUES
from exporter.families import LIMIT_TYPES, SKIP_REASONS
from exporter.parsing import BadResponse, Parsed, Run, Unreadable, Workflow, load_json, load_json_slowly
from exporter.ratelimit import MAX_HINT_SECONDS, rate_limit_type, retry_after_seconds
from exporter.statuses import STATUS_LABEL_VALUES
from exporter.text import NAME_MAX_CHARS, UID_MAX_CHARS
from exporter.timestamps import EARLIEST, MAX_FUTURE, InvalidTimestamp, read_timestamp
from exporter.unknown_statuses import UnknownStatuses

NOW = 1767225600.0

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**450), max_value=10**450),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=EARLIEST - 1e6, max_value=NOW + 1e6),
    st.floats(min_value=EARLIEST * 1000, max_value=NOW * 1000),
)
timestamp_texts = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?Z?\Z"),
    numbers.map(str),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text, timestamp_texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
# Mostly readable timestamps, so that most runs are kept and their other fields checked.
run_times = st.one_of(
    st.none(),
    st.floats(min_value=EARLIEST, max_value=NOW),
    st.datetimes().map(lambda d: d.isoformat()),
    numbers,
    timestamp_texts,
    json_values,
)
statuses = st.one_of(st.sampled_from([*API_STATUS_VALUES, "Finished", " PAUSED ", "Teleported"]), json_values)
run_objects = st.fixed_dictionaries(
    {},
    optional={
        "uid": st.one_of(any_text, st.integers(min_value=-(10**300), max_value=10**300), json_values),
        "name": st.one_of(any_text, json_values),
        "status": statuses,
        "start_time": run_times,
        "finish_time": run_times,
        "scheduled_time": run_times,
        "extra": json_values,
    },
)
workflow_objects = st.fixed_dictionaries(
    {}, optional={"uid": st.one_of(any_text, st.integers(), json_values), "name": any_text}
)
run_pages = st.one_of(st.lists(st.one_of(run_objects, json_values), max_size=8), json_values)
workflow_pages = st.one_of(st.lists(st.one_of(workflow_objects, json_values), max_size=8), json_values)


def check_name(name: str) -> None:
    name.encode("utf-8")  # raises on a lone surrogate
    assert len(name) <= NAME_MAX_CHARS
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name)


def check_uid(uid: str) -> None:
    uid.encode("utf-8")
    assert 0 < len(uid) <= UID_MAX_CHARS
    assert uid.strip()


def check_time(value: float | None) -> None:
    assert value is None or (math.isfinite(value) and EARLIEST <= value <= NOW + MAX_FUTURE)


def check_runs(parsed: Parsed[Run], page: object) -> None:
    assert isinstance(page, list)
    assert len(parsed.items) + sum(parsed.skipped.values()) == len(page)
    assert set(parsed.skipped) <= set(SKIP_REASONS)
    for run in parsed.items:
        check_uid(run.uid)
        check_name(run.name)
        assert any(run.status is value for value in STATUS_LABEL_VALUES)  # interned
        assert any(run.api_status is value for value in API_STATUS_VALUES)
        for moment in (run.start_time, run.finish_time, run.scheduled_time, run.postponed_until):
            check_time(moment)
        for derived in (run.duration, run.status_time):
            assert derived is None or math.isfinite(derived)


def check_workflows(parsed: Parsed[Workflow], page: object) -> None:
    assert isinstance(page, list)
    assert len(parsed.items) + sum(parsed.skipped.values()) <= len(page)  # a repeated uid counts once
    assert set(parsed.skipped) <= {"invalid_item", "invalid_uid"}
    assert len({w.uid for w in parsed.items}) == len(parsed.items)
    for workflow in parsed.items:
        check_uid(workflow.uid)
        check_name(workflow.name)


def outcome_of(call: Callable[[], object], expected: type[Exception]) -> object:
    """What ``call`` returns, or the ``expected`` exception it raises (any other one propagates)."""
    try:
        return call()
    except expected as error:
        return error


def encode(page: object) -> bytes:
    return json.dumps(page, ensure_ascii=True).encode()  # NaN/Infinity and \\udxxx escapes included


@FUZZ
@given(run_pages)
@example([{"uid": "r", "name": "\ud800"}, {"uid": "s", "name": "\x85", "start_time": int("9" * 401)}])
@example([{"uid": None}, {"uid": {}}, {"uid": "r", "finish_time": float("nan"), "start_time": "9999-01-01"}])
def test_any_json_runs_page_gives_runs_and_counted_skips(page: object) -> None:
    unknown = UnknownStatuses()
    try:
        parsed = parse_runs(page, unknown, now=NOW)
    except BadResponse:
        assert not isinstance(page, list)
        return
    check_runs(parsed, page)
    again = parse_runs_body(encode(page), unknown, now=NOW)  # the same page through the wire
    assert [run.uid for run in again.items] == [run.uid for run in parsed.items]
    assert again.skipped == parsed.skipped


@FUZZ
@given(workflow_pages)
@example([{"uid": "\ud800"}, {"uid": "w", "name": "\udfff\x00"}, {"uid": "w"}])
def test_any_json_workflows_page_gives_workflows_and_counted_skips(page: object) -> None:
    try:
        parsed = parse_workflows(page)
    except BadResponse:
        assert not isinstance(page, list)
        return
    check_workflows(parsed, page)
    assert parse_workflows_body(encode(page)).items == parsed.items


@FUZZ
@given(st.one_of(st.binary(max_size=200), run_pages.map(encode).map(lambda b: b[: len(b) // 2])))
@example(b"[" + b"7" * 5000 + b"]")
@example(b"[" * 50_000)
@example(b'["\xed\xa0\x80"]')  # a surrogate encoded as UTF-8 bytes: not UTF-8
@example(b"\xff\xfe[\x00]\x00")  # UTF-16
def test_any_bytes_give_a_page_or_a_bad_response(body: bytes) -> None:
    runs = outcome_of(lambda: parse_runs_body(body, UnknownStatuses(), now=NOW), BadResponse)
    workflows = outcome_of(lambda: parse_workflows_body(body), BadResponse)
    for outcome in (runs, workflows):
        assert isinstance(outcome, Parsed) or (isinstance(outcome, BadResponse) and str(outcome))


def comparable(value: object) -> object:
    """``value`` (a decoded body, or the BadResponse raised) in a form ``==`` compares fully: the type of
    every scalar (1 is not 1.0 nor True), NaN equal to itself, an Unreadable by why."""
    if isinstance(value, list):
        return ["list", *map(comparable, value)]
    if isinstance(value, dict):
        return ["dict", *((key, comparable(item)) for key, item in value.items())]
    if isinstance(value, Unreadable):
        return ["unreadable", value.why]
    if isinstance(value, BadResponse):
        return ["bad response", str(value)]
    return [type(value).__name__, repr(value)]


# Bodies as an API may spell them: any JSON value with or without escapes, spaces, a byte order mark;
# cut short; or any bytes at all.
json_bodies = st.one_of(
    st.builds(
        lambda page, ascii_only, indent, bom: (
            bom + json.dumps(page, ensure_ascii=ascii_only, indent=indent).encode("utf-8", "surrogatepass")
        ),
        st.one_of(run_pages, json_values),
        st.booleans(),
        st.sampled_from([None, 0, 2]),
        st.sampled_from([b"", b"\xef\xbb\xbf"]),
    ),
    run_pages.map(encode).map(lambda b: b[: len(b) // 2]),
    st.binary(max_size=200),
)


@settings(FUZZ, max_examples=1000)
@given(json_bodies)
@example(b"[123456789012345678901234567890, -18446744073709551617, 1e400, -0.0, 5e-324, 0.1, 1E2]")
@example(b'[{"uid": "a", "uid": "b"}, {"x": NaN, "y": -Infinity}]')
@example(b'["\\ud800", "\\udfff\\u0000", "\\u00e9\xc3\xa9"]')
@example(b'[{"uid": "b", "n": ' + b"9" * 4300 + b'}, {"uid": "c", "n": ' + b"9" * 4301 + b"}]")
@example(b'[{"uid": "b", "n": -' + b"9" * 4300 + b"}]")
@example(b'[{"uid": "b", "p": ' + b"[" * 100 + b"]" * 100 + b'}, {"p": ' + b"[" * 5000 + b"]" * 5000 + b"}]")
@example(b"\xef\xbb\xbf\xef\xbb\xbf[]")
@example(b" [1] ")
@example(b"[1] x")
def test_load_json_reads_every_body_as_pythons_json_does(body: bytes) -> None:
    # msgspec reads first (exporter/parsing.py): what it accepts must be exactly what json gives, and
    # what it refuses goes to json; the parsers see no difference either way.
    fast = outcome_of(lambda: load_json(body), BadResponse)
    assert comparable(fast) == comparable(outcome_of(lambda: load_json_slowly(body), BadResponse))


@FUZZ
@given(st.one_of(json_values, numbers, timestamp_texts))
def test_a_timestamp_is_sane_absent_or_invalid(value: object) -> None:
    outcome = outcome_of(lambda: read_timestamp(value, now=NOW), InvalidTimestamp)
    if isinstance(outcome, InvalidTimestamp):
        assert str(outcome)
    else:
        assert outcome is None or isinstance(outcome, float)
        check_time(outcome)


header_values = st.one_of(
    any_text.map(lambda t: t.encode("utf-8", "replace").decode("utf-8")),
    numbers.map(str),
    st.datetimes()
    .map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S "))
    .flatmap(
        lambda d: st.sampled_from(["GMT", "UTC", "+0000", "-0000", "+1400", "-1200", "EST", "XYZ", ""]).map(
            lambda z: d + z
        )
    ),
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["retry-after", "Retry-After", "x-ratelimit-reset", "X-RateLimit-Type", "x-other"]),
        header_values,
    )
)
@example({"retry-after": "inf"})
@example({"retry-after": "1e12"})
@example({"retry-after": "Fri, 31 Dec 9999 23:59:59 -0000"})
@example({"x-ratelimit-reset": "-1e400"})
def test_a_wait_hint_is_finite_and_bounded_and_the_limit_type_is_a_label(headers: dict[str, str]) -> None:
    wait = retry_after_seconds(headers, now=NOW)
    assert wait is None or (math.isfinite(wait) and 0 <= wait <= MAX_HINT_SECONDS)
    assert rate_limit_type(headers) in LIMIT_TYPES
