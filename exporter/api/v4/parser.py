"""What the exporter reads from the v4 API: runs of actions, parsed tolerantly like v3's (a bad item
is skipped and counted, never the page), with the status mapped onto the status guide."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Final

from exporter.api.adapter import ReadRun
from exporter.api.v4.statuses import V4_FAILED_ON_INPUT, V4_INPUT_ERROR_PATTERNS, V4_STATUS_MAP
from exporter.failures import ErrorReader
from exporter.families import INVALID_ITEM, INVALID_TIMESTAMP
from exporter.parsing import (
    Parsed,
    Run,
    identified_items,
    load_json,
    load_run_object,
    new_run,
)
from exporter.statuses import NEEDS_ACTION_STATUSES, TERMINAL_STATUSES, UNKNOWN
from exporter.text import clean_identifier
from exporter.timestamps import InvalidTimestamp, read_timestamp
from exporter.unknown_statuses import UnknownStatuses

_API_STATUS: Final = {status: sys.intern(status.lower()) for status in V4_STATUS_MAP}
_INPUT_PATTERNS: Final = tuple((key, re.compile(p, re.IGNORECASE)) for key, p in V4_INPUT_ERROR_PATTERNS)
_TIMES: Final = ("started_at", "finished_at", "created_at", "updated_at", "postponed_until")
_ERROR_TEXT_MAX: Final = 1000  # only the start of a long error message is searched
#: Errors read without a workspace's API key to redact (tests, tools); sources pass their own reader.
_NO_KEY: Final = ErrorReader()


@dataclass(frozen=True, slots=True)
class V4Item:
    """One listed run: the run as the state keeps it, its action (the workflow labels) and when it
    last changed (the listing's sort key; ``None`` when the API did not say)."""

    run: Run
    action: str
    updated_at: float | None


def failed_on_input(last_error: object) -> bool:
    """Whether a FAILED run's ``last_error`` points at its input or parameters."""
    if not isinstance(last_error, dict):
        return False
    for key, pattern in _INPUT_PATTERNS:
        value = last_error.get(key)
        if isinstance(value, str) and pattern.search(value[:_ERROR_TEXT_MAX]):
            return True
    return False


def v4_status(raw: object, last_error: object, unknown: UnknownStatuses) -> tuple[str, str]:
    """(guide status, api_status label) of a v4 wire status. Exact UPPERCASE values are the API's;
    other casings are accepted. Anything else is ``unknown`` (and noted in ``unknown``)."""
    key = raw.strip().upper() if isinstance(raw, str) else ""
    status = V4_STATUS_MAP.get(key)
    if status is None:
        unknown.note(raw)
        return UNKNOWN, UNKNOWN
    if key == "FAILED" and failed_on_input(last_error):
        status = V4_FAILED_ON_INPUT
    return status, _API_STATUS[key]


def parse_v4_runs(
    payload: object, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> Parsed[V4Item]:
    """``GET /v4/runs``: a bare array of run objects. A run that needs action keeps its ``last_error``
    as ``errors`` reads it."""
    now = time.time() if now is None else now
    parsed: Parsed[V4Item] = Parsed()
    for index, item, uid in identified_items(payload, "run", parsed):
        action = clean_identifier(item.get("action_name"))
        if action is None:
            parsed.skip(INVALID_ITEM, f"run {index} has no usable action_name")
            continue
        try:
            started, finished, created, updated, postponed = (
                read_timestamp(item.get(key), now) for key in _TIMES
            )
        except InvalidTimestamp as error:
            parsed.skip(INVALID_TIMESTAMP, f"run {index} has a timestamp that is {error}")
            continue
        last_error = item.get("last_error")
        status, api_status = v4_status(item.get("status"), last_error, unknown)
        if finished is None and status in TERMINAL_STATUSES:
            finished = updated
        run_error = errors.v4(last_error) if status in NEEDS_ACTION_STATUSES else None
        run = new_run(uid, "", status, api_status, started, finished, created, postponed, run_error)
        changed = updated if updated is not None else _latest(started, finished, created)
        parsed.items.append(V4Item(run, sys.intern(action), changed))
    return parsed


def _latest(*moments: float | None) -> float | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def parse_v4_runs_body(
    body: bytes, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> Parsed[V4Item]:
    """``parse_v4_runs`` of a response body; raises ``BadResponse`` when it is not a JSON array."""
    return parse_v4_runs(load_json(body), unknown, now, errors)


def parse_v4_run_body(
    body: bytes, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> ReadRun | None:
    """``GET /v4/runs/{run_uid}``: one run object (as listed), with its action; None when the run
    cannot be understood; raises ``BadResponse`` when the body is not a JSON object."""
    payload = load_run_object(body)
    parsed = parse_v4_runs([payload], unknown, now, errors)
    if not parsed.items:
        return None
    item = parsed.items[0]
    return ReadRun(item.run, item.action)
