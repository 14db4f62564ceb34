"""Test only: simulated time shared between processes through a small file (the soak, tests/test_soak.py).

The driver (:class:`ClockFile`) owns the file and moves time forward; each process that reads it
(:class:`FileClock`: the exporter given ``--test.clock-file``) takes its time from it, and its
``sleep()`` returns once the driver has moved time past the sleeper's deadline. Every sleep in progress
is written back into the file (its deadline and the function that sleeps), so that the driver knows
what the process waits for and can move time straight to the next deadline: a day passes in minutes,
and nothing waits on the wall clock.

The file starts with :data:`MAGIC`: a file without it is refused, so the option cannot read time from
some other file by mistake. Layout (little-endian, :data:`SIZE` bytes): the magic, the time (f64), a
sequence number the reader bumps around each change to its sleepers (odd while writing), then
:data:`SLOTS` slots of (deadline f64, the sleeper's function name, UTF-8, zero-padded).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any, Final

MAGIC: Final = b"captaindata-exporter test clock\n"  # 32 bytes
_NOW: Final = 32
_SEQ: Final = 40
_SLOTS_AT: Final = 48
_NAME_BYTES: Final = 56
_SLOT_BYTES: Final = 8 + _NAME_BYTES
SLOTS: Final = 60
SIZE: Final = _SLOTS_AT + SLOTS * _SLOT_BYTES
#: How often a sleeper looks at the time (real seconds): the cost of a step of the driver's.
POLL_EVERY: Final = 0.002


# Shared values are read and written 8 aligned bytes at once (a slice of the map: one copy), never with
# struct.pack_into, which clears the bytes before writing them: a reader in the other process could
# read 0.0 for the time in between.


def _get(mapped: mmap.mmap, offset: int, code: str) -> Any:
    return struct.unpack(code, mapped[offset : offset + 8])[0]


def _put(mapped: mmap.mmap, offset: int, code: str, value: float | int) -> None:
    mapped[offset : offset + 8] = struct.pack(code, value)


class ClockFileError(ValueError):
    """The file is not a clock file (no magic), or cannot be read."""


def _open(path: Path) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as error:
        raise ClockFileError(f"{path}: {error.strerror or error}") from None
    try:
        if os.fstat(fd).st_size != SIZE:
            raise ClockFileError(f"{path}: not a test clock file (size)")
        mapped = mmap.mmap(fd, SIZE)
    finally:
        os.close(fd)
    if mapped[: len(MAGIC)] != MAGIC:
        mapped.close()
        raise ClockFileError(f"{path}: not a test clock file")
    return mapped


class FileClock:
    """A :class:`~exporter.clock.Clock` whose time is the file's; ``monotonic()`` is ``time()`` (the
    driver never moves it back). Event-loop only (one process, one loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map = _open(path)
        self._free = list(range(SLOTS - 1, -1, -1))

    def time(self) -> float:
        value: float = _get(self._map, _NOW, "<d")
        return value

    def monotonic(self) -> float:
        return self.time()

    def _write_slot(self, slot: int, deadline: float, name: bytes) -> None:
        seq: int = _get(self._map, _SEQ, "<Q")
        _put(self._map, _SEQ, "<Q", seq + 1)  # odd: being written
        at = _SLOTS_AT + slot * _SLOT_BYTES
        self._map[at : at + _SLOT_BYTES] = struct.pack(f"<d{_NAME_BYTES}s", deadline, name)
        _put(self._map, _SEQ, "<Q", seq + 2)

    async def sleep(self, seconds: float) -> None:
        deadline = self.time() + max(0.0, seconds)
        if self.time() >= deadline:
            await asyncio.sleep(0)
            return
        caller = sys._getframe(1).f_code.co_qualname.encode()[:_NAME_BYTES]
        slot = self._free.pop() if self._free else None  # more sleepers than slots: not shown
        if slot is not None:
            self._write_slot(slot, deadline, caller)
        try:
            # Another process moves the time: nothing in this one could set an Event.
            while self.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(POLL_EVERY)
        finally:
            if slot is not None:
                self._write_slot(slot, 0.0, b"")
                self._free.append(slot)


class ClockFile:
    """The driver's side: creates the file, moves time, reads what the other process sleeps for. Also a
    :class:`~exporter.clock.Clock` itself (for a simulator in the driver's process)."""

    def __init__(self, path: Path, start: float) -> None:
        self.path = path
        with path.open("wb") as file:
            file.write(MAGIC + struct.pack("<dQ", float(start), 0) + bytes(SIZE - _SLOTS_AT))
        self._map = _open(path)

    def time(self) -> float:
        value: float = _get(self._map, _NOW, "<d")
        return value

    def monotonic(self) -> float:
        return self.time()

    def __call__(self) -> float:
        return self.time()

    def set(self, moment: float) -> None:
        if moment < self.time():
            raise ValueError("the clock does not go back")
        _put(self._map, _NOW, "<d", float(moment))

    def advance(self, seconds: float) -> None:
        self.set(self.time() + seconds)

    async def sleep(self, seconds: float) -> None:
        deadline = self.time() + max(0.0, seconds)
        while self.time() < deadline:  # noqa: ASYNC110 (the driver moves the time from its own thread)
            await asyncio.sleep(POLL_EVERY)

    def sleepers(self) -> list[tuple[str, float]]:
        """(function, deadline) of every sleep in progress in the reading process, a consistent copy."""
        while True:
            before = _get(self._map, _SEQ, "<Q")
            raw = self._map[_SLOTS_AT:SIZE]
            after = _get(self._map, _SEQ, "<Q")
            if before == after and before % 2 == 0:
                break
            time.sleep(0.0001)
        found = []
        for slot in range(SLOTS):
            deadline, name = struct.unpack_from(f"<d{_NAME_BYTES}s", raw, slot * _SLOT_BYTES)
            if deadline:
                found.append((name.rstrip(b"\0").decode(errors="replace"), deadline))
        return found

    def reset_sleepers(self) -> None:
        """Forget the sleepers of a process that is gone (``kill -9`` leaves its slots written)."""
        _put(self._map, _SEQ, "<Q", 0)
        self._map[_SLOTS_AT:SIZE] = bytes(SIZE - _SLOTS_AT)

    def close(self) -> None:
        self._map.close()
