"""Plot the soak's hour-by-hour CSV (tests/test_soak.py, docs/soak.md) into a PNG, and print its figures.

    SOAK_CSV=docs/soak.csv python -m pytest -n 0 tests/test_soak.py   # a real run writes the CSV
    python -m bench.soak_plot docs/soak.csv --out docs/soak.png

Four panels over the simulated day: the exporter's RSS (each process its own line; the dashed lines are
the restarts), the series on /metrics, the API requests per hour (with those answered 429 and 5xx), and
the state directory against its live records and the journal. ``--tiny`` plots the committed CSV into a
temporary file (the suite's smoke test).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT / "docs" / "soak.csv"
DEFAULT_PNG = ROOT / "docs" / "soak.png"


def read_rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def summary(rows: list[dict[str, float]]) -> list[str]:
    """The figures docs/soak.md quotes."""
    last = rows[-1]
    alive = [row for row in rows if row["exporter_pid"]]
    hours = [row for row in rows[1:] if row["exporter_pid"]]
    ratios = [row["state_dir_bytes"] / max(row["live_bytes"], 1.0) for row in rows[1:] if row["live_bytes"]]
    return [
        f"simulated hours: {last['hour']:.0f} in {last['wall_seconds']:.0f} s of wall time",
        f"exporter processes: {len({row['exporter_pid'] for row in alive})}",
        f"RSS: {min(r['rss_mib'] for r in alive):.1f} to {max(r['rss_mib'] for r in alive):.1f} MiB",
        f"series on /metrics: {min(r['series'] for r in alive):.0f} to "
        f"{max(r['series'] for r in alive):.0f} series",
        f"API requests: {last['requests_total']:.0f} requests in all, "
        f"{max(r['requests_hour'] for r in hours):.0f} requests in the busiest hour",
        f"answered 429: {sum(r['answered_429_hour'] for r in rows):.0f} requests, "
        f"5xx: {sum(r['answered_5xx_hour'] for r in rows):.0f} requests",
        f"pushes sent: {last['pushes_total']:.0f}",
        f"state directory / live records: at most {max(ratios):.2f}x",
        f"request log kept: at most {max(r['request_log_length'] for r in rows):.0f} of "
        f"{last['requests_total']:.0f} requests",
    ]


def plot(rows: list[dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [row["hour"] for row in rows]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    rss, series, requests, state = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    pids = sorted(
        {row["exporter_pid"] for row in rows if row["exporter_pid"]},
        key=lambda pid: hours[[row["exporter_pid"] for row in rows].index(pid)],
    )
    for number, pid in enumerate(pids, start=1):
        mine = [row for row in rows if row["exporter_pid"] == pid]
        rss.plot(
            [r["hour"] for r in mine], [r["rss_mib"] for r in mine], marker="o", label=f"process {number}"
        )
        if number > 1:
            for axis in (rss, series, requests, state):
                axis.axvline(mine[0]["hour"] - 0.5, color="grey", linestyle="--", linewidth=0.8)
    rss.set_title("exporter RSS (MiB)")
    rss.legend(fontsize="small")
    alive = [row for row in rows if row["exporter_pid"]]
    series.plot([r["hour"] for r in alive], [r["series"] for r in alive], marker="o")
    series.set_title("series on /metrics")
    requests.bar(hours, [r["requests_hour"] for r in rows], label="requests", color="tab:blue")
    requests.bar(hours, [r["answered_429_hour"] for r in rows], label="answered 429", color="tab:orange")
    requests.bar(hours, [r["answered_5xx_hour"] for r in rows], label="answered 5xx", color="tab:red")
    requests.set_title("API requests per simulated hour")
    requests.legend(fontsize="small")
    kib = 1024.0
    state.plot(hours, [r["state_dir_bytes"] / kib for r in rows], marker="o", label="state directory")
    state.plot(hours, [r["journal_bytes"] / kib for r in rows], label="journal")
    state.plot(hours, [r["live_bytes"] / kib for r in rows], label="live records")
    state.plot(hours, [3 * r["live_bytes"] / kib for r in rows], linestyle=":", label="3 x live")
    state.set_title("state.path (KiB)")
    state.legend(fontsize="small")
    for axis in (requests, state):
        axis.set_xlabel("simulated hour")
    figure.suptitle("A simulated day against the real exporter (tests/test_soak.py)")
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_plot", description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV, help="the soak's CSV")
    parser.add_argument("--out", type=Path, default=None, help=f"the PNG (default {DEFAULT_PNG})")
    parser.add_argument("--tiny", action="store_true", help="plot into a temporary file (smoke test)")
    args = parser.parse_args(argv)
    rows = read_rows(args.csv)
    if not rows:
        print(f"{args.csv}: no rows", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "soak.png" if args.tiny else (args.out or DEFAULT_PNG)
        plot(rows, out)
        print(f"plotted {len(rows)} hours of {args.csv} into {out} ({out.stat().st_size} bytes)")
    for line in summary(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
