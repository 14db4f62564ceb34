"""The published snapshot: the latest snapshot of every workspace, and /metrics rendered from them.

Publishing only swaps a reference. Each (format, gzip) body is rendered when a scrape asks for it after
a publish, then served from cache until the next publish; concurrent scrapes await the same render.
Workflow chunks are cached by snapshot version and workspace chunks likewise, so a publish re-renders
only the workflows that changed; everything else is a join of cached bytes.

Small expositions (fewer than ``STALE_BYTES``, from fewer than ``STALE_WORKFLOWS`` workflows) are always
rendered for the scrape that asks, so what a scrape sees right after a publish is the published data. A big
one renders in a worker thread, and:

- at most one render per format is in flight, and at most one starts per ``RENDER_GAP`` seconds, so the
  render work is bounded however often scrapers come and however often the engine publishes (it
  publishes at most once a second during a poll, and at its end);
- a scrape never waits for a render in flight: it gets the previous body, a complete, consistent
  earlier exposition, at most about ``RENDER_GAP`` behind during a poll (a big render takes 50 ms or
  more, and a scrape during a big poll is to take under 30 ms: bench/perf);
- a format asked for in the last ``IN_USE`` seconds is re-rendered in the background after a publish
  (within those bounds), so that when a poll ends the next scrape finds the final body ready. A format
  nobody asks for is never rendered.
"""

from __future__ import annotations

import asyncio
import functools
import gzip as gzip_module
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from exporter.render import (
    EMPTY_CHUNKS,
    Chunks,
    Fragments,
    assemble,
    join_workspace,
    render_push,
    render_workflow,
    render_workspace_own,
    shard_info_line,
    workspace_label,
)
from exporter.sharding import WHOLE, Part, Sharding
from exporter.snapshot import WorkspaceSnapshot
from exporter.state import WorkspaceState

if TYPE_CHECKING:
    from exporter.push.stats import PushStats

logger = logging.getLogger(__name__)

#: At most this many workflows in all: rendered on the event loop (cheaper than a thread hop).
INLINE_MAX_WORKFLOWS = 16
#: From this size (uncompressed) on, a body is "big" (see the module's docstring).
STALE_BYTES = 256 * 1024
#: From this many workflows on, a body is big whatever the size of the last one rendered: each workflow
#: has about 10 KB of series, runs or not, so the first publish after a big workflow list (while the
#: last body rendered is still the small one of before the list) does not keep a scrape waiting for
#: its whole render (bench/perf: 80 to 120 ms at 500 workflows).
STALE_WORKFLOWS = 64
#: Big bodies: at most one render per format started per this many seconds.
RENDER_GAP = 1.0
#: Big bodies: a format asked for within this many seconds is kept fresh in the background.
IN_USE = 300.0
#: gzip level of compressed bodies: 1 costs about half the CPU of 6 for about 1.1x the bytes.
GZIP_LEVEL = 1

Key = tuple[bool, bool]  # (openmetrics, gzip)


class Published:
    """The latest snapshot of every workspace, and their exposition rendered on demand."""

    def __init__(
        self,
        workspace_names: Sequence[str],
        *,
        render_gap: float = RENDER_GAP,
        parts: Mapping[str, Part] | None = None,
        sharding: Sharding | None = None,
    ) -> None:
        self._snapshots = {name: WorkspaceState(name).snapshot for name in workspace_names}
        self._parts = dict(parts or {})  # this shard's part of each workspace (whole when absent)
        self._shard_info = shard_info_line(sharding or Sharding())
        self._generation = 0
        self._render_gap = render_gap
        # Event loop only:
        self._bodies: dict[Key, tuple[int, bytes]] = {}  # the newest body rendered, by generation
        self._plain_sizes: dict[bool, tuple[int, int]] = {}  # openmetrics -> (generation, its size)
        self._renders: dict[Key, tuple[int, asyncio.Task[bytes]]] = {}
        self._asked: dict[Key, float] = {}  # loop time of the latest scrape of each format
        self._ended: dict[Key, float] = {}  # loop time the latest render of each format ended
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        # Render side, under the lock:
        self._lock = threading.Lock()
        self._workspace_chunks: dict[str, tuple[int, Fragments]] = {}
        self._workflow_chunks: dict[str, dict[str, tuple[int, Chunks]]] = {}
        self.push: PushStats | None = None  # push (#16): its families are rendered when it is on

    def attach_push(self, stats: PushStats) -> None:
        """Render the push families from ``stats`` too; each count it makes is a new generation."""
        self.push = stats
        stats.on_change = self.touch

    def touch(self) -> None:
        """Something rendered outside the snapshots changed (push counts): the next scrape re-renders."""
        self._generation += 1
        for key in list(self._asked):
            self._refresh_later(key)

    def publish(self, snapshot: WorkspaceSnapshot) -> None:
        self._snapshots[snapshot.name] = snapshot
        self._generation += 1
        for key in list(self._asked):
            self._refresh_later(key)

    def invalidate(self) -> None:
        """Something /metrics shows besides the snapshots changed (the web config reload count)."""
        self._generation += 1
        for key in list(self._asked):
            self._refresh_later(key)

    def workspaces(self) -> tuple[WorkspaceSnapshot, ...]:
        return tuple(self._snapshots.values())

    @property
    def ready(self) -> bool:
        return all(snapshot.attempted for snapshot in self._snapshots.values())

    def render_now(self, openmetrics: bool) -> bytes:
        """The exposition of what is published now, never an earlier body (--once prints it: a scrape
        of a big body may get the previous one, see the module's docstring)."""
        with self._lock:
            chunks = self._chunks(self.workspaces())
        return assemble(chunks, openmetrics, self._shard_info)

    async def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        key = (openmetrics, gzip)
        loop = asyncio.get_running_loop()
        self._asked[key] = loop.time()
        generation = self._generation
        previous = self._bodies.get(key)
        if previous is not None and previous[0] == generation:
            return previous[1]
        snapshots = self.workspaces()
        fresh_plain = self._fresh_plain(openmetrics, generation)
        if sum(len(s.workflows) for s in snapshots) <= INLINE_MAX_WORKFLOWS and self._lock.acquire(
            blocking=False
        ):
            try:
                chunks = self._chunks(snapshots) if fresh_plain is None else []
            finally:
                self._lock.release()
            return self._store(key, generation, *self._finish(chunks, fresh_plain, openmetrics, gzip))
        if previous is None or not self._big(key):
            running = self._renders.get(key)
            task = running[1] if running is not None and running[0] == generation else self._start(key)
            return await asyncio.shield(task)
        running = self._renders.get(key)
        if running is not None:
            task = running[1]
        elif loop.time() < self._ended.get(key, -math.inf) + self._render_gap:
            self._refresh_later(key)
            return previous[1]
        else:
            task = self._start(key)
        return task.result() if task.done() else previous[1]

    def _fresh_plain(self, openmetrics: bool, generation: int) -> bytes | None:
        """The uncompressed body of ``generation`` in that format, if rendered already."""
        plain = self._bodies.get((openmetrics, False))
        return plain[1] if plain is not None and plain[0] == generation else None

    def _big(self, key: Key) -> bool:
        size = self._plain_sizes.get(key[0])
        if size is not None and size[1] >= STALE_BYTES:
            return True
        return sum(len(snapshot.workflows) for snapshot in self._snapshots.values()) >= STALE_WORKFLOWS

    def _start(self, key: Key) -> asyncio.Task[bytes]:
        generation = self._generation
        fresh_plain = self._fresh_plain(key[0], generation)
        task = asyncio.create_task(self._render_off_loop(key, generation, self.workspaces(), fresh_plain))
        self._renders[key] = (generation, task)
        return task

    def _refresh_later(self, key: Key) -> None:
        """Render a big body of a format in use once the gap since its last render has passed."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published before serving: the first scrape renders
            return
        if key in self._timers or key in self._renders or not self._big(key):
            return  # a render in flight schedules the next one when it ends
        if loop.time() - self._asked.get(key, -math.inf) > IN_USE:
            del self._asked[key]
            return
        delay = max(0.0, self._ended.get(key, -math.inf) + self._render_gap - loop.time())
        self._timers[key] = loop.call_later(delay, self._refresh_now, key)

    def _refresh_now(self, key: Key) -> None:
        del self._timers[key]
        stored = self._bodies.get(key)
        if key not in self._renders and (stored is None or stored[0] != self._generation):
            self._start(key)

    async def _render_off_loop(
        self, key: Key, generation: int, snapshots: Sequence[WorkspaceSnapshot], plain: bytes | None
    ) -> bytes:
        try:
            rendered = await asyncio.to_thread(self._render_blocking, snapshots, plain, *key)
            return self._store(key, generation, *rendered)
        finally:
            if self._renders.get(key, (0, None))[1] is asyncio.current_task():
                del self._renders[key]
            self._ended[key] = asyncio.get_running_loop().time()
            if self._generation != generation:
                self._refresh_later(key)

    def _render_blocking(
        self, snapshots: Sequence[WorkspaceSnapshot], plain: bytes | None, openmetrics: bool, gzip: bool
    ) -> tuple[bytes, bytes]:
        chunks: list[Fragments] = []
        if plain is None:
            with self._lock:
                chunks = self._chunks(snapshots)
        return self._finish(chunks, plain, openmetrics, gzip)

    def _finish(
        self, chunks: Sequence[Fragments], plain: bytes | None, openmetrics: bool, gzip: bool
    ) -> tuple[bytes, bytes]:
        """(uncompressed body, body as asked)."""
        if plain is None:
            plain = assemble(chunks, openmetrics, self._shard_info)
        if not gzip:
            return plain, plain
        return plain, gzip_module.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)

    def _store(self, key: Key, generation: int, plain: bytes, body: bytes) -> bytes:
        """Keep ``body`` for ``key``, and the uncompressed body only when that format is asked for
        uncompressed too (a copy of every line of /metrics: Prometheus asks for gzip); its size always."""
        plain_key = (key[0], False)
        kept = ((key, body), (plain_key, plain)) if plain_key in self._asked else ((key, body),)
        for stored_key, stored in kept:
            current = self._bodies.get(stored_key)
            if current is None or current[0] < generation:
                self._bodies[stored_key] = (generation, stored)
        size = self._plain_sizes.get(key[0])
        if size is None or size[0] < generation:
            self._plain_sizes[key[0]] = (generation, len(plain))
        return body

    def _chunks(self, snapshots: Sequence[WorkspaceSnapshot]) -> list[Fragments]:
        """Every workspace's chunks, re-rendering only what changed. Called with the lock held."""
        result = []
        for snapshot in snapshots:
            cached = self._workspace_chunks.get(snapshot.name)
            if cached is None or cached[0] != snapshot.version:
                cached = (snapshot.version, self._workspace(snapshot))
                self._workspace_chunks[snapshot.name] = cached
            result.append(cached[1])
        if self.push is not None:  # a few lines: rendered each time
            push = _safely(functools.partial(render_push, self.push.figures()), "push")
            result.append(join_workspace((), push))
        return result

    def _workspace(self, snapshot: WorkspaceSnapshot) -> Fragments:
        label = workspace_label(snapshot.name)
        previous = self._workflow_chunks.get(snapshot.name, {})
        current: dict[str, tuple[int, Chunks]] = {}
        for workflow in snapshot.workflows:
            hit = previous.get(workflow.uid)
            if hit is None or hit[0] != workflow.version:
                hit = (
                    workflow.version,
                    _safely(functools.partial(render_workflow, label, workflow), snapshot.name),
                )
            current[workflow.uid] = hit
        self._workflow_chunks[snapshot.name] = current
        part = self._parts.get(snapshot.name, WHOLE)
        own = _safely(functools.partial(render_workspace_own, label, snapshot, part), snapshot.name)
        return join_workspace((current[workflow.uid][1] for workflow in snapshot.workflows), own)


def _safely(render: Callable[[], Chunks], workspace: str) -> Chunks:
    """A snapshot that cannot be rendered (a bug) loses its series; /metrics keeps answering."""
    try:
        return render()
    except Exception:
        logger.exception("cannot render a snapshot; its series are left out", extra={"workspace": workspace})
        return EMPTY_CHUNKS
