"""API timestamps: epoch seconds or milliseconds, or ISO 8601 strings (naive ones are UTC).

Three outcomes, so a parser can count what it could not read:
- absent (``None``, missing, empty or blank string): ``None``;
- usable: finite epoch seconds within ``[EARLIEST, now + MAX_FUTURE]``; a value that parses but is
  non-finite or outside that range is treated as absent (``None``);
- present but unreadable (wrong type, junk text, a number too large for a float):
  ``read_timestamp`` raises ``InvalidTimestamp``; ``parse_timestamp`` gives ``None``.
"""

from __future__ import annotations

import math
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


def _sane(seconds: float, now: float) -> float | None:
    if math.isfinite(seconds) and EARLIEST <= seconds <= now + MAX_FUTURE:
        return seconds
    return None


def _from_number(value: float, now: float) -> float | None:
    seconds = value / 1000 if value > _EPOCH_MILLIS_THRESHOLD else value
    return _sane(seconds, now)


def read_timestamp(value: object, now: float | None = None) -> float | None:
    """Epoch seconds, or ``None`` when absent, non-finite or out of range; raises
    ``InvalidTimestamp`` when present but unreadable. ``now`` defaults to the current time."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidTimestamp("a boolean")
    now = time.time() if now is None else now
    if isinstance(value, float):
        return _from_number(value, now)
    if isinstance(value, int):
        try:
            return _from_number(float(value), now)
        except OverflowError:
            raise InvalidTimestamp("a number too large") from None
    if not isinstance(value, str):
        raise InvalidTimestamp("neither text nor a number")
    text = value.strip()
    if not text:
        return None
    if len(text) > _MAX_TEXT:
        raise InvalidTimestamp("text too long")
    if _NUMBER.fullmatch(text):
        return _from_number(float(text), now)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTimestamp("text that is not ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return _sane(parsed.timestamp(), now)
    except (OverflowError, ValueError):  # a valid date too far from the epoch for this platform
        return None


def parse_timestamp(value: object, now: float | None = None) -> float | None:
    """Like ``read_timestamp``, with ``None`` for unreadable values too."""
    try:
        return read_timestamp(value, now)
    except InvalidTimestamp:
        return None
