"""Basic auth and slow clients, hardened (issue 18), against our server on loopback: reloads fail
closed, over-long passwords, the bounded bcrypt pool with its success cache, the per-client failure
limit, the dummy hash's cost, and bounded bytes for clients that do not read."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml
from aiohttp import web

from exporter.listener import WRITE_CHUNK, bounded_writes, start_site
from exporter.webconfig import WebConfigSource
from exporter.webguard import FAILURE_BURST, Authenticator, _dummy_hash, dummy_cost, install
from tests.support.net import LOOPBACK

PASSWORD = "right password"


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="hello")


@asynccontextmanager
async def guarded(path: Path) -> AsyncIterator[tuple[str, WebConfigSource, Authenticator]]:
    source = WebConfigSource(path)
    app = web.Application()
    app.router.add_get("/", hello)
    authenticator = install(app, source)
    runner = web.AppRunner(app)
    await runner.setup()
    site = await start_site(runner, LOOPBACK, 0, 64, None, 10.0, source.current)
    try:
        yield f"http://{LOOPBACK}:{site.port}/", source, authenticator
    finally:
        await runner.cleanup()


async def test_reload_fails_closed_on_an_empty_or_half_written_file(tmp_path: Path) -> None:
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"alice": hashed(PASSWORD)}}))
    async with guarded(web_yml) as (url, source, _), httpx.AsyncClient() as client:
        assert (await client.get(url, auth=("alice", PASSWORD))).status_code == 200
        web_yml.write_text("")  # `: > web.yml`, or an editor saving in place
        assert (await client.get(url)).status_code == 401
        assert source.reloads == {"success": 0, "failure": 1}
        web_yml.write_text("basic_auth_users:\n  alice: $2y$")  # half written
        assert (await client.get(url)).status_code == 401
        web_yml.write_text(yaml.safe_dump({"rate_limit": {"interval": "1s", "burst": 100}}))  # no users
        assert (await client.get(url)).status_code == 401
        assert source.reloads == {"success": 0, "failure": 3}
        web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"bob": hashed("new")}}))
        assert (await client.get(url, auth=("bob", "new"))).status_code == 200
        assert (await client.get(url, auth=("alice", PASSWORD))).status_code == 401
        assert source.reloads == {"success": 1, "failure": 3}


def test_empty_file_means_no_auth_only_at_start(tmp_path: Path) -> None:
    web_yml = tmp_path / "web.yml"
    web_yml.write_text("")
    source = WebConfigSource(web_yml)
    assert not source.current().config.users
    assert source.reloads == {"success": 0, "failure": 0}


async def test_over_long_password_is_401_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"alice": hashed(PASSWORD)}}))
    async with guarded(web_yml) as (url, _, _), httpx.AsyncClient() as client:
        for user in ("alice", "mallory"):
            for password in ("x" * 73, PASSWORD + "y" * 100, "é" * 37):
                assert (await client.get(url, auth=(user, password))).status_code == 401
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_dummy_hash_has_the_configured_cost() -> None:
    users = {"a": hashed("a", 5).encode(), "b": hashed("b", 6).encode(), "c": hashed("c", 6).encode()}
    assert dummy_cost(users) == 6
    assert _dummy_hash(6).startswith(b"$2b$06$")
    assert dummy_cost({"a": users["a"]}) == 5


async def test_cached_scrapes_never_queue_behind_attackers(tmp_path: Path) -> None:
    """With the bcrypt pool busy with wrong passwords, the configured user's cached credentials are
    answered while those checks are still pending; past the queue limit, attackers get 429."""
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed(PASSWORD, 12)}}))
    async with guarded(web_yml) as (url, _, authenticator), httpx.AsyncClient(timeout=120.0) as client:
        assert (await client.get(url, auth=("prometheus", PASSWORD))).status_code == 200
        attackers = [
            asyncio.create_task(client.get(url, auth=(f"user{index}", "guess")))
            for index in range(FAILURE_BURST)
        ]
        await until(lambda: authenticator.pending >= FAILURE_BURST)
        assert (await client.get(url, auth=("prometheus", PASSWORD))).status_code == 200
        assert authenticator.pending > 0  # answered before the attackers' checks were done
        codes = [response.status_code for response in await asyncio.gather(*attackers)]
    assert set(codes) == {401}


async def test_a_first_scrape_goes_before_the_checks_of_clients_that_failed(tmp_path: Path) -> None:
    """Cold cache (a start, a new password): the scraper's check is urgent, the attackers' are not
    once they have failed, so it waits only for the checks already running."""
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed(PASSWORD, 12)}}))
    attacker = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        guarded(web_yml) as (url, _, authenticator),
        httpx.AsyncClient(timeout=120.0) as scraper,
        httpx.AsyncClient(timeout=120.0, transport=attacker) as attackers,
    ):
        assert (await attackers.get(url, auth=("prometheus", "guess"))).status_code == 401
        queued = [
            asyncio.create_task(attackers.get(url, auth=("prometheus", f"guess{index}")))
            for index in range(FAILURE_BURST - 1)
        ]
        await until(lambda: authenticator.pending >= FAILURE_BURST - 1)
        assert (await scraper.get(url, auth=("prometheus", PASSWORD))).status_code == 200
        assert authenticator.pending > 2  # attackers' checks still waiting: the scraper went first
        codes = [response.status_code for response in await asyncio.gather(*queued)]
    assert set(codes) == {401}


async def test_failure_limit_per_client(tmp_path: Path) -> None:
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed(PASSWORD)}}))
    async with guarded(web_yml) as (url, _, _), httpx.AsyncClient() as client:
        assert (await client.get(url, auth=("prometheus", PASSWORD))).status_code == 200
        codes = [(await client.get(url, auth=("prometheus", "wrong"))).status_code for _ in range(15)]
        assert codes == [401] * FAILURE_BURST + [429] * 5
        # Cached credentials still pass; new ones wait for the limit, whether right or not.
        assert (await client.get(url, auth=("prometheus", PASSWORD))).status_code == 200
        assert (await client.get(url, auth=("someone", PASSWORD))).status_code == 429


async def test_a_client_that_does_not_read_holds_a_bounded_buffer_then_is_dropped() -> None:
    body = b"x" * (20 * 1024 * 1024)
    transports: list[asyncio.BaseTransport] = []

    async def big(request: web.Request) -> web.Response:
        assert request.transport is not None
        transports.append(request.transport)
        return web.Response(body=body)

    app = web.Application(middlewares=[bounded_writes(1.0)])
    app.router.add_get("/", big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = await start_site(runner, LOOPBACK, 0, 64, None, 10.0)
    clients = []
    try:
        for _ in range(5):
            sock = socket.create_connection((LOOPBACK, site.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)

        def dropped() -> bool:
            for transport in transports:
                assert isinstance(transport, asyncio.WriteTransport)
                assert transport.get_write_buffer_size() <= 3 * WRITE_CHUNK
            return len(transports) == len(clients) and all(t.is_closing() for t in transports)

        await until(dropped)
    finally:
        for sock in clients:
            sock.close()
        await runner.cleanup()
