"""Clients that never read their response: the server's RSS with 60 of them, each asking for a 20 MB
body, with big bodies written as the exporter does (in chunks, each awaiting the client, under a write
timeout) against aiohttp's default (the whole body handed to the transport at once). Each server runs
in its own process; RSS is read from /proc while the clients hold their connections open, and again
once the write timeout has passed.

    python -m bench.slow_readers [--clients 60] [--mib 20] [--write-timeout 5]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"

SERVER = """
import asyncio, sys
from aiohttp import web
from exporter.listener import bounded_writes, start_site

body = b"x" * (int(sys.argv[1]) * 1024 * 1024)
handled = 0

async def big(request):
    global handled
    handled += 1
    return web.Response(body=body)

async def count(request):
    return web.Response(text=str(handled))

async def main():
    middlewares = [bounded_writes(float(sys.argv[3]))] if sys.argv[2] == "bounded" else []
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/big", big)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app)
    await runner.setup()
    site = await start_site(runner, "127.0.0.1", 0, 1000, None, 10.0)
    print(site.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid: int) -> float:
    """RSS once it has stopped moving for half a second."""
    last, stable_since = rss_mib(pid), time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        time.sleep(0.1)
        now = rss_mib(pid)
        if abs(now - last) > 1:
            last, stable_since = now, time.monotonic()
    return last


def run(mode: str, clients: int, mib: int, write_timeout: float) -> tuple[float, float, float]:
    """(baseline RSS, RSS with the clients, RSS after the write timeout), MiB."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(mib), mode, str(write_timeout)], stdout=subprocess.PIPE, text=True
    )
    sockets: list[socket.socket] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://{LOOPBACK}:{port}"
        baseline = settled_rss(server.pid)
        started = time.monotonic()
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((LOOPBACK, port))
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            sockets.append(sock)
        while int(httpx.get(f"{base}/count", timeout=30).text) < clients:
            time.sleep(0.05)
        held = settled_rss(server.pid)
        while time.monotonic() - started < write_timeout + 2:
            time.sleep(0.1)
        after = settled_rss(server.pid)
        return baseline, held, after
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        server.wait()


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--mib", type=int, default=20, help="body size")
    parser.add_argument("--write-timeout", type=float, default=5.0)
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 2 clients, 1 MiB")
    args = parser.parse_args(argv)
    if args.tiny:
        args.clients, args.mib, args.write_timeout = 2, 1, 0.5
    results = {}
    for mode in ("unbounded", "bounded"):
        baseline, held, after = run(mode, args.clients, args.mib, args.write_timeout)
        results[mode] = (baseline, held, after)
        print(
            f"{mode:>9}: RSS {baseline:6.1f} MiB idle, +{held - baseline:6.1f} MiB with {args.clients} "
            f"non-reading clients of {args.mib} MiB, +{after - baseline:6.1f} MiB after the write timeout"
        )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
