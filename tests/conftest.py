"""Shared fixtures: a scripted simulator served on loopback and an in-process exporter polling it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import Config, parse_config
from exporter.poller import Poller, build
from exporter.published import Published
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from tests.support.exporter_proc import fast_config, workspace_config
from tests.support.metrics import ScrapedMetrics
from tests.support.sim_server import running_simulator

WORKSPACE_UID = "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19"
API_KEY = "c0ffee5ecret" + "9d" * 26  # 64 characters, easy to grep for


@pytest.fixture
def sim() -> Simulator:
    simulator = Simulator(seed=7, page_size=5)
    simulator.add_workspace(WORKSPACE_UID, API_KEY)
    return simulator


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with running_simulator(sim) as url:
        yield url


ConfigFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def config_dict(sim_url: str) -> ConfigFactory:
    """A config dict for the simulator; keyword arguments update its sections (``api={...}``)."""

    def make(**sections: dict[str, Any]) -> dict[str, Any]:
        config = fast_config([workspace_config("acme", sim_url, WORKSPACE_UID, API_KEY)])
        for section, values in sections.items():
            if section == "workspace":
                config["workspaces"][0].update(values)
            else:
                config.setdefault(section, {}).update(values)
        return config

    return make


@dataclass
class Harness:
    """The real exporter pipeline (client → state → exposition) run in the test's event loop."""

    config: Config
    published: Published
    pollers: list[Poller]

    async def poll(self) -> ScrapedMetrics:
        for poller in self.pollers:
            await poller.poll_once()
        return await self.exposition()

    async def read_side(self) -> ScrapedMetrics:
        """One read of every side read that is on (credits, accounts), as their loops make."""
        for poller in self.pollers:
            for loop in poller.side_loops:
                await loop.read_once()
            poller.sink.flush()  # now, rather than within the sink's PUBLISH_EVERY
        return await self.exposition()

    async def exposition(self) -> ScrapedMetrics:
        return ScrapedMetrics((await self.published.exposition(openmetrics=False, gzip=False)).decode())

    async def aclose(self) -> None:
        for poller in self.pollers:
            await poller.aclose()


@pytest.fixture
def clock(sim: Simulator) -> ManualClock:
    """Time for the simulator and for each harness made with ``harness_for(clock=clock)``: it moves only
    when the exporter sleeps (a 429 window, a backoff, the poll interval) or the test advances it."""
    manual = ManualClock(time.time())
    sim.clock = manual
    return manual


@pytest.fixture
async def harness_for(config_dict: ConfigFactory) -> Any:
    made: list[Harness] = []

    def make(checkpoint: Any = None, clock: Clock = SYSTEM_CLOCK, **sections: dict[str, Any]) -> Harness:
        config = parse_config(config_dict(**sections))
        published, pollers = build(config, checkpoint=checkpoint, clock=clock)
        harness = Harness(config, published, pollers)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.aclose()
