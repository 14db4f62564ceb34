"""TEMPORARY: contract names the parsers branch provides; removed when it is merged."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from exporter.model import BadResponse, Run, Workflow, parse_runs, parse_workflows

T = TypeVar("T")
SKIP_REASONS = ("invalid_item", "invalid_uid", "invalid_timestamp", "duplicate_uid")


@dataclass
class Parsed(Generic[T]):
    items: list[T]
    skipped: Counter[str] = field(default_factory=Counter)


class UnknownStatuses:
    pass


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as error:
        raise BadResponse(f"invalid JSON: {error}") from None


def parse_workflows_body(body: bytes) -> Parsed[Workflow]:
    return Parsed(parse_workflows(_json(body)))


def parse_runs_body(body: bytes, unknown: UnknownStatuses) -> Parsed[Run]:
    return Parsed(parse_runs(_json(body)))


def rate_limit_type(headers: Mapping[str, str]) -> str:
    value = headers.get("x-ratelimit-type", "").strip().lower()
    if not value:
        return "none"
    return value if value in ("second", "minute", "hour", "day", "month") else "other"
