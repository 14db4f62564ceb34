"""End to end: the generated alert rules, evaluated by a real Prometheus, delivered by a real Alertmanager.

Three simulators are served in-process and scripted into every situation at once, one workspace per
situation (the rate limit and the injected 5xx faults apply to a whole simulator, hence three):

- ``runs``: a run Running for 8 h, a new warning run, three new shutdown runs, a paused run, a stop;
- ``badkey``: the API key is rotated after the first poll (401);
- ``limited``: the API answers 429 to every third request;
- ``broken``: the API answers 500 to everything after the first poll;
- ``healthy``: finished runs, a run started ten minutes ago, and a warning and a shutdown from weeks ago;
- and a Prometheus target where nothing listens (the exporter is down).

The exporter runs as a subprocess polling every second; Prometheus (Debian's package) scrapes it every second
and evaluates the rules every second; the rules are the committed ones regenerated with short ``for:``
durations and windows into a temporary directory (``deploy/generate.py --output-dir``). Alertmanager
(Debian's package) routes every alert to a webhook receiver served by this test. The assertions read what
Alertmanager delivered: each situation's alert with its labels and its recommended action, nothing for the
healthy workspace, and nothing that was not expected. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter import statuses as st
from exporter.guide import GUIDE
from exporter.simulator import Simulator
from tests.support.exporter_proc import ExporterProcess, fast_config, running_exporter, workspace_config
from tests.support.metrics import ScrapedMetrics
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail
from tests.support.promstack import Prometheus, running_alertmanager, running_prometheus
from tests.support.sim_server import running_simulator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "deploy" / "generate.py"
JOB = "captaindata-exporter"  # the job the generated rules select on by default
RUNBOOK_BASE = "https://github.com/captaindata-exporter/captaindata-exporter/blob/main/docs/runbooks.md"

#: The committed rules with every delay shortened to seconds (the thresholds stay: a run Running for 8 h
#: still has to cross the real 6 h threshold).
E2E_KNOBS = {
    "scrape-gap": "5s",
    "running-too-long-for": "2s",
    "recent-window": "10m",
    "warning-for": "2s",
    "shutdown-for": "2s",
    "shutdowns-persisting-window": "10m",
    "paused-for": "2s",
    "stopped-window": "10m",
    "rate-limited-window": "30s",
    "rate-limited-for": "3s",
    "poll-failing-for": "3s",
    "poll-errors-window": "30s",
    "poll-stale-threshold": "1m",
    "poll-stale-for": "5s",
    "unauthorized-for": "2s",
    "exporter-down-for": "2s",
}
DELIVERY_TIMEOUT = 90.0
QUIET_PERIOD = 6.0  # after the expected alerts arrived, at most this long for the alerts to settle
HOUR = 3600.0
DAY = 86400.0

WS_RUNS = "7d1a3c52-0b6e-4d8f-9a51-3e2f6c7b8a90"
WS_BADKEY = "2c9e4f1a-6b3d-4e7a-8c05-9d1f2e3a4b5c"
WS_HEALTHY = "4a6b8c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
WS_LIMITED = "9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f"
WS_BROKEN = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
KEY = "ab" * 32


@dataclass(frozen=True)
class Expected:
    """An alert Alertmanager must deliver: its name and the labels that identify it."""

    alertname: str
    labels: tuple[tuple[str, str], ...]
    severity: str
    status: str | None = None  # the run status whose recommended action the alert carries
    description_has: tuple[str, ...] = ()  # regular expressions the description must match

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.alertname, self.labels)

    @property
    def id(self) -> str:
        return self.alertname + "-" + "-".join(value for _, value in self.labels)


EXPECTED: tuple[Expected, ...] = (
    Expected(
        "CaptainDataRunRunningTooLong",
        (("workspace", "runs"), ("workflow_uid", "wf-long")),
        "warning",
        st.RUNNING,
        (r"Workflow Long export \(wf-long\) in workspace runs has a run that started 8h", "threshold 6h"),
    ),
    Expected(
        "CaptainDataRunWarning",
        (("workspace", "runs"), ("workflow_uid", "wf-warn"), ("run_uid", "run-warn-new")),
        "warning",
        st.WARNING,
        (r"^Run Lead batch 42 \(run-warn-new\) of workflow Enrich leads \(wf-warn\) in workspace runs",),
    ),
    *(
        Expected(
            "CaptainDataRunShutdown",
            (("workspace", "runs"), ("workflow_uid", "wf-shut"), ("run_uid", f"run-shut-{i}")),
            "warning",
            st.SHUTDOWN,
            (rf"^Run Company scrape {i} \(run-shut-{i}\) of workflow Scrape companies \(wf-shut\)",),
        )
        for i in (1, 2, 3)
    ),
    Expected(
        "CaptainDataRunShutdownsPersisting",
        (("workspace", "runs"), ("workflow_uid", "wf-shut")),
        "critical",
        None,
        # increase() extrapolates over the few seconds of samples the test has: 3 may read as 4.
        (r"^[34] runs of workflow Scrape companies \(wf-shut\) in workspace runs entered shutdown",),
    ),
    Expected(
        "CaptainDataRunPaused",
        (("workspace", "runs"), ("workflow_uid", "wf-pause"), ("run_uid", "run-paused")),
        "warning",
        st.PAUSED,
        (r"^Run Connect leads \(run-paused\) of workflow Connect LinkedIn \(wf-pause\)",),
    ),
    Expected(
        "CaptainDataRunStopped",
        (("workspace", "runs"), ("workflow_uid", "wf-stop")),
        "info",
        st.STOPPED,
        (r"^[12] run\(s\) of workflow Send messages \(wf-stop\) in workspace runs were stopped",),
    ),
    Expected(
        "CaptainDataExporterUnauthorized",
        (("workspace", "badkey"),),
        "critical",
        None,
        ("^Polls of workspace badkey", "401/403"),
    ),
    Expected(
        "CaptainDataRateLimited",
        (("workspace", "limited"),),
        "warning",
        None,
        ("429 Too Many Requests", "workspace limited"),
    ),
    Expected(
        "CaptainDataExporterPollFailing",
        (("workspace", "broken"),),
        "warning",
        None,
        ("^Every poll of workspace broken", r"by reason:.* server_error=\d+"),
    ),
    Expected("CaptainDataExporterDown", (("instance", "dead-target"),), "critical", None, ("^Target .+",)),
)


# --- the webhook receiver -------------------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    url: str
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager delivered as firing (one entry per alert fingerprint, latest wins)."""
        with self.lock:
            alerts = {
                alert["fingerprint"]: alert
                for notification in self.notifications
                for alert in notification["alerts"]
                if alert["status"] == "firing"
            }
        return list(alerts.values())


@contextmanager
def running_webhook_receiver() -> Iterator[WebhookReceiver]:
    """An aiohttp server on 127.0.0.1 that records Alertmanager's webhook notifications, in its own thread."""
    loop = asyncio.new_event_loop()
    port = free_port()
    receiver = WebhookReceiver(url=f"http://{LOOPBACK}:{port}/alerts")
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def record(request: web.Request) -> web.Response:
        payload = await request.json()
        with receiver.lock:
            receiver.notifications.append(payload)
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/alerts", record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, port).start()
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), name="webhook", daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the webhook receiver did not start")
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(15)
        loop.close()


# --- the scripted API -----------------------------------------------------------------------------------


@dataclass
class Simulators:
    runs: Simulator  # workspaces runs, badkey and healthy
    limited: Simulator
    broken: Simulator


def build_simulators(now: float) -> Simulators:
    runs = Simulator(seed=1, page_size=20)
    runs.add_workspace(WS_RUNS, KEY)
    runs.add_workspace(WS_BADKEY, KEY)
    runs.add_workspace(WS_HEALTHY, KEY)

    runs.add_workflow("wf-long", "Long export", WS_RUNS)
    runs.add_run("wf-long", "running", uid="run-long", name="Full export", start_time=now - 8 * HOUR)
    runs.add_run("wf-long", "finished", start_time=now - 30 * HOUR, finish_time=now - 29 * HOUR)
    runs.add_workflow("wf-warn", "Enrich leads", WS_RUNS)
    runs.add_run("wf-warn", "finished", start_time=now - 2 * HOUR, finish_time=now - HOUR)
    runs.add_workflow("wf-shut", "Scrape companies", WS_RUNS)
    runs.add_run("wf-shut", "finished", start_time=now - 3 * HOUR, finish_time=now - 2 * HOUR)
    runs.add_workflow("wf-pause", "Connect LinkedIn", WS_RUNS)
    runs.add_run("wf-pause", "paused", uid="run-paused", name="Connect leads", start_time=now - HOUR)
    runs.add_workflow("wf-stop", "Send messages", WS_RUNS)
    runs.add_run("wf-stop", "running", uid="run-to-stop", name="Campaign", start_time=now - 120)

    runs.add_workflow("wf-bad", "Sync CRM", WS_BADKEY)
    runs.add_run("wf-bad", "finished", start_time=now - HOUR, finish_time=now - 1800)

    runs.add_workflow("wf-h1", "Daily profiles", WS_HEALTHY)
    for i in range(5):
        start = now - (i + 2) * HOUR
        runs.add_run("wf-h1", "finished", start_time=start, finish_time=start + 600)
    runs.add_run("wf-h1", "running", start_time=now - 600)
    runs.add_run(
        "wf-h1", "warning", uid="run-old-warning", start_time=now - 30 * DAY - 600, finish_time=now - 30 * DAY
    )
    runs.add_workflow("wf-h2", "Weekly companies", WS_HEALTHY)
    runs.add_run(
        "wf-h2",
        "shutdown",
        uid="run-old-shutdown",
        start_time=now - 20 * DAY - 600,
        finish_time=now - 20 * DAY,
    )
    runs.add_run("wf-h2", "finished", start_time=now - 7 * DAY, finish_time=now - 7 * DAY + 900)

    limited = Simulator(seed=2, page_size=20)
    limited.add_workspace(WS_LIMITED, KEY)
    limited.add_workflow("wf-lim", "Bulk enrich", WS_LIMITED)
    limited.add_run("wf-lim", "finished", start_time=now - HOUR, finish_time=now - 1800)

    broken = Simulator(seed=3, page_size=20)
    broken.add_workspace(WS_BROKEN, KEY)
    broken.add_workflow("wf-brk", "Export contacts", WS_BROKEN)
    broken.add_run("wf-brk", "finished", start_time=now - HOUR, finish_time=now - 1800)
    return Simulators(runs, limited, broken)


def script_situations(sims: Simulators) -> None:
    """Turn the baseline into every situation (after the exporter and Prometheus saw the baseline)."""
    now = time.time()
    sims.runs.add_run(
        "wf-warn", "warning", uid="run-warn-new", name="Lead batch 42", start_time=now - 300, finish_time=now
    )
    for i in (1, 2, 3):
        sims.runs.add_run(
            "wf-shut",
            "shutdown",
            uid=f"run-shut-{i}",
            name=f"Company scrape {i}",
            start_time=now - 200,
            finish_time=now,
        )
    sims.runs.update_run("run-to-stop", "stopped", finish_time=now)
    sims.runs.set_api_key(WS_BADKEY, "cd" * 32)  # the key the exporter has is now outdated
    sims.limited.set_rate_limit(2, 1.0, style="seconds")  # a poll makes 3 requests: the third gets 429
    sims.broken.add_fault("status", status=500)
    # The healthy workspace keeps living: a run finishes, another starts.
    sims.runs.add_run("wf-h1", "finished", start_time=now - 900, finish_time=now)
    sims.runs.add_run("wf-h1", "running", start_time=now)


# --- the stack ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    delivered: list[dict[str, Any]]
    prometheus: Prometheus
    rules: dict[str, dict[str, Any]]  # alert name -> rule, as Prometheus loaded it
    dead_target: str
    logs: str

    def find(self, expected: Expected) -> list[dict[str, Any]]:
        wanted = dict(expected.labels)
        if "instance" in wanted:
            wanted["instance"] = self.dead_target
        return [
            alert
            for alert in self.delivered
            if alert["labels"]["alertname"] == expected.alertname
            and all(alert["labels"].get(key) == value for key, value in wanted.items())
        ]


def generate_e2e_rules(directory: Path) -> Path:
    flags = [item for name, value in E2E_KNOBS.items() for item in (f"--{name}", value)]
    subprocess.run(
        [sys.executable, str(GENERATOR), "--output-dir", str(directory), *flags],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return directory / "captaindata-alerts.rules.yml"


def all_up(exporter: ExporterProcess) -> bool:
    exposition = ScrapedMetrics(exporter.metrics())
    return all(
        exposition.value("captaindata_up", workspace=name) == 1
        for name in ("runs", "badkey", "healthy", "limited", "broken")
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    workdir = tmp_path_factory.mktemp("alerting-e2e")
    rules_path = generate_e2e_rules(workdir / "rules")
    loaded = yaml.safe_load(rules_path.read_text())
    rules = {rule["alert"]: rule for group in loaded["groups"] for rule in group["rules"] if "alert" in rule}
    sims = build_simulators(time.time())
    dead_target = f"{LOOPBACK}:{free_port()}"
    with ExitStack() as stack:
        runs_url = stack.enter_context(running_simulator(sims.runs))
        limited_url = stack.enter_context(running_simulator(sims.limited))
        broken_url = stack.enter_context(running_simulator(sims.broken))
        receiver = stack.enter_context(running_webhook_receiver())
        alertmanager = stack.enter_context(
            running_alertmanager(
                workdir,
                {
                    "route": {
                        "receiver": "webhook",
                        "group_by": ["..."],  # every alert on its own: the test checks each one
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {"name": "webhook", "webhook_configs": [{"url": receiver.url, "send_resolved": True}]}
                    ],
                },
            )
        )
        config = fast_config(
            [
                workspace_config("runs", runs_url, WS_RUNS, KEY),
                workspace_config("badkey", runs_url, WS_BADKEY, KEY),
                workspace_config("healthy", runs_url, WS_HEALTHY, KEY),
                workspace_config("limited", limited_url, WS_LIMITED, KEY),
                workspace_config("broken", broken_url, WS_BROKEN, KEY),
            ],
            interval="1s",
        )
        config["poll"]["timeout"] = "10s"
        exporter = stack.enter_context(running_exporter(config, workdir / "exporter"))
        wait_until(lambda: all_up(exporter), 30, "the exporter's first successful poll of every workspace")
        prometheus = stack.enter_context(
            running_prometheus(
                workdir,
                [exporter.address, dead_target],
                rule_files=[rules_path],
                alertmanager=alertmanager.address,
                job=JOB,
            )
        )
        # Prometheus must hold the baseline (counters at 0) before anything changes, or increase() has
        # nothing to compare with.
        baseline = 'captaindata_run_status_changes_total{workspace="runs", status="stopped"} == 0'
        prometheus.wait_for(baseline, 30)
        prometheus.wait_for(f"count_over_time(({baseline})[1m:1s]) >= 3", 30)  # three evaluations of it
        script_situations(sims)

        def everything_delivered() -> bool:
            firing = receiver.firing()
            return all(
                any(
                    alert["labels"]["alertname"] == expected.alertname
                    and all(
                        alert["labels"].get(key) == (dead_target if key == "instance" else value)
                        for key, value in expected.labels
                    )
                    for alert in firing
                )
                for expected in EXPECTED
            )

        with suppress(TimeoutError):  # the tests below say which alert is missing
            wait_until(everything_delivered, DELIVERY_TIMEOUT, "every expected alert", interval=0.5)

        def settled() -> bool:
            """Nothing about to fire (no pending alert) and every firing alert delivered: an unexpected
            alert would be in the receiver by now."""
            delivered = {frozenset(alert["labels"].items()) for alert in receiver.firing()}
            alerts = prometheus.alerts()
            return not any(alert["state"] == "pending" for alert in alerts) and all(
                frozenset(alert["labels"].items()) in delivered
                for alert in alerts
                if alert["state"] == "firing"
            )

        with suppress(TimeoutError):  # an alert still pending: the tests below see what arrived
            wait_until(settled, QUIET_PERIOD, "the alerts to settle", interval=0.5)
        logs = "\n".join(
            f"--- {name}\n{log_tail(path, 30)}"
            for name, path in (
                ("exporter", exporter.log_path),
                ("prometheus", prometheus.log_path),
                ("alertmanager", alertmanager.log_path),
            )
        )
        yield Outcome(receiver.firing(), prometheus, rules, dead_target, logs)


# --- the assertions -------------------------------------------------------------------------------------


def describe(alerts: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {alert['labels']}" for alert in alerts) or "  (none)"


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda expected: expected.id)
def test_each_situation_delivers_its_alert(outcome: Outcome, expected: Expected) -> None:
    found = outcome.find(expected)
    assert len(found) == 1, (
        f"Alertmanager delivered {len(found)} {expected.alertname} alerts for {dict(expected.labels)}; "
        f"delivered:\n{describe(outcome.delivered)}\n{outcome.logs}"
    )
    alert = found[0]
    rule = outcome.rules[expected.alertname]
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["severity"] == expected.severity
    assert annotations["action"] == rule["annotations"]["action"]
    if expected.status is not None:
        assert labels["status"] == expected.status
        assert annotations["action"] == GUIDE[expected.status].action
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{expected.alertname.lower()}"
    assert annotations["summary"]
    for pattern in expected.description_has:
        assert re.search(pattern, annotations["description"]), (pattern, annotations["description"])
    if "run_uid" in labels:
        assert labels["run_name"] in annotations["description"]
    if expected.alertname.startswith("CaptainDataExporter"):
        assert labels["job"] == JOB
    assert "{{" not in " ".join(annotations.values()), "an annotation template was not expanded"


def test_retry_call_names_the_run(outcome: Outcome) -> None:
    for expected in EXPECTED:
        if expected.alertname in {"CaptainDataRunWarning", "CaptainDataRunShutdown"}:
            (alert,) = outcome.find(expected)
            run_uid = alert["labels"]["run_uid"]
            assert (
                alert["annotations"]["api_call"] == f"POST https://api.captaindata.co/v3/jobs/{run_uid}/retry"
            )


def test_healthy_workspace_gets_no_alert(outcome: Outcome) -> None:
    # The healthy workspace really was scraped, with an old warning and an old shutdown run and new runs...
    prom = outcome.prometheus
    assert prom.query('captaindata_runs{workspace="healthy", status="finished"} >= 6')
    assert prom.query('captaindata_run_needs_action{workspace="healthy", status="warning"}')
    assert prom.query('captaindata_run_needs_action{workspace="healthy", status="shutdown"}')
    assert prom.query(
        'increase(captaindata_run_status_changes_total{workspace="healthy", status="finished"}[5m]) > 0'
    )
    # ...and neither Alertmanager nor Prometheus (not even pending) has anything for it.
    healthy = [alert for alert in outcome.delivered if alert["labels"].get("workspace") == "healthy"]
    assert not healthy, describe(healthy)
    pending_or_firing = [alert for alert in prom.alerts() if alert["labels"].get("workspace") == "healthy"]
    assert not pending_or_firing, pending_or_firing


def test_nothing_unexpected_is_delivered(outcome: Outcome) -> None:
    matched = {id(alert) for expected in EXPECTED for alert in outcome.find(expected)}
    unexpected = [alert for alert in outcome.delivered if id(alert) not in matched]
    assert not unexpected, f"unexpected alerts:\n{describe(unexpected)}"
    # The exporter target itself is up: only the dead target is down.
    down = [a for a in outcome.delivered if a["labels"]["alertname"] == "CaptainDataExporterDown"]
    assert [a["labels"]["instance"] for a in down] == [outcome.dead_target]
    assert down[0]["annotations"]["description"] == (
        f"Target {outcome.dead_target} of job {JOB} has been down for {E2E_KNOBS['exporter-down-for']}. "
        "No Captain Data alert can fire while it is down."
    )
