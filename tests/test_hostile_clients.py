"""The exporter holds under hostile clients: thousands of idle or half-sent connections do not stop
/metrics, they are closed after web.idle_timeout, the connection cap refuses cheaply, and the log
stays small."""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ConfigFactory
from tests.support.exporter_proc import ExporterProcess, running_exporter

HOSTILE = 2000
HALF_SENT = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nX-Slow: "


@pytest.fixture(autouse=True)
def enough_open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = HOSTILE + 1000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-files limit ({hard}) is below {wanted}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_hostile(exporter: ExporterProcess, count: int) -> list[socket.socket]:
    host, port = exporter.address.rsplit(":", 1)
    sockets = []
    for index in range(count):
        sock = socket.create_connection((host, int(port)), timeout=10)
        if index % 2:
            sock.sendall(HALF_SENT)  # request line and part of the headers, never finished
        sockets.append(sock)
    return sockets


def closed_by_server(sockets: list[socket.socket], within: float) -> int:
    """How many of ``sockets`` the server closes (EOF or reset) within ``within`` seconds."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    closed = 0
    deadline = time.monotonic() + within
    while closed < len(sockets) and (remaining := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=remaining):
            ready: socket.socket = key.data
            try:
                data = ready.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(ready)
                closed += 1
    selector.close()
    return closed


def test_idle_and_half_sent_connections(tmp_path: Path, config_dict: ConfigFactory) -> None:
    config = config_dict(web={"idle_timeout": "3s"})
    with running_exporter(config, tmp_path) as exporter:
        hostile = open_hostile(exporter, HOSTILE)
        try:
            # Once the server has accepted them all (a connection queued behind 2,000 others in the
            # listen backlog waits for their accept, whatever the server does), and while they stay
            # open: the one bound this test allows itself, /metrics answers within 1 s.
            assert httpx.get(f"{exporter.url}/-/healthy", timeout=30.0).status_code == 200
            response = httpx.get(f"{exporter.url}/metrics", timeout=1.0)
            assert response.status_code == 200
            assert "captaindata_up" in response.text
            # Every hostile connection is closed by the server once idle_timeout has passed.
            assert closed_by_server(hostile, within=30) == HOSTILE
        finally:
            for sock in hostile:
                sock.close()
        assert httpx.get(f"{exporter.url}/metrics", timeout=1.0).status_code == 200
        log = exporter.log()
    assert "Traceback" not in log
    assert len(log) < 20_000, log[-2000:]


def test_connection_cap_refuses_cheaply(tmp_path: Path, config_dict: ConfigFactory) -> None:
    cap = 20
    config = config_dict(web={"max_connections": cap, "idle_timeout": "60s"})
    with running_exporter(config, tmp_path) as exporter:
        httpx.get(f"{exporter.url}/metrics", timeout=5.0)  # let the readiness probe's connection close
        held = open_hostile(exporter, cap)
        extra, refused_at_connect = [], 0
        host, port = exporter.address.rsplit(":", 1)
        for _ in range(300):
            try:
                extra.append(socket.create_connection((host, int(port)), timeout=10))
            except ConnectionResetError:  # closed by the server before connect() returned
                refused_at_connect += 1
        try:
            # Over the cap, connections are closed as soon as they are accepted; the cap's worth stay
            # open (give or take the probe's connections, which the server may not have seen close).
            closed = closed_by_server(held + extra, within=5) + refused_at_connect
            assert 300 <= closed <= 303, closed
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{exporter.url}/metrics", timeout=5.0)
        finally:
            for sock in held + extra:
                sock.close()

        def metrics_again() -> bool:
            try:
                return httpx.get(f"{exporter.url}/metrics", timeout=5.0).status_code == 200
            except httpx.TransportError:
                return False

        deadline = time.monotonic() + 10
        while not metrics_again():
            assert time.monotonic() < deadline, "the exporter did not recover once the clients left"
            time.sleep(0.1)
        log = exporter.log()
    assert log.count("connection limit reached") == 1, log
    assert "Traceback" not in log


MALFORMED = (
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: exporter\r\n\r\n",  # over-long URL
    b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n"
    + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    + b"\r\n",
    b"POST /metrics HTTP/1.1\r\nHost: exporter\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",  # request smuggling
)


def answer_status(exporter: ExporterProcess, request: bytes) -> bytes:
    host, port = exporter.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096).split(b" ", 2)[1]  # aiohttp answers these in HTTP/1.0


def test_malformed_requests_are_refused_and_logged_once(tmp_path: Path, config_dict: ConfigFactory) -> None:
    with running_exporter(config_dict(), tmp_path) as exporter:
        before = len(exporter.log())
        statuses = {answer_status(exporter, MALFORMED[index % 3]) for index in range(300)}
        assert statuses <= {b"400", b"431"}, statuses
        assert httpx.get(f"{exporter.url}/metrics", timeout=5.0).status_code == 200
        log = exporter.log()
    assert "Traceback" not in log
    assert log.count("malformed HTTP requests refused") == 1, log[-2000:]
    assert len(log) - before < 2_000, log[before:][-2000:]
