"""What the exporter reads from the v3 API: workflows and runs, parsed tolerantly (see
``exporter/parsing.py``)."""

from __future__ import annotations

import sys
import time
from typing import Final

from exporter.api.adapter import ReadRun
from exporter.api.v3.statuses import v3_statuses
from exporter.failures import ErrorReader
from exporter.families import INVALID_TIMESTAMP, INVALID_UID
from exporter.parsing import (
    Parsed,
    Run,
    Workflow,
    identified_items,
    load_json,
    load_run_object,
    new_run,
)
from exporter.statuses import NEEDS_ACTION_STATUSES
from exporter.text import clean_identifier, clean_text, plain_identifier
from exporter.timestamps import InvalidTimestamp, read_timestamp
from exporter.unknown_statuses import UnknownStatuses

_RUN_TIMES: Final = ("start_time", "finish_time", "scheduled_time")
#: Errors read without a workspace's API key to redact (tests, tools); sources pass their own reader.
_NO_KEY: Final = ErrorReader()


def parse_workflows(payload: object) -> Parsed[Workflow]:
    """``GET /v3/workflows``: a bare array of workflow objects. A uid listed twice counts once (the
    first); a workflow without a usable uid is skipped, and so is one whose uid is not a plain
    identifier (it goes into request paths); a missing name falls back to the uid."""
    parsed: Parsed[Workflow] = Parsed()
    seen: set[str] = set()
    for index, item, uid in identified_items(payload, "workflow", parsed):
        if not plain_identifier(uid):
            parsed.skip(INVALID_UID, f"workflow {index}'s uid is not a plain identifier")
            continue
        if uid in seen:
            continue
        seen.add(uid)
        raw_name = item.get("name")
        name = clean_text(raw_name) if isinstance(raw_name, str) and raw_name else uid
        parsed.items.append(Workflow(uid=sys.intern(uid), name=sys.intern(name)))
    return parsed


def parse_runs(
    payload: object, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> Parsed[Run]:
    """``GET /v3/workflows/{uid}/jobs``: a bare array of run ("job") objects. ``now`` bounds how far
    in the future a timestamp may lie (default: the current time). A run that needs action keeps its
    ``error_message`` as ``errors`` reads it."""
    now = time.time() if now is None else now
    parsed: Parsed[Run] = Parsed()
    for index, item, uid in identified_items(payload, "run", parsed):
        try:
            start = read_timestamp(item.get("start_time"), now)
            finish = read_timestamp(item.get("finish_time"), now)
            scheduled = read_timestamp(item.get("scheduled_time"), now)
        except InvalidTimestamp:
            parsed.skip(INVALID_TIMESTAMP, f"run {index}'s {_unreadable_time(item, now)}")
            continue
        raw_name = item.get("name")
        status, api_status = v3_statuses(item.get("status"), unknown)
        # Not interned: the state keeps the names of needs-action runs only (exporter/runstore.py), and
        # Python's table of interned strings grows with every distinct name and never shrinks.
        name = clean_text(raw_name) if type(raw_name) is str else ""
        error = errors.v3(item.get("error_message")) if status in NEEDS_ACTION_STATUSES else None
        parsed.items.append(new_run(uid, name, status, api_status, start, finish, scheduled, None, error))
    return parsed


def _unreadable_time(item: dict[str, object], now: float) -> str:
    """Which of a run's timestamps is unreadable, and what it is instead."""
    for key in _RUN_TIMES:
        try:
            read_timestamp(item.get(key), now)
        except InvalidTimestamp as error:
            return f"{key} is {error}"
    return "timestamp is unreadable"


def parse_workflows_body(body: bytes) -> Parsed[Workflow]:
    """``parse_workflows`` of a response body; raises ``BadResponse`` when it is not a JSON array."""
    return parse_workflows(load_json(body))


def parse_runs_body(
    body: bytes, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> Parsed[Run]:
    """``parse_runs`` of a response body; raises ``BadResponse`` when it is not a JSON array."""
    return parse_runs(load_json(body), unknown, now, errors)


def parse_run_body(
    body: bytes, unknown: UnknownStatuses, now: float | None = None, errors: ErrorReader = _NO_KEY
) -> ReadRun | None:
    """``GET /v3/jobs/{job_uid}``: one run object (as listed), with its ``workflow_uid``; None when
    the run cannot be understood; raises ``BadResponse`` when the body is not a JSON object."""
    payload = load_run_object(body)
    parsed = parse_runs([payload], unknown, now, errors)
    workflow_uid = clean_identifier(payload.get("workflow_uid"))
    if not parsed.items or workflow_uid is None:
        return None
    return ReadRun(parsed.items[0], sys.intern(workflow_uid))
