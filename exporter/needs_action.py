"""Which needs-action runs are shown, and in which order: the one rule behind a workflow's list in its
snapshot, the ``captaindata_run_needs_action`` series and the status board."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
_INF = float("inf")


def newest_first(
    items: Iterable[T],
    limit: int,
    since: Callable[[T], float | None],
    uid: Callable[[T], str] | None = None,
) -> list[T]:
    """At most ``limit`` of ``items``, the most recent first by ``since`` (when the run entered its
    status); a run whose time is unknown (None, not finite) comes last. Equal times are ordered by
    ``uid``, highest first, when it is given, else kept in the order given."""

    def moment(item: T) -> float:
        value = since(item)
        return value if value is not None and -_INF < value < _INF else -_INF

    key: Callable[[T], Any] = moment if uid is None else (lambda item: (moment(item), uid(item)))
    # nlargest is sorted(reverse=True)[:limit], ties included, without sorting what the limit drops.
    return heapq.nlargest(max(0, limit), items, key=key)
