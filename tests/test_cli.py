"""The real command line, as a subprocess: --version, --once, --demo, signals, and the secret kept secret."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter import __version__
from exporter.simulator import Simulator
from exporter.statuses import KNOWN_STATUSES
from tests.conftest import API_KEY, WORKSPACE_UID, ConfigFactory
from tests.support.exporter_proc import running_exporter
from tests.support.metrics import Exposition
from tests.support.net import LOOPBACK, free_port, http_ok, wait_until
from tests.support.procs import log_tail, running_process

WF = "wf-1"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"captaindata-exporter {__version__} (Python 3.")


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        ["captaindata-exporter", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_once_prints_the_exposition_and_exits_zero(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "paused", start_time=time.time() - 10)
    result = cli("--once", "--config", str(write_config(tmp_path, config_dict())))
    assert result.returncode == 0, result.stderr
    exposition = Exposition(result.stdout)
    assert exposition.value("captaindata_runs", status="paused") == 1
    assert exposition.value("captaindata_up") == 1


def test_once_exits_non_zero_when_a_poll_fails(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    sim.set_api_key(WORKSPACE_UID, "e" * 64)
    result = cli("--once", "--config", str(write_config(tmp_path, config_dict())))
    assert result.returncode == 1
    assert Exposition(result.stdout).value("captaindata_poll_errors_total", reason="unauthorized") == 1
    assert "unauthorized" in result.stderr


def test_the_api_key_never_leaks(sim: Simulator, config_dict: ConfigFactory, tmp_path: Path) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "warning")
    sim.add_fault("status", count=1, status=500)
    sim.add_fault("drop", count=1)
    for log_format in ("logfmt", "json"):
        with running_exporter(
            config_dict(),
            tmp_path / log_format,
            extra_args=["--log.level", "debug", "--log.format", log_format],
        ) as exporter:
            wait_until(lambda: "captaindata_up{" in exporter.metrics(), 10, "metrics")
            sim.set_api_key(WORKSPACE_UID, "d" * 64)  # now every poll fails as unauthorized

            def unauthorized(exporter: Any = exporter) -> bool:
                found = Exposition(exporter.metrics())
                return found.value("captaindata_poll_errors_total", reason="unauthorized") > 0

            wait_until(unauthorized, 15, "an unauthorized poll")
            pages = [exporter.metrics(), httpx.get(f"{exporter.url}/", timeout=5).text]
            log = exporter.log()
        sim.set_api_key(WORKSPACE_UID, API_KEY)
        assert "level=debug" in log or '"level": "debug"' in log  # debug logging really was on
        assert "unauthorized" in log
        for text in [log, *pages]:
            assert API_KEY not in text
            assert API_KEY[:16] not in text


def test_sigterm_shuts_down_gracefully(sim: Simulator, config_dict: ConfigFactory, tmp_path: Path) -> None:
    sim.add_workflow(WF, "A")
    config = write_config(tmp_path, config_dict())
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "exporter",
        "--config",
        str(config),
        "--web.listen-address",
        f"{LOOPBACK}:{port}",
    ]
    with running_process(argv, tmp_path / "exporter.log") as proc:
        wait_until(lambda: http_ok(f"http://{LOOPBACK}:{port}/-/ready"), 30, "the exporter to be ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log_tail(tmp_path / "exporter.log")
    assert "shutting down" in (tmp_path / "exporter.log").read_text()


def test_listen_address_in_use_fails_clearly(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    with running_exporter(config_dict(), tmp_path) as first:
        result = cli(
            "--config", str(write_config(tmp_path, config_dict())), "--web.listen-address", first.address
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_demo_shows_every_status_and_moves(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"{LOOPBACK}:{port}"]
    url = f"http://{LOOPBACK}:{port}"
    with running_process(argv, tmp_path / "demo.log") as proc:
        wait_until(lambda: proc.poll() is None and http_ok(f"{url}/-/ready"), 30, "the demo to be ready")
        exposition = Exposition(httpx.get(f"{url}/metrics", timeout=5).text)
        for status in KNOWN_STATUSES:
            assert exposition.total("captaindata_runs", status=status) > 0, status
        assert max(s.value for s in exposition.find("captaindata_running_run_max_age_seconds")) > 7 * 3600

        def moved() -> bool:
            later = Exposition(httpx.get(f"{url}/metrics", timeout=5).text)
            return later.total("captaindata_run_status_changes_total") > 0

        wait_until(moved, 30, "the demo's runs to change status")
    output = (tmp_path / "demo.log").read_text()
    assert f"{url}/metrics" in output
