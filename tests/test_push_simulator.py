"""The simulator's pushes against the real receiver: one per status change, with the right header, and
each fault (dropped, duplicated, out of order, wrong token, not JSON, huge) answered as it should be."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.push.service import PushService
from exporter.simulator import Simulator
from exporter.simulator.clock import ManualClock
from exporter.simulator.push import PushFaults, PushSender, PushTarget
from exporter.simulator.v4 import V4Api
from tests.support.push import (
    TOKENS,
    V3_KEY,
    V3_UID,
    V4_KEY,
    SimReader,
    push_config_dict,
    service_for,
    until,
)
from tests.support.sim_server import running_simulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_780_000_000.0)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    sim = Simulator(seed=3, clock=clock)
    sim.add_workspace(V3_UID, V3_KEY)
    sim.add_workspace("v4-workspace", V4_KEY)
    sim.add_workflow("wf-1", "Extract LinkedIn Messages", V3_UID)
    return sim


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with running_simulator(sim) as url:
        yield url


@pytest.fixture
async def receiver(sim_url: str, tmp_path: Path) -> AsyncIterator[tuple[PushService, SimReader]]:
    config = parse_config(push_config_dict(sim_url, max_body_bytes=65536), base_dir=tmp_path)
    reader = SimReader(config)
    service = service_for(config, reader, coalesce_window=3600.0)
    await service.start()
    yield service, reader
    await service.aclose()


def sender_for(sim: Simulator, service: PushService, faults: PushFaults | None = None) -> PushSender:
    base = f"http://127.0.0.1:{service.port}/push"
    return PushSender(
        sim,
        {
            V3_UID: PushTarget(f"{base}/acme", TOKENS["acme"], "v3"),
            "v4-workspace": PushTarget(f"{base}/beta", TOKENS["beta"], "v4"),
        },
        faults or PushFaults(),
        seed=5,
    )


async def drained(service: PushService) -> None:
    for queue in service.queues.values():
        await queue.drained()


async def test_every_status_change_is_pushed_and_read_back(
    sim: Simulator, clock: ManualClock, receiver: tuple[PushService, SimReader]
) -> None:
    service, reader = receiver
    sim.add_run("wf-1", "finished")  # there before the sender: not announced
    sender = sender_for(sim, service)
    try:
        assert await sender.scan() == []
        run = sim.launch("wf-1", [(0, "running"), (10, "warning")])
        v4run = V4Api.of(sim).launch(
            "linkedin-extract", [(0, "QUEUED"), (5, "RUNNING"), (10, "FAILED")], workspace_uid="v4-workspace"
        )
        first = await sender.scan()
        assert [(d.push.run_uid, d.push.status, d.http_status) for d in first] == [
            (run, "running", 202),
            (v4run, "QUEUED", 202),
        ]
        clock.advance(10)
        second = await sender.scan()  # the v4 run went through RUNNING on the way: both are sent
        assert [(d.push.status, d.http_status) for d in second] == [
            ("warning", 202),
            ("RUNNING", 202),
            ("FAILED", 202),
        ]
        v3_failed = second[0].push.body
        assert v3_failed["message"] == "Job failed."
        assert v3_failed["error"]
        assert v3_failed["job_uid"] == run
        assert v3_failed["workflow_uid"] == "wf-1"
        assert second[2].push.body["run"] == {"run_uid": v4run, "batch_uid": None, "status": "FAILED"}
        await drained(service)
        assert reader.truth == {run: "warning", v4run: "FAILED"}
        assert service.stats.get("acme", "accepted") == 2
        sim.update_run(run, "paused")
        assert [d.push.status for d in await sender.scan()] == ["paused"]
        assert await sender.scan() == []  # nothing changed since
    finally:
        await sender.aclose()


@pytest.mark.parametrize(
    ("faults", "fault", "status", "outcome"),
    [
        (PushFaults(wrong_token=1.0), "wrong_token", 401, "unauthorized"),
        (PushFaults(not_json=1.0), "not_json", 400, "invalid"),
        (PushFaults(huge=1.0, huge_bytes=100_000), "huge", 413, "too_large"),
    ],
)
async def test_faulty_bodies_and_tokens_are_refused_and_counted(
    sim: Simulator,
    receiver: tuple[PushService, SimReader],
    faults: PushFaults,
    fault: str,
    status: int,
    outcome: str,
) -> None:
    service, reader = receiver
    sender = sender_for(sim, service, faults)
    try:
        await sender.scan()
        sim.launch("wf-1", [(0, "running")])
        (delivery,) = await sender.scan()
        assert (delivery.fault, delivery.http_status) == (fault, status)
        assert service.stats.get("acme", outcome) == 1
        await drained(service)
        assert reader.reads == []
    finally:
        await sender.aclose()


async def test_dropped_and_duplicated_pushes(sim: Simulator, receiver: tuple[PushService, SimReader]) -> None:
    service, reader = receiver
    dropping = sender_for(sim, service, PushFaults(drop=1.0))
    duplicating = sender_for(sim, service, PushFaults(duplicates=4))
    try:
        await dropping.scan()
        await duplicating.scan()
        run = sim.launch("wf-1", [(0, "shutdown")])
        (dropped,) = await dropping.scan()
        assert (dropped.fault, dropped.http_status) == ("dropped", None)
        assert service.stats.get("acme", "accepted") == 0
        sent = await duplicating.scan()
        assert [(d.fault, d.http_status) for d in sent] == [("", 202)] + [("duplicate", 202)] * 4
        await drained(service)
        assert service.stats.get("acme", "accepted") == 1
        assert service.stats.get("acme", "duplicate") == 4
        assert [r[1] for r in reader.reads] == [run]  # five pushes, one read
    finally:
        await dropping.aclose()
        await duplicating.aclose()


async def test_out_of_order_callbacks_end_at_the_truth(
    sim: Simulator, clock: ManualClock, receiver: tuple[PushService, SimReader]
) -> None:
    service, reader = receiver
    sender = sender_for(sim, service, PushFaults(out_of_order=True))
    try:
        await sender.scan()
        run = V4Api.of(sim).launch(
            "linkedin-extract", [(0, "RUNNING"), (5, "SUCCEEDED")], workspace_uid="v4-workspace"
        )
        assert await sender.scan() == []  # RUNNING is held back
        clock.advance(5)
        sent = await sender.scan()
        assert [d.push.status for d in sent] == ["SUCCEEDED", "RUNNING"]
        assert all(d.http_status == 202 for d in sent)
        await drained(service)
        assert reader.truth[run] == "SUCCEEDED"
    finally:
        await sender.aclose()


async def test_in_the_background_a_scripted_change_is_pushed_at_once(
    sim: Simulator, receiver: tuple[PushService, SimReader]
) -> None:
    service, reader = receiver
    run = sim.add_run("wf-1", "running")
    sender = sender_for(sim, service)
    sender.start(interval=3600.0)  # only the change itself can wake it
    try:
        await until(lambda: sender._baseline_taken, "the first scan")
        sim.update_run(run, "paused")
        await until(lambda: reader.truth.get(run) == "paused", "the pushed change to be read back")
        assert [d.push.status for d in sender.deliveries] == ["paused"]
    finally:
        await sender.aclose()
