"""The errors of the simulator's runs that need action (``run_errors.yaml``): realistic texts per cause
for v3 and v4, and the fault texts that plant secrets, a huge text and control characters."""

from __future__ import annotations

import copy
import random
from importlib.resources import files
from typing import Any, Final

import yaml

_DATA: Final = yaml.safe_load(files(__package__).joinpath("run_errors.yaml").read_text(encoding="utf-8"))
#: status (v3, lower-case) -> [(reason, weight, error_message)]
V3_ERRORS: Final[dict[str, list[tuple[str, int, str]]]] = {
    status: [(str(r), int(w), str(t)) for r, w, t in entries] for status, entries in _DATA["v3"].items()
}
#: status (v4, upper-case) -> [(reason, weight, last_error)]
V4_ERRORS: Final[dict[str, list[tuple[str, int, dict[str, Any]]]]] = {
    status: [(str(r), int(w), dict(e)) for r, w, e in entries] for status, entries in _DATA["v4"].items()
}
#: The secret values the fault texts plant (tests assert they never leave the exporter).
PLANTED: Final[dict[str, str]] = {str(k): str(v) for k, v in _DATA["planted"].items()}
#: How many characters the huge fault text has.
HUGE_CHARS: Final = 200_000


def v3_error(status: str, rng: random.Random | None = None) -> str | None:
    """An ``error_message`` for a v3 run in ``status``: the first of its list, or one drawn by weight."""
    entries = V3_ERRORS.get(status.lower())
    if not entries:
        return None
    if rng is None:
        return entries[0][2]
    return rng.choices([text for _, _, text in entries], weights=[w for _, w, _ in entries])[0]


def v4_error(status: str, rng: random.Random | None = None) -> dict[str, Any] | None:
    """A ``last_error`` for a v4 run in ``status`` (a copy): the first of its list, or one drawn by weight."""
    entries = V4_ERRORS.get(status)
    if not entries:
        return None
    if rng is None:
        return copy.deepcopy(entries[0][2])
    return copy.deepcopy(rng.choices([e for _, _, e in entries], weights=[w for _, w, _ in entries])[0])


def hostile_errors(api_key: str) -> list[tuple[str, str, str]]:
    """(v3 status, reason it must be read as, error_message) of every fault text: planted cookies, tokens
    and ``api_key``, control characters, and a huge text with secrets at its start and its end."""
    values = {**PLANTED, "api_key": api_key}
    texts = [(str(s), str(r), str(t).format(**values)) for s, r, t in _DATA["hostile"]]
    huge = (
        f"Cookie li_at={PLANTED['li_at']} expired. "
        + "The LinkedIn session is no longer valid. " * (HUGE_CHARS // 41)
        + f" x-api-key {api_key} Bearer {PLANTED['bearer']}"
    )
    texts.append(("paused", "account_session", huge))
    return texts
