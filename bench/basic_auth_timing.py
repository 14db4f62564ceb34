"""Basic-auth timing, in one run over HTTP on 127.0.0.1: an unknown user against a known user with a
wrong password, alternated, and their ratio (unknown ÷ wrong; 1.0 means a client cannot tell whether a
user name exists). The hash has the cost ``htpasswd -nBC 12`` makes, as the README says to use.

    python -m bench.basic_auth_timing [--requests 40] [--cost 12]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
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


async def measure(requests: int, cost: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as directory:
        web_yml = Path(directory) / "web.yml"
        hashed = bcrypt.hashpw(b"the right password", bcrypt.gensalt(rounds=cost)).decode()
        web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
        source = WebConfigSource(web_yml)
        app = web.Application()
        app.router.add_get("/", hello)
        install(app, source, FailureLimit(burst=1_000_000))  # measure bcrypt, not the failure limit
        runner = web.AppRunner(app)
        await runner.setup()
        site = await start_site(runner, LOOPBACK, 0, 64, None, 60.0, source.current)
        url = f"http://{LOOPBACK}:{site.port}/"
        cases = {"unknown user": ("nobody", "a guess"), "wrong password": ("prometheus", "a guess")}
        times: dict[str, list[float]] = {case: [] for case in cases}
        try:
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
        finally:
            await runner.cleanup()
        return times


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=40, help="requests of each kind")
    parser.add_argument("--cost", type=int, default=12, help="bcrypt cost of the configured hash")
    args = parser.parse_args(argv)
    times = asyncio.run(measure(args.requests, args.cost))
    medians = {case: statistics.median(values) for case, values in times.items()}
    for case, median in medians.items():
        print(
            f"{case:>15}: median {median * 1000:7.1f} ms over {len(times[case])} requests (cost {args.cost})"
        )
    ratio = medians["unknown user"] / medians["wrong password"]
    print(f"unknown user ÷ wrong password: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
