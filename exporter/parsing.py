"""Tolerant parsing shared by every API version: the workflows and runs the state keeps, a page's
items and skips, and the checks every listing makes.

A bad item is skipped and counted (``Parsed.skipped``), never the page; only a payload that is not
what the endpoint returns at all raises ``BadResponse``. Parsing is pure and thread-safe (the unknown
status registry locks), so it runs in a worker thread.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import msgspec

from exporter.families import INVALID_ITEM, INVALID_UID
from exporter.statuses import TERMINAL_STATUSES
from exporter.text import clean_identifier

T = TypeVar("T")


class BadResponse(ValueError):
    """The API answered 200 with something that is not what the endpoint returns."""


@dataclass(frozen=True, slots=True)
class Workflow:
    uid: str
    name: str  # valid UTF-8, bounded length


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run needs action (exporter/failures.py): its error, cleaned, redacted and at most 200
    characters ("" when the API gave only a label or nothing readable), and the bounded reason. One
    object is shared by every run with the same error."""

    text: str
    reason: str  # a value of families.RUN_FAILURE_REASONS


@dataclass(frozen=True, slots=True)
class Run:
    uid: str
    name: str  # valid UTF-8, bounded length
    status: str  # the guide's status (STATUS_LABEL_VALUES), interned
    api_status: str  # the API's own value lower-cased, from a bounded vocabulary, interned
    start_time: float | None  # finite and within the sane range, else None
    finish_time: float | None
    scheduled_time: float | None
    postponed_until: float | None = None  # v4 only
    # run errors: kept only for a run that needs action and has an error (None otherwise)
    error: RunError | None = None

    @property
    def status_time(self) -> float | None:
        """When the run was last seen entering its status: the finish time for terminal statuses,
        the start (or scheduled) time otherwise."""
        if self.status in TERMINAL_STATUSES:
            return self.finish_time
        return self.start_time if self.start_time is not None else self.scheduled_time

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.finish_time is None or self.finish_time < self.start_time:
            return None
        return self.finish_time - self.start_time


# Building a frozen dataclass calls object.__setattr__ once per field; setting the slots through their
# descriptors builds the same object about twice as fast, which counts at 100k runs a poll.
# (tests/test_model.py checks that new_run sets every field.)
_new_object = object.__new__
_set_uid = Run.__dict__["uid"].__set__
_set_name = Run.__dict__["name"].__set__
_set_status = Run.__dict__["status"].__set__
_set_api_status = Run.__dict__["api_status"].__set__
_set_start = Run.__dict__["start_time"].__set__
_set_finish = Run.__dict__["finish_time"].__set__
_set_scheduled = Run.__dict__["scheduled_time"].__set__
_set_postponed = Run.__dict__["postponed_until"].__set__
_set_error = Run.__dict__["error"].__set__


def new_run(
    uid: str,
    name: str,
    status: str,
    api_status: str,
    start_time: float | None,
    finish_time: float | None,
    scheduled_time: float | None,
    postponed_until: float | None = None,
    error: RunError | None = None,
) -> Run:
    """``Run(...)``, faster (the parsers' hot path); the arguments are trusted as they are."""
    run: Run = _new_object(Run)
    _set_uid(run, uid)
    _set_name(run, name)
    _set_status(run, status)
    _set_api_status(run, api_status)
    _set_start(run, start_time)
    _set_finish(run, finish_time)
    _set_scheduled(run, scheduled_time)
    _set_postponed(run, postponed_until)
    _set_error(run, error)
    return run


@dataclass
class Parsed(Generic[T]):
    """The items of a page that could be understood, and how many were skipped, by reason."""

    items: list[T] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # SKIP_REASONS -> count
    first_skip: str = ""  # what the first skipped item was, for one log line (no item content)

    def skip(self, reason: str, why: str) -> None:
        if not self.skipped:
            self.first_skip = f"{reason}: {why}"
        self.skipped[reason] += 1


class Unreadable:
    """An item of a JSON array that is valid JSON but more than Python's parser takes (nested too
    deeply, or an integer of too many digits): skipped and counted as ``invalid_item``."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


_BOM: Final = b"\xef\xbb\xbf"


def load_json(body: bytes) -> object:
    """``body`` as a JSON value; raises ``BadResponse`` (and nothing else) when it is not one. A JSON
    array of which some items only are too deep or too long for Python's parser keeps its other
    items, and has an ``Unreadable`` in place of each of those.

    msgspec reads the body first: two to three times as fast as ``json.loads`` with the UTF-8
    decoding it needs, so a parse holds the GIL (and the event loop waits) that much less during a big
    poll. It gives the same values as ``json.loads`` for every document it accepts (big integers
    exact, floats correctly rounded, the last of duplicate keys; tests/test_parsers_fuzz.py compares
    them). What it refuses (``NaN`` and ``Infinity``, lone surrogates, an integer of more than 4,300
    digits, anything malformed) goes to ``json``, which says what is wrong or keeps the readable items.
    Both stop at Python's recursion limit, msgspec three levels deeper: an item nested about 995 deep
    may be read rather than skipped."""
    try:
        return msgspec.json.decode(body[len(_BOM) :] if body.startswith(_BOM) else body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return load_json_slowly(body)


def load_json_slowly(body: bytes) -> object:
    """``load_json`` with Python's ``json`` alone (what ``load_json`` falls back on)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadResponse(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadResponse(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except (RecursionError, ValueError):  # nested too deeply; Python's limit on an integer's digits
        return _items_one_by_one(text)


def load_run_object(body: bytes) -> dict[str, object]:
    """``body`` as the one JSON object of a one-run read; raises ``BadResponse`` when it is not one."""
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise BadResponse("expected a JSON object (one run)")
    return payload


# A JSON string, or a character that opens, closes or separates values. A string left open runs to the end
# of the text (the array then does not end): were it no token, every later quote would start another scan
# to the end (quadratic).
_TOKENS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[\[\]{},]', re.DOTALL)


def _items_one_by_one(text: str) -> list[object]:
    """The items of the JSON array ``text``, each parsed alone (linear in ``text``). Raises
    ``BadResponse`` when ``text`` is not an array, or when one of its items is not valid JSON."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        raise BadResponse("invalid JSON: nested too deeply, or a number has too many digits")
    items: list[object] = []
    depth = 0
    begin = start + 1
    end = -1
    for token in _TOKENS.finditer(text, start):
        mark = token.group()
        if mark in "[{":
            depth += 1
        elif mark in "]}":
            depth -= 1
            if depth == 0:
                end = token.start()
                break
        elif mark == "," and depth == 1:
            items.append(_one(text[begin : token.start()]))
            begin = token.end()
    if end < 0 or text[end + 1 :].strip():
        raise BadResponse("invalid JSON: the array does not end")
    last = text[begin:end]
    if last.strip() or items:
        items.append(_one(last))
    return items


def _one(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadResponse(f"invalid JSON: {error.msg}") from None
    except RecursionError:
        return Unreadable("nested too deeply")
    except ValueError:
        return Unreadable("a number with too many digits")


def _array(payload: object, what: str) -> list[object]:
    if not isinstance(payload, list):
        raise BadResponse(f"expected a JSON array of {what}, got {_json_type(payload)}")
    return payload


def identified_items(
    payload: object, what: str, parsed: Parsed[T]
) -> Iterator[tuple[int, dict[str, object], str]]:
    """(index, object, uid) for each object of the JSON array ``payload`` that has a usable uid; the
    other items are counted in ``parsed`` as skips. ``what`` is singular: "run", "workflow"."""
    for index, item in enumerate(_array(payload, f"{what}s")):
        if not isinstance(item, dict):
            shown = item.why if isinstance(item, Unreadable) else f"a JSON {_json_type(item)}"
            parsed.skip(INVALID_ITEM, f"{what} {index} is {shown}")
            continue
        uid = clean_identifier(item.get("uid"))
        if uid is None:
            parsed.skip(INVALID_UID, f"{what} {index} has no usable uid")
            continue
        yield index, item, uid


_JSON_TYPES: Final = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    type(None): "null",
    int: "number",
    float: "number",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value)) or type(value).__name__
