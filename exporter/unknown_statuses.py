"""The unknown status values one workspace has met: a bounded set, logged with bounded noise."""

from __future__ import annotations

import logging
import threading
from typing import Final

from exporter.statuses import UNKNOWN

logger = logging.getLogger(__name__)

#: How many distinct unknown raw values a workspace remembers, and how many of them it logs.
UNKNOWN_REMEMBERED: Final = 64
UNKNOWN_LOGGED: Final = 10
_UNKNOWN_KEY_CHARS: Final = 64


class UnknownStatuses:
    """The unknown status values one workspace has met: a bounded set, logged with bounded noise.

    The first ``UNKNOWN_LOGGED`` distinct values are logged once each, then one line says more were
    met, then nothing. At most ``UNKNOWN_REMEMBERED`` values are remembered. Thread-safe.
    """

    def __init__(self, workspace: str = "", *, remembered: int = UNKNOWN_REMEMBERED) -> None:
        self.workspace = workspace
        self._remembered = max(remembered, UNKNOWN_LOGGED + 1)  # room to say "more" once
        self._seen: set[str] = set()
        self._full = False
        self._lock = threading.Lock()

    @property
    def values(self) -> frozenset[str]:
        """The remembered raw values, each as a short ``repr``."""
        with self._lock:
            return frozenset(self._seen)

    def note(self, raw: object) -> None:
        """Record that ``raw`` (a status value from the API) is not a known status."""
        key = _unknown_key(raw)
        if key in self._seen:
            return
        with self._lock:
            if key in self._seen or self._full:
                return
            self._seen.add(key)
            met = len(self._seen)
            self._full = met >= self._remembered
        extra = {"workspace": self.workspace} if self.workspace else None
        if met <= UNKNOWN_LOGGED:
            logger.warning("unknown run status %s counted as %r", key, UNKNOWN, extra=extra)
        elif met == UNKNOWN_LOGGED + 1:
            logger.warning(
                "more than %d distinct unknown run statuses; not logging further ones",
                UNKNOWN_LOGGED,
                extra=extra,
            )


def _unknown_key(raw: object) -> str:
    """A short, printable ``repr`` of a raw status (strings cut to a bounded length)."""
    if isinstance(raw, str):
        return repr(raw[:_UNKNOWN_KEY_CHARS])
    if raw is None or isinstance(raw, bool | float):
        return repr(raw)
    if isinstance(raw, int):
        return repr(raw) if -(10**20) < raw < 10**20 else "<int>"
    return f"<{type(raw).__name__}>"
