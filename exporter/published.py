"""The published snapshot: the latest snapshot of every workspace, and /metrics rendered from them.

Publishing only swaps a reference. Each (format, gzip) body is rendered the first time a scrape asks
for it after a publish, then served from cache until the next publish; concurrent scrapes await the
same render. Workflow chunks are cached by snapshot version and workspace chunks likewise, so a publish
re-renders only the workflows that changed; everything else is a join of cached bytes.

A render of more than a few workflows runs in a worker thread. While such a render is in flight, a
scrape waits for it up to ``STALE_AFTER`` seconds when a previous body of at least ``STALE_BYTES`` exists,
then gets that previous body (a complete, consistent earlier exposition) rather than stalling behind a
large render; small expositions always wait for the fresh body, so what a scrape sees right after a
publish is the published data.
"""

from __future__ import annotations

import asyncio
import functools
import gzip as gzip_module
import logging
import threading
from collections.abc import Callable, Sequence

from exporter.render import (
    EMPTY_CHUNKS,
    Chunks,
    assemble,
    join_workspace,
    render_workflow,
    render_workspace_own,
    workspace_label,
)
from exporter.snapshot import WorkspaceSnapshot
from exporter.state_snapshot import empty_snapshot

logger = logging.getLogger(__name__)

#: At most this many workflows in all: rendered on the event loop (cheaper than a thread hop).
INLINE_MAX_WORKFLOWS = 16
#: A previous body at least this big (uncompressed) may be served while a fresh one renders ...
STALE_BYTES = 256 * 1024
#: ... once the scrape has waited this long for the fresh one.
STALE_AFTER = 0.1
#: gzip level of compressed bodies: 1 costs a third of the CPU of 6 for about 1.3x the bytes.
GZIP_LEVEL = 1

Key = tuple[bool, bool]  # (openmetrics, gzip)


class Published:
    """The latest snapshot of every workspace, and their exposition rendered on demand."""

    def __init__(self, workspace_names: Sequence[str]) -> None:
        self._snapshots = {name: empty_snapshot(name) for name in workspace_names}
        self._generation = 0
        # Event loop only:
        self._bodies: dict[Key, tuple[int, bytes]] = {}  # the newest body rendered, by generation
        self._renders: dict[Key, tuple[int, asyncio.Task[bytes]]] = {}
        # Render side, under the lock:
        self._lock = threading.Lock()
        self._workspace_chunks: dict[str, tuple[int, Chunks]] = {}
        self._workflow_chunks: dict[str, dict[str, tuple[int, Chunks]]] = {}

    def publish(self, snapshot: WorkspaceSnapshot) -> None:
        self._snapshots[snapshot.name] = snapshot
        self._generation += 1

    def workspaces(self) -> tuple[WorkspaceSnapshot, ...]:
        return tuple(self._snapshots.values())

    @property
    def ready(self) -> bool:
        return all(snapshot.attempted for snapshot in self._snapshots.values())

    async def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        key = (openmetrics, gzip)
        generation = self._generation
        previous = self._bodies.get(key)
        if previous is not None and previous[0] == generation:
            return previous[1]
        snapshots = self.workspaces()
        plain = self._bodies.get((openmetrics, False))
        fresh_plain = plain[1] if plain is not None and plain[0] == generation else None
        if sum(len(s.workflows) for s in snapshots) <= INLINE_MAX_WORKFLOWS and self._lock.acquire(
            blocking=False
        ):
            try:
                chunks = self._chunks(snapshots) if fresh_plain is None else []
            finally:
                self._lock.release()
            return self._store(key, generation, *self._finish(chunks, fresh_plain, openmetrics, gzip))
        running = self._renders.get(key)
        if running is None or running[0] != generation:
            task = asyncio.create_task(self._render_off_loop(key, generation, snapshots, fresh_plain))
            self._renders[key] = (generation, task)
        else:
            task = running[1]
        if previous is not None and plain is not None and len(plain[1]) >= STALE_BYTES:
            done, _ = await asyncio.wait({task}, timeout=STALE_AFTER)
            if not done:
                return previous[1]
        return await asyncio.shield(task)

    async def _render_off_loop(
        self, key: Key, generation: int, snapshots: Sequence[WorkspaceSnapshot], plain: bytes | None
    ) -> bytes:
        try:
            rendered = await asyncio.to_thread(self._render_blocking, snapshots, plain, *key)
            return self._store(key, generation, *rendered)
        finally:
            if self._renders.get(key, (0, None))[1] is asyncio.current_task():
                del self._renders[key]

    def _render_blocking(
        self, snapshots: Sequence[WorkspaceSnapshot], plain: bytes | None, openmetrics: bool, gzip: bool
    ) -> tuple[bytes, bytes]:
        chunks: list[Chunks] = []
        if plain is None:
            with self._lock:
                chunks = self._chunks(snapshots)
        return self._finish(chunks, plain, openmetrics, gzip)

    @staticmethod
    def _finish(
        chunks: Sequence[Chunks], plain: bytes | None, openmetrics: bool, gzip: bool
    ) -> tuple[bytes, bytes]:
        """(uncompressed body, body as asked)."""
        if plain is None:
            plain = assemble(chunks, openmetrics)
        if not gzip:
            return plain, plain
        return plain, gzip_module.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)

    def _store(self, key: Key, generation: int, plain: bytes, body: bytes) -> bytes:
        for stored_key, stored in (((key[0], False), plain), (key, body)):
            current = self._bodies.get(stored_key)
            if current is None or current[0] < generation:
                self._bodies[stored_key] = (generation, stored)
        return body

    def _chunks(self, snapshots: Sequence[WorkspaceSnapshot]) -> list[Chunks]:
        """Every workspace's chunks, re-rendering only what changed. Called with the lock held."""
        result = []
        for snapshot in snapshots:
            cached = self._workspace_chunks.get(snapshot.name)
            if cached is None or cached[0] != snapshot.version:
                cached = (snapshot.version, self._workspace(snapshot))
                self._workspace_chunks[snapshot.name] = cached
            result.append(cached[1])
        return result

    def _workspace(self, snapshot: WorkspaceSnapshot) -> Chunks:
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
        own = _safely(functools.partial(render_workspace_own, label, snapshot), snapshot.name)
        return join_workspace((current[workflow.uid][1] for workflow in snapshot.workflows), own)


def _safely(render: Callable[[], Chunks], workspace: str) -> Chunks:
    """A snapshot that cannot be rendered (a bug) loses its series; /metrics keeps answering."""
    try:
        return render()
    except Exception:
        logger.exception("cannot render a snapshot; its series are left out", extra={"workspace": workspace})
        return EMPTY_CHUNKS
