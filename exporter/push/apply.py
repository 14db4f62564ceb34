"""Push, applied: each event becomes one targeted read of its run through the workspace's own
transport (the same request budget and 429 window as polling), applied to the state as a polled run
would be, and published at once. Also wires the missed-push accounting into each workspace's state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from exporter.api import adapter
from exporter.config import Config
from exporter.failures import ErrorReader
from exporter.poller import Poller
from exporter.published import Published
from exporter.push.body import PushEvent
from exporter.push.missed import WINDOW_INTERVALS, Announcements
from exporter.push.service import PushService
from exporter.push.stats import PushStats
from exporter.transport import RequestFailed
from exporter.unknown_statuses import UnknownStatuses

logger = logging.getLogger("exporter.push")


class PushApplier:
    """``fetch_and_apply`` of one workspace: True when the read succeeded (whatever it changed)."""

    def __init__(self, poller: Poller, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.poller = poller
        self.api = adapter(poller.workspace.api_version)
        self.unknown = UnknownStatuses(poller.workspace.name)
        # run errors: the read-back run's error and the webhook's own, cleaned as a polled one is
        self.errors = ErrorReader([poller.workspace.api_key.reveal()], poller.workspace.name)
        self.stats: PushStats | None = None  # set once the service exists
        self._monotonic = monotonic

    async def __call__(self, event: PushEvent) -> bool:
        api, poller = self.api, self.poller
        name = poller.workspace.name
        if api.parse_run is None:
            return False
        # its timestamps bounded by the poller's clock, as a polled run's are
        parse = partial(api.parse_run, unknown=self.unknown, errors=self.errors, now=poller.clock.time())
        started = poller.sink.read_started()  # a poll's page requested before it must not undo it
        try:
            read = await poller.transport.get(api.run_endpoint, api.run_path(event.run_uid), None, parse)
        except RequestFailed as error:
            logger.warning(
                "reading a pushed run failed; the next poll reads it",
                extra={
                    "workspace": name,
                    "run": event.run_uid,
                    "reason": error.reason,
                    "error": error.message,
                },
            )
            return False
        if read is None:
            logger.warning(
                "a pushed run could not be understood", extra={"workspace": name, "run": event.run_uid}
            )
            return False
        add = api.push_adds_workflow and poller.workspace.workflows.keeps(
            read.workflow_uid, read.workflow_uid
        )
        if add:
            adopt = getattr(poller.source, "adopt", None)
            if callable(adopt):  # v4: the source lists the action from now on
                adopt(read.workflow_uid)
        snapshot, changed = await poller.sink.call(
            poller.state.run_pushed,
            read.workflow_uid,
            read.run,
            self.errors.clean(event.error) if event.error else None,
            add,
            started,
        )
        poller.sink.publish(snapshot, now=True)
        if changed and self.stats is not None:
            self.stats.applied(name, self._monotonic() - event.received_at)
        return True


def push_on_for(config: Config, name: str) -> bool:
    """Whether pushes can reach workspace ``name``: push is on and it has a token (or the push web
    config's basic auth may admit it)."""
    push = config.push
    return bool(push and push.enabled and (name in push.tokens or push.web_config_file is not None))


def wire_push(config: Config, pollers: Sequence[Poller], published: Published) -> PushService | None:
    """The push service for ``pollers`` (None when push is off): the targeted reads, the push
    families on /metrics and, for each workspace push can reach, the missed-push accounting."""
    appliers = {poller.workspace.name: PushApplier(poller) for poller in pollers}
    service = PushService.build(config, appliers)
    if service is None:
        return None
    service.stats.reachable = frozenset(w.name for w in config.workspaces if push_on_for(config, w.name))
    published.attach_push(service.stats)
    window = WINDOW_INTERVALS * config.poll.interval
    for poller in pollers:
        name = poller.workspace.name
        appliers[name].stats = service.stats
        if push_on_for(config, name):
            announcements = Announcements(window, partial(service.stats.missed, name))
            service.queues[name].announce = announcements.announce
            poller.state.on_polled_change = announcements.polled_change
    return service
