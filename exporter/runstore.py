"""The runs a workspace tracks, packed: what the counting rule needs of each run, without one Python
object per run beyond its key.

A run's uid is its key: a 128-bit int when the uid is a canonical UUID (lower-case, dashed; it turns
back into exactly the same string), else the string itself. One workspace-level map takes a key to
where the run is: its workflow's block, listed or vanished, and its slot there. A block keeps its
workflow's runs in columns (arrays of codes and of float times, NaN for None), listed runs apart from
vanished ones; a removal moves the last slot into the hole. What only a needs-action run shows (its
name and error) is kept for those runs alone. The order in which a workflow lists its runs, which
orders ``runs_by_api_status``, is a position per listed run.

exporter/state.py holds the rule; this module only stores. Nothing here keeps a parsed ``Run``.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterator
from typing import Final

from exporter.parsing import Run, RunError
from exporter.statuses import NEEDS_ACTION_STATUSES, STATUS_LABEL_VALUES

Key = int | str
NAN: Final = math.nan
#: A map value: block id << 33 | VANISHED | slot.
VANISHED: Final = 1 << 32
SLOT: Final = VANISHED - 1
BLOCK_SHIFT: Final = 33
_MAX_POSITION: Final = (1 << 32) - 1

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


def key_of(uid: str) -> Key:
    """A run's key: an int for a canonical UUID (16 bytes of value), else the uid."""
    if len(uid) == 36 and _UUID(uid) is not None:
        return int(uid.replace("-", ""), 16)
    return uid


def uid_of(key: Key) -> str:
    """The uid a key was made from, exactly."""
    if isinstance(key, str):
        return key
    h = f"{key:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Vocabulary:
    """Status strings as small codes (the statuses first, then api statuses as they come)."""

    def __init__(self, first: tuple[str, ...], limit: int) -> None:
        self.words: list[str] = []
        self.codes: dict[str, int] = {}
        self.limit = limit
        for word in first:
            self.code(word)

    def code(self, word: str) -> int:
        code = self.codes.get(word)
        if code is None:
            if len(self.words) >= self.limit:
                raise ValueError(f"more than {self.limit} distinct statuses")
            code = self.codes[word] = len(self.words)
            self.words.append(word)
        return code


#: Guide statuses (bounded: STATUS_LABEL_VALUES) and API statuses (a bounded vocabulary, lower-cased).
STATUSES: Final = Vocabulary(STATUS_LABEL_VALUES, 256)
API_STATUSES: Final = Vocabulary(("",), 65536)
NEEDS_ACTION_CODES: Final = frozenset(STATUSES.code(status) for status in NEEDS_ACTION_STATUSES)

#: What a needs-action run keeps beyond the columns: its name, or (name, error) when it has an error.
Extra = str | tuple[str, RunError] | None


def _time(value: float) -> float | None:
    return None if value != value else value


class RunBlock:
    """One workflow's runs: listed (the current listing) and vanished (left it, remembered a while)."""

    __slots__ = (
        "api",
        "extra",
        "finish",
        "id",
        "keys",
        "next_position",
        "position",
        "postponed",
        "scheduled",
        "start",
        "status",
        "store",
        "vanished_api",
        "vanished_keys",
        "vanished_status",
        "vanished_when",
        "workflow",
    )

    def __init__(self, store: RunStore, block_id: int, workflow: str) -> None:
        self.store = store
        self.id = block_id
        self.workflow = workflow
        self.keys: list[Key] = []
        self.status = array("B")
        self.api = array("H")
        self.start = array("d")
        self.finish = array("d")
        self.scheduled = array("d")
        self.postponed: array[float] | None = None  # made when a run first has one (v4)
        self.extra: list[Extra] = []
        self.position = array("I")  # the listing's order
        self.next_position = 0
        self.vanished_keys: list[Key] = []
        self.vanished_status = array("B")
        self.vanished_api = array("H")
        self.vanished_when = array("d")

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def vanished_count(self) -> int:
        return len(self.vanished_keys)

    def _where(self, uid: str) -> int | None:
        location = self.store.index.get(key_of(uid))
        if location is None or location >> BLOCK_SHIFT != self.id:
            return None
        return location

    def lists(self, uid: str) -> bool:
        location = self._where(uid)
        return location is not None and not location & VANISHED

    def known(self, uid: str) -> tuple[str, str] | None:
        """(status, api_status) of a run it lists or remembers."""
        location = self._where(uid)
        if location is None:
            return None
        slot = location & SLOT
        if location & VANISHED:
            return STATUSES.words[self.vanished_status[slot]], API_STATUSES.words[self.vanished_api[slot]]
        return STATUSES.words[self.status[slot]], API_STATUSES.words[self.api[slot]]

    def vanished_at(self, uid: str) -> float | None:
        location = self._where(uid)
        if location is None or not location & VANISHED:
            return None
        return self.vanished_when[location & SLOT]

    def run(self, uid: str) -> Run | None:
        """A listed run as it was applied (a needs-action run's name and error; "" and None for the
        others, which do not keep them)."""
        location = self._where(uid)
        if location is None or location & VANISHED:
            return None
        return self.run_at(location & SLOT)

    def run_at(self, slot: int) -> Run:
        extra = self.extra[slot]
        name, error = ("", None) if extra is None else (extra, None) if isinstance(extra, str) else extra
        postponed = self.postponed
        return Run(
            uid_of(self.keys[slot]),
            name,
            STATUSES.words[self.status[slot]],
            API_STATUSES.words[self.api[slot]],
            _time(self.start[slot]),
            _time(self.finish[slot]),
            _time(self.scheduled[slot]),
            None if postponed is None else _time(postponed[slot]),
            error,
        )

    def same(self, uid: str, run: Run) -> bool:
        """Whether ``run`` is what it lists under ``uid`` (the name and error count for a needs-action
        run only: the others do not keep them, and nothing shows them)."""
        kept = self.run(uid)
        if kept is None:
            return False
        if kept.status in NEEDS_ACTION_STATUSES:
            return kept == run
        return (
            kept.uid == run.uid
            and kept.status == run.status
            and kept.api_status == run.api_status
            and kept.start_time == run.start_time
            and kept.finish_time == run.finish_time
            and kept.scheduled_time == run.scheduled_time
            and kept.postponed_until == run.postponed_until
        )

    # Writes.

    def write(self, slot: int, run: Run, status: int, api: int) -> None:
        """Set listed ``slot`` to ``run``."""
        self.status[slot] = status
        self.api[slot] = api
        value = run.start_time
        self.start[slot] = NAN if value is None else value
        value = run.finish_time
        self.finish[slot] = NAN if value is None else value
        value = run.scheduled_time
        self.scheduled[slot] = NAN if value is None else value
        value = run.postponed_until
        postponed = self.postponed
        if value is not None:
            if postponed is None:
                postponed = self.postponed = array("d", bytes(8 * len(self.keys)))
                for index in range(len(postponed)):
                    postponed[index] = NAN
            postponed[slot] = value
        elif postponed is not None:
            postponed[slot] = NAN
        if status in NEEDS_ACTION_CODES:
            error = run.error
            self.extra[slot] = run.name if error is None else (run.name, error)
        else:
            self.extra[slot] = None

    def append(self, key: Key, run: Run, status: int, api: int, position: int) -> int:
        """A new listed slot for ``run`` (its map entry is the caller's); its slot."""
        slot = len(self.keys)
        self.keys.append(key)
        self.status.append(status)
        self.api.append(api)
        self.start.append(NAN)
        self.finish.append(NAN)
        self.scheduled.append(NAN)
        if self.postponed is not None:
            self.postponed.append(NAN)
        self.extra.append(None)
        self.position.append(position)
        self.write(slot, run, status, api)
        return slot

    def put(self, run: Run) -> None:
        """List ``run`` (an upsert): in its place if listed, else at the end of the listing."""
        key = key_of(run.uid)
        status, api = STATUSES.code(run.status), API_STATUSES.code(run.api_status)
        index = self.store.index
        location = index.get(key)
        if location is not None:
            if location >> BLOCK_SHIFT != self.id:
                holder = self.store.blocks[location >> BLOCK_SHIFT]
                if holder is not None:
                    holder.release(run.uid)
            elif location & VANISHED:
                self.remove_vanished(location & SLOT)
            else:
                self.write(location & SLOT, run, status, api)
                return
        index[key] = self.id << BLOCK_SHIFT | self.append(key, run, status, api, self.take_position())

    def take_position(self) -> int:
        """The position after every listed run's (a run added to the end of the listing)."""
        if self.next_position >= _MAX_POSITION:
            order = sorted(range(len(self.keys)), key=self.position.__getitem__)
            for rank, slot in enumerate(order):
                self.position[slot] = rank
            self.next_position = len(order)
        position = self.next_position
        self.next_position += 1
        return position

    def remove_listed(self, slot: int) -> None:
        """Drop listed ``slot`` (its map entry is the caller's): the last slot moves into it."""
        last = len(self.keys) - 1
        keys = self.keys
        if slot != last:
            moved = keys[slot] = keys[last]
            self.status[slot] = self.status[last]
            self.api[slot] = self.api[last]
            self.start[slot] = self.start[last]
            self.finish[slot] = self.finish[last]
            self.scheduled[slot] = self.scheduled[last]
            if self.postponed is not None:
                self.postponed[slot] = self.postponed[last]
            self.extra[slot] = self.extra[last]
            self.position[slot] = self.position[last]
            self.store.index[moved] = self.id << BLOCK_SHIFT | slot
        keys.pop()
        self.status.pop()
        self.api.pop()
        self.start.pop()
        self.finish.pop()
        self.scheduled.pop()
        if self.postponed is not None:
            self.postponed.pop()
            if not keys:
                self.postponed = None
        self.extra.pop()
        self.position.pop()

    def remember(self, key: Key, status: int, api: int, when: float) -> None:
        """Add a vanished run (and its map entry)."""
        slot = len(self.vanished_keys)
        self.vanished_keys.append(key)
        self.vanished_status.append(status)
        self.vanished_api.append(api)
        self.vanished_when.append(when)
        self.store.index[key] = self.id << BLOCK_SHIFT | VANISHED | slot

    def remove_vanished(self, slot: int) -> None:
        """Drop vanished ``slot`` (its map entry is the caller's): the last slot moves into it."""
        keys = self.vanished_keys
        last = len(keys) - 1
        if slot != last:
            moved = keys[slot] = keys[last]
            self.vanished_status[slot] = self.vanished_status[last]
            self.vanished_api[slot] = self.vanished_api[last]
            self.vanished_when[slot] = self.vanished_when[last]
            self.store.index[moved] = self.id << BLOCK_SHIFT | VANISHED | slot
        keys.pop()
        self.vanished_status.pop()
        self.vanished_api.pop()
        self.vanished_when.pop()

    def vanish(self, slot: int, when: float) -> None:
        """Listed ``slot`` left the listing at ``when``: remembered as vanished."""
        self.remember(self.keys[slot], self.status[slot], self.api[slot], when)
        self.remove_listed(slot)

    def release(self, uid: str) -> tuple[str, str] | None:
        """Forget a run (another workflow takes it): what was known of it."""
        known = self.known(uid)
        location = self._where(uid)
        if location is not None:
            del self.store.index[key_of(uid)]
            if location & VANISHED:
                self.remove_vanished(location & SLOT)
            else:
                self.remove_listed(location & SLOT)
        return known

    def forget_vanished(self, now: float, after: float) -> None:
        """Forget the vanished runs that left the listing more than ``after`` seconds before ``now``."""
        when = self.vanished_when
        index = self.store.index
        for slot in range(len(when) - 1, -1, -1):
            if now - when[slot] > after:
                del index[self.vanished_keys[slot]]
                self.remove_vanished(slot)

    def records(self) -> Iterator[tuple[str, str, str]]:
        """(uid, status, api_status) of every run, listed first, then vanished."""
        words, api_words = STATUSES.words, API_STATUSES.words
        for key, status, api in zip(self.keys, self.status, self.api, strict=True):
            yield uid_of(key), words[status], api_words[api]
        for key, status, api in zip(self.vanished_keys, self.vanished_status, self.vanished_api, strict=True):
            yield uid_of(key), words[status], api_words[api]


class RunStore:
    """A workspace's runs: the map from key to block and slot, and the blocks."""

    __slots__ = ("_free", "blocks", "index")

    def __init__(self) -> None:
        self.index: dict[Key, int] = {}
        self.blocks: list[RunBlock | None] = []
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.index)

    def block(self, workflow: str) -> RunBlock:
        """A new, empty block for ``workflow``."""
        block_id = self._free.pop() if self._free else len(self.blocks)
        block = RunBlock(self, block_id, workflow)
        if block_id == len(self.blocks):
            self.blocks.append(block)
        else:
            self.blocks[block_id] = block
        return block

    def drop(self, block: RunBlock) -> None:
        """Forget a block and every run it holds."""
        index = self.index
        for key in (*block.keys, *block.vanished_keys):
            if index.get(key, -1) >> BLOCK_SHIFT == block.id:
                del index[key]
        self.blocks[block.id] = None
        self._free.append(block.id)

    def locate(self, uid: str) -> tuple[RunBlock, bool, int] | None:
        """Where run ``uid`` is: its block, whether it vanished, its slot."""
        location = self.index.get(key_of(uid))
        if location is None:
            return None
        block = self.blocks[location >> BLOCK_SHIFT]
        assert block is not None
        return block, bool(location & VANISHED), location & SLOT

    def holder(self, uid: str) -> RunBlock | None:
        """The block that holds run ``uid`` (its owner), if any."""
        location = self.index.get(key_of(uid))
        return None if location is None else self.blocks[location >> BLOCK_SHIFT]
