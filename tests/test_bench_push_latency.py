"""bench/push_latency.py --tiny runs end to end (two real exporters, the simulator, pushes, a short load)
and prints each figure it promises. Timings are printed, never asserted (bench/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_tiny_push_latency_bench_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.push_latency", "--tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"push \(\+10m reconciliation\): p50 [\d.]+s  p99 [\d.]+s", out), out
    assert re.search(r"poll-only every 2s: p50 [\d.]+s", out), out
    assert re.search(r"push 4 reads for 4 events = 1\.00 per event", out), out
    assert "push applied 4, missed 0" in out, out
    assert re.search(r"answers \{202: 50\}", out), out
    assert re.search(r"/metrics during the load ms: p50 [\d.]+", out), out
