"""The soak's shared clock (exporter/fileclock.py): time moved by one process, read and slept on by
another; and the hidden ``--test.clock-file`` option, which refuses any file that is not a clock file."""

from __future__ import annotations

import asyncio
import multiprocessing
import struct
from pathlib import Path

import pytest

from exporter.fileclock import MAGIC, SIZE, ClockFile, ClockFileError, FileClock
from tests.support.exporter_proc import exporter_argv
from tests.support.net import LOOPBACK, free_port
from tests.support.procs import run_captured

START = 1_767_571_200.0


async def nap(clock: FileClock, seconds: float) -> None:
    await clock.sleep(seconds)


def test_the_time_is_the_drivers_and_a_sleep_ends_when_it_passes_the_deadline(tmp_path: Path) -> None:
    driver = ClockFile(tmp_path / "clock", START)
    reader = FileClock(tmp_path / "clock")
    assert reader.time() == reader.monotonic() == START

    async def scenario() -> None:
        task = asyncio.create_task(nap(reader, 30))
        await asyncio.sleep(0)  # the task runs up to its first wait: its slot is written
        assert driver.sleepers() == [("nap", START + 30)]  # who sleeps, until when
        driver.advance(29)
        await asyncio.sleep(0.05)
        assert not task.done()  # 1 s short
        driver.set(START + 30)
        await asyncio.wait_for(task, 5)
        assert driver.sleepers() == []  # its slot is free again

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="does not go back"):
        driver.set(START)


def _advance(path: str, steps: int) -> None:
    driver = ClockFile.__new__(ClockFile)
    driver.path = Path(path)
    from exporter.fileclock import _open

    driver._map = _open(Path(path))
    for step in range(steps):
        driver.set(START + 1 + step * 0.5)


def test_a_reader_never_sees_a_torn_time_while_another_process_moves_it(tmp_path: Path) -> None:
    """struct.pack_into clears the bytes it writes first: a reader could read 0.0 and sleep forever."""
    ClockFile(tmp_path / "clock", START)
    reader = FileClock(tmp_path / "clock")
    writer = multiprocessing.get_context("fork").Process(
        target=_advance, args=(str(tmp_path / "clock"), 300_000)
    )
    writer.start()
    seen = START
    try:
        while writer.is_alive():
            now = reader.time()
            assert seen <= now < START + 1e6, (seen, now)
            seen = now
    finally:
        writer.join(30)
    assert seen > START


@pytest.mark.parametrize("content", [b"", b"x" * SIZE, MAGIC + bytes(10), bytes(SIZE)])
def test_a_file_that_is_not_a_clock_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "clock"
    path.write_bytes(content)
    with pytest.raises(ClockFileError, match="not a test clock file"):
        FileClock(path)


def test_the_exporter_refuses_a_clock_file_that_is_not_one_and_does_not_show_the_option(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "workspaces:\n  - name: a\n    workspace_uid: 00000000-0000-4000-8000-000000000000\n"
        f'    api_key: "{"0" * 64}"\n    base_url: http://{LOOPBACK}:9\n'
    )
    bogus = tmp_path / "not-a-clock"
    bogus.write_bytes(struct.pack("<d", START) * (SIZE // 8))
    address = f"{LOOPBACK}:{free_port()}"
    result = run_captured(exporter_argv(config, address, "--test.clock-file", str(bogus)))
    assert result.returncode == 2, result.stderr
    assert "--test.clock-file" in result.stderr
    assert "not a test clock file" in result.stderr
    helped = run_captured(exporter_argv(config, address, "--help"))
    assert "clock" not in helped.stdout
