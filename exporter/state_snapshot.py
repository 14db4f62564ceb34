"""The snapshot of a workspace before its first poll ends."""

from __future__ import annotations

from exporter.snapshot import WorkspaceSnapshot
from exporter.state import WorkspaceState


def empty_snapshot(name: str) -> WorkspaceSnapshot:
    return WorkspaceState(name).snapshot
