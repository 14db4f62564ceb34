"""The push receiver under load: RATE pushes/s for SECONDS seconds over loopback, each answered?
Prints the 202 latency (p50, p99, max) and the latency of /-/healthy on the same port during the load.

Each push is a v3 webhook for one of RUNS runs (so bursts of the same run coalesce), sent on its own
schedule (no coordinated omission). The read behind each event is a stand-in that takes READ_SECONDS:
bench/push_latency.py measures the whole path, with the real targeted read (here it is a stand-in).

    python -m bench.push_receiver [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import aiohttp

from exporter.config import parse_config
from exporter.push.body import PushEvent
from exporter.push.service import PushService

TOKEN = "bench-push-token-" + "0" * 32
RUNS = 500
READ_SECONDS = 0.005


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def serve(port_out: Connection, stop: Event) -> None:
    """The receiver, in a process of its own (as in production: the client does not share its CPU)."""

    async def run() -> None:
        config = parse_config(
            {
                "workspaces": [
                    {
                        "name": "bench",
                        "workspace_uid": "bench-uid",
                        "api_key": "k" * 64,
                        "base_url": "http://127.0.0.1:9",
                        "push_token": TOKEN,
                    }
                ],
                "push": {"listen_address": "127.0.0.1:0"},
            }
        )

        async def read(_: PushEvent) -> bool:
            await asyncio.sleep(READ_SECONDS)
            return True

        assert config.push is not None
        service = PushService(config, config.push, {"bench": read})
        await service.start()
        port_out.send(service.port)
        cpu = time.process_time()
        await asyncio.to_thread(stop.wait)
        cpu = time.process_time() - cpu
        for queue in service.queues.values():
            await queue.drained()
        counts = {outcome: n for (_, outcome), n in service.stats.counts().items() if n}
        port_out.send((counts, sum(q.reads for q in service.queues.values()), cpu))
        await service.aclose()

    asyncio.run(run())


async def load(url: str, rate: float, seconds: float) -> None:
    latencies: list[float] = []
    health: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def push(index: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            body = {"job_uid": f"job-{index % RUNS}", "workflow_uid": "wf", "error": None, "message": ""}
            started = time.perf_counter()
            async with session.post("/push/bench", data=json.dumps(body), headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

        async def probe(until: float) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                async with session.get("/-/healthy") as response:
                    await response.read()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.1)

        total = int(rate * seconds)
        start = time.perf_counter() + 0.2
        await asyncio.gather(
            probe(start + seconds), *(push(index, start + index / rate) for index in range(total))
        )
    ms = 1000.0
    print(f"{total} pushes at {rate:g}/s for {seconds:g}s: answers {dict(sorted(statuses.items()))}")
    p50, p99, worst = statistics.median(latencies), percentile(latencies, 0.99), max(latencies)
    print(f"202 latency ms: p50 {p50 * ms:.1f}  p99 {p99 * ms:.1f}  max {worst * ms:.1f}")
    p50, p99 = statistics.median(health), percentile(health, 0.99)
    print(f"/-/healthy during the load ms: p50 {p50 * ms:.1f}  p99 {p99 * ms:.1f}")


def main(rate: float, seconds: float) -> None:
    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(child, stop), daemon=True)
    server.start()
    try:
        port = parent.recv()
        asyncio.run(load(f"http://127.0.0.1:{port}", rate, seconds))
        stop.set()
        counts, reads, cpu = parent.recv()
        pushes = sum(counts.values())
        print(f"outcomes {counts}; reads {reads}; receiver CPU {cpu * 1000 / pushes:.2f} ms per push")
    finally:
        stop.set()
        server.join(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 20 pushes/s for 1 s")
    args = parser.parse_args()
    main(20.0 if args.tiny else args.rate, 1.0 if args.tiny else args.seconds)
