"""The runs a workspace tracks, packed: what the counting rule needs of each run, and no Python object
per run.

A run's uid is its key: 16 bytes when the uid is a canonical UUID (lower-case, dashed: it turns back
into exactly the same string), else the string itself. Each workflow's runs are a block of columns
(the keys, codes of the statuses, float times with NaN for None), listed runs apart from vanished
ones; a removal moves the last slot into the hole. What only a needs-action run shows (its name and
error) is kept for those runs alone. The order in which a workflow lists its runs, which orders
``runs_by_api_status``, is a position per listed run.

One workspace-level table finds a run: its location (block id << 33 | VANISHED | slot) in an open
addressing array, the key compared where the location points, so the table holds 8 bytes per entry
and no key; beside each entry a byte of its key's hash (``mark``), so that a probe compares a key
only where that byte is the same. Uids that are not UUIDs (rare: tests, other APIs) are in a plain dict.

exporter/state.py holds the counting rule; this module only stores. Nothing here keeps a parsed Run.
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from collections.abc import Iterator
from typing import Final

from exporter.parsing import Run, RunError
from exporter.statuses import NEEDS_ACTION_STATUSES, STATUS_LABEL_VALUES

Key = bytes | str
NAN: Final = math.nan
#: A location: block id << BLOCK_SHIFT | VANISHED | slot.
VANISHED: Final = 1 << 32
SLOT: Final = VANISHED - 1
BLOCK_SHIFT: Final = 33
EMPTY: Final = -1
_MAX_POSITION: Final = (1 << 32) - 1
_KEY: Final = 16  # bytes of a UUID key
#: A key's mark: the byte of its hash above this bit (the table's index takes the low bits).
MARK_SHIFT: Final = 40
_FIRST_CAPACITY: Final = 64
_MAX_LOAD: Final = 0.7

#: A canonical UUID (what key_of turns into 16 bytes; exporter/state.py inlines key_of with it).
UUID_MATCH: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


def key_of(uid: str) -> Key:
    """A run's key: the 16 bytes of a canonical UUID, else the uid itself."""
    if len(uid) == 36 and UUID_MATCH(uid) is not None:
        return bytes.fromhex(uid.replace("-", ""))
    return uid


def packed_keys(uids: list[str]) -> bytes | None:
    """The keys of ``uids`` end to end (16 bytes each) when every uid is a canonical UUID, else None:
    ``key_of`` of a whole page at once (a few passes in C instead of a regex and two copies a run)."""
    count = len(uids)
    joined = "".join(uids)
    if len(joined) != 36 * count or min(map(len, uids), default=36) != 36:  # then each has 36
        return None
    if not joined.isascii() or joined.count("-") != 4 * count:
        return None
    for dash in (8, 13, 18, 23):  # every uid is 36 characters: its dashes are where a UUID has them
        if joined[dash::36] != "-" * count:
            return None
    digits = joined.replace("-", "")
    try:
        packed = bytes.fromhex(digits)
    except ValueError:
        return None
    # fromhex skips whitespace and reads upper case: neither turns back into the same uid
    if len(packed) != 16 * count or packed.hex() != digits:
        return None
    return packed


def uid_of(key: Key) -> str:
    """The uid a key was made from, exactly."""
    if isinstance(key, str):
        return key
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Vocabulary:
    """Status strings as small codes (the statuses first, then api statuses as they come). Shared by
    every workspace, whose worker threads may meet a new word at once: adding one takes a lock."""

    def __init__(self, first: tuple[str, ...], limit: int) -> None:
        self.words: list[str] = []
        self.codes: dict[str, int] = {}
        self.limit = limit
        self._lock = threading.Lock()
        for word in first:
            self.code(word)

    def code(self, word: str) -> int:
        code = self.codes.get(word)
        if code is None:
            with self._lock:
                code = self.codes.get(word)
                if code is None:
                    if len(self.words) >= self.limit:
                        raise ValueError(f"more than {self.limit} distinct statuses")
                    code = len(self.words)
                    self.words.append(word)  # before its code is visible: words[code] exists
                    self.codes[word] = code
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
        "others",
        "position",
        "postponed",
        "scheduled",
        "start",
        "status",
        "store",
        "vanished_api",
        "vanished_keys",
        "vanished_others",
        "vanished_status",
        "vanished_when",
        "workflow",
    )

    def __init__(self, store: RunStore, block_id: int, workflow: str) -> None:
        self.store = store
        self.id = block_id
        self.workflow = workflow
        self.keys = bytearray()  # 16 bytes a slot (zeros for a uid kept in ``others``)
        self.others: dict[int, str] = {}  # slot -> uid, for a uid that is not a UUID
        self.status = array("B")
        self.api = array("H")
        self.start = array("d")
        self.finish = array("d")
        self.scheduled = array("d")
        self.postponed: array[float] | None = None  # made when a run first has one (v4)
        self.extra: list[Extra] = []
        self.position = array("I")  # the listing's order
        self.next_position = 0
        self.vanished_keys = bytearray()
        self.vanished_others: dict[int, str] = {}
        self.vanished_status = array("B")
        self.vanished_api = array("H")
        self.vanished_when = array("d")

    def __len__(self) -> int:
        return len(self.status)

    @property
    def vanished_count(self) -> int:
        return len(self.vanished_status)

    def key_at(self, slot: int, vanished: bool = False) -> Key:
        others = self.vanished_others if vanished else self.others
        if others and slot in others:
            return others[slot]
        keys = self.vanished_keys if vanished else self.keys
        return bytes(keys[slot * _KEY : slot * _KEY + _KEY])

    def _where(self, uid: str) -> int | None:
        location = self.store.find(key_of(uid))
        if location == EMPTY or location >> BLOCK_SHIFT != self.id:
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
            uid_of(self.key_at(slot)),
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

    # Writes. A location in the table must never point at a slot that holds another key: a caller
    # moves or removes a run's table entry before the slot it pointed at is reused.

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
                postponed = self.postponed = array("d", [NAN]) * len(self.status)
            postponed[slot] = value
        elif postponed is not None:
            postponed[slot] = NAN
        if status in NEEDS_ACTION_CODES:
            error = run.error
            self.extra[slot] = run.name if error is None else (run.name, error)
        else:
            self.extra[slot] = None

    def append(self, key: Key, run: Run, status: int, api: int, position: int, new: bool = False) -> int:
        """A new listed slot for ``run`` and its table entry (``new``: the key has none yet, else it
        is moved here); its location."""
        slot = len(self.status)
        if isinstance(key, str):
            self.keys += NO_KEY
            self.others[slot] = key
        else:
            self.keys += key
        self.status.append(status)
        self.api.append(api)
        value = run.start_time
        self.start.append(NAN if value is None else value)
        value = run.finish_time
        self.finish.append(NAN if value is None else value)
        value = run.scheduled_time
        self.scheduled.append(NAN if value is None else value)
        self.position.append(position)
        if status in NEEDS_ACTION_CODES:
            error = run.error
            self.extra.append(run.name if error is None else (run.name, error))
        else:
            self.extra.append(None)
        value = run.postponed_until
        if self.postponed is not None:
            self.postponed.append(NAN if value is None else value)
        elif value is not None:
            self.postponed = array("d", [NAN]) * slot
            self.postponed.append(value)
        location = self.id << BLOCK_SHIFT | slot
        if new:
            self.store.insert(key, location)
        else:
            self.store.place(key, location)
        return location

    def put(self, run: Run) -> None:
        """List ``run`` (an upsert): in its place if listed, else at the end of the listing."""
        key = key_of(run.uid)
        status, api = STATUSES.code(run.status), API_STATUSES.code(run.api_status)
        location = self.store.find(key)
        if location != EMPTY:
            if location >> BLOCK_SHIFT != self.id:
                holder = self.store.blocks[location >> BLOCK_SHIFT]
                assert holder is not None
                holder.release(run.uid)
            elif location & VANISHED:
                self.append(key, run, status, api, self.take_position())
                self.remove_vanished(location & SLOT)
                return
            else:
                self.write(location & SLOT, run, status, api)
                return
        self.append(key, run, status, api, self.take_position(), new=True)

    def take_position(self) -> int:
        """The position after every listed run's (a run added to the end of the listing)."""
        if self.next_position >= _MAX_POSITION:
            order = sorted(range(len(self.position)), key=self.position.__getitem__)
            for rank, slot in enumerate(order):
                self.position[slot] = rank
            self.next_position = len(order)
        position = self.next_position
        self.next_position += 1
        return position

    def remove_listed(self, slot: int) -> None:
        """Drop listed ``slot``, whose run's table entry is gone or elsewhere: the last slot moves
        into it."""
        last = len(self.status) - 1
        others = self.others
        moved_other = others.pop(last, None) if others else None
        if others:
            others.pop(slot, None)
        if slot != last:
            keys = self.keys
            keys[slot * _KEY : slot * _KEY + _KEY] = keys[last * _KEY :]
            self.status[slot] = self.status[last]
            self.api[slot] = self.api[last]
            self.start[slot] = self.start[last]
            self.finish[slot] = self.finish[last]
            self.scheduled[slot] = self.scheduled[last]
            if self.postponed is not None:
                self.postponed[slot] = self.postponed[last]
            self.extra[slot] = self.extra[last]
            self.position[slot] = self.position[last]
            if moved_other is not None:
                others[slot] = moved_other
            # The moved run's entry still points at ``last``, whose bytes are still there.
            moved = moved_other if moved_other is not None else bytes(keys[last * _KEY :])
            self.store.place(moved, self.id << BLOCK_SHIFT | slot)
        del self.keys[last * _KEY :]
        self.status.pop()
        self.api.pop()
        self.start.pop()
        self.finish.pop()
        self.scheduled.pop()
        if self.postponed is not None:
            self.postponed.pop()
            if not self.status:
                self.postponed = None
        self.extra.pop()
        self.position.pop()

    def remember(self, key: Key, status: int, api: int, when: float) -> None:
        """Add a vanished run and its table entry (which may have pointed elsewhere in this block)."""
        slot = len(self.vanished_status)
        if isinstance(key, str):
            self.vanished_keys += NO_KEY
            self.vanished_others[slot] = key
        else:
            self.vanished_keys += key
        self.vanished_status.append(status)
        self.vanished_api.append(api)
        self.vanished_when.append(when)
        self.store.place(key, self.id << BLOCK_SHIFT | VANISHED | slot)

    def remove_vanished(self, slot: int) -> None:
        """Drop vanished ``slot``, whose run's table entry is gone or elsewhere: the last slot moves
        into it."""
        last = len(self.vanished_status) - 1
        others = self.vanished_others
        moved_other = others.pop(last, None) if others else None
        if others:
            others.pop(slot, None)
        if slot != last:
            keys = self.vanished_keys
            keys[slot * _KEY : slot * _KEY + _KEY] = keys[last * _KEY :]
            self.vanished_status[slot] = self.vanished_status[last]
            self.vanished_api[slot] = self.vanished_api[last]
            self.vanished_when[slot] = self.vanished_when[last]
            if moved_other is not None:
                others[slot] = moved_other
            moved = moved_other if moved_other is not None else bytes(keys[last * _KEY :])
            self.store.place(moved, self.id << BLOCK_SHIFT | VANISHED | slot)
        del self.vanished_keys[last * _KEY :]
        self.vanished_status.pop()
        self.vanished_api.pop()
        self.vanished_when.pop()

    def vanish(self, slot: int, when: float) -> None:
        """Listed ``slot`` left the listing at ``when``: remembered as vanished."""
        self.remember(self.key_at(slot), self.status[slot], self.api[slot], when)
        self.remove_listed(slot)

    def release(self, uid: str) -> tuple[str, str] | None:
        """Forget a run (another workflow takes it): what was known of it."""
        known = self.known(uid)
        location = self._where(uid)
        if location is not None:
            self.store.remove(key_of(uid))
            if location & VANISHED:
                self.remove_vanished(location & SLOT)
            else:
                self.remove_listed(location & SLOT)
        return known

    def forget_vanished(self, now: float, after: float) -> None:
        """Forget the vanished runs that left the listing more than ``after`` seconds before ``now``."""
        when = self.vanished_when
        for slot in range(len(when) - 1, -1, -1):
            if now - when[slot] > after:
                self.store.remove(self.key_at(slot, vanished=True))
                self.remove_vanished(slot)

    def records(self) -> Iterator[tuple[str, str, str]]:
        """(uid, status, api_status) of every run, listed first, then vanished."""
        words, api_words = STATUSES.words, API_STATUSES.words
        for slot, (status, api) in enumerate(zip(self.status, self.api, strict=True)):
            yield uid_of(self.key_at(slot)), words[status], api_words[api]
        vanished = zip(self.vanished_status, self.vanished_api, strict=True)
        for slot, (status, api) in enumerate(vanished):
            yield uid_of(self.key_at(slot, vanished=True)), words[status], api_words[api]


#: The key bytes of a slot whose uid is not a UUID (in ``others``).
NO_KEY: Final = bytes(_KEY)


class RunStore:
    """A workspace's runs: the blocks, and the table that finds a run's location by its key."""

    __slots__ = ("_free", "_used", "blocks", "marks", "strings", "table")

    def __init__(self) -> None:
        self.blocks: list[RunBlock | None] = []
        self._free: list[int] = []
        self.table = array("q", [EMPTY]) * _FIRST_CAPACITY  # locations of UUID keys, open addressing
        self.marks = bytearray(_FIRST_CAPACITY)  # mark() of the key at each entry
        self._used = 0
        self.strings: dict[str, int] = {}  # locations of the other keys

    def __len__(self) -> int:
        return self._used + len(self.strings)

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
        for slot in range(len(block)):
            self.remove(block.key_at(slot))
        for slot in range(block.vanished_count):
            self.remove(block.key_at(slot, vanished=True))
        self.blocks[block.id] = None
        self._free.append(block.id)

    def locate(self, uid: str) -> tuple[RunBlock, bool, int] | None:
        """Where run ``uid`` is: its block, whether it vanished, its slot."""
        location = self.find(key_of(uid))
        if location == EMPTY:
            return None
        block = self.blocks[location >> BLOCK_SHIFT]
        assert block is not None
        return block, bool(location & VANISHED), location & SLOT

    def holder(self, uid: str) -> RunBlock | None:
        """The block that holds run ``uid`` (its owner), if any."""
        location = self.find(key_of(uid))
        return None if location == EMPTY else self.blocks[location >> BLOCK_SHIFT]

    # The table: linear probing; a key is compared where its location points.

    def _key(self, location: int) -> bytes:
        block = self.blocks[location >> BLOCK_SHIFT]
        assert block is not None
        at = (location & SLOT) * _KEY
        keys = block.vanished_keys if location & VANISHED else block.keys
        return bytes(keys[at : at + _KEY])

    def find(self, key: Key) -> int:
        """The location of ``key``, or EMPTY."""
        if isinstance(key, str):
            return self.strings.get(key, EMPTY)
        return self.table[self._index(key)]

    def _index(self, key: bytes) -> int:
        """The table index of ``key``, or of the empty entry where it would go."""
        table, marks, blocks = self.table, self.marks, self.blocks
        mask = len(table) - 1
        home = hash(key)
        index, mark = home & mask, home >> MARK_SHIFT & 255
        while True:
            location = table[index]
            if location == EMPTY:
                return index
            if marks[index] == mark:
                block = blocks[location >> BLOCK_SHIFT]
                at = (location & SLOT) * _KEY
                keys = block.vanished_keys if location & VANISHED else block.keys  # type: ignore[union-attr]
                if keys[at : at + _KEY] == key:
                    return index
            index = (index + 1) & mask

    def reserve(self, count: int) -> None:
        """Grow now so that ``count`` more keys fit without a growth (a bulk insert)."""
        while (self._used + count) > len(self.table) * _MAX_LOAD:
            self._grow()

    def inserted(self, count: int) -> None:
        """``count`` keys were written into ``table`` directly (after a ``reserve``)."""
        self._used += count

    def place(self, key: Key, location: int) -> None:
        """Set the location of ``key`` (a new key, or one that moved)."""
        if isinstance(key, str):
            self.strings[key] = location
            return
        index = self._index(key)
        if self.table[index] == EMPTY:
            if (self._used + 1) > len(self.table) * _MAX_LOAD:
                self._grow()
                index = self._index(key)
            self._used += 1
        self.table[index] = location
        self.marks[index] = hash(key) >> MARK_SHIFT & 255

    def insert(self, key: Key, location: int) -> None:
        """``place`` for a key the table does not hold."""
        if isinstance(key, str):
            self.strings[key] = location
            return
        self._used += 1
        if self._used > len(self.table) * _MAX_LOAD:
            self._grow()
        table = self.table
        mask = len(table) - 1
        home = hash(key)
        index = home & mask
        while table[index] != EMPTY:
            index = (index + 1) & mask
        table[index] = location
        self.marks[index] = home >> MARK_SHIFT & 255

    def remove(self, key: Key) -> None:
        """Forget ``key`` (backward-shift deletion: no tombstones)."""
        if isinstance(key, str):
            self.strings.pop(key, None)
            return
        table, marks = self.table, self.marks
        index = self._index(key)
        if table[index] == EMPTY:
            return
        mask = len(table) - 1
        table[index] = EMPTY
        self._used -= 1
        probe = index
        while True:
            probe = (probe + 1) & mask
            location = table[probe]
            if location == EMPTY:
                return
            home = hash(self._key(location)) & mask
            if (probe - home) & mask >= (probe - index) & mask:
                table[index] = location
                marks[index] = marks[probe]
                table[probe] = EMPTY
                index = probe

    def _grow(self) -> None:
        """Twice the capacity, every entry placed again (from the blocks: one copy of each key column,
        sliced as bytes)."""
        self.table = table = array("q", [EMPTY]) * (len(self.table) * 2)
        self.marks = marks = bytearray(len(table))
        mask = len(table) - 1
        for block in self.blocks:
            if block is None:
                continue
            for keys, others, flag in (
                (block.keys, block.others, 0),
                (block.vanished_keys, block.vanished_others, VANISHED),
            ):
                base = block.id << BLOCK_SHIFT | flag
                packed = bytes(keys)
                slices = [packed[at : at + _KEY] for at in range(0, len(packed), _KEY)]
                for slot, home in enumerate(map(hash, slices)):
                    if others and slot in others:
                        continue
                    index = home & mask
                    while table[index] != EMPTY:
                        index = (index + 1) & mask
                    table[index] = base | slot
                    marks[index] = home >> MARK_SHIFT & 255
