"""One poll of a v3 workspace: the workflow list, then each workflow's runs page by page, stalest
workflow first, each applied as soon as it is read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import quote

from exporter.api.v3 import RUNS_ENDPOINT, WORKFLOWS_ENDPOINT
from exporter.api.v3.parser import parse_runs_body, parse_workflows_body
from exporter.config import Config, WorkspaceConfig
from exporter.failures import ErrorReader
from exporter.parsing import Parsed, Run, Workflow
from exporter.sink import StateSink
from exporter.transport import ApiTransport, NotFound, RequestFailed
from exporter.unknown_statuses import UnknownStatuses

logger = logging.getLogger(__name__)


class V3Source:
    """Reads one v3 workspace. Learns the API's page size (the length of a page followed by a
    non-empty page): after that, a shorter page ends pagination without asking for an empty one."""

    def __init__(
        self,
        transport: ApiTransport,
        workspace: WorkspaceConfig,
        config: Config,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.api = config.api
        self.filter = workspace.workflows
        self.part = workspace.part
        self.unknown = UnknownStatuses(workspace.name)
        self.errors = ErrorReader([workspace.api_key.reveal()], workspace.name)  # run errors
        self.clock = clock  # bounds how far in the future a run's timestamp may lie
        self.page_size: int | None = None
        self._warned_cap = False
        # workflow uid -> (number of runs, hash of their uids) of its last complete listing
        self._listing: dict[str, tuple[int, int]] = {}

    async def poll(self, sink: StateSink) -> None:
        listed = await self.transport.get(WORKFLOWS_ENDPOINT, "/v3/workflows", None, parse_workflows_body)
        if listed.skipped:
            logger.warning(
                "workflows the exporter cannot use were skipped and counted",
                extra={"skipped": sum(listed.skipped.values()), "first": listed.first_skip},
            )
            await sink.skipped(listed.skipped)
        workflows = [w for w in listed.items if self.filter.keeps(w.uid, w.name)]
        cap = self.api.max_workflows
        if len(workflows) > cap:
            message = f"{len(workflows)} workflows listed; api.max_workflows is {cap}, the rest is left out"
            if not self._warned_cap:
                self._warned_cap = True
                logger.warning(message + " (logged once)")
            await sink.over_limit(message)
            workflows = workflows[:cap]  # the API's order: stable from poll to poll
        if self.part.split:  # this shard's workflows; the whole workspace's count for its owner shard
            tracked = len(workflows)
            workflows = [w for w in workflows if self.part.owns_workflow(w.uid)]
            await sink.workflows_listed(workflows, tracked=tracked)
        else:
            await sink.workflows_listed(workflows)
        keep = {w.uid for w in workflows}
        self._listing = {uid: seen for uid, seen in self._listing.items() if uid in keep}
        limit = asyncio.Semaphore(self.api.concurrency)

        async def read(workflow: Workflow) -> None:
            async with limit:
                started = sink.read_started()
                try:
                    parsed, truncated = await self._runs(workflow)
                except NotFound:
                    logger.info("workflow disappeared during the poll", extra={"workflow_uid": workflow.uid})
                    await sink.workflow_vanished(workflow)
                    return
                except RequestFailed as error:
                    logger.warning(
                        "reading a workflow's runs failed; its last values are kept",
                        extra={"workflow_uid": workflow.uid, "reason": error.reason, "error": error.message},
                    )
                    await sink.workflow_failed(workflow, error.reason, error.message)
                    return
            if truncated:
                await sink.truncated(workflow, truncated)
            if parsed.skipped:
                logger.warning(
                    "runs the exporter cannot understand were skipped and counted",
                    extra={
                        "workflow_uid": workflow.uid,
                        "skipped": sum(parsed.skipped.values()),
                        "first": parsed.first_skip,
                    },
                )
            await sink.runs_read(workflow, parsed, read_started=started)

        async with asyncio.TaskGroup() as group:
            for workflow in sink.stalest_first(workflows):
                group.create_task(read(workflow))

    async def _runs(self, workflow: Workflow) -> tuple[Parsed[Run], str]:
        """All runs the API lists for ``workflow``, deduplicated by uid, and why pagination stopped
        early ("" when it did not)."""
        path = f"/v3/workflows/{quote(workflow.uid, safe='')}/jobs"  # plain already; encoded anyway
        runs: dict[str, Run] = {}
        total = Parsed[Run]([], Counter())
        previous = self._listing.get(workflow.uid)
        last_length: int | None = None
        for page in range(self.api.max_pages):
            parsed = await self.transport.get(RUNS_ENDPOINT, path, {"page": str(page)}, self._parse_runs)
            total.skipped.update(parsed.skipped)
            total.first_skip = total.first_skip or parsed.first_skip
            length = len(parsed.items) + sum(parsed.skipped.values())
            if length and last_length:  # the previous page was followed by a non-empty one
                self.page_size = max(self.page_size or 0, last_length)
            if not length:
                break
            if page > 0 and parsed.items and all(run.uid in runs for run in parsed.items):
                logger.warning(
                    "the API repeated a page of runs (it may ignore the page parameter); stopping here",
                    extra={"workflow_uid": workflow.uid, "page": page},
                )
                return self._done(workflow, runs, total, complete=False), "the API repeated a page"
            for run in parsed.items:
                runs.setdefault(run.uid, run)
            last_length = length
            if self.page_size is not None and length < self.page_size:
                break  # a short page is the last one
            if _same_listing(previous, runs):
                break  # exactly the runs of the last complete listing: nothing newer pushed any down
        else:
            logger.warning(
                "page cap reached; older runs are not counted",
                extra={"workflow_uid": workflow.uid, "max_pages": self.api.max_pages},
            )
            return self._done(workflow, runs, total, complete=False), "api.max_pages reached"
        return self._done(workflow, runs, total, complete=True), ""

    def _parse_runs(self, body: bytes) -> Parsed[Run]:
        return parse_runs_body(body, self.unknown, self.clock(), self.errors)

    def _done(
        self, workflow: Workflow, runs: dict[str, Run], total: Parsed[Run], complete: bool
    ) -> Parsed[Run]:
        if complete:
            self._listing[workflow.uid] = (len(runs), hash(frozenset(runs)))
        else:
            self._listing.pop(workflow.uid, None)
        total.items = list(runs.values())
        return total


def _same_listing(previous: tuple[int, int] | None, runs: dict[str, Run]) -> bool:
    """Whether ``runs`` are those of the last complete listing. The uids are hashed (a pass over all
    of them, on the event loop) only when their number matches, not after every page."""
    return previous is not None and previous[0] == len(runs) and previous[1] == hash(frozenset(runs))
