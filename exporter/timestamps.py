"""Lenient parsing of API timestamps: naive ISO strings are UTC, offsets are honoured, junk is None."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

_EPOCH_MILLIS_THRESHOLD = 1e11  # larger numbers are epoch milliseconds, not seconds


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds for an API timestamp, or ``None`` when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if value > _EPOCH_MILLIS_THRESHOLD else float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        logger.debug("unreadable timestamp %r ignored", value)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
