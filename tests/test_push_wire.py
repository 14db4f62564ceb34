"""Push, end to end (#16): the real exporter command line with push on, polling the simulator over
loopback, and pushes posted to its push port. Each event costs at most one targeted read through the
workspace's transport, is applied as a polled run would be, and polling reconciles (counted once, or
missed when no push announced the change)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.simulator import Simulator
from exporter.simulator.v4 import V4Api
from tests.support.exporter_proc import ExporterProcess, running_exporter
from tests.support.metrics import ScrapedMetrics
from tests.support.net import LOOPBACK, free_port
from tests.support.push import TOKENS, V3_KEY, V3_UID, V4_KEY, v3_webhook, v4_callback
from tests.support.sim_server import running_simulator
from tests.test_metrics_doc import declared, emitted

ACTION = "linkedin-extract-people"
WAIT = 20.0


@dataclass
class Wired:
    sim: Simulator
    exporter: ExporterProcess
    push_url: str

    def scrape(self) -> ScrapedMetrics:
        return ScrapedMetrics(self.exporter.metrics())

    def push(self, workspace: str, body: object, token: str | None = "") -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        token = TOKENS.get(workspace, "") if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.push_url}/push/{workspace}", content=content, headers=headers, timeout=10)

    def reads(self, path_prefix: str) -> int:
        """API requests the simulator saw whose path starts with ``path_prefix``."""
        with self.sim.lock:
            return sum(1 for entry in self.sim.request_log if entry["path"].startswith(path_prefix))

    def value(self, name: str, **labels: str) -> float:
        found = self.scrape().find(name, **labels)
        return sum(series.value for series in found)

    def outcome(self, workspace: str, outcome: str) -> float:
        return self.value("captaindata_push_requests_total", workspace=workspace, outcome=outcome)

    def polls_ended(self) -> float:
        return self.value("captaindata_last_poll_success_timestamp_seconds", workspace="acme")

    def after_a_poll(self) -> None:
        """Wait for the next successful poll of acme to end."""
        before = self.polls_ended()
        wait_for(lambda: self.polls_ended() > before, "a poll to end")


def wait_for(predicate: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Wait for a condition, checking often; fail naming ``what``."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def make_sim() -> Simulator:
    sim = Simulator(seed=5, page_size=20)
    sim.add_workspace(V3_UID, V3_KEY)
    sim.add_workspace("v4-workspace", V4_KEY)
    sim.add_workflow("wf-1", "Extract LinkedIn Messages", V3_UID)
    sim.add_workflow("wf-2", "Other workflow", V3_UID)
    return sim


def config(sim_url: str, push_port: int, interval: str, **push: Any) -> dict[str, Any]:
    return {
        "workspaces": [
            {
                "name": "acme",
                "workspace_uid": V3_UID,
                "api_key": V3_KEY,
                "base_url": sim_url,
                "push_token": TOKENS["acme"],
                "workflows": {"exclude": ["wf-2"]},
            },
            {
                "name": "beta",
                "api_version": "v4",
                "api_key": V4_KEY,
                "base_url": sim_url,
                "push_token": TOKENS["beta"],
            },
        ],
        "poll": {"interval": interval},
        "api": {
            "requests_per_second": 200,
            "burst": 200,
            "retry_backoff": "50ms",
            "retry_backoff_max": "200ms",
            "request_timeout": "10s",
            "max_retries": 0,
        },
        "push": {"listen_address": f"{LOOPBACK}:{push_port}", **push},
    }


@contextmanager
def wired(tmp_path: Path, interval: str = "3s", sim: Simulator | None = None, **push: Any) -> Iterator[Wired]:
    sim = sim or make_sim()
    with running_simulator(sim) as sim_url:
        port = free_port()
        with running_exporter(config(sim_url, port, interval, **push), tmp_path) as exporter:
            yield Wired(sim, exporter, f"http://{LOOPBACK}:{port}")


@pytest.fixture
def push_on(tmp_path: Path) -> Iterator[Wired]:
    with wired(tmp_path) as w:
        yield w


def test_push_families_appear_when_push_is_on(push_on: Wired) -> None:
    run = push_on.sim.add_run("wf-1", "warning")
    assert push_on.push("acme", v3_webhook(run, "wf-1", "boom")).status_code == 202
    wait_for(lambda: push_on.value("captaindata_push_applied_total", workspace="acme") == 1, "the apply")
    found = emitted(push_on.scrape().text)
    push = {name: shape for name, shape in declared(push=True).items() if "_push_" in name}
    assert {name: found.get(name) for name in push} == push
    assert push_on.outcome("", "unknown_workspace") == 0


def test_a_missing_or_wrong_token_is_refused_before_any_api_request(push_on: Wired) -> None:
    run = push_on.sim.add_run("wf-1", "warning")
    before = push_on.reads("/v3/jobs/")
    for token in (None, "wrong-" + TOKENS["acme"], TOKENS["beta"]):
        response = push_on.push("acme", v3_webhook(run, "wf-1", "boom"), token=token)
        assert response.status_code == 401
        assert TOKENS["acme"] not in response.text
    wait_for(lambda: push_on.outcome("acme", "unauthorized") == 3, "three unauthorized")
    assert push_on.reads("/v3/jobs/") == before == 0
    assert push_on.value("captaindata_push_applied_total", workspace="acme") == 0


def test_a_body_over_the_limit_is_refused_unread(push_on: Wired) -> None:
    with socket.create_connection((LOOPBACK, int(push_on.push_url.rsplit(":", 1)[1])), timeout=10) as sock:
        head = (
            f"POST /push/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKENS['acme']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )
        sock.sendall(head.encode())  # and never the body: the answer must not wait for it
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer
    wait_for(lambda: push_on.outcome("acme", "too_large") == 1, "too_large counted")
    assert push_on.reads("/v3/jobs/") == 0


def test_five_identical_webhooks_cost_one_read_and_count_once_then_the_poll_counts_nothing(
    push_on: Wired,
) -> None:
    run = push_on.sim.add_run("wf-1", "running", start_time=time.time() - 60)
    push_on.after_a_poll()  # the run is known as running (its creation, not pushed, was a missed push)
    missed = push_on.value("captaindata_push_missed_total", workspace="acme")
    push_on.sim.update_run(run, "warning", finish_time=time.time())
    body = v3_webhook(run, "wf-1", "Error while completing action: cannot re-send connection request yet.")
    for _ in range(5):
        assert push_on.push("acme", body).status_code == 202
    wait_for(lambda: push_on.value("captaindata_push_applied_total", workspace="acme") == 1, "the apply")
    scraped = push_on.scrape()
    warning = {"workspace": "acme", "workflow_uid": "wf-1", "status": "warning"}
    assert scraped.value("captaindata_run_status_changes_total", **warning) == 1
    assert scraped.value("captaindata_run_needs_action", run_uid=run) == 1
    assert push_on.reads(f"/v3/jobs/{run}") == 1
    assert push_on.outcome("acme", "accepted") == 1
    assert push_on.outcome("acme", "duplicate") == 4
    push_on.after_a_poll()
    push_on.after_a_poll()
    assert push_on.value("captaindata_run_status_changes_total", **warning) == 1
    assert push_on.value("captaindata_push_missed_total", workspace="acme") == missed
    status = httpx.get(f"{push_on.exporter.url}/api/v1/status", timeout=10).json()
    row = next(row for row in status["needs_action"] if row["run_uid"] == run)
    assert row["error"].startswith("Error while completing action")
    assert status["workspaces"][0]["push"]["enabled"] is True


def test_a_dropped_push_is_counted_as_missed_by_the_next_poll(push_on: Wired) -> None:
    run = push_on.sim.add_run("wf-1", "running", start_time=time.time() - 60)
    push_on.after_a_poll()  # its creation, not pushed, was missed already
    missed = push_on.value("captaindata_push_missed_total", workspace="acme")
    assert missed == 1
    push_on.sim.update_run(run, "shutdown", finish_time=time.time())  # and no push
    wait_for(
        lambda: push_on.value("captaindata_push_missed_total", workspace="acme") == missed + 1,
        "a missed push",
    )
    shutdown = {"workspace": "acme", "workflow_uid": "wf-1", "status": "shutdown"}
    assert push_on.value("captaindata_run_status_changes_total", **shutdown) == 1
    assert push_on.value("captaindata_push_applied_total", workspace="acme") == 0


def test_a_push_naming_a_workflow_the_workspace_does_not_track_changes_nothing(push_on: Wired) -> None:
    excluded = push_on.sim.add_run("wf-2", "warning")  # wf-2 is filtered out
    other = push_on.sim.add_workspace("other-workspace", "o" * 40)
    push_on.sim.add_workflow("wf-9", "Another workspace's", other)
    foreign = push_on.sim.add_run("wf-9", "warning")
    for run, workflow in ((excluded, "wf-2"), (foreign, "wf-9")):
        assert (
            push_on.push("acme", v3_webhook(run, "wf-1" if workflow == "wf-9" else workflow)).status_code
            == 202
        )
    wait_for(lambda: push_on.reads(f"/v3/jobs/{foreign}") == 1, "the foreign run's read")
    wait_for(lambda: push_on.outcome("acme", "fetch_failed") == 1, "the foreign run's 404")
    scraped = push_on.scrape()
    assert scraped.value("captaindata_push_applied_total", workspace="acme") == 0
    assert not scraped.find("captaindata_runs", workflow_uid="wf-2")
    assert scraped.total("captaindata_runs", workflow_uid="wf-1", status="warning") == 0


def test_out_of_order_v4_callbacks_end_at_the_apis_truth(push_on: Wired) -> None:
    api = V4Api.of(push_on.sim)
    run = api.add_run(ACTION, "RUNNING", workspace_uid="v4-workspace")
    api.update_run(run, "SUCCEEDED")
    for status in ("SUCCEEDED", "RUNNING", "RUNNING"):
        assert push_on.push("beta", v4_callback(run, status)).status_code == 202

    def settled() -> bool:
        handled = push_on.outcome("beta", "accepted") + push_on.outcome("beta", "duplicate")
        accepted = push_on.outcome("beta", "accepted")
        return handled == 3 and push_on.reads(f"/v4/runs/{run}") == accepted

    wait_for(settled, "every callback handled")
    wait_for(
        lambda: push_on.value("captaindata_runs", workflow_uid=ACTION, status="finished") == 1, "the truth"
    )
    scraped = push_on.scrape()
    assert scraped.value("captaindata_runs", workflow_uid=ACTION, status="running") == 0
    assert scraped.value("captaindata_push_applied_total", workspace="beta") == 1
    assert scraped.value("captaindata_run_status_changes_total", workflow_uid=ACTION, status="finished") == 1


def test_the_queue_full_answers_503_overloaded(tmp_path: Path) -> None:
    sim = make_sim()
    sim.add_fault("slow", delay=3.0, path_contains="/v3/jobs/")  # reads hang: the queue fills
    with wired(tmp_path, interval="1h", sim=sim, queue_size=1) as w:
        runs = [w.sim.add_run("wf-1", "warning") for _ in range(3)]
        answers = [w.push("acme", v3_webhook(run, "wf-1", "x")) for run in runs]
        wait_for(lambda: w.reads("/v3/jobs/") >= 1, "the first read to start")
        answers.append(w.push("acme", v3_webhook(w.sim.add_run("wf-1", "warning"), "wf-1", "x")))
        codes = [answer.status_code for answer in answers]
        assert 503 in codes, codes
        refused = next(answer for answer in answers if answer.status_code == 503)
        assert int(refused.headers["Retry-After"]) > 0
        assert w.outcome("acme", "overloaded") == codes.count(503)


def test_the_token_is_never_echoed(push_on: Wired) -> None:
    run = push_on.sim.add_run("wf-1", "warning")
    secret_error = f"failed with Authorization: Bearer {TOKENS['acme']} and key {V3_KEY}"
    assert push_on.push("acme", v3_webhook(run, "wf-1", secret_error)).status_code == 202
    assert push_on.push("acme", v3_webhook(run, "wf-1"), token="nope").status_code == 401
    assert push_on.push("nobody", v3_webhook(run, "wf-1"), token=TOKENS["acme"]).status_code == 401
    wait_for(lambda: push_on.reads(f"/v3/jobs/{run}") == 1, "the read")
    wait_for(lambda: push_on.value("captaindata_push_applied_total", workspace="acme") == 1, "the apply")
    seen = [
        push_on.exporter.metrics(),
        httpx.get(push_on.exporter.url + "/", timeout=10).text,
        httpx.get(push_on.exporter.url + "/api/v1/status", timeout=10).text,
        push_on.exporter.log(),
    ]
    for text in seen:
        for secret in (*TOKENS.values(), V3_KEY, V4_KEY):
            assert secret not in text


def test_the_metrics_port_serves_no_push_path(push_on: Wired) -> None:
    url = f"{push_on.exporter.url}/push/acme"
    response = httpx.post(url, json=v3_webhook("r1"), headers={"Authorization": f"Bearer {TOKENS['acme']}"})
    assert response.status_code in (404, 405)
    assert httpx.get(f"{push_on.push_url}/metrics", timeout=10).status_code in (404, 405)
    assert httpx.get(f"{push_on.push_url}/-/healthy", timeout=10).status_code == 200


def test_the_push_flag_overrides_the_config_and_a_taken_push_port_exits_3(tmp_path: Path) -> None:
    sim = make_sim()
    with running_simulator(sim) as sim_url, socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(config(sim_url, free_port(), "1h")))  # JSON is YAML
        argv = [sys.executable, "-m", "exporter", "--config", str(path)]
        argv += ["--web.listen-address", f"{LOOPBACK}:{free_port()}"]
        argv += ["--push.listen-address", f"{LOOPBACK}:{busy}"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert f"cannot listen on {LOOPBACK}:{busy} (push.listen_address)" in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), "--push.listen-address", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--push.listen-address" in bad.stderr
