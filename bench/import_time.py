"""How long the quick commands take to import, and that they leave the heavy modules alone.

Runs ``python -X importtime -m exporter <command>`` a few times per command and prints the median of the
cumulative import time of ``exporter.cli`` (what the package costs on top of the interpreter) and of
everything, with the heavy modules each command imported. Serving still imports them all:
``--once`` is shown for comparison. Numbers depend on the machine; compare the rows with each other.

    python bench/import_time.py
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEAVY = ("aiohttp", "httpx", "exporter.simulator", "exporter.poller", "exporter.server")
RUNS = 5
CONFIG = """\
workspaces:
  - name: bench
    workspace_uid: 00000000-0000-0000-0000-000000000000
    api_key: "0000000000000000000000000000000000000000000000000000000000000000"
    base_url: http://127.0.0.1:9
"""


def measure(args: list[str], runs: int = RUNS) -> tuple[float, float, set[str]]:
    """Median cumulative import time (ms) of exporter.cli and of all modules, and the heavy ones seen."""
    cli_times, all_times, heavy = [], [], set()
    command = args if args[:1] == ["-c"] else ["-m", "exporter", *args]
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        total = 0
        for line in result.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
            if not match:
                continue
            self_us, cumulative_us, module = match.groups()
            total += int(self_us)
            if module == "exporter.cli":
                cli_times.append(int(cumulative_us) / 1000)
            heavy |= {name for name in HEAVY if module == name or module.startswith(name + ".")}
        all_times.append(total / 1000)
    return statistics.median(cli_times or [0.0]), statistics.median(all_times), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    runs = 1 if parser.parse_args().tiny else RUNS
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG)
        commands = {
            "--version": ["--version"],
            "--help": ["--help"],
            "--check-config": ["--config", str(config), "--check-config"],
            "--once (for comparison)": ["--config", str(config), "--once", "--log.level", "error"],
            "eager imports (before)": [
                "-c",
                "import exporter.cli, exporter.poller, exporter.server, exporter.simulator, aiohttp.client",
            ],
        }
        print(f"{'command':<26} {'exporter.cli':>13} {'all imports':>12}  heavy modules imported")
        for name, args in commands.items():
            cli_ms, all_ms, heavy = measure(args, runs)
            print(f"{name:<26} {cli_ms:>10.1f} ms {all_ms:>9.1f} ms  {', '.join(sorted(heavy)) or '-'}")


if __name__ == "__main__":
    main()
