"""The ``v4:`` block of a v4 workspace's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from exporter.config import _Reader

DEFAULT_V4_BASE_URL: Final = "https://api.captaindata.com"
V4_MAX_PAGE_SIZE: Final = 100  # the API's maximum ``limit``
#: Actions tracked by default: like api.max_workflows for v3 (each action is a workflow's series).
DEFAULT_MAX_ACTIONS: Final = 2000


@dataclass(frozen=True)
class V4Config:
    lookback: float = 60 * 86400.0  # runs last updated longer ago are not tracked
    resync_interval: float = 3600.0  # a full re-list (up to lookback) this often
    page_size: int = V4_MAX_PAGE_SIZE
    path: str = "/v4/runs"  # the guides' alias is /v4/api/runs/list
    max_actions: int = DEFAULT_MAX_ACTIONS  # actions tracked, after the filter


def read_v4_config(reader: _Reader, value: object, where: str) -> V4Config:
    """The ``v4:`` block at ``where`` (absent: the defaults)."""
    block = reader.mapping(value, where, tuple(V4Config.__dataclass_fields__))
    page_size = reader.number(block, "page_size", where, V4Config.page_size, int, 1)
    if page_size > V4_MAX_PAGE_SIZE:
        raise reader.error(f"{where}.page_size", f"must be at most {V4_MAX_PAGE_SIZE}, got {page_size}")
    runs_path = reader.string(block, "path", where, V4Config.path)
    if not runs_path.startswith("/") or any(c in runs_path for c in "?#") or "//" in runs_path:
        shown = reader.shown(block, "path", V4Config.path)
        raise reader.error(f"{where}.path", f"{shown} is not a URL path (e.g. /v4/runs)")
    return V4Config(
        lookback=reader.duration(block, "lookback", where, V4Config.lookback),
        resync_interval=reader.duration(block, "resync_interval", where, V4Config.resync_interval),
        page_size=page_size,
        path=runs_path,
        max_actions=reader.number(block, "max_actions", where, V4Config.max_actions, int, 1, 1_000_000),
    )
