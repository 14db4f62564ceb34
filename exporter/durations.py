"""Prometheus-style durations: ``500ms``, ``30s``, ``5m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# At most 12 digits per unit: enough for any real duration, and the sum stays a finite float.
_DURATION = re.compile(
    r"^(?:(\d{1,12})y)?(?:(\d{1,12})w)?(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?"
    r"(?:(\d{1,12})ms)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` if it is not a Prometheus duration."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError("not a duration")
    return sum(
        int(value) * factor for value, factor in zip(match.groups(), _UNITS.values(), strict=True) if value
    )


def format_duration(seconds: float) -> str:
    """``seconds`` the way the configuration writes it: ``5m``, ``1h30m``, ``90s``, ``1.5s``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
