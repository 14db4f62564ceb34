"""Scrape cost: the exporter's /metrics (rendered once per publish, cached per format) against
rendering on every scrape, side by side, plain and gzip:

    python -m bench.scrape_bench [--workflows 200] [--scrapes 40]

Every server runs in this process on 127.0.0.1 and serves the same snapshots; only the handler differs.
The fair baseline is what a prometheus_client collector does: one ``generate_latest`` (text format)
per scrape, plus ``gzip.compress`` when the scraper accepts gzip. A third server runs this exporter's
own renderer on every scrape, without its caches. Prints the median latency of each and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import time
from collections.abc import Iterator

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.exposition import TEXT_CONTENT_TYPE, accepts_gzip
from exporter.published import GZIP_LEVEL, Published
from exporter.render import render
from exporter.server import create_app
from exporter.snapshot import WorkspaceSnapshot
from tests.support.snapshots import big_workspace


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def baseline_app(snapshots: list[WorkspaceSnapshot]) -> web.Application:
    """A prometheus_client exporter of the same series: generate_latest on every scrape."""
    registry = CollectorRegistry(auto_describe=False)
    families = list(text_string_to_metric_families(render(snapshots, openmetrics=False).decode()))
    registry.register(_Fixed(families))

    async def handler(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return _respond(request, body)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


def uncached_app(snapshots: list[WorkspaceSnapshot]) -> web.Application:
    """This exporter's renderer without its caches: everything rendered on every scrape."""

    async def handler(request: web.Request) -> web.Response:
        return _respond(request, render(snapshots, openmetrics=False))

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


def _respond(request: web.Request, body: bytes) -> web.Response:
    headers = {"Content-Type": TEXT_CONTENT_TYPE}
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"


async def measure(url: str, scrapes: int, encoding: str) -> list[float]:
    timings = []
    async with httpx.AsyncClient(timeout=60, headers={"Accept-Encoding": encoding}) as client:
        await client.get(url)  # warm up the connection (and the exporter's cache)
        for _ in range(scrapes):
            started = time.perf_counter()
            response = await client.get(url)
            response.raise_for_status()
            timings.append(time.perf_counter() - started)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke test at a tiny size (the test suite runs it)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.workflows, args.scrapes = 5, 4

    snapshots = [big_workspace("bench", args.workflows)]
    published = Published(["bench"])
    published.publish(snapshots[0])
    apps = {
        "exporter (cached)": create_app(published),
        "prometheus_client generate_latest per scrape": baseline_app(snapshots),
        "own renderer, uncached, per scrape": uncached_app(snapshots),
    }
    runners = []
    medians: dict[tuple[str, str], float] = {}
    try:
        urls = {}
        for name, app in apps.items():
            runner, urls[name] = await serve(app)
            runners.append(runner)
        for encoding in ("identity", "gzip"):
            timings: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(4):  # interleaved, so that machine noise hits all alike
                for name, url in urls.items():
                    timings[name] += await measure(url, max(1, args.scrapes // 4), encoding)
            for name, found in timings.items():
                medians[(name, encoding)] = statistics.median(found)
    finally:
        for runner in runners:
            await runner.cleanup()
    text = render(snapshots, openmetrics=False)
    series = text.count(b"\n") - text.count(b"\n#") - 1
    print(f"{args.workflows} workflows: {series} series, {len(text)} bytes")
    exporter = "exporter (cached)"
    for encoding in ("identity", "gzip"):
        print(f"\n{encoding}:")
        for name in apps:
            ratio = medians[(name, encoding)] / medians[(exporter, encoding)]
            print(f"  {name:<46} median {medians[(name, encoding)] * 1000:8.2f} ms  ({ratio:5.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
