"""End to end (issue 17): a real Prometheus evaluates the generated rules on the real exporter's credits, and
CaptainDataCreditsExhaustedSoon fires before the first run enters Paused.

The simulator burns credits as runs finish; when they run out, its runs pause for insufficient credits. The
exporter (a subprocess) reads the credits every second; Prometheus (Debian's package) scrapes it every second
and evaluates the committed rules regenerated with a 20 s burn window and no ``for:``. The test waits for
conditions only: the alert firing, then the runs pausing.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.simulator import Simulator
from exporter.simulator.health import CREDITS_ERROR
from tests.support.exporter_proc import fast_config, running_exporter, workspace_config
from tests.support.net import wait_until
from tests.support.promstack import running_prometheus
from tests.support.sim_server import running_simulator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JOB = "captaindata-exporter"
UID = "6e5d4c3b-2a19-4f8e-9d7c-6b5a4f3e2d1c"
KEY = "e2e" + "f0" * 30
KNOBS = ("--scrape-gap", "5s", "--credits-burn-window", "20s", "--credits-exhausted-soon-for", "0s")


def quick_run(rng: random.Random, moment: float) -> tuple[str, list[tuple[float, str]]]:
    """A run that finishes two seconds after its launch (and burns its credits then)."""
    return f"Run {rng.randrange(1000, 9999)}", [(0.0, "pending"), (0.5, "running"), (2.0, "finished")]


def paused_runs(sim: Simulator) -> int:
    with sim.lock:
        now = sim.clock.time()
        return sum(1 for run in sim.runs.values() if run.status_at(now) == "paused")


def test_credits_exhausted_soon_fires_before_the_first_run_pauses(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    generated = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "generate.py"), "--output-dir", str(rules), *KNOBS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    sim = Simulator(seed=17)
    sim.add_workspace(UID, KEY)
    workflow = sim.add_workflow(name="Send LinkedIn Messages")
    sim.set_credits(3000, cost_per_run=100.0)
    with running_simulator(sim) as url:
        workspace = {
            **workspace_config("acme", url, UID, KEY),
            "credits": {"interval": "1s"},
            "accounts": {"integrations": []},
        }
        with (
            running_exporter(fast_config([workspace]), tmp_path / "exporter") as exporter,
            running_prometheus(
                tmp_path, [exporter.address], rule_files=[rules / "captaindata-alerts.rules.yml"], job=JOB
            ) as prom,
        ):
            prom.wait_for('captaindata_workspace_credits_remaining{workspace="acme"} == 3000', timeout=30)
            assert not prom.query('ALERTS{alertname="CaptainDataCreditsExhaustedSoon"}')
            # Burn: a run launched every half second, finished two seconds later, 100 credits each.
            sim.start_autopilot(interval=0.5, retention=600.0, plan=quick_run)
            firing = prom.wait_for(
                'ALERTS{alertname="CaptainDataCreditsExhaustedSoon", alertstate="firing", workspace="acme"}',
                timeout=30,
            )
            assert firing[0]["metric"]["severity"] == "warning"
            assert paused_runs(sim) == 0, "a run paused before the alert fired"
            assert not prom.query('captaindata_runs{workspace="acme", status="paused"} > 0')
            # Then the credits run out and the runs pause for insufficient credits, as forecast.
            wait_until(lambda: paused_runs(sim) > 0, 30, "runs to pause for insufficient credits")
            with sim.lock:
                assert any(run.error_message == CREDITS_ERROR for run in sim.runs.values())
            prom.wait_for('captaindata_workspace_credits_remaining{workspace="acme"} == 0', timeout=15)
            prom.wait_for(
                f'captaindata_runs{{workspace="acme", workflow_uid="{workflow}", status="paused"}} > 0', 15
            )
            prom.wait_for('ALERTS{alertname="CaptainDataCreditsExhausted", alertstate="firing"}', timeout=15)
