"""The HTTP side: /metrics (rendered once per publish), the landing page and the health endpoints."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from exporter.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, negotiate
from exporter.landing import render_landing_page
from exporter.published import Published
from exporter.snapshot import WorkspaceSnapshot
from exporter.status_view import build_status

if TYPE_CHECKING:
    from exporter.push.stats import PushFigures

PUBLISHED_KEY = web.AppKey("published", Published)
Health = Callable[[], Sequence[str]]  # names of the workspaces whose loop is stalled
HEALTH_KEY: web.AppKey[Health] = web.AppKey("health")
T = TypeVar("T")


async def metrics(request: web.Request) -> web.Response:
    openmetrics, gzipped = negotiate(
        request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
    )
    body = await request.app[PUBLISHED_KEY].exposition(openmetrics, gzipped)
    content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


#: Above this many rows (workflows, and the runs that need action: up to metrics.needs_action_limit
#: per workflow), the status board is built in a worker thread (about 30 ms per 1,000 workflows), so
#: that scrapes are not kept waiting behind it on the event loop.
BOARD_INLINE_MAX_WORKFLOWS = 200


def _board_is_small(snapshots: Sequence[WorkspaceSnapshot]) -> bool:
    """At most BOARD_INLINE_MAX_WORKFLOWS rows; stops counting past it (the count is on the loop too)."""
    rows = 0
    for snapshot in snapshots:
        rows += len(snapshot.workflows)
        for wf in snapshot.workflows:
            if rows > BOARD_INLINE_MAX_WORKFLOWS:
                return False
            rows += len(wf.needs_action)
    return rows <= BOARD_INLINE_MAX_WORKFLOWS


async def _off_loop_if_big(request: web.Request, build: Callable[[Sequence[WorkspaceSnapshot]], T]) -> T:
    snapshots = request.app[PUBLISHED_KEY].workspaces()
    if _board_is_small(snapshots):
        return build(snapshots)
    return await asyncio.to_thread(build, snapshots)


def _push_figures(request: web.Request) -> PushFigures | None:
    push = request.app[PUBLISHED_KEY].push
    return push.figures() if push is not None else None


async def landing(request: web.Request) -> web.Response:
    page = functools.partial(render_landing_page, push=_push_figures(request))
    return web.Response(text=await _off_loop_if_big(request, page), content_type="text/html")


async def status_json(request: web.Request) -> web.Response:
    """The landing page's content as JSON, for scripts."""
    board = functools.partial(build_status, push=_push_figures(request))
    return web.json_response(await _off_loop_if_big(request, board))


async def healthy(request: web.Request) -> web.Response:
    stalled = request.app[HEALTH_KEY]()
    if stalled:
        return web.Response(
            status=503,
            text=f"Unhealthy: no poll attempt finished in time for workspace(s): {', '.join(stalled)}.\n",
        )
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[PUBLISHED_KEY].ready:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: the first poll of every workspace has not finished.\n")


def create_app(published: Published, health: Health = list) -> web.Application:
    app = web.Application()
    app[PUBLISHED_KEY] = published
    app[HEALTH_KEY] = health
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
