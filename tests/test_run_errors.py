"""Run errors (issue 17): each needs-action run's error, made safe, and its cause, from the simulator over
loopback to the page, /api/v1/status, the ``error`` label, ``captaindata_run_failures_total`` and the
state directory; planted secrets appear nowhere (logs at debug level included)."""

from __future__ import annotations

import html
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.failures import (
    ERROR_MAX_CHARS,
    REASONS,
    V3_PATTERNS,
    V4_LABELS,
    ErrorReader,
    classify_message,
)
from exporter.families import RUN_FAILURE_REASONS
from exporter.parsing import RunError
from exporter.persist.codec import export_workflow, restore_workspace
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.simulator import health as simulated_health
from exporter.simulator.errors import PLANTED, V3_ERRORS, V4_ERRORS, hostile_errors
from exporter.simulator.scenarios import build_demo_simulator
from exporter.simulator.v4 import V4Api
from exporter.simulator.v4demo import populate_demo_v4
from exporter.state import WorkspaceState
from exporter.status_view import build_status
from exporter.statuses import NEEDS_ACTION_STATUSES, PAUSED
from tests.conftest import API_KEY, ConfigFactory
from tests.support.exporter_proc import running_exporter
from tests.support.metrics import ScrapedMetrics
from tests.support.net import wait_until
from tests.support.sim_server import running_simulator

FAILURES = "captaindata_run_failures_total"
NEEDS_ACTION = "captaindata_run_needs_action"
COOKIE_ERROR = V3_ERRORS["paused"][0][2]
#: Every planted secret, and a fragment of each that must not survive either.
SECRETS = [*PLANTED.values(), API_KEY, API_KEY[:24], API_KEY[-24:], PLANTED["li_at"][10:40]]


def leaks(text: str) -> list[str]:
    """The planted secrets found in ``text`` (case-insensitively, in raw and JSON-escaped spellings)."""
    folded = text.lower()
    return [s for s in SECRETS if s.lower() in folded or json.dumps(s)[1:-1].lower() in folded]


# ---------------------------------------------------------------- cleaning and classifying


def test_clean_keeps_plain_errors_and_bounds_the_rest() -> None:
    reader = ErrorReader([API_KEY])
    assert reader.clean(COOKIE_ERROR) == COOKIE_ERROR
    cleaned = reader.clean("Invalid\x00 input:\x1b[31m the\r\nURL\u2028 is\tbad\x7f\ud800\u202e " + "x" * 500)
    assert cleaned.startswith("Invalid input:[31m the URL is bad x")
    assert len(cleaned) == ERROR_MAX_CHARS
    assert cleaned.endswith("\u2026")
    assert cleaned.encode("utf-8")  # no lone surrogate left


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (f'li_at={PLANTED["li_at"]}; JSESSIONID="{PLANTED["jsessionid"]}"', "li_at=<redacted>"),
        (f"Authorization: Bearer {PLANTED['bearer']}", "Bearer <redacted>"),
        (f'{{"access_token": "{PLANTED["token"]}"}}', '"access_token": "<redacted>"'),
        (f"x-api-key {API_KEY}", "x-api-key <redacted>"),
        (f"the key {API_KEY.upper()} was refused", "the key <redacted> was refused"),
        ("session AQEDARsomething0123456789abcdefghijkLMNOP expired", "session <redacted> expired"),
        ("cookie: bcookie=v=2&abc; lidc=b=VB42:s=V", "lidc=<redacted>"),
    ],
)
def test_clean_redacts_what_looks_like_a_secret(raw: str, kept: str) -> None:
    cleaned = ErrorReader([API_KEY]).clean(raw)
    assert kept in cleaned, cleaned
    assert not leaks(cleaned), cleaned


def test_the_configured_key_is_redacted_in_every_spelling() -> None:
    key = "short-key'\"with\\quotes"  # not hex nor base64: only the configured key's forms catch it
    reader = ErrorReader([key])
    for spelling in (key, json.dumps(key)[1:-1], repr(key)[1:-1]):
        assert "quotes" not in reader.clean(f"request with {spelling} failed"), spelling


def test_long_words_and_uids_stay() -> None:
    text = (
        "Error in salesnavigator-search-leads-for-company-accounts run 5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19"
    )
    assert ErrorReader().clean(text) == text


@pytest.mark.parametrize(
    ("status", "reason", "text"), [(s, r, t) for s, entries in V3_ERRORS.items() for r, _, t in entries]
)
def test_every_simulated_v3_error_reads_as_its_cause(status: str, reason: str, text: str) -> None:
    error = ErrorReader().v3(text)
    assert error is not None
    assert error.reason == reason
    assert error.text == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [(simulated_health.COOKIE_ERROR, "account_session"), (simulated_health.CREDITS_ERROR, "credits")],
)
def test_the_simulated_health_pauses_read_as_their_cause(text: str, reason: str) -> None:
    """Credits and account health (issue 17): the simulator pauses runs of an expired account and of a
    workspace out of credits with these errors."""
    error = ErrorReader().v3(text)
    assert error is not None
    assert error.reason == reason


@pytest.mark.parametrize(
    ("status", "reason", "last_error"),
    [(s, r, e) for s, entries in V4_ERRORS.items() for r, _, e in entries],
)
def test_every_simulated_v4_error_reads_as_its_cause(
    status: str, reason: str, last_error: dict[str, Any]
) -> None:
    error = ErrorReader().v4(last_error)
    assert error is not None
    assert error.reason == reason
    assert error.text == f"{last_error['label']}: {last_error['message']}"


@pytest.mark.parametrize(("status", "reason", "text"), hostile_errors(API_KEY))
def test_hostile_texts_keep_their_cause_and_lose_their_secrets(status: str, reason: str, text: str) -> None:
    error = ErrorReader([API_KEY]).v3(text)
    assert error is not None
    assert error.reason == reason
    assert len(error.text) <= ERROR_MAX_CHARS
    assert not leaks(error.text), error.text


def test_the_data_file_is_consistent() -> None:
    assert tuple(REASONS) == RUN_FAILURE_REASONS
    assert set(V4_LABELS.values()) <= set(RUN_FAILURE_REASONS)
    assert [reason for reason, _ in V3_PATTERNS]
    assert all(r in REASONS for r, _ in V3_PATTERNS)
    assert all(entry.action and entry.title and entry.meaning for entry in REASONS.values())


def test_no_error_costs_nothing_and_equal_errors_share_one_object() -> None:
    reader = ErrorReader()
    assert reader.v3(None) is None
    assert reader.v3("") is None
    assert reader.v3("  ") is None
    assert reader.v3(7) is None
    assert reader.v4(None) is None
    assert reader.v4({"label": None, "message": None}) is None
    assert reader.v3(COOKIE_ERROR) is reader.v3(COOKIE_ERROR)


def test_an_unknown_v4_label_is_other_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reader = ErrorReader([API_KEY], "acme")
    with caplog.at_level(logging.WARNING, logger="exporter.failures"):
        for _ in range(3):
            assert reader.v4({"label": "BRAND_NEW_LABEL", "message": "m"}) == RunError(
                "BRAND_NEW_LABEL: m", "other"
            )
        assert reader.v4({"label": "brand_new_label", "message": "other text"}) is not None
    assert [r.label for r in caplog.records] == ["BRAND_NEW_LABEL"]  # type: ignore[attr-defined]


def test_unknown_labels_are_logged_a_bounded_number_of_times(caplog: pytest.LogCaptureFixture) -> None:
    reader = ErrorReader()
    with caplog.at_level(logging.WARNING, logger="exporter.failures"):
        for index in range(500):
            reader.v4({"label": f"LABEL_{index}", "message": "m"})
    assert 1 < len(caplog.records) <= 60


_text = st.text(
    st.characters(codec="utf-8") | st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=400
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=_text, after=_text, secret=st.sampled_from([*PLANTED.values(), API_KEY]), form=st.integers(0, 3)
)
def test_fuzz_no_planted_secret_survives(before: str, after: str, secret: str, form: int) -> None:
    planted = [secret, f"li_at={secret}", f"Bearer {secret}", json.dumps({"token": secret})][form]
    reader = ErrorReader([API_KEY])
    text = before + " " + planted + " " + after
    cleaned = reader.clean(text)
    assert len(cleaned) <= ERROR_MAX_CHARS
    assert not leaks(cleaned), (text, cleaned)
    error = reader.v3(text)
    assert error is not None
    assert error.reason in RUN_FAILURE_REASONS
    assert not leaks(error.text)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | _text,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["label", "message", "x"]), inner)
        ),
        max_leaves=8,
    )
)
def test_fuzz_any_last_error_reads_safely(last_error: object) -> None:
    reader = ErrorReader([API_KEY])
    error = reader.v4(last_error)
    assert error is None or (error.reason in RUN_FAILURE_REASONS and len(error.text) <= ERROR_MAX_CHARS)
    assert classify_message(str(last_error)) in RUN_FAILURE_REASONS


# ---------------------------------------------------------------- the real exporter and simulator


def _get(url: str) -> str:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.text


def _expected_failures(extra: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter([(status, reason) for status, reason, _ in hostile_errors(API_KEY)] + extra)


def test_errors_reach_every_view_and_secrets_none_over_loopback(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow("wf-e", "Extract profiles")
    sim.add_run("wf-e", "finished", start_time=time.time() - 600, finish_time=time.time() - 300)
    config = config_dict(state={"path": str(tmp_path / "state")}, log={"level": "debug"})
    with running_exporter(config, tmp_path / "first") as exporter:
        wait_until(lambda: 'workflow_uid="wf-e"' in exporter.metrics(), 30, "the baseline poll")
        # After the baseline: runs enter needs-action statuses with hostile and ordinary errors.
        sim.add_hostile_error_runs("wf-e")
        cookie_run = sim.add_run("wf-e", PAUSED, name="Follow-up messages", start_time=time.time() - 5)
        expected = _expected_failures([(PAUSED, "account_session")])

        def counted() -> bool:
            metrics = ScrapedMetrics(exporter.metrics())
            return sum(s.value for s in metrics.find(FAILURES, workflow_uid="wf-e")) == sum(expected.values())

        wait_until(counted, 30, "the failures counted")
        metrics_text = exporter.metrics()
        metrics = ScrapedMetrics(metrics_text)
        found = {(s.label("status"), s.label("reason")): s.value for s in metrics.find(FAILURES)}
        assert found == {key: float(value) for key, value in expected.items()}
        (series,) = metrics.find(NEEDS_ACTION, run_uid=cookie_run)
        assert series.label("error") == COOKIE_ERROR
        errors = [s.label("error") for s in metrics.find(NEEDS_ACTION)]
        assert all(len(e) <= ERROR_MAX_CHARS for e in errors)
        assert "<redacted>" in " ".join(errors)

        status = json.loads(_get(f"{exporter.url}/api/v1/status"))
        (row,) = [r for r in status["needs_action"] if r["run_uid"] == cookie_run]
        assert (row["error"], row["reason"]) == (COOKIE_ERROR, "account_session")
        assert row["reason_action"] == REASONS["account_session"].action
        page = _get(f"{exporter.url}/")
        assert html.escape(COOKIE_ERROR) in page
        assert REASONS["account_session"].title in page
        openmetrics = httpx.get(
            f"{exporter.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
        ).text
        before_restart = found

        for where, text in (
            ("/metrics", metrics_text),
            ("OpenMetrics", openmetrics),
            ("/api/v1/status", json.dumps(status)),
            ("/", page),
            ("the debug log", exporter.log()),
        ):
            assert not leaks(text), where
    state_files = [path for path in (tmp_path / "state").rglob("*") if path.is_file()]
    assert state_files
    for path in state_files:
        assert not leaks(path.read_bytes().decode("utf-8", "replace")), path

    # The counts survive a restart with the status changes, neither reset nor counted again.
    with running_exporter(config, tmp_path / "second") as exporter:
        wait_until(lambda: FAILURES in exporter.metrics(), 30, "the restored counters")
        sim_reads = len(sim.request_log)
        wait_until(lambda: len(sim.request_log) > sim_reads + 4, 30, "more polls")
        metrics = ScrapedMetrics(exporter.metrics())
        assert {
            (s.label("status"), s.label("reason")): s.value for s in metrics.find(FAILURES)
        } == before_restart
        assert not leaks(exporter.log())


async def test_v4_errors_and_labels_over_loopback(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(seed=3)
    sim.add_workspace("ws-v4", API_KEY)
    api = V4Api.of(sim)
    api.add_run("enrich_company", "SUCCEEDED")
    with running_simulator(sim) as url:
        config = {
            "workspaces": [
                {
                    "name": "growth",
                    "api_version": "v4",
                    "api_key": API_KEY,
                    "base_url": url,
                    "v4": {"page_size": 10},
                }
            ],
            "poll": {"interval": "60s"},
            "api": {"requests_per_second": 500, "burst": 500, "retry_backoff": "50ms"},
        }
        published, (poller,) = build(parse_config(config))
        try:
            assert await poller.poll_once()
            hostile = api.add_hostile_error_runs("enrich_company")
            cookie = api.add_run(
                "enrich_company",
                "BLOCKED",
                last_error={"label": "ACCOUNT_SESSION_EXPIRED", "message": "Refresh the account's cookies."},
            )
            with caplog.at_level(logging.WARNING, logger="exporter.failures"):
                assert await poller.poll_once()
                assert await poller.poll_once()
            text = (await published.exposition(openmetrics=False, gzip=False)).decode()
        finally:
            await poller.aclose()
    metrics = ScrapedMetrics(text)
    (series,) = metrics.find(NEEDS_ACTION, run_uid=cookie)
    assert series.label("error") == "ACCOUNT_SESSION_EXPIRED: Refresh the account's cookies."
    assert metrics.value(FAILURES, status=PAUSED, reason="account_session") == 1 + sum(
        1 for status, reason, _ in hostile_errors(API_KEY) if status == PAUSED and reason == "account_session"
    )
    assert metrics.value(FAILURES, status=PAUSED, reason="other") == 1  # the unknown, hostile label
    assert len(hostile) == len(hostile_errors(API_KEY)) + 1
    assert not leaks(text)
    assert not leaks(caplog.text)
    assert not leaks(json.dumps(build_status(published.workspaces())))
    assert [r.getMessage() for r in caplog.records if "label" in r.getMessage()] != []


async def test_the_demo_paused_runs_show_the_cookie_error() -> None:
    sim = build_demo_simulator(seed=1)
    populate_demo_v4(sim, sim.add_workspace("ws-demo-v4", API_KEY))
    v3_key = next(ws.api_key for ws in sim.workspaces.values() if ws.api_key != API_KEY)
    v3_uid = next(uid for uid, ws in sim.workspaces.items() if ws.api_key == v3_key)
    with running_simulator(sim) as url:
        config = {
            "workspaces": [
                {"name": "demo", "workspace_uid": v3_uid, "api_key": v3_key, "base_url": url},
                {"name": "demo4", "api_version": "v4", "api_key": API_KEY, "base_url": url},
            ],
            "api": {"requests_per_second": 500, "burst": 500, "retry_backoff": "50ms"},
        }
        published, pollers = build(parse_config(config))
        try:
            for poller in pollers:
                assert await poller.poll_once()
        finally:
            for poller in pollers:
                await poller.aclose()
    rows = [row for row in build_status(published.workspaces())["needs_action"] if row["status"] == PAUSED]
    assert {row["workspace"] for row in rows} == {"demo", "demo4"}
    assert all(row["reason"] in ("account_session", "account_limit") for row in rows)
    assert {row["reason"] for row in rows if row["workspace"] == "demo"} == {"account_session"}
    assert any("cookie" in row["error"].lower() for row in rows if row["workspace"] == "demo4")


# ---------------------------------------------------------------- the state directory


def test_failures_persist_with_the_workflow_and_old_records_restore_zeros() -> None:
    state = WorkspaceState("acme")
    state.workflows_listed([])
    from exporter.parsing import Workflow

    state.workflows_listed([Workflow("wf", "W")])
    tracked = state.workflows["wf"]
    tracked.failures[(PAUSED, "account_session")] = 3
    tracked.failures[("warning", "input")] = 1
    record = export_workflow(state, "wf")
    assert json.loads(json.dumps(record))["failures"] == [
        ["paused", "account_session", 3],
        ["warning", "input", 1],
    ]
    restored = restore_workspace("acme", {"listed_once": True}, [record])
    assert restored.workflows["wf"].failures == tracked.failures
    assert dict(restored.snapshot.workflows[0].failures) == tracked.failures
    old = {key: value for key, value in record.items() if key != "failures"}
    assert restore_workspace("acme", {}, [old]).workflows["wf"].failures == {}
    hostile = dict(
        record, failures=[["paused", "nope", 1], [["x"], "input", 1], ["warning", "input", -1], "x"]
    )
    assert restore_workspace("acme", {}, [hostile]).workflows["wf"].failures == {}
    assert set(NEEDS_ACTION_STATUSES) == {"warning", "shutdown", "paused"}
