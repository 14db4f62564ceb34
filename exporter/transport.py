"""Talking to one workspace's API: headers, request budget, one shared 429 window, retries, a body
cap and a whole-request timeout. Bodies are parsed in a worker thread."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TypeVar

import httpx

from exporter.apistats import ApiStats
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import ApiConfig
from exporter.errorbody import ERROR_BODY_MAX, summarize_error_body
from exporter.families import BAD_RESPONSE, NETWORK, RATE_LIMITED, SERVER_ERROR, TIMEOUT, UNAUTHORIZED
from exporter.parsing import BadResponse
from exporter.ratelimit import Backoff, TokenBucket, rate_limit_type, retry_after_seconds

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RequestFailed(Exception):
    """A request failed after its retries; ``reason`` is a POLL_ERROR_REASONS value and ``message``
    safe text (no headers, no key)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NotFound(RequestFailed):
    """404 on a resource that can disappear (a workflow deleted since it was listed)."""

    def __init__(self, message: str) -> None:
        super().__init__(BAD_RESPONSE, message)


class _BodyTooLarge(Exception):
    pass


class _Undecodable(Exception):
    """A 200 body its Content-Encoding cannot decode (the server's fault, not ours)."""


class RateLimitWindow:
    """The workspace's one 429 window: while it is open, no request of the workspace is sent."""

    def __init__(self, max_wait: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.max_wait = max_wait
        self._clock = clock
        self.until = 0.0  # clock.monotonic() when the window closes

    def open(self, seconds: float) -> float:
        """Open (or extend) the window by ``seconds`` from now, clamped to ``max_wait``; returns the
        wait the exporter will actually do."""
        wait = min(max(0.0, seconds), self.max_wait)
        self.until = max(self.until, self._clock.monotonic() + wait)
        return wait

    async def wait(self) -> None:
        """Sleep until the window is closed."""
        while True:  # the window may be extended while we sleep
            left = self.until - self._clock.monotonic()
            if left <= 0:
                return
            await self._clock.sleep(left)


class ApiTransport:
    """One per workspace. ``on_progress(extra)`` is called after each successful request (extra 0)
    and before each 429 wait (extra = the wait), so a progress guard can move its deadline."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        api: ApiConfig,
        stats: ApiStats,
        on_progress: Callable[[float], None] | None = None,
        executor: Executor | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.api = api
        self.clock = clock
        self.executor = executor  # where bodies are parsed (None: the loop's default executor)
        self.stats = stats
        self.on_progress = on_progress
        self.bucket = TokenBucket(api.requests_per_second, api.burst, clock)
        self.backoff = Backoff(api.retry_backoff, api.retry_backoff_max)
        self.window = RateLimitWindow(api.max_retry_after, clock)
        # Header values that carry the key (and the key alone): never repeated from an error body.
        self._secrets = [
            part
            for name, value in headers.items()
            if name.lower() in ("authorization", "x-api-key")
            for part in (value, value.split()[-1] if value.split() else value)
        ]
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=api.request_timeout,
            headers=dict(headers),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _progress(self, extra: float) -> None:
        if self.on_progress is not None:
            self.on_progress(extra)

    async def _fetch(self, path: str, params: Mapping[str, str] | None) -> tuple[int, httpx.Headers, bytes]:
        """One request, connect to last byte, bounded by api.request_timeout and the body cap."""
        async with asyncio.timeout(self.api.request_timeout):
            async with self._http.stream("GET", path, params=params) as response:
                if response.status_code != 200:  # only the start of an error body is read
                    excerpt = b""
                    try:
                        async for chunk in response.aiter_bytes():
                            excerpt += chunk
                            if len(excerpt) >= ERROR_BODY_MAX:
                                break
                    except httpx.DecodingError:
                        pass  # the code says what matters; the excerpt is only a summary
                    return response.status_code, response.headers, excerpt
                chunks: list[bytes] = []
                size = 0
                try:
                    async for chunk in response.aiter_bytes():  # decoded: the cap is on what we hold
                        size += len(chunk)
                        if size > self.api.max_response_bytes:
                            raise _BodyTooLarge
                        chunks.append(chunk)
                except httpx.DecodingError:
                    raise _Undecodable from None
                return 200, response.headers, b"".join(chunks)

    async def get(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str] | None,
        parse: Callable[[bytes], T],
        side: bool = False,
    ) -> T:
        """GET ``path`` until it answers 200 (or fails for good), then ``parse`` its body off the loop.
        ``parse`` raises BadResponse for a body that is not what the endpoint returns. A ``side`` read
        (credits, accounts) shares the budget and the 429 window, but its answers are no progress of
        the runs poll."""
        failures = 0
        rate_limited = 0
        while True:
            await self.window.wait()
            await self.bucket.acquire()
            await self.window.wait()  # a 429 may have opened it while we queued for a token
            started = self.clock.monotonic()
            try:
                code, headers, body = await self._fetch(path, params)
            except (TimeoutError, httpx.TimeoutException):
                self.stats.record_failure(endpoint, TIMEOUT)
                reason, why = TIMEOUT, f"GET {path} timed out after {self.api.request_timeout:g}s"
            except _BodyTooLarge:
                self.stats.record_response(endpoint, 200, self.clock.monotonic() - started)
                raise RequestFailed(
                    BAD_RESPONSE,
                    f"GET {path} answered more than api.max_response_bytes ({self.api.max_response_bytes})",
                ) from None
            except _Undecodable:
                self.stats.record_response(endpoint, 200, self.clock.monotonic() - started)
                raise RequestFailed(
                    BAD_RESPONSE, f"GET {path} answered a body its Content-Encoding cannot decode"
                ) from None
            except httpx.TransportError as error:
                self.stats.record_failure(endpoint, NETWORK)
                reason, why = NETWORK, f"GET {path} failed: {type(error).__name__}"
            else:
                self.stats.record_response(endpoint, code, self.clock.monotonic() - started)
                if code == 200:
                    if not side:
                        self._progress(0.0)
                    try:
                        loop = asyncio.get_running_loop()
                        return await loop.run_in_executor(self.executor, functools.partial(parse, body))
                    except BadResponse as error:
                        raise RequestFailed(BAD_RESPONSE, f"GET {path}: {error}") from None
                if code == 429:
                    rate_limited += 1
                    limit_type = rate_limit_type(headers)
                    self.stats.record_rate_limited(endpoint, limit_type)
                    if rate_limited > self.api.max_rate_limit_retries:
                        raise RequestFailed(
                            RATE_LIMITED, f"GET {path} was rate limited {rate_limited} times in a row"
                        )
                    hinted = retry_after_seconds(headers, self.clock.time())
                    asked = hinted if hinted is not None else self.backoff.delay(rate_limited)
                    wait = self.window.open(asked)
                    self.stats.retry_after = wait
                    logger.info(
                        "rate limited; every request of the workspace waits",
                        extra={
                            "endpoint": endpoint,
                            "wait_seconds": round(wait, 3),
                            "limit_type": limit_type,
                            # A side read's error body is not quoted: the accounts endpoint carries cookies.
                            "said": "" if side else summarize_error_body(body, self._secrets),
                        },
                    )
                    self._progress(wait)
                    continue
                said = "" if side else summarize_error_body(body, self._secrets)
                said = f" ({said})" if said else ""
                if code in (401, 403):
                    raise RequestFailed(
                        UNAUTHORIZED,
                        f"GET {path} answered {code}: the API key or workspace_uid is wrong or "
                        f"outdated{said}",
                    )
                if code == 404:
                    raise NotFound(f"GET {path} answered 404{said}")
                if code < 500:
                    raise RequestFailed(BAD_RESPONSE, f"GET {path} answered unexpected HTTP {code}{said}")
                reason, why = SERVER_ERROR, f"GET {path} answered HTTP {code}{said}"
            failures += 1
            if failures > self.api.max_retries:
                raise RequestFailed(reason, f"{why} (after {failures} attempts)")
            delay = self.backoff.delay(failures)
            logger.debug(
                "retrying", extra={"endpoint": endpoint, "reason": reason, "delay_seconds": round(delay, 3)}
            )
            await self.clock.sleep(delay)
