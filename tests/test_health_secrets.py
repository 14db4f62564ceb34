"""Cookies and credentials never leave (issue 17). The simulator's accounts carry planted session cookies,
an API key and a password, in every place the API could put them (and more: ``cookies_everywhere``),
and then an error answer that quotes them. The real exporter (a subprocess, debug logging, a state
directory) reads them for a while; the planted values must appear nowhere: not in its log, /metrics, the
landing page, /api/v1/status, the state directory, or any error message it shows."""

from __future__ import annotations

from pathlib import Path

import httpx

from exporter.simulator import Simulator
from tests.support.exporter_proc import fast_config, running_exporter, workspace_config
from tests.support.net import wait_until
from tests.support.sim_server import running_simulator

UID = "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
KEY = "5ecre7" + "ab" * 29
LI_AT = "AQEDAplantedLiAtCookie0123456789abcdef"
JSESSIONID = "ajax:4242424242plantedjsession"
LI_A = "AQJ2plantedLiACookieValue"
PLANTED = (LI_AT, JSESSIONID, LI_A, "4242424242planted", "plantedLiAt")


def _count(metrics: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))


def test_planted_cookies_appear_nowhere(tmp_path: Path) -> None:
    sim = Simulator(seed=11)
    sim.add_workspace(UID, KEY)
    workflow = sim.add_workflow(name="Connect LinkedIn")
    sim.set_credits(900)
    cookies = {"li_at": LI_AT, "JSESSIONID": JSESSIONID, "li_a": LI_A}
    sim.add_account("Planted Account", uid="acct-planted", cookies=cookies, queued=5, limit_used=97)
    sim.add_account("Expired Account", uid="acct-expired", cookies=cookies)
    sim.expire_account("acct-expired")
    sim.set_health_fault("cookies_everywhere")
    sim.add_run(workflow, "paused", error_message=f"session expired (li_at={LI_AT})")
    state = tmp_path / "state"
    with running_simulator(sim) as url:
        workspace = {
            **workspace_config("acme", url, UID, KEY),
            "credits": {"interval": "1s"},
            "accounts": {"interval": "1s"},
        }
        config = {**fast_config([workspace]), "state": {"path": str(state)}}
        config["api"]["max_retries"] = 0
        with running_exporter(config, tmp_path, ["--log.level", "debug"]) as exporter:

            def reads(count: float, reason: str = "") -> bool:
                metrics = exporter.metrics()
                if reason:
                    prefix = f'captaindata_side_read_errors_total{{read="accounts",reason="{reason}"'
                    return _count(metrics, prefix) >= count
                return (
                    _count(metrics, 'captaindata_api_requests_total{code="200",endpoint="/v3/integ') >= count
                )

            wait_until(lambda: reads(3), 30, "three accounts reads")
            sim.set_health_fault("error_with_cookies")  # a 400 whose body quotes the cookies
            wait_until(lambda: reads(2, "bad_response"), 30, "two failed accounts reads")
            sim.set_health_fault("error_with_cookies", on=False)
            wait_until(lambda: reads(5), 30, "accounts read again")
            shown = {
                "/metrics": exporter.metrics(),
                "/": httpx.get(f"{exporter.url}/", timeout=10).text,
                "/api/v1/status": httpx.get(f"{exporter.url}/api/v1/status", timeout=10).text,
            }
        shown["log"] = exporter.log()
    for path in state.rglob("*"):
        if path.is_file():
            shown[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert len(shown) > 4, "the state directory holds nothing"
    # Positive controls: the reads really happened, and the error was seen and shown.
    assert 'account_uid="acct-planted"' in shown["/metrics"]
    assert "Expired Account" in shown["/"]
    assert '"kind": "account_invalid"' in shown["/api/v1/status"].replace('":"', '": "')
    assert "bad_response" in shown["log"]
    assert "answered unexpected HTTP 400" in shown["log"]
    assert "side read failed" in shown["log"]
    # The paused run's error is read (issue 17 section 1) and shown with its cookie redacted.
    assert "session expired (li_at=&lt;redacted&gt;" in shown["/"]
    assert "session expired (li_at=<redacted>" in shown["/api/v1/status"]
    for where, text in shown.items():
        for secret in PLANTED:
            assert secret not in text, f"{secret!r} leaked into {where}"
