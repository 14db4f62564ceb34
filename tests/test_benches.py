"""Every benchmark under bench/ runs at a tiny size (issue #19 item 18): a smoke test, so that none can
break unseen (``bench.v4_requests`` once asked for more requests per second than the config allows).

Each runs as ``python -m bench.<name> --tiny`` from the repository root, as bench/README.md says; a new
bench is picked up here by its file, and must take ``--tiny`` too. Timings are printed, never asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Modules of bench/ that are not benchmarks, and why.
HELPERS = {"sim_host": "the simulator process bench.perf starts"}
#: Benches whose --tiny run a test of their own checks more closely, and where.
OWN_TESTS = {"push_latency": "tests/test_bench_push_latency.py"}
BENCHES = sorted(
    path.stem for path in (ROOT / "bench").glob("*.py") if path.stem not in HELPERS | OWN_TESTS.keys()
)
#: A figure: a number followed by a unit or a ratio (the benches print "12.3 ms", "4.9x", "18 ...").
FIGURE = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|s|x|MiB|MB|kB|B|requests|runs|series|bytes)?\b")


def test_the_benches_are_found() -> None:
    assert {"perf", "v4_requests", "state_bench", "scrape_bench", "import_time"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_each_bench_runs_at_a_tiny_size(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    figures = [line for line in result.stdout.splitlines() if FIGURE.search(line)]
    assert len(figures) >= 2, result.stdout
