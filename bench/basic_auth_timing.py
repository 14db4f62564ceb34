"""Basic-auth timing, in one run over HTTP on loopback:

1. an unknown user against a known user with a wrong password, alternated, and their ratio (unknown ÷
   wrong; 1.0 means a client cannot tell whether a user name exists);
2. the configured scraper's first request after a start (cold cache) and its next one (cached), while
   ``--attackers`` clients, each from its own loopback address (127.0.0.10…), send wrong passwords in a
   loop (each has failed once before the scraper comes).

The hash has the cost ``htpasswd -nBC 12`` makes, as the README says to use.

    python -m bench.basic_auth_timing [--requests 40] [--cost 12] [--attackers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt
import httpx
import yaml
from aiohttp import web

from exporter.listener import start_site
from exporter.webconfig import WebConfigSource
from exporter.webguard import FailureLimit, install

LOOPBACK = "127.0.0.1"


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="hello")


RIGHT = "the right password"


@asynccontextmanager
async def server(cost: int, failures: FailureLimit | None) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        web_yml = Path(directory) / "web.yml"
        hashed = bcrypt.hashpw(RIGHT.encode(), bcrypt.gensalt(rounds=cost)).decode()
        web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
        source = WebConfigSource(web_yml)
        app = web.Application()
        app.router.add_get("/", hello)
        install(app, source, failures)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = await start_site(runner, LOOPBACK, 0, 256, None, 60.0, source.current)
            yield f"http://{LOOPBACK}:{site.port}/"
        finally:
            await runner.cleanup()


async def under_attack(attackers: int, cost: int) -> tuple[float, float]:
    """(the scraper's first request, its second), in seconds, with ``attackers`` clients attacking."""
    async with server(cost, None) as url:
        stop = asyncio.Event()
        failed_once = [asyncio.Event() for _ in range(attackers)]

        async def attack(index: int) -> None:
            transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{10 + index}")
            async with httpx.AsyncClient(timeout=600.0, transport=transport) as client:
                while not stop.is_set():
                    await client.get(url, auth=("prometheus", f"guess {index}"))
                    failed_once[index].set()

        tasks = [asyncio.create_task(attack(index)) for index in range(attackers)]
        try:
            for event in failed_once:
                await event.wait()
            async with httpx.AsyncClient(timeout=600.0) as scraper:
                timings = []
                for _ in range(2):
                    started = time.perf_counter()
                    response = await scraper.get(url, auth=("prometheus", RIGHT))
                    timings.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"the scraper got HTTP {response.status_code}")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        return timings[0], timings[1]


async def measure(requests: int, cost: int) -> dict[str, list[float]]:
    # A failure limit that never bites: this measures bcrypt, not the limit.
    async with server(cost, FailureLimit(burst=1_000_000)) as url:
        cases = {"unknown user": ("nobody", "a guess"), "wrong password": ("prometheus", "a guess")}
        times: dict[str, list[float]] = {case: [] for case in cases}
        async with httpx.AsyncClient(timeout=300.0) as client:
            for credentials in cases.values():  # warm up: the dummy hash is made at first use
                await client.get(url, auth=credentials)
            for index in range(requests):
                order = list(cases.items()) if index % 2 else list(reversed(cases.items()))
                for case, credentials in order:
                    started = time.perf_counter()
                    response = await client.get(url, auth=credentials)
                    times[case].append(time.perf_counter() - started)
                    if response.status_code != 401:
                        raise RuntimeError(f"{case}: HTTP {response.status_code}, expected 401")
        return times


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=40, help="requests of each kind")
    parser.add_argument("--cost", type=int, default=12, help="bcrypt cost of the configured hash")
    parser.add_argument("--attackers", type=int, default=20, help="clients sending wrong passwords")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 2 requests at cost 4")
    args = parser.parse_args(argv)
    if args.tiny:
        args.requests, args.cost, args.attackers = 2, 4, 2
    times = asyncio.run(measure(args.requests, args.cost))
    medians = {case: statistics.median(values) for case, values in times.items()}
    for case, median in medians.items():
        print(
            f"{case:>15}: median {median * 1000:7.1f} ms over {len(times[case])} requests (cost {args.cost})"
        )
    ratio = medians["unknown user"] / medians["wrong password"]
    print(f"unknown user ÷ wrong password: {ratio:.2f}")
    cold, cached = asyncio.run(under_attack(args.attackers, args.cost))
    print(
        f"with {args.attackers} clients sending wrong passwords: the scraper's first request "
        f"{cold * 1000:.0f} ms (cold cache), its next {cached * 1000:.1f} ms (cached)"
    )
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
