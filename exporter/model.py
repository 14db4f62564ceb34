"""What the exporter reads from the v3 API: workflows and runs, parsed tolerantly."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.statuses import TERMINAL_STATUSES, normalize_status
from exporter.timestamps import parse_timestamp


class BadResponse(ValueError):
    """The API answered 200 with something that is not what the endpoint returns."""


@dataclass(frozen=True, slots=True)
class Workflow:
    uid: str
    name: str


@dataclass(frozen=True, slots=True)
class Run:
    uid: str
    name: str
    status: str
    start_time: float | None
    finish_time: float | None
    scheduled_time: float | None

    @property
    def status_time(self) -> float | None:
        """When the run was last seen entering its status: the finish time for terminal statuses,
        the start (or scheduled) time otherwise."""
        if self.status in TERMINAL_STATUSES:
            return self.finish_time
        return self.start_time if self.start_time is not None else self.scheduled_time

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.finish_time is None or self.finish_time < self.start_time:
            return None
        return self.finish_time - self.start_time


def _identifier(item: dict[str, object], what: str) -> str:
    uid = item.get("uid")
    if isinstance(uid, int) and not isinstance(uid, bool):
        return str(uid)
    if not isinstance(uid, str) or not uid:
        raise BadResponse(f"{what} without a uid: {sorted(item)[:8]}")
    return uid


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _items(payload: object, what: str) -> list[dict[str, object]]:
    if not isinstance(payload, list):
        raise BadResponse(f"expected a JSON array of {what}, got {type(payload).__name__}")
    for item in payload:
        if not isinstance(item, dict):
            raise BadResponse(f"expected {what} objects, got {type(item).__name__}")
    return payload


def parse_workflows(payload: object) -> list[Workflow]:
    """``GET /v3/workflows``: a bare array of workflow objects (a uid listed twice counts once)."""
    workflows: dict[str, Workflow] = {}
    for item in _items(payload, "workflows"):
        uid = _identifier(item, "workflow")
        workflows.setdefault(uid, Workflow(uid=uid, name=_text(item.get("name")) or uid))
    return list(workflows.values())


def parse_runs(payload: object) -> list[Run]:
    """``GET /v3/workflows/{uid}/jobs``: a bare array of run ("job") objects."""
    return [
        Run(
            uid=_identifier(item, "run"),
            name=_text(item.get("name")),
            status=normalize_status(item.get("status")),
            start_time=parse_timestamp(item.get("start_time")),
            finish_time=parse_timestamp(item.get("finish_time")),
            scheduled_time=parse_timestamp(item.get("scheduled_time")),
        )
        for item in _items(payload, "runs")
    ]
