"""The listening sockets, hardened: a cap on open connections (over it, a connection is closed as
soon as it is accepted: no handler, no traceback, one log line a minute at most), and TLS
handshakes bounded in time. Idle and half-sent requests are closed by aiohttp's keep-alive timer,
which starts when the connection opens (see ``IDLE_TIMEOUT`` in cli.py)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_runner import BaseSite

logger = logging.getLogger("exporter.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# File descriptors kept for everything but clients: API connections, the state file, logs.
RESERVED_DESCRIPTORS = 128
REFUSAL_LOG_INTERVAL = 60.0
REFUSALS_PER_WAKEUP = 64  # then back to the event loop, so a flood cannot starve it
_LINGER_RESET = struct.pack("ii", 1, 0)
_NO_IPV6 = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)  # close with a reset: no TIME_WAIT left behind


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (as Go programs do since Go 1.19); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


def connection_cap(configured: int) -> int:
    """``configured``, lowered to what the open-files limit leaves after the reserve."""
    soft = raise_open_files_limit()
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - RESERVED_DESCRIPTORS))


class ConnectionGate:
    """Counts open client sockets (closed ones count down exactly once) and refuses past the cap."""

    def __init__(self, cap: int, on_accept: Callable[[], object] | None = None) -> None:
        self.cap = cap
        self.open = 0
        self.refused = 0
        self._unlogged = 0
        self._last_log = float("-inf")
        self._on_accept = on_accept

    def admit(self) -> bool:
        if self.open < self.cap:
            if self._on_accept is not None:
                try:
                    self._on_accept()
                except Exception as error:  # a failed check must not stop the listener
                    logger.warning("web config check failed", extra={"error": type(error).__name__})
            self.open += 1
            return True
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= REFUSAL_LOG_INTERVAL:
            logger.warning(
                "connection limit reached: refusing new connections",
                extra={"limit": self.cap, "refused": self._unlogged},
            )
            self._last_log, self._unlogged = now, 0
        return False

    def released(self) -> None:
        self.open -= 1


class _ClientSocket(socket.socket):
    """An accepted socket that tells the gate when it is closed (asyncio closes it explicitly)."""

    _gate: ConnectionGate | None = None

    def close(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.released()
        super().close()


class _GatedListener(socket.socket):
    """A listening socket whose accept() closes connections over the cap at once and goes on."""

    gate: ConnectionGate

    def accept(self) -> tuple[socket.socket, object]:
        for _ in range(REFUSALS_PER_WAKEUP):
            fd, address = self._accept()  # type: ignore[attr-defined]
            client = _ClientSocket(self.family, self.type, self.proto, fileno=fd)
            if self.gate.admit():
                client._gate = self.gate
                return client, address
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            client.close()
        raise BlockingIOError  # asyncio: nothing more to accept for now


def _listening_sockets(
    host: str | None, port: int, gate: ConnectionGate, backlog: int
) -> list[socket.socket]:
    """Bound sockets for ``host`` (every interface when None, IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            try:
                sock = _GatedListener(family, kind, proto)
            except OSError:  # a family this host does not have (e.g. no IPv6)
                continue
            sockets.append(sock)
            sock.gate = gate
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as error:
                # Every interface, on a host with IPv6 turned off: serve IPv4 alone.
                if host is None and family == socket.AF_INET6 and error.errno in _NO_IPV6:
                    sockets.remove(sock)
                    sock.close()
                    continue
                raise
            sock.listen(backlog)
            sock.setblocking(False)
            if port == 0:  # an ephemeral port: one socket, or each family would get its own port
                break
    except OSError:
        for opened in sockets:
            opened.close()
        raise
    if not sockets:
        raise OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host}")
    return sockets


class HardenedSite(BaseSite):
    """Like aiohttp's TCPSite, with the connection gate and a TLS handshake timeout."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        gate: ConnectionGate,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 30.0,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._gate = host, port, gate
        self._handshake_timeout = handshake_timeout
        self._servers: list[asyncio.AbstractServer] = []

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host or '*'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        for sock in _listening_sockets(self._host, self._port, self._gate, self._backlog):
            self._port = sock.getsockname()[1]
            self._servers.append(
                await loop.create_server(
                    server,
                    sock=sock,
                    ssl=self._ssl_context,
                    ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
                    backlog=self._backlog,
                )
            )

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        await super().stop()


async def start_site(
    runner: web.BaseRunner,
    host: str | None,
    port: int,
    max_connections: int,
    ssl_context: ssl.SSLContext | None,
    handshake_timeout: float,
    on_accept: Callable[[], object] | None = None,
) -> HardenedSite:
    """Listen on ``host:port`` behind a :class:`ConnectionGate`; OSError if it cannot."""
    cap = connection_cap(max_connections)
    if cap < max_connections:
        logger.warning(
            "connection limit lowered to fit the open-files limit (raise LimitNOFILE / ulimit -n)",
            extra={"configured": max_connections, "limit": cap},
        )
    site = HardenedSite(runner, host, port, ConnectionGate(cap, on_accept), ssl_context, handshake_timeout)
    await site.start()
    return site


#: Bodies at least this big are written in chunks of this size, each awaiting the client.
WRITE_CHUNK = 64 * 1024
MALFORMED_LOG_INTERVAL = 60.0


def bounded_writes(write_timeout: float) -> Middleware:
    """Writes big response bodies a chunk at a time, each chunk waiting for the client to read the
    previous ones, so a client that does not read holds at most about two chunks of unsent bytes (not a
    copy of the whole body); a client that reads nothing for ``write_timeout`` is disconnected."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        body = response.body if isinstance(response, web.Response) else None
        if not isinstance(body, bytes) or len(body) <= WRITE_CHUNK:
            return response
        stream = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
        stream.content_length = len(body)
        view = memoryview(body)
        try:
            async with asyncio.timeout(write_timeout):
                await stream.prepare(request)
            for start in range(0, len(body), WRITE_CHUNK):
                async with asyncio.timeout(write_timeout):
                    await stream.write(view[start : start + WRITE_CHUNK])
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()  # close() would keep the unsent bytes until they are read
            logger.debug("client stopped reading its response: disconnected")
        return stream

    return middleware


class ProtocolErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, except that a malformed request (which aiohttp answers 400) is one
    WARNING line a minute at most, with a count, instead of a traceback at ERROR per request."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._unlogged = 0
        self._last_log = float("-inf")

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: Any) -> None:
        if not isinstance(exc_info, HttpProcessingError):
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)
            return
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= MALFORMED_LOG_INTERVAL:
            logger.warning(
                "malformed HTTP requests refused",
                extra={"refused": self._unlogged, "last": type(exc_info).__name__},
            )
            self._last_log, self._unlogged = now, 0
