"""The real command line, as a subprocess: --version, --once, --demo, signals, and the secret kept secret."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter import __version__
from exporter.simulator import Simulator
from exporter.statuses import KNOWN_STATUSES
from tests.conftest import API_KEY, WORKSPACE_UID, ConfigFactory
from tests.support.exporter_proc import running_exporter
from tests.support.metrics import ScrapedMetrics
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
    exposition = ScrapedMetrics(result.stdout)
    assert exposition.value("captaindata_runs", status="paused") == 1
    assert exposition.value("captaindata_up") == 1
    # progress at info level, then one summary line on stderr
    assert "workspace polled" in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("captaindata-exporter --once: 1 workspace(s) polled, all succeeded;")
    assert "; 1 workflows, " in summary
    assert "1 runs" in summary


def test_once_exits_non_zero_when_a_poll_fails(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    sim.set_api_key(WORKSPACE_UID, "e" * 64)
    result = cli("--once", "--config", str(write_config(tmp_path, config_dict())))
    assert result.returncode == 1  # exporter.cli.EXIT_POLL_FAILED, distinct from a configuration error
    assert ScrapedMetrics(result.stdout).value("captaindata_poll_errors_total", reason="unauthorized") == 1
    assert "1 failed (" in result.stderr.strip().splitlines()[-1]
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
                found = ScrapedMetrics(exporter.metrics())
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
    with running_exporter(config_dict(), tmp_path, name="exporter") as exporter:
        exporter.process.send_signal(signal.SIGTERM)
        assert exporter.process.wait(timeout=15) == 0, log_tail(exporter.log_path)
    assert "shutting down" in exporter.log_path.read_text()


def test_listen_address_in_use_fails_clearly(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    with running_exporter(config_dict(), tmp_path) as first:
        result = cli(
            "--config", str(write_config(tmp_path, config_dict())), "--web.listen-address", first.address
        )
    assert result.returncode == 3
    assert f"cannot listen on {first.address}" in result.stderr
    assert "--web.listen-address" in result.stderr


def test_demo_banner_only_once_the_port_is_bound(tmp_path: Path) -> None:
    """The demo's "metrics at ..." line would send people to someone else's server if the port were taken."""
    with running_process(
        [sys.executable, "-m", "http.server", "--bind", LOOPBACK, "0"], tmp_path / "taker.log"
    ) as taker:
        wait_until(lambda: "Serving HTTP" in (tmp_path / "taker.log").read_text(), 30, "the port taker")
        port = re.search(r"port (\d+)", (tmp_path / "taker.log").read_text())
        assert port
        result = cli("--demo", "--web.listen-address", f"{LOOPBACK}:{port.group(1)}")
        assert taker.poll() is None
    assert result.returncode == 3
    assert "metrics at" not in result.stdout + result.stderr
    assert f"cannot listen on {LOOPBACK}:{port.group(1)}" in result.stderr


@pytest.mark.parametrize(
    "flags",
    [["--demo", "--config", "x.yaml"], ["--demo", "--check-config"], ["--once", "--check-config"]],
    ids=["demo+config", "demo+check-config", "once+check-config"],
)
def test_flags_that_make_no_sense_together_are_refused(flags: list[str]) -> None:
    result = cli(*flags)
    assert result.returncode == 2
    shown = [flag for flag in flags if flag.startswith("--")]
    assert f"{shown[0]} and {shown[1]} cannot be used together" in result.stderr
    assert result.stdout == ""


def test_help_names_the_file_the_key_and_the_docs() -> None:
    result = cli("--help")
    assert result.returncode == 0
    assert "--config FILE" in result.stdout
    assert "CAPTAINDATA_API_KEY" in result.stdout
    assert "docs" in result.stdout
    assert "Flags override the configuration file" in result.stdout


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("42\n", "a single value")])
def test_a_config_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = cli("--config", str(path), "--check-config")
    assert result.returncode == 2
    assert f"{path}: the top level must be a mapping" in result.stderr
    assert kind in result.stderr


def test_demo_shows_every_status_and_moves(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"{LOOPBACK}:{port}"]
    url = f"http://{LOOPBACK}:{port}"
    with running_process(argv, tmp_path / "demo.log") as proc:
        wait_until(lambda: proc.poll() is None and http_ok(f"{url}/-/ready"), 30, "the demo to be ready")
        exposition = ScrapedMetrics(httpx.get(f"{url}/metrics", timeout=5).text)
        for status in KNOWN_STATUSES:
            assert exposition.total("captaindata_runs", status=status) > 0, status
        assert max(s.value for s in exposition.find("captaindata_running_run_max_age_seconds")) > 7 * 3600

        def moved() -> bool:
            later = ScrapedMetrics(httpx.get(f"{url}/metrics", timeout=5).text)
            return later.total("captaindata_run_status_changes_total") > 0

        wait_until(moved, 30, "the demo's runs to change status")

        def pushed() -> bool:  # push (#16): the simulator pushes each change; the demo applies them
            later = ScrapedMetrics(httpx.get(f"{url}/metrics", timeout=5).text)
            names = ("demo", "demo-v4")
            applied = [later.value("captaindata_push_applied_total", workspace=n) for n in names]
            return all(count > 0 for count in applied)

        wait_until(pushed, 30, "pushes to be applied")
        status = httpx.get(f"{url}/api/v1/status", timeout=5).json()
        assert all(ws["push"]["enabled"] and ws["push"]["last_event"] for ws in status["workspaces"])
        assert "Missed pushes" in httpx.get(f"{url}/", timeout=5).text
    output = (tmp_path / "demo.log").read_text()
    assert f"{url}/metrics" in output
