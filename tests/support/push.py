"""The push receiver on loopback for tests: a config with three workspaces (v3 with a token, v4 with
a token, v3 without one) and, standing in for phase 2's targeted read, a real read of the run from the
simulator over HTTP (GET /v3/jobs/{uid} or GET /v4/runs/{uid}) whose answer is recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx

from exporter.config import Config
from exporter.push.body import PushEvent
from exporter.push.queue import FetchAndApply
from exporter.push.service import PushService
from exporter.simulator import Simulator
from exporter.simulator.v4 import V4Api
from tests.support.loop_thread import serving_in_thread

V3_UID = "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19"
V3_KEY = "c0ffee5ecret" + "9d" * 26
V4_KEY = "v4ke7" + "ab" * 28
TOKENS = {"acme": "acme-push-t0ken-" + "5a" * 12, "beta": "beta-push-t0ken-" + "7c" * 12}


def make_sim() -> Simulator:
    sim = Simulator(seed=11, page_size=5)
    sim.add_workspace(V3_UID, V3_KEY)
    sim.add_workspace("v4-workspace", V4_KEY)
    return sim


def push_config_dict(sim_url: str, **push: Any) -> dict[str, Any]:
    return {
        "workspaces": [
            {
                "name": "acme",
                "workspace_uid": V3_UID,
                "api_key": V3_KEY,
                "base_url": sim_url,
                "push_token": TOKENS["acme"],
            },
            {
                "name": "beta",
                "api_version": "v4",
                "api_key": V4_KEY,
                "base_url": sim_url,
                "push_token": TOKENS["beta"],
            },
            {"name": "gamma", "workspace_uid": "gamma-uid", "api_key": "g" * 32, "base_url": sim_url},
        ],
        "web": {"idle_timeout": "2s"},
        "push": {"listen_address": "127.0.0.1:0", **push},
    }


@dataclass
class SimReader:
    """Reads a pushed run back from the simulator: workspace name → fetch_and_apply."""

    config: Config
    reads: list[tuple[str, str, int]] = field(default_factory=list)  # workspace, run uid, HTTP status
    truth: dict[str, str] = field(default_factory=dict)  # run uid → the status the last read returned
    gate: asyncio.Event | None = None  # when set up, reads wait for it

    def fetcher(self, name: str) -> FetchAndApply:
        workspace = next(w for w in self.config.workspaces if w.name == name)

        async def fetch_and_apply(event: PushEvent) -> bool:
            if self.gate is not None:
                await self.gate.wait()
            if workspace.api_version == "v4":
                url = f"{workspace.base_url}/v4/runs/{event.run_uid}"
                headers = {"X-API-Key": workspace.api_key.reveal()}
            else:
                url = f"{workspace.base_url}/v3/jobs/{event.run_uid}"
                headers = {
                    "Authorization": f"x-api-key {workspace.api_key.reveal()}",
                    "x-project-id": workspace.workspace_uid,
                }
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(url, headers=headers)
            self.reads.append((name, event.run_uid, response.status_code))
            if response.status_code != 200:
                return False
            self.truth[event.run_uid] = response.json()["status"]
            return True

        return fetch_and_apply

    def fetchers(self) -> dict[str, FetchAndApply]:
        return {w.name: self.fetcher(w.name) for w in self.config.workspaces}


def service_for(config: Config, reader: SimReader, **options: Any) -> PushService:
    assert config.push is not None
    return PushService(config, config.push, reader.fetchers(), **options)


def v3_webhook(job_uid: str, workflow_uid: str = "wf-1", error: str | None = None) -> dict[str, Any]:
    return {
        "uid": "delivery-1",
        "job_uid": job_uid,
        "message": "Job failed." if error else "Job successfully finished.",
        "project_uid": V3_UID,
        "error": error,
        "recipe_ref": job_uid,
        "workflow_uid": workflow_uid,
        "workflow_name": "Extract LinkedIn Messages",
        "job_name": "Automated Run",
    }


def v4_callback(run_uid: str, status: str) -> dict[str, Any]:
    return {
        "run": {"run_uid": run_uid, "batch_uid": None, "status": status},
        "input": {},
        "custom_data": {},
        "error": None,
        "results": [],
    }


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def push_in_thread(service: PushService) -> AbstractContextManager[str]:
    """Run ``service`` in its own thread and event loop (for synchronous tests such as hypothesis');
    yields the push base URL."""

    async def start() -> tuple[str, Callable[[], Awaitable[None]]]:
        await service.start()
        return f"http://127.0.0.1:{service.port}", service.aclose

    return serving_in_thread(start, "push", "push receiver")


def add_v4_run(sim: Simulator, status: str) -> str:
    return V4Api.of(sim).add_run("linkedin-extract-people", status, workspace_uid="v4-workspace")


async def until(predicate: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Wait for a condition (never for the clock alone); fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
