"""The HTTP side: /metrics, the landing page and the health endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

from exporter._shim_published import Published
from exporter.landing import render_landing_page

PUBLISHED_KEY = web.AppKey("published", Published)
Health = Callable[[], Sequence[str]]  # names of the workspaces whose loop is stalled
HEALTH_KEY: web.AppKey[Health] = web.AppKey("health")


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[PUBLISHED_KEY].exposition(openmetrics=False, gzip=False)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def landing(request: web.Request) -> web.Response:
    return web.Response(
        text=render_landing_page(request.app[PUBLISHED_KEY].workspaces()), content_type="text/html"
    )


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
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
