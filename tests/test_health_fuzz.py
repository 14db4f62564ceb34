"""Property-based tests of the credits and accounts parsers (issue 17): whatever the API sends, the
workspace and a page of accounts give bounded, finite, non-negative values and counted skips, or a
``BadResponse``; never another exception, and never a cookie, API key or password of an account."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.api.v3.side import parse_accounts_body, parse_workspace_body
from exporter.families import SIDE_SKIP_REASONS
from exporter.health import LABEL_MAX_CHARS, Account, Credits
from exporter.parsing import BadResponse
from exporter.text import UID_MAX_CHARS

NOW = 1767225600.0
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: What an account's secrets look like; the strategies plant them, the properties look for them.
SECRET_MARK = "S3CR3T"

any_text = st.text(st.characters(exclude_categories=()), max_size=30)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
)
times = st.one_of(
    st.none(),
    numbers,
    any_text,
    st.datetimes().map(lambda d: d.isoformat()),
    st.floats(min_value=NOW - 86400, max_value=NOW + 40 * 86400),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=8,
)
secrets = st.text(alphabet="abcdefABCDEF0123456789:-", min_size=1, max_size=20).map(lambda s: SECRET_MARK + s)
cookie_jars = st.dictionaries(
    st.sampled_from(["li_at", "JSESSIONID", "li_a", "bcookie"]), secrets, max_size=4
)
counts = st.one_of(numbers, json_values)

limit_objects = st.fixed_dictionaries(
    {},
    optional={
        "permalink": st.one_of(any_text, json_values),
        "limit_name": st.one_of(st.sampled_from(["connection requests", "messages"]), any_text, json_values),
        "item_scraped": counts,
        "limit_value": counts,
        "start_time_range": times,
        "end_time_range": times,
        "nbr_inputs_queued_next_seven_days": counts,
        "cookies": cookie_jars,
        "templates": json_values,
    },
)
account_objects = st.fixed_dictionaries(
    {"cookies": cookie_jars},
    optional={
        "uid": st.one_of(st.uuids().map(str), any_text, st.integers(), json_values),
        "name": st.one_of(any_text, json_values),
        "is_valid": st.one_of(st.booleans(), json_values),
        "limits": st.one_of(st.lists(st.one_of(limit_objects, json_values), max_size=4), json_values),
        "api_key": secrets,
        "password": secrets,
        "setup_at": times,
    },
)
account_pages = st.fixed_dictionaries(
    {},
    optional={
        "accounts": st.one_of(st.lists(st.one_of(account_objects, json_values), max_size=6), json_values),
        "next_page_exist": json_values,
        "number_total_acounts": counts,
        "integration": json_values,
        "cookies": cookie_jars,
    },
)
workspaces = st.fixed_dictionaries(
    {},
    optional={
        "tasks_left": counts,
        "tasks_max": counts,
        "tasks_used": counts,
        "current_month_start": times,
        "current_month_end": times,
        "plan_name": st.one_of(any_text, json_values),
        "name": any_text,
        "email": any_text,
    },
)


def _body(payload: object) -> bytes:
    return json.dumps(payload, allow_nan=True).encode("utf-8", "surrogatepass")


def _sane(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)


def _bounded_label(text: str) -> bool:
    return len(text) <= LABEL_MAX_CHARS and "\x00" not in text and text.encode("utf-8", "replace") is not None


@FUZZ
@given(st.one_of(workspaces, json_values))
@example({"tasks_left": float("nan"), "tasks_max": -1, "tasks_used": "12", "current_month_end": "soon"})
def test_the_workspace_parser_keeps_only_sane_values(payload: object) -> None:
    try:
        credits, skipped = parse_workspace_body(_body(payload), NOW)
    except BadResponse as error:
        message = str(error)
        assert not isinstance(payload, dict)
        assert SECRET_MARK not in message
        return
    assert isinstance(credits, Credits)
    for value in (credits.remaining, credits.limit, credits.used, credits.period_start, credits.period_end):
        assert _sane(value)
    assert _bounded_label(credits.plan)
    assert set(skipped) <= set(SIDE_SKIP_REASONS)


@FUZZ
@given(st.one_of(account_pages, json_values), st.sampled_from(["linkedin", "sales-navigator"]))
@example(
    {"accounts": [{"uid": "a", "cookies": {"li_at": SECRET_MARK + "x"}, "limits": [{"limit_value": 1e400}]}]},
    "linkedin",
)
def test_the_accounts_parser_keeps_only_the_exported_fields(payload: object, integration: str) -> None:
    try:
        page = parse_accounts_body(_body(payload), integration, NOW)
    except BadResponse as error:
        message = str(error)
        assert SECRET_MARK not in message
        return
    assert isinstance(payload, dict)
    assert set(page.skipped) <= set(SIDE_SKIP_REASONS)
    assert isinstance(page.next_page, bool)
    assert page.total is None or (isinstance(page.total, int) and page.total >= 0)
    for account in page.accounts:
        assert isinstance(account, Account)
        assert account.integration == integration
        assert 0 < len(account.uid) <= UID_MAX_CHARS
        assert _bounded_label(account.name)
        assert account.valid in (True, False, None)
        assert _sane(account.queued)
        names = [limit.name for limit in account.limits]
        assert len(names) == len(set(names))
        for limit in account.limits:
            assert limit.name.strip()
            assert _bounded_label(limit.name)
            assert _sane(limit.used)
            assert _sane(limit.value)
            assert _sane(limit.reset)
    # Nothing but the exported fields is kept: no secret in what the parser returns.
    assert SECRET_MARK not in repr(page.accounts)
