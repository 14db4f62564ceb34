"""Issue #8's benchmarks in one run, printed as ratios: ``python -m bench.perf`` (from the repo root).

The real exporter (``python -m exporter``, one process per measurement) polls the simulator
(``bench.sim_host``, its own process) on 127.0.0.1. Prints:

1. requests per poll / lower bound, per workflow of 0, 5, 20, 45 and 210 runs (simulator page size),
   counted from the simulator's request log over one steady-state poll (the third);
2. /metrics latency (p50, p99, max) idle and during a 100k-run poll, and during/idle ratios;
3. RSS per tracked run at 10k and 100k runs (over an exporter polling an empty workspace);
4. CPU seconds of the exporter for a 100k-run poll.

Scrapes ask what Prometheus asks (OpenMetrics, gzip), one at a time, every ``SCRAPE_SPACING`` seconds.
Every loop is bounded; the whole run takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
SCRAPE_SPACING = 0.05
IDLE_SCRAPES = 200
IDLE_SPACING = 0.02
#: Page size of the 10k and 100k simulator: 1,000 requests per 100k-run poll rather than 5,000 keeps the
#: bench under three minutes; what is measured there (apply, render, scrapes, memory) grows with runs.
BIG_PAGE_SIZE = 100
MAX_POLL_SECONDS = 120.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    port: int

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, path: str) -> int:
        try:
            return get(self.port, path)[0]
        except OSError:
            return 0

    def wait(self, path: str, seconds: float) -> None:
        for _ in range(int(seconds / 0.05)):
            if self.status(path) == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"exporter: {path} not 200 after {seconds:g}s")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = get(self.port, "/metrics")[1].decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def last_success(self) -> float | None:
        for (name, _), value in self.metrics().items():
            if name == "captaindata_last_poll_success_timestamp_seconds":
                return value
        return None


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sim_host", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(30)


@contextlib.contextmanager
def exporter(sim: dict[str, Any], workspace: str, interval: str) -> Iterator[Exporter]:
    described = sim["workspaces"][workspace]
    config = {
        "workspaces": [
            {
                "name": workspace,
                "workspace_uid": described["uid"],
                "api_key": described["api_key"],
                "base_url": sim["url"],
            }
        ],
        "poll": {"interval": interval},
        "api": {"requests_per_second": 1000, "burst": 1000, "request_timeout": "10s"},
    }
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [sys.executable, "-m", "exporter", "--config", str(path)]
        argv += ["--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "error"]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
        running = Exporter(process, port)
        try:
            running.wait("/-/healthy", 30)
            yield running
        finally:
            process.terminate()
            process.wait(30)


def request_ratios(sim: dict[str, Any]) -> None:
    page = sim["page_size"]
    workflows = sim["workspaces"]["ratio"]["workflows"]
    with exporter(sim, "ratio", "2s") as running:
        running.wait("/-/ready", 30)
        seen = [running.last_success()]
        marks = []
        for _ in range(int(30 / 0.05)):  # the ends of polls 2 and 3
            latest = running.last_success()
            if latest != seen[-1]:
                seen.append(latest)
                marks.append(len(json.loads(get(int(sim["url"].rsplit(":", 1)[1]), "/_sim/requests")[1])))
                if len(marks) == 2:
                    break
            time.sleep(0.05)
    log = json.loads(get(int(sim["url"].rsplit(":", 1)[1]), "/_sim/requests")[1])[marks[0] : marks[1]]
    print(
        f"\n1. Requests per poll / lower bound (page size {page}, poll 3, from the simulator's request log)"
    )
    print(f"   {'runs':>6} {'requests':>9} {'lower bound':>12} {'ratio':>6}")
    total = bound_total = 1
    listed = sum(1 for entry in log if entry["path"] == "/v3/workflows")
    print(f"   {'(list)':>6} {listed:>9} {1:>12} {listed:>6.2f}")
    total = listed
    for workflow in workflows:
        requests = sum(1 for entry in log if f"/{workflow['uid']}/" in entry["path"])
        bound = max(1, math.ceil(workflow["runs"] / page))
        total += requests
        bound_total += bound
        print(f"   {workflow['runs']:>6} {requests:>9} {bound:>12} {requests / bound:>6.2f}")
    print(f"   {'total':>6} {total:>9} {bound_total:>12} {total / bound_total:>6.2f}   (goal <= 1.10)")


def scrape(running: Exporter, path: str = "/metrics") -> tuple[float, int]:
    """(seconds, status) of one request as Prometheus sends it."""
    started = time.perf_counter()
    status, _ = get(running.port, path, PROMETHEUS_HEADERS)
    return time.perf_counter() - started, status


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered), p99, ordered[-1]


def after_a_poll(sim: dict[str, Any], workspace: str) -> tuple[int, float, float]:
    """(RSS after the first poll and one scrape, CPU seconds of the poll, its wall time)."""
    with exporter(sim, workspace, "1h") as running:
        cpu, started = running.cpu_seconds(), time.monotonic()
        running.wait("/-/ready", MAX_POLL_SECONDS)
        cpu, wall = running.cpu_seconds() - cpu, time.monotonic() - started
        scrape(running)
        return running.rss_bytes(), cpu, wall


def hundred_k(
    sim: dict[str, Any], small: str = "10k", big: str = "100k", idle_scrapes: int = IDLE_SCRAPES
) -> None:
    runs = {name: sum(w["runs"] for w in sim["workspaces"][name]["workflows"]) for name in (small, big)}
    empty_rss = after_a_poll(sim, "empty")[0]
    rss_small = after_a_poll(sim, small)[0]
    with exporter(sim, big, "1h") as running:
        cpu, started = running.cpu_seconds(), time.monotonic()
        running.wait("/-/ready", MAX_POLL_SECONDS)
        cpu, wall = running.cpu_seconds() - cpu, time.monotonic() - started
        cold = scrape(running)[0]  # the first render of the 100k-run body, not counted as idle
        idle: dict[str, list[float]] = {"/metrics": [], "/-/ready": []}
        for _ in range(idle_scrapes):
            for path, found in idle.items():
                found.append(scrape(running, path)[0])
            time.sleep(IDLE_SPACING)
        rss_big = running.rss_bytes()
        series = len(running.metrics())
    during: dict[str, list[float]] = {"/metrics": [], "/-/ready": []}
    with exporter(sim, big, "1h") as running:
        for _ in range(int(MAX_POLL_SECONDS / SCRAPE_SPACING)):
            during["/metrics"].append(scrape(running)[0])
            seconds, status = scrape(running, "/-/ready")
            during["/-/ready"].append(seconds)
            if status == 200:
                break
            time.sleep(SCRAPE_SPACING)
    ms = 1000
    print(
        f"\n2. Latency of /metrics (OpenMetrics+gzip, {series} series at {runs[big]} runs, page size "
        f"{sim['page_size']}) and, for reference, of /-/ready (the event loop alone): idle, then during a "
        f"poll with a request every {SCRAPE_SPACING * 1000:.0f} ms"
    )
    for path in ("/metrics", "/-/ready"):
        for label, found in (("idle", idle[path]), ("during a poll", during[path])):
            p50, p99, worst = summary(found)
            print(
                f"   {path:<9} {label:<14} ({len(found):>3}) p50 {p50 * ms:7.1f} ms  p99 {p99 * ms:7.1f} ms  "
                f"max {worst * ms:7.1f} ms"
            )
    print(f"   (the first scrape after the poll, which rendered the whole body: {cold * ms:.1f} ms)")
    idle_p50, idle_p99, idle_max = summary(idle["/metrics"])
    poll_p50, poll_p99, poll_max = summary(during["/metrics"])
    print(
        f"   /metrics during/idle: p50 {poll_p50 / idle_p50:.1f}x  p99 {poll_p99 / max(idle_p99, 0.01):.1f}x "
        f"(idle floored at 10 ms, goal <= 3)  max {poll_max / idle_max:.1f}x; "
        f"max during {'<=' if poll_max <= 0.25 else '>'} 250 ms"
    )
    print("\n3. RSS per tracked run (over an exporter polling an empty workspace)")
    for name, rss in ((small, rss_small), (big, rss_big)):
        per_run = (rss - empty_rss) / runs[name]
        print(f"   {runs[name]:>6} runs: {rss / 2**20:6.1f} MiB, {per_run:6.0f} B per run (goal <= 1024)")
    print(f"   empty: {empty_rss / 2**20:6.1f} MiB")
    print(f"\n4. CPU per {runs[big]}-run poll: {cpu:.2f} CPU seconds over {wall:.1f} s of wall time")
    print("   (first poll, no scrape during it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    tiny = parser.parse_args().tiny
    small, big = ("tiny-small", "tiny-big") if tiny else ("10k", "100k")
    started = time.monotonic()
    with simulator("ratio") as sim:
        request_ratios(sim)
    with simulator("--page-size", str(BIG_PAGE_SIZE), "empty", small, big) as sim:
        hundred_k(sim, small, big, idle_scrapes=10 if tiny else IDLE_SCRAPES)
    print(f"\n(bench ran in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
