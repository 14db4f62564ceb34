"""Signals other than SIGTERM (issue #19 item 13), sent to the real exporter process: SIGHUP re-reads the
web config and keeps serving; SIGQUIT stops it as SIGTERM does (the state saved); SIGUSR1/2 do nothing."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from exporter.simulator import Simulator
from tests.conftest import ConfigFactory
from tests.support.exporter_proc import running_exporter
from tests.support.metrics import ScrapedMetrics
from tests.support.net import http_ok, wait_until
from tests.support.procs import log_tail

WF = "wf-1"


@contextmanager
def exporter(
    config: dict[str, object], workdir: Path, name: str, extra: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    with running_exporter(config, workdir, extra, name=name) as running:
        yield running.process, running.url, running.log_path


def test_sighup_rereads_the_web_config_and_keeps_serving(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    web_config = tmp_path / "web.yml"
    web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    with exporter(config_dict(), tmp_path, "hup", ["--web.config.file", str(web_config)]) as (proc, url, log):
        assert httpx.get(f"{url}/", timeout=5).headers["X-Frame-Options"] == "deny"
        web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP received" in log.read_text(), 10, "the SIGHUP to be handled")
        assert proc.poll() is None, log_tail(log)
        assert httpx.get(f"{url}/", timeout=5).headers["X-Frame-Options"] == "sameorigin"
        assert "web config reloaded" in log.read_text()
        assert http_ok(f"{url}/-/healthy")


def test_sighup_without_a_web_config_keeps_serving(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    with exporter(config_dict(), tmp_path, "hup") as (proc, url, log):
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP received" in log.read_text(), 10, "the SIGHUP to be handled")
        assert proc.poll() is None, log_tail(log)
        assert http_ok(f"{url}/-/healthy")


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2], ids=["SIGUSR1", "SIGUSR2"])
def test_user_signals_are_ignored(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path, signum: signal.Signals
) -> None:
    sim.add_workflow(WF, "A")
    with exporter(config_dict(), tmp_path, "usr") as (proc, url, log):
        proc.send_signal(signum)
        wait_until(lambda: f"signal={signum.name}" in log.read_text(), 10, "the signal to be logged")
        assert proc.poll() is None, log_tail(log)
        assert http_ok(f"{url}/-/healthy")


def test_sigquit_stops_gracefully_and_saves_the_state(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    sim.add_workflow(WF, "A")
    sim.add_run(WF, "finished")
    state = tmp_path / "state"
    config = config_dict(state={"path": str(state)})
    with exporter(config, tmp_path, "first") as (proc, url, log):
        wait_until(lambda: requests_of(url) > 0, 15, "a poll")
        before = requests_of(url)
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(timeout=15) == 0, log_tail(log)
    text = log.read_text()
    assert "signal=SIGQUIT" in text
    assert "shutting down" in text
    with exporter(config, tmp_path, "second") as (_, url, log):
        assert "restoring saved state" in log.read_text(), log_tail(log)
        assert requests_of(url) >= before  # the counters go on from where they were


def requests_of(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return ScrapedMetrics(text).total("captaindata_api_requests_total")
