"""Poll each workspace on its interval and publish a new snapshot after every poll."""

from __future__ import annotations

import asyncio
import logging
import time

from exporter.client import BAD_RESPONSE, TIMEOUT, CaptainDataClient, PollError
from exporter.config import Config, WorkspaceConfig
from exporter.published import Published
from exporter.state import WorkspaceState
from exporter.state_snapshot import snapshot_of

logger = logging.getLogger(__name__)


class Poller:
    """Polls one workspace: one poll at a time, each bounded by ``poll.timeout``."""

    def __init__(
        self, workspace: WorkspaceConfig, config: Config, state: WorkspaceState, published: Published
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.state = state
        self.published = published
        self.client = CaptainDataClient(workspace, config.api, state.api)

    async def poll_once(self) -> bool:
        """One poll; True if it succeeded. Never raises (but for cancellation)."""
        started = time.monotonic()
        deadline = started + self.config.poll.deadline
        log = {"workspace": self.workspace.name}
        try:
            async with asyncio.timeout(self.config.poll.deadline):
                result = await self.client.poll(deadline)
        except PollError as error:
            self.state.record_failure(error.reason, str(error))
            logger.warning("poll failed", extra={**log, "reason": error.reason, "error": str(error)})
        except TimeoutError:
            message = f"poll did not finish within {self.config.poll.deadline:g}s"
            self.state.record_failure(TIMEOUT, message)
            logger.warning("poll failed", extra={**log, "reason": TIMEOUT, "error": message})
        except Exception as error:  # a bug must not stop the exporter: logged and counted
            self.state.record_failure(BAD_RESPONSE, f"{type(error).__name__}: {error}")
            logger.exception("poll failed unexpectedly", extra=log)
        else:
            self.state.apply(result)
            logger.debug(
                "poll succeeded",
                extra={
                    **log,
                    "workflows": len(result.workflows),
                    "runs": sum(map(len, result.runs.values())),
                },
            )
        self.state.last_poll_duration = time.monotonic() - started
        self.published.publish(snapshot_of(self.state))
        return self.state.up

    async def run_forever(self) -> None:
        interval = self.config.poll.interval
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def aclose(self) -> None:
        await self.client.aclose()


def build(config: Config) -> tuple[Published, list[Poller]]:
    states = [
        WorkspaceState(w.name, needs_action_limit=config.metrics.needs_action_limit)
        for w in config.workspaces
    ]
    published = Published([w.name for w in config.workspaces])
    pollers = [
        Poller(w, config, state, published) for w, state in zip(config.workspaces, states, strict=True)
    ]
    return published, pollers
