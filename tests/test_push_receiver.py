"""The push receiver over loopback: authentication before anything is read, the body cap, invalid
bodies, coalescing, the full queue, failed reads, idle connections, and secrets never shown."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.failures import ErrorReader
from exporter.logs import setup_logging
from exporter.push.body import ERROR_MAX_CHARS, PushEvent
from exporter.push.service import PushService
from exporter.push.stats import OUTCOMES, UNKNOWN
from exporter.simulator import Simulator
from exporter.webguard import FAILURE_BURST
from tests.support.push import (
    TOKENS,
    V3_KEY,
    V4_KEY,
    SimReader,
    add_v4_run,
    bearer,
    make_sim,
    push_config_dict,
    push_in_thread,
    service_for,
    until,
    v3_webhook,
    v4_callback,
)
from tests.support.sim_server import running_simulator

PASSWORD = "basic-pa55word"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
SECRETS = (*TOKENS.values(), V3_KEY, V4_KEY, PASSWORD)


@pytest.fixture
def sim() -> Simulator:
    return make_sim()


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with running_simulator(sim) as url:
        yield url


class Pushing:
    def __init__(self, service: PushService, reader: SimReader, sim: Simulator) -> None:
        self.service, self.reader, self.sim = service, reader, sim
        self.url = f"http://127.0.0.1:{service.port}"
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10)
        self.responses: list[httpx.Response] = []

    async def post(self, workspace: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await self.client.post(f"/push/{workspace}", content=content, headers=headers or {})
        self.responses.append(response)
        return response

    def count(self, workspace: str, outcome: str) -> int:
        return self.service.stats.get(workspace, outcome)

    async def drained(self) -> None:
        for queue in self.service.queues.values():
            await queue.drained()

    def api_requests(self) -> list[dict[str, Any]]:
        with self.sim.lock:
            return list(self.sim.request_log)


@asynccontextmanager
async def receiving(
    sim: Simulator, sim_url: str, tmp_path: Path, web_config: str | None = None, **push: Any
) -> AsyncIterator[Pushing]:
    """A started receiver for the block; closed (its client, then the service) when it ends."""
    if web_config is not None:
        (tmp_path / "push-web.yml").write_text(web_config)
        push["web_config_file"] = "push-web.yml"
    config = parse_config(push_config_dict(sim_url, **push), base_dir=tmp_path)
    reader = SimReader(config)
    service = service_for(config, reader, coalesce_window=3600.0)
    await service.start()
    p = Pushing(service, reader, sim)
    try:
        yield p
    finally:
        await p.client.aclose()
        await p.service.aclose()


@pytest.fixture
async def pushing(sim: Simulator, sim_url: str, tmp_path: Path) -> AsyncIterator[Pushing]:
    async with receiving(sim, sim_url, tmp_path) as p:
        yield p


def acme_head(framing: str) -> bytes:
    """The head of a raw POST to acme's push path, its body framed by the ``framing`` header."""
    return (
        f"POST /push/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKENS['acme']}\r\n{framing}\r\n\r\n"
    ).encode()


def raw_exchange(port: int, request: bytes, then: bytes = b"", within: float = 10.0) -> tuple[bytes, bool]:
    """Send ``request`` (then ``then``), read until the server closes; (what came back, closed?)."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        sock.sendall(request)
        if then:
            sock.sendall(then)
        received = b""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
        return received, False


async def test_only_the_push_paths_and_health(pushing: Pushing) -> None:
    assert (await pushing.client.get("/-/healthy")).status_code == 200
    for path in ("/metrics", "/", "/api/v1/status", "/-/ready"):
        assert (await pushing.client.get(path)).status_code == 404, path
    assert (await pushing.client.get("/push/acme")).status_code == 405


async def test_a_v3_webhook_is_accepted_and_read_back(pushing: Pushing, sim: Simulator) -> None:
    workflow = sim.add_workflow(workspace_uid="5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19")
    run = sim.add_run(workflow, "warning")
    before = time.time()
    response = await pushing.post("acme", v3_webhook(run, workflow, error="bad input"), bearer("acme"))
    assert response.status_code == 202
    await pushing.drained()
    assert pushing.reader.reads == [("acme", run, 200)]
    assert pushing.reader.truth[run] == "warning"
    assert pushing.count("acme", "accepted") == 1
    last = pushing.service.stats.last_event("acme")
    assert last is not None
    assert last >= before
    assert pushing.service.stats.last_event("beta") is None


async def test_unauthorized_gets_401_with_nothing_read_and_no_api_request(pushing: Pushing) -> None:
    body = v3_webhook("job-1")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKENS['acme']}x"},
        bearer("beta"),  # another workspace's token
        {"Authorization": TOKENS["acme"]},  # no scheme
        {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()},  # no basic auth configured
    ):
        response = await pushing.post("acme", body, headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert response.headers.get("Connection") == "close"
    # gamma has no token: nothing admits a push
    assert (await pushing.post("gamma", body, bearer("acme"))).status_code == 401
    assert pushing.count("acme", "unauthorized") == 6
    assert pushing.count("gamma", "unauthorized") == 1
    await pushing.drained()
    assert pushing.reader.reads == []
    assert pushing.api_requests() == []


async def test_401_is_answered_before_the_body_arrives(pushing: Pushing) -> None:
    head = (
        b"POST /push/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    received, closed = await asyncio.to_thread(raw_exchange, pushing.service.port, head)
    assert received.startswith(b"HTTP/1.1 401 "), received[:100]
    assert closed


async def test_unknown_workspace_is_401_counted_under_the_empty_label(pushing: Pushing) -> None:
    response = await pushing.post("nope", v3_webhook("job-1"), bearer("acme"))
    assert response.status_code == 401
    assert pushing.count(UNKNOWN, "unknown_workspace") == 1
    assert pushing.count("nope", "unknown_workspace") == 0
    assert set(pushing.service.stats.counts()) == {
        (w, o) for w in ("acme", "beta", "gamma") for o in OUTCOMES
    } | {(UNKNOWN, "unknown_workspace")}


async def test_basic_auth_of_the_push_web_config_admits_a_workspace_without_token(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    async with receiving(sim, sim_url, tmp_path, web_config=f"basic_auth_users:\n  captain: '{HASH}'\n") as p:
        basic = {"Authorization": "Basic " + base64.b64encode(f"captain:{PASSWORD}".encode()).decode()}
        wrong = {"Authorization": "Basic " + base64.b64encode(b"captain:nope").decode()}
        assert (await p.post("gamma", v3_webhook("job-1"), basic)).status_code == 202
        refused = await p.post("gamma", v3_webhook("job-2"), wrong)
        assert refused.status_code == 401
        assert "Basic" in refused.headers["WWW-Authenticate"]
        # a workspace's bearer token still works beside basic auth; the probe needs nothing
        assert (await p.post("acme", v3_webhook("job-3"), bearer("acme"))).status_code == 202
        assert (await p.client.get("/-/healthy")).status_code == 200
        assert p.count("gamma", "accepted") == 1
        assert p.count("gamma", "unauthorized") == 1


async def test_wrong_basic_passwords_in_bulk_stop_getting_checked(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    """The push port's basic auth has /metrics' per-client failure limit: past it, no bcrypt check is
    made for credentials that are not cached successes (a brute force gets no answers), while a pusher
    already admitted goes on."""
    users = f"basic_auth_users:\n  captain: '{HASH}'\n  mate: '{HASH}'\n"

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    async with receiving(sim, sim_url, tmp_path, web_config=users) as p:
        assert (await p.post("gamma", v3_webhook("job-0"), basic("captain", PASSWORD))).status_code == 202
        for index in range(FAILURE_BURST):
            assert (
                await p.post("gamma", v3_webhook(f"job-{index}"), basic("mate", "guess"))
            ).status_code == 401
        # the right password of a user not admitted yet is not checked either: the limit is reached
        assert (await p.post("gamma", v3_webhook("job-x"), basic("mate", PASSWORD))).status_code == 401
        assert (await p.post("gamma", v3_webhook("job-y"), basic("captain", PASSWORD))).status_code == 202
        assert p.count("gamma", "unauthorized") == FAILURE_BURST + 1


async def test_413_on_the_declared_length_with_the_body_unread(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    async with receiving(sim, sim_url, tmp_path, max_body_bytes=4096) as p:
        head = acme_head("Content-Length: 4097")
        received, closed = await asyncio.to_thread(raw_exchange, p.service.port, head)
        assert received.startswith(b"HTTP/1.1 413 "), received[:100]
        assert closed
        assert p.count("acme", "too_large") == 1
        assert p.reader.reads == []


async def test_413_on_a_streamed_body_stops_reading_at_the_cap(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    async with receiving(sim, sim_url, tmp_path, max_body_bytes=4096) as p:
        head = acme_head("Transfer-Encoding: chunked")
        chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"
        # two chunks (8 KiB), never the last one: the answer comes without the end of the body
        received, closed = await asyncio.to_thread(raw_exchange, p.service.port, head, chunk * 2)
        assert received.startswith(b"HTTP/1.1 413 "), received[:100]
        assert closed
        assert p.count("acme", "too_large") == 1
        # exactly at the cap is fine
        body = json.dumps(v3_webhook("job-1")).encode()
        assert (await p.post("acme", body + b" " * (4096 - len(body)), bearer("acme"))).status_code == 202


async def test_invalid_bodies_get_400(pushing: Pushing) -> None:
    for body in (
        b"not json",
        b"[" * (1 << 20),  # a mebibyte of nesting (the default cap): refused, no RecursionError
        json.dumps({"x": [[[[[[1]]]]]]}).encode(),
        json.dumps(v4_callback("run-1", "RUNNING")).encode(),  # a v4 callback for a v3 workspace
    ):
        response = await pushing.post("acme", body, bearer("acme"))
        assert response.status_code == 400, body[:40]
        assert "Bad Request" in response.text
    assert (await pushing.post("beta", v3_webhook("job-1"), bearer("beta"))).status_code == 400
    assert pushing.count("acme", "invalid") == 4
    assert pushing.count("beta", "invalid") == 1
    assert pushing.reader.reads == []


async def test_five_identical_webhooks_cost_one_read(pushing: Pushing, sim: Simulator) -> None:
    workflow = sim.add_workflow(workspace_uid="5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19")
    run = sim.add_run(workflow, "shutdown")
    answers = await asyncio.gather(
        *(pushing.post("acme", v3_webhook(run, workflow, error="x"), bearer("acme")) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [202] * 5
    await pushing.drained()
    # and once more after the read: the same event again adds nothing
    assert (
        await pushing.post("acme", v3_webhook(run, workflow, error="x"), bearer("acme"))
    ).status_code == 202
    await pushing.drained()
    assert len(pushing.reader.reads) == 1
    assert [e["path"] for e in pushing.api_requests()] == [f"/v3/jobs/{run}"]
    assert pushing.count("acme", "accepted") == 1
    assert pushing.count("acme", "duplicate") == 5


async def test_out_of_order_callbacks_end_at_the_apis_answer(pushing: Pushing, sim: Simulator) -> None:
    run = add_v4_run(sim, "SUCCEEDED")
    pushing.reader.gate = asyncio.Event()  # reads wait, so the callbacks all arrive first
    for status in ("RUNNING", "RUNNING", "SUCCEEDED", "RUNNING"):
        assert (await pushing.post("beta", v4_callback(run, status), bearer("beta"))).status_code == 202
    pushing.reader.gate.set()
    await pushing.drained()
    assert pushing.reader.truth[run] == "SUCCEEDED"
    # the first RUNNING is read at once (the read waits at the gate): the second is a duplicate of it;
    # SUCCEEDED came after the read started, so it waits for a read of its own, and the late RUNNING
    # merges into it
    assert len(pushing.reader.reads) == 2
    assert pushing.count("beta", "accepted") == 2
    assert pushing.count("beta", "duplicate") == 2


async def test_a_different_hint_during_a_read_gets_its_own_read(pushing: Pushing, sim: Simulator) -> None:
    run = add_v4_run(sim, "RUNNING")
    pushing.reader.gate = asyncio.Event()
    assert (await pushing.post("beta", v4_callback(run, "RUNNING"), bearer("beta"))).status_code == 202
    queue = pushing.service.queues["beta"]
    await until(lambda: queue.reads == 1, "the read to start (it waits at the gate)")
    from exporter.simulator.v4 import V4Api

    V4Api.of(sim).update_run(run, "FAILED")
    assert (await pushing.post("beta", v4_callback(run, "FAILED"), bearer("beta"))).status_code == 202
    assert (await pushing.post("beta", v4_callback(run, "RUNNING"), bearer("beta"))).status_code == 202
    pushing.reader.gate.set()
    await pushing.drained()
    assert len(pushing.reader.reads) == 2
    assert pushing.reader.truth[run] == "FAILED"


async def test_a_full_queue_answers_503_with_retry_after(
    sim: Simulator, sim_url: str, tmp_path: Path
) -> None:
    async with receiving(sim, sim_url, tmp_path, queue_size=1) as p:
        p.reader.gate = asyncio.Event()
        assert (await p.post("acme", v3_webhook("job-1"), bearer("acme"))).status_code == 202
        # job-1 is being read (waiting at the gate): the queue is empty again
        await until(lambda: p.service.queues["acme"].reads == 1, "the read of job-1 to start")
        assert (await p.post("acme", v3_webhook("job-2"), bearer("acme"))).status_code == 202
        full = await p.post("acme", v3_webhook("job-3"), bearer("acme"))
        assert full.status_code == 503
        assert int(full.headers["Retry-After"]) > 0
        assert (await p.post("beta", v4_callback("run-1", "RUNNING"), bearer("beta"))).status_code == 202
        assert p.count("acme", "overloaded") == 1
        p.reader.gate.set()
        await p.service.queues["acme"].drained()
        assert (await p.post("acme", v3_webhook("job-3"), bearer("acme"))).status_code == 202


async def test_failed_reads_are_counted_and_the_worker_goes_on(pushing: Pushing, sim: Simulator) -> None:
    workflow = sim.add_workflow(workspace_uid="5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19")
    run = sim.add_run(workflow, "paused")
    calls: list[str] = []

    async def flaky(event: PushEvent) -> bool:
        calls.append(event.run_uid)
        if event.run_uid == "job-raises":
            raise RuntimeError("boom")
        return await pushing.reader.fetcher("acme")(event)

    pushing.service.queues["acme"]._fetch_and_apply = flaky
    for job in ("job-raises", "job-404", run):
        assert (await pushing.post("acme", v3_webhook(job), bearer("acme"))).status_code == 202
    await pushing.drained()
    assert calls == ["job-raises", "job-404", run]
    assert pushing.count("acme", "fetch_failed") == 2
    assert pushing.reader.truth[run] == "paused"
    # a redelivery after a failed read is read again; after a good one, it is a duplicate
    for job in ("job-404", run):
        assert (await pushing.post("acme", v3_webhook(job), bearer("acme"))).status_code == 202
    await pushing.drained()
    assert calls == ["job-raises", "job-404", run, "job-404"]
    assert pushing.count("acme", "duplicate") == 1


async def test_idle_and_half_sent_connections_are_closed(pushing: Pushing) -> None:
    port = pushing.service.port  # web.idle_timeout is 2s in this config
    started_at = time.monotonic()
    _, idle_closed = await asyncio.to_thread(raw_exchange, port, b"", b"", 20.0)
    half = b"POST /push/acme HTTP/1.1\r\nHost: x\r\nX-Slow: "
    _, half_closed = await asyncio.to_thread(raw_exchange, port, half, b"", 20.0)
    body_head = (
        f"POST /push/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKENS['acme']}\r\n"
        "Content-Length: 1000\r\n\r\n{"
    ).encode()
    received, body_closed = await asyncio.to_thread(raw_exchange, port, body_head, b"", 20.0)
    assert idle_closed
    assert half_closed
    assert body_closed
    assert received.startswith(b"HTTP/1.1 408 "), received[:100]
    assert time.monotonic() - started_at < 20.0
    assert pushing.count("acme", "invalid") == 1


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.formatted = io.StringIO()  # what the exporter's log handler wrote

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def exporter_logging(pushing: Pushing) -> Iterator[Records]:
    """The exporter's own logging (logfmt, secrets masked) at debug, plus the raw records."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("debug", "logfmt", pushing.service.config.secrets())
    records = Records()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(records.formatted)
    root.addHandler(records)
    yield records
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_secrets_never_appear_in_answers_logs_or_counts(
    pushing: Pushing, sim: Simulator, exporter_logging: Records
) -> None:
    workflow = sim.add_workflow(workspace_uid="5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19")
    run = sim.add_run(workflow, "warning")
    seen: list[PushEvent] = []
    reader = pushing.reader.fetcher("acme")

    async def record(event: PushEvent) -> bool:
        seen.append(event)
        return await reader(event)

    pushing.service.queues["acme"]._fetch_and_apply = record
    leaky = f"failed with key {V3_KEY} and token {TOKENS['beta']}"
    await pushing.post("acme", v3_webhook(run, workflow, error=leaky), bearer("acme"))
    await pushing.post("acme", v3_webhook("job-x"), bearer("beta"))
    await pushing.post("acme", v3_webhook("job-x"), {"Authorization": f"Bearer {TOKENS['acme']} {V3_KEY}"})
    await pushing.post(TOKENS["acme"], v3_webhook("job-x"), bearer("acme"))
    await pushing.post("acme", {"job_uid": TOKENS["acme"], "workflow_uid": "w"}, bearer("acme"))
    await pushing.post("beta", v4_callback(f"x{V4_KEY}", "RUNNING"), bearer("beta"))
    await pushing.post("acme", TOKENS["acme"].encode(), bearer("acme"))
    await pushing.drained()
    assert [r.status_code for r in pushing.responses] == [202, 401, 401, 401, 400, 400, 400]
    assert seen == [dataclasses.replace(seen[0], error="failed with key <redacted> and token <redacted>")]
    shown = [r.text + str(r.headers) for r in pushing.responses]
    shown += [
        exporter_logging.formatted.getvalue(),
        repr(pushing.service.stats.counts()),
        repr(pushing.service.config),
    ]
    shown += [repr(pushing.service.push), repr(seen)]
    # the receiver's own log lines need no masking
    shown += [str(vars(r)) for r in exporter_logging.records if r.name.startswith("exporter")]
    assert any("401 " in text and "/push/" in text for text in shown)  # the access log was checked too
    for secret in SECRETS:
        for text in shown:
            assert secret not in text


async def test_an_error_cut_at_its_limit_keeps_no_start_of_a_secret(pushing: Pushing) -> None:
    """A Failed webhook's error is cut to ERROR_MAX_CHARS before it is redacted: a secret the cut goes
    through would no longer match, so its start must go with the cut."""
    seen: list[PushEvent] = []

    async def record(event: PushEvent) -> bool:
        seen.append(event)
        return True

    pushing.service.queues["acme"]._fetch_and_apply = record
    secrets = (V3_KEY, TOKENS["acme"], TOKENS["beta"])
    for index, secret in enumerate(secrets):
        for kept in (6, 12, 20):  # characters of the secret before the cut
            error = "x" * (ERROR_MAX_CHARS - 2 - kept) + " " + secret + " and more"
            response = await pushing.post(
                "acme", v3_webhook(f"job-{index}-{kept}", error=error), bearer("acme")
            )
            assert response.status_code == 202
    await pushing.drained()
    assert len(seen) == 9
    reader = ErrorReader([V3_KEY], "acme")  # what the run keeps (exporter/push/apply.py)
    for event in seen:
        assert event.error is not None
        assert len(event.error) <= ERROR_MAX_CHARS
        for text in (event.error, reader.clean(event.error)):
            for secret in secrets:
                assert secret[:6] not in text, (secret, text[-30:])


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[httpx.Client, Simulator]]:
    sim = make_sim()
    with running_simulator(sim) as sim_url:
        config = parse_config(push_config_dict(sim_url, max_body_bytes=8192))

        async def never_read(_: PushEvent) -> bool:
            return True

        assert config.push is not None
        service = PushService(config, config.push, dict.fromkeys(("acme", "beta", "gamma"), never_read))
        with push_in_thread(service) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield client, sim


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    workspace=st.sampled_from(["acme", "beta", "gamma", "nope"]),
    token=st.sampled_from([None, "acme", "beta", "junk"]),
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda uid, error: json.dumps(v3_webhook("j") | {"job_uid": uid, "error": error}).encode(),
            json_values,
            json_values,
        ),
        st.builds(
            lambda uid, status: json.dumps(
                v4_callback("r", "R") | {"run": {"run_uid": uid, "status": status}}
            ).encode(),
            json_values,
            json_values,
        ),
        st.integers(0, 100).map(lambda d: b"[" * d + b"]" * d),
        st.integers(8000, 9000).map(lambda n: b" " * n),
    ),
)
def test_fuzz_every_body_gets_202_or_a_4xx(
    fuzz_target: tuple[httpx.Client, Simulator], workspace: str, token: str | None, body: bytes
) -> None:
    client, sim = fuzz_target
    headers = {"Authorization": f"Bearer {TOKENS.get(token, token)}"} if token else {}
    response = client.post(f"/push/{workspace}", content=body, headers=headers)
    assert response.status_code == 202 or 400 <= response.status_code < 500, response.status_code
    assert sim.request_log == []


async def test_a_shard_receives_only_for_the_workspaces_it_polls(sim: Simulator, sim_url: str) -> None:
    """With --shard, the pollers (and so the fetchers) are this shard's workspaces only: the service
    starts, counts none of the others (another shard exports them), and answers their pushes as for a
    workspace it does not know."""
    config = parse_config(push_config_dict(sim_url))
    reader = SimReader(config)
    service = PushService(config, config.push, {"acme": reader.fetcher("acme")})  # type: ignore[arg-type]
    await service.start()
    pushing = Pushing(service, reader, sim)
    try:
        assert (await pushing.post("beta", v3_webhook("job-1"), bearer("beta"))).status_code == 401
        assert pushing.count(UNKNOWN, "unknown_workspace") == 1
        assert {workspace for workspace, _ in service.stats.counts()} == {"acme", UNKNOWN}
        assert (await pushing.post("acme", v3_webhook("job-1"), bearer("acme"))).status_code == 202
    finally:
        await pushing.client.aclose()
        await service.aclose()
