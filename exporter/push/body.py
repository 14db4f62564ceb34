"""A push body recognised by its shape: a v3 webhook or a v4 callback, or invalid. Bounded: the
nesting depth is checked before the JSON is parsed, so no body can exhaust the stack."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, Literal

from exporter.text import ELLIPSIS, clean_text

MAX_DEPTH: Final = 64
#: Longest error text kept from a v3 Failed webhook (characters; cut with an ellipsis).
ERROR_MAX_CHARS: Final = 500
STATUS_MAX_CHARS: Final = 40
# A run uid goes into an API path (GET /v3/jobs/{uid}, GET /v4/runs/{uid}): a conservative alphabet.
_UID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# A JSON string (an unrolled loop: no backtracking). One left open runs to the end of the body (as far as
# json's parser reads it): were it refused, every later quote would start a scan to the end (quadratic).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_LAST_WORD: Final = re.compile(r"\s\S*\Z")
_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"[]{}")
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes

ApiKind = Literal["v3", "v4"]


@dataclass(frozen=True)
class PushEvent:
    """What a push says: which run changed (the read decides how). ``workflow_uid`` and ``status`` are
    hints only; ``error`` is a v3 Failed webhook's error text, cleaned and bounded (never redacted
    here: the receiver redacts). ``received_at`` is the receiver's monotonic clock."""

    api: ApiKind
    run_uid: str
    workflow_uid: str = ""
    status: str = ""
    error: str | None = None
    received_at: float = 0.0


@dataclass(frozen=True)
class Invalid:
    """A body that is not a push; ``reason`` is a fixed phrase (never a piece of the body)."""

    reason: str


def nesting_depth_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when ``raw`` nests arrays/objects deeper than ``limit``: strings are removed, each opening
    bracket becomes +1 and each closing one -1, and the deepest running sum is the depth json's
    parser would reach (it stops at the first mismatch, never deeper). Linear, and all of it in C."""
    brackets = _STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(brackets).cast("b")), default=0) > limit


def _status(value: object) -> str:
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if 0 < len(value) <= STATUS_MAX_CHARS and value.isascii() and value.isprintable() else ""


def _uid(value: object) -> str | None:
    return value if isinstance(value, str) and _UID.fullmatch(value) else None


def _v3_event(body: dict[str, object]) -> str:
    """Created, Succeeded or Failed, from the payload (it carries no status field of its own)."""
    if body.get("error") not in (None, ""):
        return "failed"
    message = body.get("message")
    text = message.lower() if isinstance(message, str) and len(message) <= 500 else ""
    if "fail" in text:
        return "failed"
    if "success" in text or "finished" in text:
        return "succeeded"
    if "creat" in text or "start" in text:
        return "created"
    return _status(body.get("status")).lower()


def _v3(body: dict[str, object]) -> PushEvent | Invalid:
    run_uid = _uid(body.get("job_uid"))
    if run_uid is None:
        return Invalid("job_uid is not a run uid")
    workflow_uid = _uid(body.get("workflow_uid")) or ""
    return PushEvent("v3", run_uid, workflow_uid, _v3_event(body), _error(body.get("error")))


def _error(value: object) -> str | None:
    """A Failed webhook's error, cleaned and bounded. When it is cut, its last word goes too: it may be the
    start of a secret that redaction (in the receiver, then the run's error reader) no longer recognises."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if len(text) > ERROR_MAX_CHARS:
        head = text[: ERROR_MAX_CHARS - 1]
        last_word = _LAST_WORD.search(head)
        text = head[: last_word.start() if last_word is not None else 0].rstrip() + ELLIPSIS
    return clean_text(text, ERROR_MAX_CHARS)


def _v4(run: dict[str, object]) -> PushEvent | Invalid:
    run_uid = _uid(run.get("run_uid"))
    if run_uid is None:
        return Invalid("run.run_uid is not a run uid")
    return PushEvent("v4", run_uid, status=_status(run.get("status")).upper())


def parse_body(raw: bytes) -> PushEvent | Invalid:
    """Recognise ``raw``: a v4 callback (``run.run_uid`` and ``run.status``) or a v3 webhook
    (``job_uid`` and ``workflow_uid``). Never raises."""
    if nesting_depth_exceeds(raw):
        return Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return Invalid("not JSON")
    if not isinstance(body, dict):
        return Invalid("not a JSON object")
    run = body.get("run")
    if isinstance(run, dict) and "run_uid" in run and "status" in run:
        return _v4(run)
    if "job_uid" in body and "workflow_uid" in body:
        return _v3(body)
    return Invalid("neither a v3 webhook nor a v4 callback")
