"""How v3's wire statuses map onto the status guide, and the v3 values of the ``api_status`` label."""

from __future__ import annotations

from typing import Final

from exporter.statuses import FINISHED, KNOWN_STATUSES, UNKNOWN
from exporter.unknown_statuses import UnknownStatuses

#: Wire values that mean a known status (the v3 quickstart says ``completed`` for ``finished``).
_ALIASES: Final = {"completed": FINISHED}

#: Every value of the ``api_status`` label for v3: the documented lower-case values, the quickstart's
#: ``completed`` and ``unknown`` for anything else.
API_STATUS_VALUES: Final[tuple[str, ...]] = (*KNOWN_STATUSES, "completed", UNKNOWN)
_API_STATUSES: Final = {value: value for value in API_STATUS_VALUES}
_GUIDE_STATUSES: Final = {value: value for value in KNOWN_STATUSES} | _ALIASES


def _wire_value(raw: object) -> str:
    return raw.strip().lower() if isinstance(raw, str) else ""


def normalize_status(raw: object, unknown: UnknownStatuses) -> str:
    """The guide's status for a v3 wire value: case-insensitive, aliases folded, else ``unknown``
    (noted in ``unknown``). Always one of ``STATUS_LABEL_VALUES``' interned strings."""
    return v3_statuses(raw, unknown)[0]


def v3_statuses(raw: object, unknown: UnknownStatuses) -> tuple[str, str]:
    """``(normalize_status(raw), the api_status label)`` in one step (the parser's hot path). The
    label is the API's own value lower-cased, ``unknown`` when it is not one of ``API_STATUS_VALUES``
    (always one of its interned strings)."""
    if type(raw) is str:
        known = _V3_EXACT.get(raw)
        if known is not None:
            return known
    wire = _wire_value(raw)
    status = _GUIDE_STATUSES.get(wire)
    if status is None:
        unknown.note(raw)
        status = UNKNOWN
    return status, _API_STATUSES.get(wire, UNKNOWN)


# The values as the API spells them, mapped without any string work.
_V3_EXACT: Final = {value: (_GUIDE_STATUSES[value], value) for value in API_STATUS_VALUES if value != UNKNOWN}
