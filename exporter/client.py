"""The Captain Data v3 API client: auth headers, request budget, 429 waits, retries and pagination."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from exporter import __version__
from exporter.apistats import RUNS_ENDPOINT, WORKFLOWS_ENDPOINT, ApiStats
from exporter.config import ApiConfig, WorkspaceConfig
from exporter.model import BadResponse, Run, Workflow, parse_runs, parse_workflows
from exporter.ratelimit import Backoff, TokenBucket, retry_after_seconds
from exporter.statuses import UnknownStatuses

logger = logging.getLogger(__name__)
T = TypeVar("T")

RATE_LIMITED = "rate_limited"
UNAUTHORIZED = "unauthorized"
TIMEOUT = "timeout"
SERVER_ERROR = "server_error"
BAD_RESPONSE = "bad_response"
NETWORK = "network"
PAGE_CAP = "page_cap"
#: Every value of the ``reason`` label of ``captaindata_poll_errors_total``.
POLL_ERROR_REASONS = (RATE_LIMITED, UNAUTHORIZED, TIMEOUT, SERVER_ERROR, BAD_RESPONSE, NETWORK, PAGE_CAP)


class PollError(Exception):
    """A poll could not complete; ``reason`` is the ``captaindata_poll_errors_total`` label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _NotFound(Exception):
    pass


@dataclass
class PollResult:
    """Everything one successful poll of a workspace saw."""

    workflows: list[Workflow]
    runs: dict[str, list[Run]]
    truncated: list[str] = field(default_factory=list)  # workflow uids whose pagination stopped early


class CaptainDataClient:
    """Talks to one workspace. Not safe to share between event loops."""

    def __init__(self, workspace: WorkspaceConfig, api: ApiConfig, stats: ApiStats) -> None:
        self.workspace = workspace
        self.api = api
        self.stats = stats
        self.bucket = TokenBucket(api.requests_per_second, api.burst)
        self.backoff = Backoff(api.retry_backoff, api.retry_backoff_max)
        self._http = httpx.AsyncClient(
            base_url=workspace.base_url,
            timeout=api.request_timeout,
            headers={
                "Authorization": f"x-api-key {workspace.api_key.reveal()}",
                "x-project-id": workspace.workspace_uid,
                "Accept": "application/json",
                "User-Agent": f"captaindata-exporter/{__version__}",
            },
            follow_redirects=False,
        )
        self._deadline = float("inf")
        self.unknown = UnknownStatuses(workspace.name)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def poll(self, deadline: float) -> PollResult:
        """Read every tracked workflow and all its runs. ``deadline`` is a ``time.monotonic()`` value
        that no 429 wait may cross."""
        self._deadline = deadline
        workflows = [
            workflow
            for workflow in parse_or_fail(
                parse_workflows, await self._get_json(WORKFLOWS_ENDPOINT, "/v3/workflows")
            ).items
            if self.workspace.workflows.keeps(workflow.uid, workflow.name)
        ]
        result = PollResult(workflows=[], runs={})
        limit = asyncio.Semaphore(self.api.concurrency)

        async def read(workflow: Workflow) -> None:
            async with limit:
                runs = await self._list_runs(workflow, result)
            if runs is not None:
                result.runs[workflow.uid] = runs

        try:
            async with asyncio.TaskGroup() as group:
                for workflow in workflows:
                    group.create_task(read(workflow))
        except BaseExceptionGroup as failed:
            raise _first_leaf(failed) from None
        result.workflows = [workflow for workflow in workflows if workflow.uid in result.runs]
        return result

    async def _list_runs(self, workflow: Workflow, result: PollResult) -> list[Run] | None:
        """All runs of ``workflow``, page by page until an empty page, deduplicated by uid.
        ``None`` when the workflow disappeared between the two requests (404)."""
        path = f"/v3/workflows/{workflow.uid}/jobs"
        runs: dict[str, Run] = {}
        for page in range(self.api.max_pages):
            try:
                payload = await self._get_json(RUNS_ENDPOINT, path, {"page": str(page)})
            except _NotFound:
                logger.info("workflow disappeared during the poll", extra={"workflow_uid": workflow.uid})
                return None
            page_runs = parse_or_fail(lambda body: parse_runs(body, self.unknown), payload).items
            if not page_runs:
                return list(runs.values())
            if page > 0 and all(run.uid in runs for run in page_runs):
                logger.warning(
                    "the API repeated a page of runs (it may ignore the page parameter); stopping here",
                    extra={"workflow_uid": workflow.uid, "page": page},
                )
                result.truncated.append(workflow.uid)
                return list(runs.values())
            for run in page_runs:
                runs[run.uid] = run
        logger.warning(
            "page cap reached; older runs are not counted",
            extra={"workflow_uid": workflow.uid, "max_pages": self.api.max_pages},
        )
        result.truncated.append(workflow.uid)
        return list(runs.values())

    async def _wait(self, seconds: float, reason: str, why: str) -> None:
        if time.monotonic() + seconds > self._deadline:
            raise PollError(reason, f"{why}; waiting {seconds:.1f}s more would pass the poll deadline")
        await asyncio.sleep(seconds)

    async def _get_json(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> Any:
        failures = 0
        rate_limited = 0
        while True:
            await self.bucket.acquire()
            started = time.monotonic()
            try:
                response = await self._http.get(path, params=params)
            except httpx.TimeoutException:
                self.stats.record_failure(endpoint, TIMEOUT)
                reason, why = TIMEOUT, f"GET {path} timed out after {self.api.request_timeout:g}s"
            except httpx.TransportError as error:
                self.stats.record_failure(endpoint, NETWORK)
                reason, why = NETWORK, f"GET {path} failed: {type(error).__name__}: {error}"
            else:
                code = response.status_code
                self.stats.record_response(endpoint, code, time.monotonic() - started)
                if code == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise PollError(BAD_RESPONSE, f"GET {path} returned invalid JSON: {error}") from None
                if code == 429:
                    rate_limited += 1
                    hinted = retry_after_seconds(response.headers)
                    wait = hinted if hinted is not None else self.backoff.delay(rate_limited)
                    self.stats.retry_after = wait
                    why = f"GET {path} was rate limited (429, wait {wait:.1f}s)"
                    if rate_limited > self.api.max_rate_limit_retries:
                        raise PollError(
                            RATE_LIMITED, f"{why}; gave up after {rate_limited} rate-limited answers"
                        )
                    if wait > self.api.max_retry_after:
                        raise PollError(RATE_LIMITED, f"{why}; longer than api.max_retry_after")
                    logger.info(
                        "rate limited; waiting", extra={"endpoint": endpoint, "wait_seconds": round(wait, 3)}
                    )
                    await self._wait(wait, RATE_LIMITED, why)
                    continue
                if code in (401, 403):
                    raise PollError(
                        UNAUTHORIZED,
                        f"GET {path} answered {code}: the API key or workspace_uid is wrong or outdated",
                    )
                if code == 404 and endpoint == RUNS_ENDPOINT:
                    raise _NotFound(path)
                if code < 500:
                    raise PollError(BAD_RESPONSE, f"GET {path} answered unexpected HTTP {code}")
                reason, why = SERVER_ERROR, f"GET {path} answered HTTP {code}"
            failures += 1
            if failures > self.api.max_retries:
                raise PollError(reason, f"{why} (after {failures} attempts)")
            delay = self.backoff.delay(failures)
            logger.debug(
                "retrying", extra={"endpoint": endpoint, "reason": reason, "delay_seconds": round(delay, 3)}
            )
            await self._wait(delay, reason, why)


def parse_or_fail(parse: Callable[[object], T], payload: object) -> T:
    try:
        return parse(payload)
    except BadResponse as error:
        raise PollError(BAD_RESPONSE, f"unexpected API response: {error}") from None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first concrete exception of a task group's failure (a PollError when there is one)."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    return next((leaf for leaf in leaves if isinstance(leaf, PollError)), leaves[0])
