"""The simulator's HTTP side: the v3 endpoints the exporter reads, plus /_sim/ scripting endpoints."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from exporter.simulator.model import Fault, RateLimit, Simulator, SimWorkspace
from exporter.simulator.v4app import add_v4_routes, authenticate_v4, is_v4, v4_error

SIMULATOR_KEY = web.AppKey("simulator", Simulator)
IGNORE_PAGE_KEY = web.RequestKey("ignore_page", bool)
WORKSPACE_KEY = web.RequestKey("workspace", SimWorkspace)
SCRIPTABLE = (
    "add_workspace",
    "set_api_key",
    "add_workflow",
    "rename_workflow",
    "remove_workflow",
    "add_run",
    "launch",
    "update_run",
    "remove_run",
    "add_hostile_error_runs",
    "set_rate_limit",
    "add_fault",
    "clear_faults",
    # Credits and account health (exporter/simulator/health.py).
    "set_credits",
    "add_account",
    "add_accounts",
    "remove_account",
    "expire_account",
    "set_account_limit",
    "set_health_fault",
    "use_account",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message, "status_code": status}, status=status)


def _authenticate(sim: Simulator, request: web.Request) -> SimWorkspace | web.Response:
    authorization = request.headers.get("Authorization", "")
    key = authorization[len("x-api-key ") :].strip() if authorization.lower().startswith("x-api-key ") else ""
    key = key or request.headers.get("x-api-key", "").strip()
    project = request.headers.get("x-project-id", "").strip()
    with sim.lock:
        workspace = sim.workspaces.get(project)
        if not key or not project or workspace is None or workspace.api_key != key:
            return _error(401, "Unauthorized: invalid API key or x-project-id.")
        return workspace


def _rate_limited(limit: RateLimit, now: float, v4: bool = False) -> web.Response:
    reset_at = limit.window_started + limit.window_seconds
    wait = max(1, int(reset_at - now + 0.999))
    headers = {"X-RateLimit-Limit": str(limit.max_requests), "X-RateLimit-Remaining": "0"}
    if limit.style != "none":
        headers["X-RateLimit-Type"] = "minute" if limit.window_seconds >= 60 else "second"
        headers["X-RateLimit-Reset"] = str(int(reset_at + 0.999))
    if limit.style == "seconds":
        headers["Retry-After"] = str(wait)
    elif limit.style == "http-date":
        headers["Retry-After"] = formatdate(now + wait, usegmt=True)
    if limit.style == "none":
        headers = {}
    if v4:
        response = v4_error(429, "Too Many Requests: rate limit reached, retry after Retry-After seconds.")
        response.headers.update(headers)
        return response
    return web.json_response(
        {
            "message": "Too Many Requests: rate limited, wait before making additional requests.",
            "status_code": 429,
        },
        status=429,
        headers=headers,
    )


# The delays of "slow" and "dribble" stand for a slow network: real time, whatever the simulator's clock,
# since they exist to trip the exporter's request timeout, which runs on the event loop's time.
async def _apply_fault(fault: Fault, request: web.Request) -> web.StreamResponse | None:
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "status":
        if is_v4(request):
            return v4_error(fault.status, f"Simulated HTTP {fault.status}.")
        return _error(fault.status, f"Simulated HTTP {fault.status}.")
    if fault.kind == "malformed":
        return web.Response(text='[{"uid": "truncated', content_type="application/json")
    if fault.kind == "wrong_shape":
        return web.json_response({"data": [], "note": "an object where an array belongs"})
    if fault.kind == "dribble":  # a valid body, one byte every ``delay`` seconds
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for byte in b'[{"uid": "dribbled", "name": "Dribbled", "status": "finished"}]':
            await response.write(bytes([byte]))
            await asyncio.sleep(fault.delay)
        await response.write_eof()
        return response
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError
    return None  # ignore_page is applied by the runs handler, late after it


@web.middleware
async def api_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log, rate-limit, authenticate and inject faults for the API routes (not for /_sim/)."""
    if request.path.startswith("/_sim/"):
        return await handler(request)
    sim = request.app[SIMULATOR_KEY]
    sim.advance()
    entry: dict[str, Any] = {"method": request.method, "path": request.path, "query": dict(request.query)}
    entry["authorization_scheme"] = request.headers.get("Authorization", "").split(" ")[0].lower()
    entry["project"] = request.headers.get("x-project-id", "")
    entry["x_api_key"] = "X-API-Key" in request.headers
    with sim.lock:
        sim.request_log.append(entry)
        sim.in_flight += 1
    try:
        return await _gated(sim, request, handler, entry)
    finally:
        with sim.lock:
            sim.in_flight -= 1


async def _gated(
    sim: Simulator, request: web.Request, handler: Handler, entry: dict[str, Any]
) -> web.StreamResponse:
    fault = sim.take_fault(request.path_qs)
    request[IGNORE_PAGE_KEY] = fault is not None and fault.kind == "ignore_page"
    if fault is not None:
        response = await _apply_fault(fault, request)
        if response is not None:
            entry["status"] = response.status
            return response
    limit = sim.take_rate_limit()
    if limit is not None:
        entry["status"] = 429
        return _rate_limited(limit, sim.clock.time(), v4=is_v4(request))
    workspace = authenticate_v4(sim, request) if is_v4(request) else _authenticate(sim, request)
    if isinstance(workspace, web.Response):
        entry["status"] = workspace.status
        return workspace
    request[WORKSPACE_KEY] = workspace
    response = await handler(request)
    entry["status"] = response.status
    if fault is not None and fault.kind == "late":  # answered as of now, delivered ``delay`` later
        await asyncio.sleep(fault.delay)
    return response


async def list_workflows(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    workspace: SimWorkspace = request[WORKSPACE_KEY]
    with sim.lock:
        workflows = sorted(
            (w for w in sim.workflows.values() if w.workspace_uid == workspace.uid),
            key=lambda w: (w.created_at, w.uid),
        )
        body: list[dict[str, Any]] = [
            {
                "uid": w.uid,
                "name": w.name,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime(w.created_at)),
                "project_id": 1,
                "template_uid": None,
                "steps": [],
            }
            for w in workflows
        ]
    return web.json_response(body)


def _workflow_or_404(sim: Simulator, request: web.Request) -> tuple[str, str] | web.Response:
    uid = request.match_info["workflow_uid"]
    workflow = sim.workflows.get(uid)
    if workflow is None or workflow.workspace_uid != request[WORKSPACE_KEY].uid:
        return _error(404, "Workflow not found.")
    return workflow.uid, workflow.name


async def list_runs(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    found = _workflow_or_404(sim, request)
    if isinstance(found, web.Response):
        return found
    uid, name = found
    try:
        page = 0 if request[IGNORE_PAGE_KEY] else int(request.query.get("page", "0"))
    except ValueError:
        return _error(400, "page must be an integer.")
    if page < 0:
        return _error(400, "page must be at least 0.")
    now = sim.clock.time()
    runs = sim.visible_runs(uid)[page * sim.page_size : (page + 1) * sim.page_size]
    return web.json_response([run.to_json(now, name, sim.time_format) for run in runs])


async def get_run(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    with sim.lock:
        run = sim.runs.get(request.match_info["job_uid"])
        workflow = sim.workflows.get(run.workflow_uid) if run else None
        if run is None or workflow is None or workflow.workspace_uid != request[WORKSPACE_KEY].uid:
            return _error(404, "Job not found.")
        return web.json_response(run.to_json(sim.clock.time(), workflow.name, sim.time_format))


async def get_workspace(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    return web.json_response(sim.workspace_json(request[WORKSPACE_KEY].uid, sim.clock.time()))


async def list_accounts(request: web.Request) -> web.Response:
    """GET /v3/integrations/{integration_uid}/accounts?page=N&stats=true (exporter/simulator/health.py)."""
    sim = request.app[SIMULATOR_KEY]
    try:
        page = int(request.query.get("page", "0"))
    except ValueError:
        return _error(400, "page must be an integer.")
    if page < 0:
        return _error(400, "page must be at least 0.")
    stats = request.query.get("stats", "true").lower() != "false"
    error = sim.accounts_error(request[WORKSPACE_KEY].uid)
    if error is not None:
        return web.json_response(error, status=400)
    body = sim.accounts_json(
        request[WORKSPACE_KEY].uid, request.match_info["integration_uid"], page, stats, sim.clock.time()
    )
    return web.json_response(body)


async def script(request: web.Request) -> web.Response:
    """POST /_sim/<method> with the method's keyword arguments as a JSON object."""
    sim = request.app[SIMULATOR_KEY]
    method = request.match_info["method"]
    if method not in SCRIPTABLE:
        return _error(404, f"unknown simulator method {method!r}; one of {', '.join(SCRIPTABLE)}")
    try:
        kwargs = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as error:
        return _error(400, f"body is not JSON: {error}")
    if not isinstance(kwargs, dict):
        return _error(400, "body must be a JSON object of keyword arguments")
    function = getattr(sim, method)
    try:
        inspect.signature(function).bind(**kwargs)
        result = function(**kwargs)
    except (TypeError, ValueError, KeyError) as error:
        return _error(400, f"{method}: {error}")
    return web.json_response({"result": result})


async def requests_seen(request: web.Request) -> web.Response:
    """The last API requests (at most about REQUEST_LOG_LIMIT); X-Requests-Total counts every one."""
    sim = request.app[SIMULATOR_KEY]
    with sim.lock:
        headers = {"X-Requests-Total": str(sim.request_log.total)}
        return web.json_response(list(sim.request_log), headers=headers)


def create_simulator_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[api_gate])
    app[SIMULATOR_KEY] = sim
    app.router.add_get("/v3/workflows", list_workflows)
    app.router.add_get("/v3/workflows/{workflow_uid}/jobs", list_runs)
    app.router.add_get("/v3/jobs/{job_uid}", get_run)
    app.router.add_get("/v3/workspace", get_workspace)
    app.router.add_get("/v3/integrations/{integration_uid}/accounts", list_accounts)
    app.router.add_post("/_sim/{method}", script)
    app.router.add_get("/_sim/requests", requests_seen)
    add_v4_routes(app, sim, WORKSPACE_KEY, IGNORE_PAGE_KEY)
    return app
