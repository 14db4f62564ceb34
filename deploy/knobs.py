"""The knobs of the alert rules: one field per knob of ``exporter/conventions.yaml``, with its default.

Each knob is also a ``--flag`` of ``deploy/generate.py`` and a ``_config`` key of the mixin. ``symbolic()``
gives knobs whose values are placeholders, so the rules can be rendered once with every knob left open (the
mixin's ``rules.libsonnet`` fills them from ``$._config``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from exporter.conventions import KNOBS
from exporter.durations import parse_duration as seconds

#: Marks a knob left open in a symbolic render: ``\0name\0`` (``\0name_seconds\0`` for its value in seconds).
MARK = "\0"


def _knob(name: str) -> Any:
    knob = KNOBS[name]
    return field(default=knob.default, metadata={"help": knob.help})


@dataclass(frozen=True)
class Knobs:
    """The tunable parts of the rules. Each field is also a ``--flag`` (underscores become dashes)."""

    selector: str = _knob("selector")
    runbook_base_url: str = _knob("runbook_base_url")
    grafana_url: str = _knob("grafana_url")
    scrape_gap: str = _knob("scrape_gap")
    running_too_long: str = _knob("running_too_long")
    running_too_long_for: str = _knob("running_too_long_for")
    recent_window: str = _knob("recent_window")
    warning_for: str = _knob("warning_for")
    shutdown_for: str = _knob("shutdown_for")
    shutdowns_persisting_count: int = _knob("shutdowns_persisting_count")
    shutdowns_persisting_window: str = _knob("shutdowns_persisting_window")
    shutdowns_persisting_for: str = _knob("shutdowns_persisting_for")
    paused_for: str = _knob("paused_for")
    stopped_window: str = _knob("stopped_window")
    rate_limited_window: str = _knob("rate_limited_window")
    rate_limited_for: str = _knob("rate_limited_for")
    poll_failing_for: str = _knob("poll_failing_for")
    poll_errors_window: str = _knob("poll_errors_window")
    poll_stale_threshold: str = _knob("poll_stale_threshold")
    poll_stale_for: str = _knob("poll_stale_for")
    unauthorized_for: str = _knob("unauthorized_for")
    exporter_down_for: str = _knob("exporter_down_for")
    workflow_stale_threshold: str = _knob("workflow_stale_threshold")
    workflow_stale_for: str = _knob("workflow_stale_for")
    internal_errors_window: str = _knob("internal_errors_window")
    # push (#16)
    push_missed_window: str = _knob("push_missed_window")
    push_missed_for: str = _knob("push_missed_for")
    # Credits and account health (issue 17).
    credits_burn_window: str = _knob("credits_burn_window")
    credits_exhausted_soon_for: str = _knob("credits_exhausted_soon_for")
    credits_exhausted_for: str = _knob("credits_exhausted_for")
    account_invalid_for: str = _knob("account_invalid_for")
    account_limit_percent: int = _knob("account_limit_percent")
    account_limit_for: str = _knob("account_limit_for")

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in TEXT_KNOBS:
                if not value or "`" in value:
                    raise ValueError(f"{f.name} must be non-empty and free of backquotes")
            elif is_int(f):
                if int(value) < 1:
                    raise ValueError(f"{f.name} must be at least 1")
            else:
                seconds(value)
        if seconds(self.scrape_gap) <= 0:
            raise ValueError("scrape_gap must be positive")


KNOB_FIELDS = tuple(dataclasses.fields(Knobs))
TEXT_KNOBS = frozenset({"selector", "runbook_base_url", "grafana_url"})
if [f.name for f in KNOB_FIELDS] != list(KNOBS):
    raise RuntimeError("Knobs must have one field per knob of exporter/conventions.yaml, in its order")


def is_int(f: dataclasses.Field[Any]) -> bool:
    return f.type in {"int", int}


def is_duration(f: dataclasses.Field[Any]) -> bool:
    return f.name not in TEXT_KNOBS and not is_int(f)


def symbolic() -> Knobs:
    """Knobs whose every value is an open placeholder (never validated)."""
    marks: dict[str, Any] = {f.name: f"{MARK}{f.name}{MARK}" for f in KNOB_FIELDS}
    return Knobs(**marks)


def is_open(value: object) -> bool:
    return isinstance(value, str) and value.startswith(MARK)


def number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def in_seconds(name: str, value: str) -> str:
    """A duration knob in seconds, as text; an open knob stays open (``\\0name_seconds\\0``)."""
    return f"{MARK}{name}_seconds{MARK}" if is_open(value) else number(seconds(value))


def fires_at_once(for_: str) -> bool:
    """Whether a ``for:`` duration is zero (the rule then has no ``for:``); an open one is not known yet."""
    return not is_open(for_) and seconds(for_) == 0


def knob_values(knobs: Knobs) -> dict[str, Any]:
    """The knobs as template values: each by name, a duration also in seconds (``name_seconds``)."""
    values: dict[str, Any] = {}
    for f in KNOB_FIELDS:
        value = getattr(knobs, f.name)
        values[f.name] = value
        if is_duration(f):
            values[f.name + "_seconds"] = in_seconds(f.name, value)
    return values


def changed(knobs: Knobs) -> list[str]:
    return [f"{f.name}={getattr(knobs, f.name)}" for f in KNOB_FIELDS if getattr(knobs, f.name) != f.default]
