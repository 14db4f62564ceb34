"""--web.config.file against the real exporter: TLS with certificates made here, client certificates,
basic auth, response headers, and rotation of certificates and users without a restart."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml

from tests.conftest import ConfigFactory
from tests.support.certs import Authority, Issued, issue, make_ca
from tests.support.exporter_proc import exporter_argv, running_exporter
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail, running_process

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3"


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@dataclass
class Pki:
    directory: Path
    ca: Authority
    server: Issued
    client: Issued
    other_ca: Authority
    stranger: Issued  # a client certificate from a CA the exporter does not trust


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    ca = make_ca(directory, "test-ca")
    other = make_ca(directory, "other-ca")
    return Pki(
        directory,
        ca,
        issue(ca, directory, "server", server=True, names=("127.0.0.1", "localhost")),
        issue(ca, directory, "prometheus", server=False, names=("prometheus.example",)),
        other,
        issue(other, directory, "stranger", server=False, names=("prometheus.example",)),
    )


def client_context(ca: Path, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


@dataclass
class Running:
    url: str
    port: int
    web_config: Path
    log_path: Path

    def get(
        self, path: str, ca: Path, cert: Issued | None = None, auth: tuple[str, str] | None = None
    ) -> httpx.Response:
        # A new connection each time: the server re-reads its web config per connection and request.
        with httpx.Client(verify=client_context(ca, cert), timeout=10.0) as client:
            return client.get(f"{self.url}{path}", auth=auth)

    def write(self, web_config: dict[str, Any]) -> None:
        replacement = self.web_config.with_suffix(".new")
        replacement.write_text(yaml.safe_dump(web_config))
        os.replace(replacement, self.web_config)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def tls_exporter(
    tmp_path: Path, config: dict[str, Any], web_config: dict[str, Any], ready: Callable[[Running], bool]
) -> Iterator[Running]:
    config_path, web_path = tmp_path / "config.yaml", tmp_path / "web.yaml"
    config_path.write_text(yaml.safe_dump(config))
    web_path.write_text(yaml.safe_dump(web_config))
    port = free_port()
    argv = exporter_argv(config_path, f"{LOOPBACK}:{port}", "--web.config.file", str(web_path))
    log_path = tmp_path / "exporter.log"
    with running_process(argv, log_path) as proc:
        running = Running(f"https://{LOOPBACK}:{port}", port, web_path, log_path)

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the exporter exited:\n{log_tail(log_path)}")
            try:
                return ready(running)
            except (httpx.HTTPError, ssl.SSLError, OSError):
                return False

        wait_until(up, 30, "the TLS exporter")
        yield running


def server_tls(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key), **extra}


def plain_http_answer(port: int) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        chunks = []
        try:
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def test_tls_basic_auth_headers_and_rotation(tmp_path: Path, pki: Pki, config_dict: ConfigFactory) -> None:
    web_config: dict[str, Any] = {
        "tls_server_config": server_tls(pki, min_version="TLS12"),
        "http_server_config": {
            "headers": {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}
        },
        "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
    }
    ca = pki.ca.cert

    def ready(running: Running) -> bool:
        return running.get("/-/healthy", ca).status_code == 200

    with tls_exporter(tmp_path, config_dict(web={"idle_timeout": "2s"}), web_config, ready) as running:
        # Plain HTTP on the TLS port gets no HTTP answer at all.
        assert not plain_http_answer(running.port).startswith(b"HTTP/")
        # A client that never starts its TLS handshake is closed after web.idle_timeout.
        with socket.create_connection((LOOPBACK, running.port), timeout=30) as silent:
            assert silent.recv(1) == b""
        # The probes answer without credentials; everything else asks for them.
        assert running.get("/-/healthy", ca).status_code == 200
        assert running.get("/-/ready", ca).status_code in (200, 503)
        for path in ("/metrics", "/", "/nonexistent"):
            response = running.get(path, ca)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert response.headers["X-Frame-Options"] == "deny"
        assert running.get("/metrics", ca, auth=("prometheus", "wrong")).status_code == 401
        assert running.get("/metrics", ca, auth=("nobody", PASSWORD)).status_code == 401
        response = running.get("/metrics", ca, auth=("prometheus", PASSWORD))
        assert response.status_code == 200
        assert "captaindata_" in response.text
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        # Malformed Authorization headers are refused, not crashed on.
        with httpx.Client(verify=client_context(ca), timeout=10.0) as client:
            for header in ("Basic !!!", "Basic " + "A" * 5000, "Bearer x", "Basic Zm9v"):
                answer = client.get(f"{running.url}/metrics", headers={"Authorization": header})
                assert answer.status_code == 401, header

        # Users rotate without a restart.
        web_config["basic_auth_users"] = {"scraper": bcrypt_hash(NEW_PASSWORD)}
        running.write(web_config)
        assert running.get("/metrics", ca, auth=("prometheus", PASSWORD)).status_code == 401
        assert running.get("/metrics", ca, auth=("scraper", NEW_PASSWORD)).status_code == 200

        # The certificate rotates without a restart: a new CA, new files at the same paths.
        new_ca = make_ca(pki.directory / "rotated", "rotated-ca")
        rotated = issue(new_ca, pki.directory / "rotated", "server", server=True, names=("127.0.0.1",))
        os.replace(rotated.key, pki.server.key)
        os.replace(rotated.cert, pki.server.cert)
        assert running.get("/metrics", new_ca.cert, auth=("scraper", NEW_PASSWORD)).status_code == 200
        with pytest.raises(httpx.ConnectError):
            running.get("/-/healthy", ca)

        # A broken file is logged and the last good configuration stays in force.
        running.web_config.write_text("tls_server_config: [\n")
        assert running.get("/metrics", new_ca.cert, auth=("scraper", NEW_PASSWORD)).status_code == 200
        log = running.log()
        assert "web config not reloaded" in log
        assert "web config reloaded" in log
        for secret in (PASSWORD, NEW_PASSWORD, "$2b$04$"):
            assert secret not in log
        assert "Traceback" not in log


def test_client_certificates_required_checked_and_rotated(
    tmp_path: Path, pki: Pki, config_dict: ConfigFactory
) -> None:
    web_config: dict[str, Any] = {
        "tls_server_config": server_tls(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(pki.ca.cert),
        )
    }
    ca = pki.ca.cert

    def ready(running: Running) -> bool:
        return running.get("/-/healthy", ca, pki.client).status_code == 200

    with tls_exporter(tmp_path, config_dict(), web_config, ready) as running:
        assert running.get("/metrics", ca, pki.client).status_code == 200
        for cert in (None, pki.stranger):
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                running.get("/metrics", ca, cert)

        # Only certificates naming an allowed SAN get in.
        web_config["tls_server_config"]["client_allowed_sans"] = ["grafana.example"]
        running.write(web_config)
        assert running.get("/metrics", ca, pki.client).status_code == 403
        web_config["tls_server_config"]["client_allowed_sans"] = ["prometheus.example"]
        running.write(web_config)
        assert running.get("/metrics", ca, pki.client).status_code == 200

        # Trust moves to the other CA: its client gets in, the old one no longer does.
        web_config["tls_server_config"]["client_ca_file"] = str(pki.other_ca.cert)
        running.write(web_config)
        assert running.get("/metrics", ca, pki.stranger).status_code == 200
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            running.get("/metrics", ca, pki.client)

        # Turning client certificates off at run time is refused (reloads fail closed: a file cut
        # short after key_file must not switch mutual TLS off); it takes a restart.
        web_config["tls_server_config"] = server_tls(pki)
        running.write(web_config)
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            running.get("/metrics", ca)
        text = running.get("/metrics", ca, pki.stranger).text
        assert 'captaindata_web_config_reloads_total{result="failure"} 1' in text
        log = running.log()
        assert "lowering authentication" in log
        assert "Traceback" not in log


def test_plain_http_with_basic_auth_and_rate_limit(tmp_path: Path, config_dict: ConfigFactory) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
                "rate_limit": {"interval": "1h", "burst": 2},
            }
        )
    )
    with running_exporter(config_dict(), tmp_path, ["--web.config.file", str(web)]) as exporter:
        url = f"{exporter.url}/metrics"
        assert httpx.get(url, timeout=5).status_code == 401  # uses a token too
        assert httpx.get(url, auth=("prometheus", PASSWORD), timeout=5).status_code == 200
        assert httpx.get(url, auth=("prometheus", PASSWORD), timeout=5).status_code == 429
        # The probes are outside the limit, as they are outside basic auth.
        for _ in range(5):
            assert httpx.get(f"{exporter.url}/-/healthy", timeout=5).status_code == 200


def reloads(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith("captaindata_web_config_reloads_total{"):
            labels, value = line.rsplit(" ", 1)
            values[labels.split('"')[1]] = float(value)
    return values


def test_truncated_web_config_keeps_auth_and_counts_the_failed_reload(
    tmp_path: Path, config_dict: ConfigFactory
) -> None:
    """The issue's fail-open case: plain HTTP with basic auth, then `: > web.yml` at run time."""
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}}))
    auth = ("prometheus", PASSWORD)
    with running_exporter(config_dict(), tmp_path, ["--web.config.file", str(web)]) as exporter:
        url = f"{exporter.url}/metrics"
        assert reloads(httpx.get(url, auth=auth, timeout=5).text) == {"failure": 0, "success": 0}
        web.write_text("")
        for path in ("/metrics", "/api/v1/status"):
            assert httpx.get(f"{exporter.url}{path}", timeout=5).status_code == 401
        assert reloads(httpx.get(url, auth=auth, timeout=5).text) == {"failure": 1, "success": 0}
        web.write_text("basic_auth_users:\n  prometheus: $2")  # half written, after the empty one
        assert httpx.get(url, timeout=5).status_code == 401
        web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": bcrypt_hash(NEW_PASSWORD)}}))
        text = httpx.get(url, auth=("prometheus", NEW_PASSWORD), timeout=5).text
        assert reloads(text) == {"failure": 2, "success": 1}
        log = exporter.log()
    assert log.count("web config not reloaded, keeping the previous one") == 2, log
