"""The simulator's v4 HTTP side: ``/v4/runs`` (and the guides' ``/v4/api/runs/...`` aliases), resume,
``X-API-Key`` auth, the v4 error body, and ``/_sim/v4/<method>`` and ``/_sim/clock`` scripting."""

from __future__ import annotations

import inspect
import json
from typing import Any

from aiohttp import web

from exporter.simulator.clock import ManualClock
from exporter.simulator.model import Simulator, SimWorkspace
from exporter.simulator.v4 import V4_SORT_FIELDS, V4Api

V4_PREFIX = "/v4/"
_ERROR_LABELS = {
    400: ("INVALID_PARAMS", "param"),
    401: ("UNAUTHORIZED", "auth"),
    403: ("FORBIDDEN", "auth"),
    404: ("NOT_FOUND", "param"),
    422: ("INVALID_PARAMS", "param"),
    429: ("RATE_LIMIT_EXCEEDED", "server"),
}


def is_v4(request: web.Request) -> bool:
    return request.path.startswith(V4_PREFIX)


def v4_error(status: int, message: str, label: str | None = None, scope: str | None = None) -> web.Response:
    """The v4/v1 error body: ``error_label``, ``error_scope``, ``error_ref``, ``message``, ..."""
    default_label, default_scope = _ERROR_LABELS.get(status, ("INTERNAL_ERROR", "server"))
    return web.json_response(
        {
            "error_label": label or default_label,
            "error_scope": scope or default_scope,
            "error_ref": f"ERR-{status}00",
            "message": message,
            "status_code": status,
            "params": {},
        },
        status=status,
    )


def authenticate_v4(sim: Simulator, request: web.Request) -> SimWorkspace | web.Response:
    """``X-API-Key: KEY`` (header names are case-insensitive); the key alone names the workspace."""
    key = request.headers.get("X-API-Key", "").strip()
    with sim.lock:
        for workspace in sim.workspaces.values():
            if key and workspace.api_key == key:
                return workspace
    return v4_error(401, "Invalid or missing API key: send it as the X-API-Key header.")


def _many(request: web.Request, name: str) -> list[str]:
    """A ``string[]`` query parameter: repeated, or comma-separated."""
    return [part.strip() for value in request.query.getall(name, []) for part in value.split(",") if part]


def _integer(request: web.Request, name: str, default: int, low: int, high: int | None) -> int | str:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        return f"{name} must be an integer"
    if value < low or (high is not None and value > high):
        return f"{name} must be between {low} and {high}" if high else f"{name} must be at least {low}"
    return value


async def script_v4(request: web.Request, api: V4Api) -> web.Response:
    """POST /_sim/v4/<method> with the method's keyword arguments as a JSON object."""
    method = request.match_info["method"]
    if method not in V4Api.SCRIPTABLE:
        return web.json_response(
            {"message": f"unknown v4 method {method!r}; one of {', '.join(V4Api.SCRIPTABLE)}"}, status=404
        )
    try:
        kwargs = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as error:
        return web.json_response({"message": f"body is not JSON: {error}"}, status=400)
    if not isinstance(kwargs, dict):
        return web.json_response({"message": "body must be a JSON object of keyword arguments"}, status=400)
    function = getattr(api, method)
    try:
        inspect.signature(function).bind(**kwargs)
        result = function(**kwargs)
    except (TypeError, ValueError, KeyError) as error:
        return web.json_response({"message": f"{method}: {error}"}, status=400)
    return web.json_response({"result": result})


async def clock(request: web.Request, sim: Simulator) -> web.Response:
    """GET /_sim/clock: the simulator's time; POST {"advance": seconds} or {"set": unix_time} moves a
    simulator built with a :class:`ManualClock`."""
    if request.method == "GET":
        return web.json_response({"now": sim.clock.time()})
    if not isinstance(sim.clock, ManualClock):
        return web.json_response({"message": "this simulator runs on the real clock"}, status=400)
    try:
        body: Any = await request.json()
        if "advance" in body:
            return web.json_response({"now": sim.clock.advance(float(body["advance"]))})
        return web.json_response({"now": sim.clock.set(float(body["set"]))})
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as error:
        return web.json_response(
            {"message": f'expected {{"advance": s}} or {{"set": t}}: {error}'}, status=400
        )


def add_v4_routes(
    app: web.Application,
    sim: Simulator,
    workspace_key: web.RequestKey[SimWorkspace],
    ignore_page_key: web.RequestKey[bool],
) -> None:
    """The v4 endpoints (behind the shared gate, which authenticates with :func:`authenticate_v4`) and
    their scripting endpoints."""
    api = V4Api.of(sim)

    async def list_runs(request: web.Request) -> web.Response:
        api.advance()
        limit = _integer(request, "limit", 10, 1, 100)
        offset = _integer(request, "offset", 0, 0, None)
        if isinstance(limit, str) or isinstance(offset, str):
            return v4_error(422, str(limit if isinstance(limit, str) else offset))
        sort = _many(request, "sort")
        if len(sort) > 10 or any(key.lstrip("-") not in V4_SORT_FIELDS for key in sort):
            return v4_error(
                422, f"sort takes at most 10 of {', '.join(V4_SORT_FIELDS)}, each with an optional -"
            )
        runs = api.listed(
            request[workspace_key].uid,
            statuses=_many(request, "status"),
            actions=_many(request, "action_name"),
            uids=_many(request, "uid"),
            sort=sort,
        )
        start = 0 if request[ignore_page_key] else offset
        with sim.lock:
            now = sim.clock.time()
            return web.json_response(
                [run.to_json(now, api.time_format) for run in runs[start : start + limit]]
            )

    def one_run(request: web.Request, uid: str, resume: bool) -> web.Response:
        api.advance()
        with sim.lock:
            run = api.runs.get(uid)
            if run is None or run.workspace_uid != request[workspace_key].uid:
                return v4_error(404, "Run not found.", "RUN_NOT_FOUND")
            if resume:
                resumed = api.resume(uid)
                if resumed is None:
                    return v4_error(400, "Only a BLOCKED or STOPPED run can be resumed.", "RUN_NOT_RESUMABLE")
            return web.json_response(run.to_json(sim.clock.time(), api.time_format))

    async def get_run(request: web.Request) -> web.Response:
        return one_run(request, request.match_info["run_uid"], resume=False)

    async def get_run_by_query(request: web.Request) -> web.Response:
        return one_run(request, request.query.get("uid", ""), resume=False)

    async def resume_run(request: web.Request) -> web.Response:
        return one_run(request, request.match_info["run_uid"], resume=True)

    async def script(request: web.Request) -> web.Response:
        return await script_v4(request, api)

    async def clock_handler(request: web.Request) -> web.Response:
        return await clock(request, sim)

    for path in ("/v4/runs", "/v4/api/runs/list"):
        app.router.add_get(path, list_runs)
    app.router.add_get("/v4/api/runs/get", get_run_by_query)
    app.router.add_get("/v4/runs/{run_uid}", get_run)
    app.router.add_post("/v4/runs/{run_uid}/resume", resume_run)
    app.router.add_post("/_sim/v4/{method}", script)
    app.router.add_route("*", "/_sim/clock", clock_handler)
