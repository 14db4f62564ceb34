"""Prometheus-style durations: ``500ms``, ``30s``, ``5m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` if it is not a Prometheus duration."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration")
    return sum(
        int(value) * factor for value, factor in zip(match.groups(), _UNITS.values(), strict=True) if value
    )
