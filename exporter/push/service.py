"""Push as one piece the command line starts and stops: the stats, one queue (and its workers) per
workspace, and the listener. ``exporter/push/apply.py`` gives it each workspace's ``fetch_and_apply``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from exporter.config import Config
from exporter.push.config import PushConfig
from exporter.push.queue import COALESCE_WINDOW, FetchAndApply, PushQueue
from exporter.push.receiver import (
    PushListener,
    PushWorkspace,
    Receiver,
    create_push_app,
    start_push_listener,
    web_source_for,
)
from exporter.push.stats import PushStats


class PushService:
    """Build with :meth:`build` (None when push is off), then ``await start()`` and ``await aclose()``."""

    def __init__(
        self,
        config: Config,
        push: PushConfig,
        fetchers: Mapping[str, FetchAndApply],
        *,
        concurrency: int = 1,
        coalesce_window: float = COALESCE_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        assert push.listen_address is not None
        self.config = config
        self.push = push
        # The workspaces this process polls: with --shard, another shard owns (and counts) the rest, and
        # a push for one of those is answered as for a workspace this listener does not know.
        owned = [w for w in config.workspaces if w.name in fetchers]
        self.stats = PushStats((w.name for w in owned), now)
        self.queues = {
            w.name: PushQueue(
                w.name,
                push.queue_size,
                fetchers[w.name],
                self.stats,
                concurrency=concurrency,
                coalesce_window=coalesce_window,
                monotonic=monotonic,
            )
            for w in owned
        }
        self.web_source = web_source_for(push.web_config_file)
        self.receiver = Receiver(
            (
                PushWorkspace(w.name, w.api_version, push.tokens.get(w.name), self.queues[w.name])
                for w in owned
            ),
            self.stats,
            max_body_bytes=push.max_body_bytes,
            body_timeout=config.web.idle_timeout,
            secrets_to_redact=config.secrets(),
            web_source=self.web_source,
            monotonic=monotonic,
        )
        self.listener: PushListener | None = None

    @classmethod
    def build(
        cls, config: Config, fetchers: Mapping[str, FetchAndApply], *, concurrency: int = 1
    ) -> PushService | None:
        """The service when ``push.listen_address`` is set, else None; ``fetchers``: workspace name →
        its targeted read and apply."""
        push = config.push
        if push is None or not push.enabled:
            return None
        return cls(config, push, fetchers, concurrency=concurrency)

    async def start(self) -> None:
        """Start the workers, then listen; OSError (nothing left running) if the address is taken."""
        for queue in self.queues.values():
            queue.start()
        assert self.push.listen_address is not None
        try:
            self.listener = await start_push_listener(
                create_push_app(self.receiver, self.web_source),
                self.push.listen_address,
                max_connections=self.config.web.max_connections,
                idle_timeout=self.config.web.idle_timeout,
                web_source=self.web_source,
            )
        except BaseException:
            await self.aclose()
            raise

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    async def aclose(self) -> None:
        if self.listener is not None:
            await self.listener.aclose()
            self.listener = None
        for queue in self.queues.values():
            await queue.aclose()
        self.receiver.close()
