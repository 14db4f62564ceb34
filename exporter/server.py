"""The HTTP side: /metrics (pre-rendered bytes), the landing page and the health endpoints."""

from __future__ import annotations

from aiohttp import web

from exporter.landing import render_landing_page
from exporter.poller import Hub

HUB_KEY = web.AppKey("hub", Hub)


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[HUB_KEY].exposition
    body, content_type, gzipped = exposition.select(
        request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
    )
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def landing(request: web.Request) -> web.Response:
    return web.Response(text=render_landing_page(request.app[HUB_KEY].states), content_type="text/html")


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[HUB_KEY].ready:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: the first poll of every workspace has not finished.\n")


def create_app(hub: Hub) -> web.Application:
    app = web.Application()
    app[HUB_KEY] = hub
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
