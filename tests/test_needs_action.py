"""The one order of needs-action runs: most recent first, unknown times last, ties by uid or as given."""

from __future__ import annotations

import math

from exporter.needs_action import newest_first

Item = tuple[str, float | None]


def since(item: Item) -> float | None:
    return item[1]


def uid(item: Item) -> str:
    return item[0]


def test_most_recent_first_and_unknown_times_last() -> None:
    items: list[Item] = [("a", None), ("b", 1.7e9), ("c", math.nan), ("d", 1.8e9), ("e", math.inf)]
    assert newest_first(items, 10, since, uid) == [
        ("d", 1.8e9),
        ("b", 1.7e9),
        ("e", math.inf),
        ("c", math.nan),
        ("a", None),
    ]


def test_equal_times_by_uid_highest_first_or_in_the_order_given() -> None:
    items: list[Item] = [("a", 1.7e9), ("c", 1.7e9), ("b", 1.7e9), ("z", None), ("y", None)]
    assert [uid(item) for item in newest_first(items, 10, since, uid)] == ["c", "b", "a", "z", "y"]
    assert [uid(item) for item in newest_first(items, 10, since)] == ["a", "c", "b", "z", "y"]


def test_at_most_the_limit_the_most_recent_kept() -> None:
    items: list[Item] = [(str(n), 1.7e9 + n) for n in range(100)]
    assert [uid(item) for item in newest_first(items, 3, since, uid)] == ["99", "98", "97"]
    assert newest_first(items, 0, since, uid) == []
    assert newest_first(items, -1, since, uid) == []
