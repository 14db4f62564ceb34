"""The push body parser: both shapes, the depth bound (checked before parsing), and a fuzz."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.push.body import (
    ERROR_MAX_CHARS,
    MAX_DEPTH,
    Invalid,
    PushEvent,
    nesting_depth_exceeds,
    parse_body,
)
from tests.support.push import v3_webhook, v4_callback


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_v3_webhooks_succeeded_and_failed() -> None:
    event = parse_body(json.dumps(v3_webhook("job-1", "wf-9")).encode())
    assert event == PushEvent("v3", "job-1", "wf-9", "succeeded", None)
    failed = parse_body(json.dumps(v3_webhook("job-2", error="cannot re-send\x00 connection")).encode())
    assert isinstance(failed, PushEvent)
    assert failed.status == "failed"
    assert failed.error == "cannot re-send\ufffd connection"


def test_v3_error_is_bounded() -> None:
    event = parse_body(json.dumps(v3_webhook("job-1", error="word " * 100_000)).encode())
    assert isinstance(event, PushEvent)
    assert event.error is not None
    assert ERROR_MAX_CHARS - 6 <= len(event.error) <= ERROR_MAX_CHARS
    assert event.error.endswith(" word\u2026")
    # Cut inside a word, the word goes: it may be the start of a secret redaction no longer recognises.
    event = parse_body(json.dumps(v3_webhook("job-1", error="e" * 100_000)).encode())
    assert isinstance(event, PushEvent)
    assert event.error == "\u2026"


def test_v4_callback() -> None:
    event = parse_body(json.dumps(v4_callback("run-1", "partial_succeeded")).encode())
    assert event == PushEvent("v4", "run-1", "", "PARTIAL_SUCCEEDED", None)


def test_neither_shape_is_invalid() -> None:
    for body in (
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"a string"',
        b"{}",
        b'{"job_uid": "j"}',  # no workflow_uid
        b'{"run": {"run_uid": "r"}}',  # no status
        b'{"run": "r", "status": "RUNNING"}',
        b'{"job_uid": "../../v3/workflows", "workflow_uid": "w"}',  # not a uid: it goes into a path
        b'{"job_uid": 12, "workflow_uid": "w"}',
        b'{"run": {"run_uid": "r u n", "status": "RUNNING"}}',
        b'{"job_uid": "j", "workflow_uid": "w", "n": 1' + b"0" * 5000 + b"}",  # past int digits limit
    ):
        assert isinstance(parse_body(body), Invalid), body


def test_depth_bound() -> None:
    assert not nesting_depth_exceeds(nested(MAX_DEPTH))
    assert nesting_depth_exceeds(nested(MAX_DEPTH + 1))
    assert not nesting_depth_exceeds(b'["' + b"[" * 10_000 + b'"]')  # brackets inside a string
    assert not nesting_depth_exceeds(b'["\\"' + b"[" * 100 + b'"]')  # an escaped quote
    # A webhook with a field nested 63 levels inside it is 64 deep: still a push.
    body = json.dumps(v3_webhook("job-1"))[:-1] + ', "x": ' + nested(MAX_DEPTH - 1).decode() + "}"
    assert isinstance(parse_body(body.encode()), PushEvent)
    body = json.dumps(v3_webhook("job-1"))[:-1] + ', "x": ' + nested(MAX_DEPTH).decode() + "}"
    assert parse_body(body.encode()) == Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")


def test_a_mebibyte_of_brackets_is_refused_quickly() -> None:
    started = time.perf_counter()
    for body in (b"[" * (1 << 20), b"{" * (1 << 20), nested((1 << 19) - 1), b'{"a":' * (1 << 18)):
        assert parse_body(body) == Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
    assert time.perf_counter() - started < 10.0  # linear: about 0.5 s in all; quadratic would be hours
    flat = b"[" + b"[]," * ((1 << 20) // 3 - 1) + b"[]]"  # wide, not deep: parsed, then not a push
    assert parse_body(flat) == Invalid("not a JSON object")


def test_unterminated_strings_are_measured_in_linear_time() -> None:
    # Every quote of a run of escaped quotes left open used to start a scan to the end of the body.
    body = b'["' + b'\\"' * ((1 << 15) - 1)  # 64 KiB: the receiver parses it on the event loop
    started = time.perf_counter()
    assert parse_body(body) == Invalid("not JSON")
    assert parse_body(b'"\\' * (1 << 15)) == Invalid("not JSON")
    assert time.perf_counter() - started < 1.0  # a few milliseconds; quadratic was seconds
    # What json reads before the open string still counts; what follows it is never read.
    assert nesting_depth_exceeds(nested(MAX_DEPTH + 1)[: MAX_DEPTH + 1] + b'"\\"\\"')
    assert not nesting_depth_exceeds(b'["' + b"[" * 100)
    assert not nesting_depth_exceeds(b'["\\' + b"[" * 100 + b"\\")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda job, extra: json.dumps({**v3_webhook("j"), "job_uid": job, **extra}).encode(),
            json_values,
            st.dictionaries(st.sampled_from(["error", "message", "workflow_uid", "status"]), json_values),
        ),
        st.builds(
            lambda uid, status: json.dumps({"run": {"run_uid": uid, "status": status}}).encode(),
            json_values,
            json_values,
        ),
        st.integers(0, 200).map(nested),
    )
)
def test_fuzz_parser_never_raises(body: bytes) -> None:
    result = parse_body(body)
    assert isinstance(result, PushEvent | Invalid)
    if isinstance(result, PushEvent):
        assert result.run_uid.isascii()
        assert result.run_uid.isprintable()
        assert result.error is None or len(result.error) <= ERROR_MAX_CHARS
