"""API timestamps: epoch seconds or milliseconds (numbers, or digits in a string), or ISO 8601
strings (naive ones are UTC).

Three outcomes, so a parser can count what it could not read:
- absent (``None``, missing, empty or blank string): ``None``;
- usable: finite epoch seconds within ``[EARLIEST, now + MAX_FUTURE]``; a value that parses but is
  non-finite or outside that range is treated as absent (``None``);
- present but unreadable (wrong type, junk text, a number too large for a float):
  ``read_timestamp`` raises ``InvalidTimestamp``; ``parse_timestamp`` gives ``None``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

#: 2015-01-01T00:00:00Z: nothing the exporter reads is older (Captain Data did not exist before).
EARLIEST: Final = 1420070400.0
#: How far in the future a timestamp may lie (clock skew, scheduled runs) before it is ignored.
MAX_FUTURE: Final = 86400.0

_EPOCH_MILLIS_THRESHOLD: Final = 1e11  # larger numbers are epoch milliseconds, not seconds
_MAX_TEXT: Final = 64  # no timestamp spelling is longer; longer text is junk, not parsed
_NUMBER: Final = re.compile(r"[+-]?\d{1,20}(?:\.\d{1,20})?")


class InvalidTimestamp(ValueError):
    """A timestamp is present but is not a timestamp; the message says what it is instead (a short
    noun phrase, never the value)."""


_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_EPOCH_UTC: Final = _EPOCH_NAIVE.replace(tzinfo=UTC)
_fromisoformat: Final = datetime.fromisoformat


def _sane(seconds: float, now: float) -> float | None:
    if seconds > _EPOCH_MILLIS_THRESHOLD:
        seconds /= 1000
    if EARLIEST <= seconds <= now + MAX_FUTURE:  # False for NaN; infinities are out of range
        return seconds
    return None


def _from_text(text: str, now: float) -> float | None:
    if len(text) > _MAX_TEXT:
        raise InvalidTimestamp("text too long")
    if (len(text) < 5 or text[4] != "-") and _NUMBER.fullmatch(text):  # not ISO: epoch in a string
        return _sane(float(text), now)
    try:
        parsed = _fromisoformat(text)
    except ValueError:
        raise InvalidTimestamp("text that is not ISO 8601") from None
    # Naive means UTC. Subtracting the epoch never overflows, unlike .timestamp() near year 1 or 9999.
    # _sane, inlined: this runs for most timestamps of a poll (a third of a 100-run page's parse).
    seconds = (parsed - (_EPOCH_NAIVE if parsed.tzinfo is None else _EPOCH_UTC)).total_seconds()
    if seconds > _EPOCH_MILLIS_THRESHOLD:
        seconds /= 1000
    return seconds if EARLIEST <= seconds <= now + MAX_FUTURE else None


def read_timestamp(value: object, now: float | None = None) -> float | None:
    """Epoch seconds, or ``None`` when absent, non-finite or out of range; raises
    ``InvalidTimestamp`` when present but unreadable. ``now`` defaults to the current time."""
    # Exact types: JSON gives no subclasses, and a bool must not pass for an int. Text first: it is
    # what the API sends.
    kind = type(value)
    if kind is str:
        text = value.strip()  # type: ignore[attr-defined]
        return _from_text(text, time.time() if now is None else now) if text else None
    if value is None:
        return None
    now = time.time() if now is None else now
    if kind is float:
        return _sane(value, now)  # type: ignore[arg-type]
    if kind is int:
        try:
            return _sane(float(value), now)  # type: ignore[arg-type]
        except OverflowError:
            raise InvalidTimestamp("a number too large") from None
    if kind is bool:
        raise InvalidTimestamp("a boolean")
    raise InvalidTimestamp("neither text nor a number")


def parse_timestamp(value: object, now: float | None = None) -> float | None:
    """Like ``read_timestamp``, with ``None`` for unreadable values too."""
    try:
        return read_timestamp(value, now)
    except InvalidTimestamp:
        return None
