"""The alert and recording rules as deploy/generate.py reads them from deploy/alerts.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy.knobs import Knobs, fires_at_once
from exporter.conventions import runbook_url
from exporter.guide import ApiCall


@dataclass(frozen=True)
class Runbook:
    meaning: str
    causes: tuple[str, ...]
    steps: tuple[str, ...]
    confirm: str
    escalate: str
    design: str
    api_calls: tuple[ApiCall, ...] = ()
    #: Run errors: a section per cause of exporter/failures.yaml (the Warning, Shutdown, Paused alerts).
    by_cause: bool = False


@dataclass(frozen=True)
class Alert:
    name: str
    group: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    action: str
    runbook: Runbook
    #: The dashboard_url annotation: the matching dashboard, filtered by the alert's labels.
    dashboard_url: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def rule(self, knobs: Knobs) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if not fires_at_once(self.for_):
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "action": self.action,
            **self.annotations,
            "runbook_url": runbook_url(self.name, knobs.runbook_base_url),
            "dashboard_url": self.dashboard_url,
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    help: str
