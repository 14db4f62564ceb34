"""State saving cost at 100k runs: the journal (append what changed, compact at 2x) against rewriting
one complete snapshot file after every poll, side by side, on the same disk.

    python -m bench.state_bench [--workflows 100] [--runs 1000] [--polls 200] [--changed 2] [--dir DIR]

Both write the records exporter/persist/codec.py exports (one per workflow: its runs' uid and status,
counters, histograms), fsync'd. Prints per-save time, bytes written per save, the largest file, and
the cost of loading the journal back. DIR should be on the disk the exporter would use.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.persist.journal import WorkspaceIdentity, WorkspaceJournal, _encode, _fsync_directory
from exporter.persist.saver import _digest

STATUSES = ("running", "finished", "warning", "failed", "paused", "shutdown", "pending")
IDENTITY = WorkspaceIdentity("bench", "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19", "https://api.example", "v3")


def workflow_record(uid: str, runs: list[list[str]], poll: int) -> dict[str, Any]:
    """The shape of exporter.persist.codec.export_workflow."""
    return {
        "uid": uid,
        "name": f"Workflow {uid}",
        "baseline": True,
        "read": True,
        "runs": runs,
        "status_changes": {status: poll + index for index, status in enumerate(STATUSES)},
        "durations": {
            status: {"counts": [poll] * 11, "sum": 1234.5 * poll} for status in ("failed", "finished")
        },
        "last_status_time": dict.fromkeys(STATUSES, 1.7e9 + poll),
        "last_success": 1.7e9 + poll,
    }


def snapshot_save(path: Path, records: dict[str, dict[str, Any]]) -> int:
    """The naive way: every record, every poll, through a temporary file and a rename."""
    temporary = path.with_name(path.name + ".tmp")
    data = b"".join(_encode(record) for record in records.values())
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    _fsync_directory(path.parent)
    return len(data)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000, help="runs per workflow")
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--changed", type=int, default=2, help="workflows changed per poll")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.workflows, args.runs, args.polls = 4, 20, 20

    base = Path(tempfile.mkdtemp(prefix="state-bench-", dir=args.dir))
    try:
        runs = {
            f"wf-{i:04d}": [[str(uuid.uuid4()), STATUSES[j % 7]] for j in range(args.runs)]
            for i in range(args.workflows)
        }
        records = {uid: workflow_record(uid, flow_runs, 0) for uid, flow_runs in runs.items()}
        total_runs = args.workflows * args.runs
        (base / "journal").mkdir()
        journal = WorkspaceJournal(base / "journal", IDENTITY)
        first = timed(lambda: journal.save({"listed_once": True}, records))

        journal_times, snapshot_times = [], []
        journal_bytes, largest = 0, journal.file_bytes
        snapshot_path = base / "snapshot.state"
        snapshot_bytes = snapshot_save(snapshot_path, records)
        uids = list(runs)
        for poll in range(1, args.polls + 1):
            changed: dict[str, dict[str, Any] | None] = {}
            for k in range(args.changed):
                uid = uids[(poll * args.changed + k) % len(uids)]
                runs[uid][poll % args.runs][1] = STATUSES[poll % 7]
                records[uid] = workflow_record(uid, runs[uid], poll)
                changed[uid] = records[uid]
            before, compactions = journal.file_bytes, journal.compactions
            workspace = {"polls": poll}
            journal_times.append(timed(functools.partial(journal.save, workspace, changed)))
            compacted = journal.compactions != compactions  # then it rewrote the whole file
            journal_bytes += journal.file_bytes if compacted else journal.file_bytes - before
            largest = max(largest, journal.file_bytes)
            snapshot_times.append(timed(lambda: snapshot_save(snapshot_path, records)))

        # Every workflow read is checked against its last saved digest; unchanged ones are not written.
        digest_time = timed(lambda: [_digest(record) for record in records.values()])
        load_journal = WorkspaceJournal(base / "journal", IDENTITY)
        load_time = timed(load_journal.load)

        def ms(values: list[float]) -> str:
            ordered = sorted(values)
            return (
                f"median {statistics.median(ordered) * 1e3:7.2f} ms, "
                f"p95 {ordered[int(len(ordered) * 0.95) - 1] * 1e3:7.2f} ms"
            )

        print(
            f"{total_runs} runs in {args.workflows} workflows, {args.polls} polls, "
            f"{args.changed} workflow(s) changed per poll, on {base}"
        )
        print(f"first complete save: {first * 1e3:.1f} ms, {journal.file_bytes / 1e6:.1f} MB")
        print(
            f"journal  save: {ms(journal_times)}; {journal_bytes / args.polls / 1e3:8.1f} kB written/poll; "
            f"largest file {largest / 1e6:.1f} MB (live {journal.live_bytes / 1e6:.1f} MB); "
            f"{journal.compactions - 1} compactions"
        )
        print(f"snapshot save: {ms(snapshot_times)}; {snapshot_bytes / 1e3:8.1f} kB written/poll")
        ratio = statistics.median(snapshot_times) / statistics.median(journal_times)
        print(
            f"journal vs snapshot, median save: {ratio:.1f}x faster; "
            f"bytes: {snapshot_bytes * args.polls / journal_bytes:.1f}x fewer"
        )
        print(f"load of the journal: {load_time * 1e3:.1f} ms")
        print(f"change check of every workflow (a poll where nothing changed): {digest_time * 1e3:.1f} ms")
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
