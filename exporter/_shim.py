"""TEMPORARY: contract names the parsers branch provides; removed when it is merged.

(In the v4 branch, parsers is merged: these re-export the real ones.)"""

from __future__ import annotations

from exporter.model import SKIP_REASONS, Parsed, parse_runs_body, parse_workflows_body
from exporter.ratelimit import rate_limit_type
from exporter.statuses import UnknownStatuses

__all__ = [
    "SKIP_REASONS",
    "Parsed",
    "UnknownStatuses",
    "parse_runs_body",
    "parse_workflows_body",
    "rate_limit_type",
]
