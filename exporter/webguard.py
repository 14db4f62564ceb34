"""What ``--web.config.file`` asks of every request: basic auth (bcrypt, cached), allowed client
certificate names, the rate limit, and the response headers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cache

import bcrypt
from aiohttp import web

from exporter.webconfig import WebConfigSource, WebFileConfig

# Probes work without credentials and outside the rate limit (kubelet, load balancers).
UNAUTHENTICATED_PATHS = frozenset({"/-/healthy", "/-/ready"})
MAX_AUTHORIZATION_LENGTH = 4096


@cache
def _dummy_hash() -> bytes:
    """Checked against when the user is unknown, so an unknown user costs bcrypt time too."""
    return bcrypt.hashpw(b"unknown user", bcrypt.gensalt(rounds=10))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator:
    """Checks basic-auth credentials against bcrypt hashes. A success is remembered as a SHA-256 of
    user, password and hash (never the password), so bcrypt runs once per credentials, not per
    scrape; a changed hash or password misses the cache. bcrypt runs off the event loop, one at a
    time, so wrong passwords cannot stall /metrics."""

    def __init__(self) -> None:
        self._verified: dict[str, bytes] = {}
        self._bcrypt = asyncio.Semaphore(1)

    @staticmethod
    def _key(user: str, password: bytes, hashed: bytes) -> bytes:
        return hashlib.sha256(b"\0".join((user.encode(), password, hashed))).digest()

    async def check(self, users: Mapping[str, bytes], user: str, password: bytes) -> bool:
        hashed = users.get(user)
        key = self._key(user, password, hashed or b"")
        remembered = self._verified.get(user)
        if hashed is not None and remembered is not None and hmac.compare_digest(remembered, key):
            return True
        async with self._bcrypt:
            ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed or _dummy_hash())
        if ok and hashed is not None:
            if len(self._verified) > len(users) + 16:
                self._verified.clear()
            self._verified[user] = key
            return True
        return False


def _credentials(header: str) -> tuple[str, bytes] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or len(header) > MAX_AUTHORIZATION_LENGTH:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class _Bucket:
    """exporter-toolkit's rate_limit: one token every ``interval``, up to ``burst`` saved."""

    def __init__(self) -> None:
        self.tokens = 0.0
        self.stamp = time.monotonic()
        self.settings: tuple[float, int] = (0.0, 0)

    def take(self, interval: float, burst: int) -> bool:
        now = time.monotonic()
        if self.settings != (interval, burst):
            self.settings, self.tokens, self.stamp = (interval, burst), float(max(burst, 1)), now
        self.tokens = min(float(max(burst, 1)), self.tokens + (now - self.stamp) / interval)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="Unauthorized\n",
        headers={"WWW-Authenticate": 'Basic realm="captaindata-exporter", charset="UTF-8"'},
    )


def _allowed_san(request: web.Request, allowed: tuple[str, ...]) -> bool:
    if request.transport is None:
        return False
    peer = request.transport.get_extra_info("peercert") or {}
    names = {value for _kind, value in peer.get("subjectAltName", ())}
    return any(name in names for name in allowed)


def install(app: web.Application, source: WebConfigSource) -> None:
    """Guard every route of ``app`` with what ``source`` says, re-reading it per request."""
    authenticator = Authenticator()
    bucket = _Bucket()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        config: WebFileConfig = source.current().config
        request["web_config"] = config
        tls = config.tls
        if tls is not None and tls.client_allowed_sans and not _allowed_san(request, tls.client_allowed_sans):
            return web.Response(status=403, text="Forbidden: client certificate name not allowed\n")
        probe = request.path in UNAUTHENTICATED_PATHS
        limited = config.rate_limit_interval > 0 and not probe
        if limited and not bucket.take(config.rate_limit_interval, config.rate_limit_burst):
            return web.Response(status=429, text="Too Many Requests\n")
        if config.users and not probe:
            credentials = _credentials(request.headers.get("Authorization", ""))
            if credentials is None or not await authenticator.check(config.users, *credentials):
                return _unauthorized()
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        config = request.get("web_config") or source.current().config
        for name, value in config.headers:
            response.headers[name] = value

    app.middlewares.append(guard)
    app.on_response_prepare.append(add_headers)
