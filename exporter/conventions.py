"""The conventions the page, the alert rules and the dashboards share, read from ``conventions.yaml``.

The status → alert-name rule, the runbook base URL and every alert threshold have their one home there; the
landing page reads them here, and ``deploy/generate.py`` and ``grafana/generate.py`` through this module too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Final

import yaml

from exporter.durations import parse_duration
from exporter.guide import GUIDE


@dataclass(frozen=True)
class Knob:
    """A tunable part of the alert rules: its default and what it means."""

    name: str
    default: str | int
    help: str


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        files(__package__).joinpath("conventions.yaml").read_text(encoding="utf-8")
    )
    return data


_DATA: Final = _load()
#: Every knob of the alert rules, in the order the rules' documentation lists them.
KNOBS: Final[dict[str, Knob]] = {
    name: Knob(name=name, default=entry["default"], help=entry["help"])
    for name, entry in _DATA["knobs"].items()
}
STATUS_ALERT_PREFIX: Final[str] = _DATA["status_alert_prefix"]
RUNNING_TOO_LONG_ALERT: Final[str] = _DATA["running_too_long_alert"]
#: docs/runbooks.md as published; each alert has a section whose anchor is its lowercased name.
RUNBOOK_BASE_URL: Final[str] = str(KNOBS["runbook_base_url"].default)


def status_alert(title: str) -> str:
    """The alert named for a status whose guide title is ``title`` (Warning → CaptainDataRunWarning)."""
    return STATUS_ALERT_PREFIX + title


def alert_name(status: str) -> str:
    """The alert that fires for runs in ``status``: one runbook section each."""
    return status_alert(GUIDE[status].title)


def runbook_url(alert: str, base_url: str = RUNBOOK_BASE_URL) -> str:
    return f"{base_url}#{alert.lower()}"


def config_key(knob: str) -> str:
    """The knob's key in the mixin's ``_config``: its name in camelCase (scrape_gap → scrapeGap)."""
    head, *rest = knob.split("_")
    return head + "".join(word.capitalize() for word in rest)


def threshold_seconds(knob: str) -> float:
    """A duration knob's default in seconds (``running_too_long`` → 21600.0)."""
    return parse_duration(str(KNOBS[knob].default))
