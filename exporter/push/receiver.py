"""The push listener: ``POST /push/{workspace}`` and ``/-/healthy``, on a port of its own.

Each push is checked in this order, cheapest and least revealing first, and answered at once:
unknown workspace or wrong credentials → 401 (the body is never read, no API request is made);
a declared or streamed body over ``max_body_bytes`` → 413 (read no further); not a push → 400;
queue full → 503 with Retry-After; else 202. Unread bodies close the connection."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from exporter.config import Secret, parse_listen_address
from exporter.listener import HardenedSite, start_site
from exporter.logs import redact
from exporter.push.body import Invalid, parse_body
from exporter.push.queue import PushQueue
from exporter.push.stats import (
    INVALID,
    OVERLOADED,
    TOO_LARGE,
    UNAUTHORIZED,
    UNKNOWN,
    UNKNOWN_WORKSPACE,
    PushStats,
)
from exporter.webconfig import Loaded, WebConfigSource
from exporter.webguard import Authenticator, FailureLimit
from exporter.webguard import install as install_web_guard

logger = logging.getLogger("exporter.push")

RETRY_AFTER_SECONDS = 5  # a full queue drains at the API's request rate
MAX_AUTHORIZATION_LENGTH = 4096
PARSE_INLINE_MAX_BYTES = 64 * 1024
_REALM = 'realm="captaindata-exporter push"'


@dataclass(frozen=True)
class PushWorkspace:
    """One configured workspace as the receiver sees it: which body shape it takes, its token (None:
    only the push web config's basic auth admits pushes), and its queue."""

    name: str
    api_version: str
    token: Secret | None
    queue: PushQueue


class PushWebConfigSource(WebConfigSource):
    """``push.web_config_file``. Its basic auth is one of two ways to authenticate a push (the other
    is the workspace's bearer token), so the shared guard (TLS client names, rate limit, headers) is
    shown the file without its users, and the push handler checks them itself."""

    def current(self) -> Loaded:
        loaded = super().current()
        if not loaded.config.users:
            return loaded
        return dataclasses.replace(loaded, config=dataclasses.replace(loaded.config, users={}))

    def users(self) -> Mapping[str, bytes]:
        return super().current().config.users


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


def _basic(header: str) -> tuple[str, bytes] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refusal(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """An answer sent before the body is read: the connection closes after it (the runner's
    lingering_time is 0, so the unread body is never drained)."""
    response = web.Response(status=status, text=text, headers=headers)
    response.force_close()
    return response


class Receiver:
    def __init__(
        self,
        workspaces: Iterable[PushWorkspace],
        stats: PushStats,
        *,
        max_body_bytes: int,
        body_timeout: float,
        secrets_to_redact: Sequence[str] = (),
        web_source: PushWebConfigSource | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspaces = {workspace.name: workspace for workspace in workspaces}
        self.stats = stats
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self._secrets = [s for s in secrets_to_redact if s]
        self._web_source = web_source
        self._monotonic = monotonic
        self._authenticator = Authenticator()
        self._failures = FailureLimit()
        # Digests, compared in constant time; a workspace without a token gets a random one that no
        # presented token can match, so every refusal costs the same.
        self._digests = {
            w.name: _digest(w.token.reveal()) if w.token is not None else _digest(secrets.token_bytes(32))
            for w in self.workspaces.values()
        }

    def _names_a_secret(self, *identifiers: str) -> bool:
        return any(secret in text for secret in self._secrets for text in identifiers)

    def _unauthorized(self) -> web.Response:
        challenges = f"Bearer {_REALM}"
        if self._web_source is not None and self._web_source.users():
            challenges += f", Basic {_REALM}"
        return _refusal(401, "Unauthorized\n", {"WWW-Authenticate": challenges})

    async def _authorized(self, request: web.Request, name: str) -> bool:
        header = request.headers.get("Authorization", "")
        if len(header) > MAX_AUTHORIZATION_LENGTH:
            return False
        token = _bearer(header)
        if token is not None:
            return hmac.compare_digest(_digest(token), self._digests[name])
        users = self._web_source.users() if self._web_source is not None else {}
        credentials = _basic(header)
        if not users or credentials is None:
            return False
        if self._authenticator.cached(users, *credentials):
            return True
        # As on /metrics (exporter/webguard.py): past its failure limit a client's credentials get no
        # bcrypt check, and a client without recent failures is checked first.
        client = request.remote or ""
        if not self._failures.allowed(client):
            return False
        try:
            ok = await self._authenticator.check(users, *credentials, urgent=self._failures.clean(client))
        except Exception:  # a refused check (e.g. too many waiting): not admitted
            return False
        if not ok:
            self._failures.failed(client)
        return ok

    async def _body(self, request: web.Request) -> bytes | None:
        """The body, or None once it passes the cap (nothing more is read)."""
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.body_timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > self.max_body_bytes:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    async def push(self, request: web.Request) -> web.Response:
        arrived = self._monotonic()
        name = request.match_info["workspace"]
        workspace = self.workspaces.get(name)
        if workspace is None:
            # 401, as for a wrong token: a caller without credentials learns no workspace names.
            self.stats.count(UNKNOWN, UNKNOWN_WORKSPACE)
            hmac.compare_digest(_digest(request.headers.get("Authorization", "")), _digest(b""))
            return self._unauthorized()
        if not await self._authorized(request, name):
            self.stats.count(name, UNAUTHORIZED)
            return self._unauthorized()
        declared = request.content_length
        if declared is not None and declared > self.max_body_bytes:
            self.stats.count(name, TOO_LARGE)
            return _refusal(413, f"Payload Too Large: at most {self.max_body_bytes} bytes\n")
        try:
            raw = await self._body(request)
        except TimeoutError:
            self.stats.count(name, INVALID)
            return _refusal(408, "Request Timeout: the body did not arrive in time\n")
        if raw is None:
            self.stats.count(name, TOO_LARGE)
            return _refusal(413, f"Payload Too Large: at most {self.max_body_bytes} bytes\n")
        # Up to ~0.3 s of CPU for a hostile mebibyte: big bodies are parsed off the event loop.
        event = (
            parse_body(raw)
            if len(raw) <= PARSE_INLINE_MAX_BYTES
            else await asyncio.to_thread(parse_body, raw)
        )
        if not isinstance(event, Invalid) and event.api != workspace.api_version:
            event = Invalid(f"not a {workspace.api_version} push")
        if not isinstance(event, Invalid) and self._names_a_secret(event.run_uid, event.workflow_uid):
            event = Invalid("a secret where an identifier belongs")  # it would reach API paths and logs
        if isinstance(event, Invalid):
            self.stats.count(name, INVALID)
            return web.Response(status=400, text=f"Bad Request: {event.reason}\n")
        error = redact(event.error, self._secrets) if event.error is not None else None
        event = dataclasses.replace(event, error=error, received_at=arrived)
        outcome = workspace.queue.offer(event)
        if outcome == OVERLOADED:
            return web.Response(
                status=503,
                text="Service Unavailable: too many pushes waiting\n",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return web.Response(status=202, text="Accepted\n")

    def close(self) -> None:
        close = getattr(self._authenticator, "close", None)
        if callable(close):
            close()


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


def create_push_app(receiver: Receiver, web_source: PushWebConfigSource | None = None) -> web.Application:
    """The push port's app: nothing of /metrics is served here."""
    app = web.Application()
    app.router.add_post("/push/{workspace}", receiver.push)
    app.router.add_get("/-/healthy", healthy)
    if web_source is not None:
        install_web_guard(app, web_source)
    return app


@dataclass
class PushListener:
    runner: web.AppRunner
    site: HardenedSite

    @property
    def port(self) -> int:
        return self.site.port

    async def aclose(self) -> None:
        await self.runner.cleanup()


async def start_push_listener(
    app: web.Application,
    listen_address: str,
    *,
    max_connections: int,
    idle_timeout: float,
    web_source: PushWebConfigSource | None = None,
) -> PushListener:
    """Serve ``app`` on ``listen_address`` as /metrics is served (connection cap, TLS handshake and
    idle/half-sent requests bounded by ``idle_timeout``); OSError if it cannot listen."""
    host, port = parse_listen_address(listen_address)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access"),
        shutdown_timeout=5.0,
        keepalive_timeout=idle_timeout,
        lingering_time=0,  # an unread body is never drained: the connection closes
    )
    await runner.setup()
    try:
        site = await start_site(
            runner,
            host,
            port,
            max_connections,
            web_source.listener_context() if web_source is not None else None,
            idle_timeout,
            web_source.current if web_source is not None else None,
        )
    except BaseException:
        await runner.cleanup()
        raise
    return PushListener(runner, site)


def web_source_for(path: Path | None) -> PushWebConfigSource | None:
    return PushWebConfigSource(path) if path is not None else None
