"""What ``--web.config.file`` asks of every request: basic auth (bcrypt, cached), allowed client
certificate names, the rate limit, and the response headers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import bcrypt
from aiohttp import web

from exporter.webconfig import WebConfigSource, WebFileConfig, bcrypt_cost

# Probes work without credentials and outside the rate limit (kubelet, load balancers).
UNAUTHENTICATED_PATHS = frozenset({"/-/healthy", "/-/ready"})
MAX_AUTHORIZATION_LENGTH = 4096
WEB_CONFIG_KEY = web.RequestKey("web_config", WebFileConfig)
MAX_PASSWORD_BYTES = 72  # bcrypt's limit: bcrypt 5 raises past it, bcrypt 4 ignores the rest
# bcrypt checks run in this many threads at most; beyond QUEUE_LIMIT waiting checks, a new one is
# refused at once (429) instead of queueing: an attacker cannot build an unbounded backlog.
BCRYPT_WORKERS = 2
QUEUE_LIMIT = 32
# Per client address: FAILURE_BURST failed checks, then one more every FAILURE_INTERVAL seconds;
# past it, credentials that are not cached successes get 429 without any bcrypt work.
FAILURE_BURST = 10
FAILURE_INTERVAL = 6.0
MAX_TRACKED_CLIENTS = 10_000

logger = logging.getLogger("exporter.web")


@cache
def _dummy_hash(cost: int) -> bytes:
    """Checked against when the user is unknown, at the cost of the configured hashes, so an unknown
    user costs the same bcrypt time as a wrong password."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))


def dummy_cost(users: Mapping[str, bytes]) -> int:
    """The configured hashes' cost (the most common one, the higher on a tie)."""
    costs = Counter(bcrypt_cost(hashed) for hashed in users.values())
    return max(costs, key=lambda cost: (costs[cost], cost)) if costs else 10


def _checkpw(password: bytes, hashed: bytes | None, cost: int) -> bool:
    """In a worker thread: the dummy hash, made once per cost, is made there too."""
    try:
        return bcrypt.checkpw(password, hashed if hashed is not None else _dummy_hash(cost))
    except ValueError:  # a hash bcrypt cannot read: never a 500
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Busy(Exception):
    """Too many bcrypt checks waiting already."""


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed while a check ran (shutdown)
        loop.call_soon_threadsafe(callback)


class _Slots:
    """The pool's worker slots, handed out urgent waiters first, then in arrival order."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    async def acquire(self, urgent: bool) -> None:
        if self._free > 0:
            self._free -= 1
            return
        queue = self._waiting[0 if urgent else 1]
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # handed a slot, then cancelled: pass it on
            elif granted in queue:
                queue.remove(granted)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class Authenticator:
    """Checks basic-auth credentials against bcrypt hashes. A success is remembered as a SHA-256 of
    user, password and hash (never the password) and answered at once, without bcrypt and without
    queueing, so the configured scrapers never wait behind wrong passwords; a changed hash or password
    misses the cache. Other checks run in a bounded pool of threads, off the event loop; an urgent one
    (from a client with no recent failure: a scraper's first check after a start or a password change)
    goes before those of clients that have failed, so attackers delay it by at most the checks already
    running."""

    def __init__(self, workers: int = BCRYPT_WORKERS, queue_limit: int = QUEUE_LIMIT) -> None:
        self._verified: dict[str, bytes] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._slots = _Slots(workers)
        self._queue_limit = queue_limit + workers
        self.pending = 0  # checks waiting for or in the pool

    @staticmethod
    def _key(user: str, password: bytes, hashed: bytes) -> bytes:
        return hashlib.sha256(b"\0".join((user.encode(), password, hashed))).digest()

    def cached(self, users: Mapping[str, bytes], user: str, password: bytes) -> bool:
        hashed = users.get(user)
        remembered = self._verified.get(user)
        if hashed is None or remembered is None:
            return False
        return hmac.compare_digest(remembered, self._key(user, password, hashed))

    async def check(
        self, users: Mapping[str, bytes], user: str, password: bytes, urgent: bool = True
    ) -> bool:
        """True when the credentials match; Busy when the pool's queue is full."""
        if self.cached(users, user, password):
            return True
        if len(password) > MAX_PASSWORD_BYTES:
            return False
        if self.pending >= self._queue_limit:
            raise Busy
        hashed = users.get(user)
        self.pending += 1
        try:
            await self._slots.acquire(urgent)
            loop = asyncio.get_running_loop()
            work = self._pool.submit(_checkpw, password, hashed, dummy_cost(users))
            # The slot is free when the thread is, even if this request was cancelled meanwhile.
            work.add_done_callback(lambda _: _call_soon(loop, self._slots.release))
            ok = await asyncio.wrap_future(work)
        finally:
            self.pending -= 1
        if ok and hashed is not None:
            if len(self._verified) > len(users) + 16:
                self._verified.clear()
            self._verified[user] = self._key(user, password, hashed)
            return True
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class FailureLimit:
    """Failed basic-auth checks per client address: a token bucket of FAILURE_BURST, one token back
    every FAILURE_INTERVAL seconds. The least recently failing clients are forgotten first."""

    def __init__(self, burst: int = FAILURE_BURST, interval: float = FAILURE_INTERVAL) -> None:
        self._burst, self._interval = burst, interval
        self._clients: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, stamp

    def _tokens(self, client: str, now: float) -> float:
        tokens, stamp = self._clients.get(client, (float(self._burst), now))
        return min(float(self._burst), tokens + (now - stamp) / self._interval)

    def allowed(self, client: str) -> bool:
        return self._tokens(client, time.monotonic()) >= 1

    def clean(self, client: str) -> bool:
        """No failure that the bucket has not forgotten yet."""
        return self._tokens(client, time.monotonic()) >= self._burst

    def failed(self, client: str) -> None:
        now = time.monotonic()
        self._clients[client] = (max(0.0, self._tokens(client, now) - 1), now)
        self._clients.move_to_end(client)
        while len(self._clients) > MAX_TRACKED_CLIENTS:
            self._clients.popitem(last=False)


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


def _too_many() -> web.Response:
    return web.Response(status=429, text="Too Many Requests\n")


def install(
    app: web.Application, source: WebConfigSource, failures: FailureLimit | None = None
) -> Authenticator:
    """Guard every route of ``app`` with what ``source`` says, re-reading it per request."""
    authenticator = Authenticator()
    failures = failures if failures is not None else FailureLimit()
    bucket = _Bucket()

    async def authenticated(request: web.Request, users: Mapping[str, bytes]) -> web.Response | None:
        """None when the request may go on, else the refusal."""
        credentials = _credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return _unauthorized()
        if authenticator.cached(users, *credentials):
            return None
        client = request.remote or ""
        if not failures.allowed(client):
            return _too_many()
        try:
            ok = await authenticator.check(users, *credentials, urgent=failures.clean(client))
        except Busy:
            return _too_many()
        if ok:
            return None
        failures.failed(client)
        return _unauthorized()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        config: WebFileConfig = source.current().config
        request[WEB_CONFIG_KEY] = config
        tls = config.tls
        if tls is not None and tls.client_allowed_sans and not _allowed_san(request, tls.client_allowed_sans):
            return web.Response(status=403, text="Forbidden: client certificate name not allowed\n")
        probe = request.path in UNAUTHENTICATED_PATHS
        limited = config.rate_limit_interval > 0 and not probe
        if limited and not bucket.take(config.rate_limit_interval, config.rate_limit_burst):
            return _too_many()
        if config.users and not probe:
            refused = await authenticated(request, config.users)
            if refused is not None:
                return refused
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        config = request.get(WEB_CONFIG_KEY) or source.current().config
        for name, value in config.headers:
            response.headers[name] = value

    async def close(_: web.Application) -> None:
        authenticator.close()

    app.middlewares.append(guard)
    app.on_response_prepare.append(add_headers)
    app.on_cleanup.append(close)
    return authenticator
