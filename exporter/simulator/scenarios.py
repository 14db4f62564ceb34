"""Ready-made simulator scenarios: ``demo`` (every status, runs moving) and ``empty``."""

from __future__ import annotations

import random

from exporter.simulator.model import Simulator

DEMO_WORKFLOWS = (
    "Extract LinkedIn People Profile",
    "Connect LinkedIn Profile",
    "Send LinkedIn Messages",
    "Enrich Company from Sales Navigator",
    "Find Work Emails",
)
# What an autopilot run ends as, with its weight; "running" runs stay Running for minutes.
_OUTCOMES = (
    ("finished", 60),
    ("warning", 10),
    ("shutdown", 7),
    ("stopped", 6),
    ("paused", 8),
    ("running", 9),
)
_HOUR = 3600.0


def demo_plan(rng: random.Random, moment: float) -> tuple[str, list[tuple[float, str]]]:
    """A short lifecycle: pending for a moment, running for seconds, then an outcome."""
    outcome = rng.choices([o for o, _ in _OUTCOMES], weights=[w for _, w in _OUTCOMES])[0]
    queued = rng.uniform(0.5, 3.0)
    running = rng.uniform(3.0, 40.0)
    steps = [(0.0, "pending"), (queued, "running")]
    if outcome == "running":
        running = rng.uniform(120.0, 900.0)
        outcome = "finished"
    steps.append((queued + running, outcome))
    return f"Automated Run {rng.randrange(1000, 9999)}", steps


def populate_demo(sim: Simulator, workspace_uid: str) -> None:
    """Workflows with runs in all seven statuses, two runs stuck in Running for hours, and an autopilot
    that launches a short run every two seconds (and forgets it after ten minutes)."""
    now = sim.clock.time()
    rng = sim.random
    workflows = [sim.add_workflow(name=name, workspace_uid=workspace_uid) for name in DEMO_WORKFLOWS]
    history = [
        ("finished", 14),
        ("warning", 2),
        ("shutdown", 2),
        ("stopped", 1),
        ("paused", 1),
        ("pending", 1),
    ]
    for workflow_uid in workflows:
        for status, count in history:
            for _ in range(count):
                start = now - rng.uniform(0.5, 40.0) * _HOUR
                finish = start + rng.uniform(60.0, 2 * _HOUR)
                if status == "pending":
                    sim.add_run(workflow_uid, status, created_at=start, scheduled_time=now + _HOUR)
                elif status == "paused":
                    sim.add_run(workflow_uid, status, start_time=start)
                else:
                    sim.add_run(workflow_uid, status, start_time=start, finish_time=min(finish, now - 1))
    # One run in each needs-action status from minutes ago, so the alerts for them fire from the first
    # poll (a warning or shutdown only alerts for a day) and stay until someone acts in the simulator.
    for status, name in (("warning", "Import March leads"), ("shutdown", "Nightly CRM sync")):
        sim.add_run(workflows[0], status, name=name, start_time=now - 900, finish_time=now - 600)
    sim.add_run(workflows[2], "paused", name="Follow-up messages", start_time=now - 600)
    # Past the exporter's 6 h RunningTooLong threshold: a "Running too long" row from the first poll.
    sim.add_run(workflows[1], "running", name="Campaign connect with Leads", start_time=now - 8 * _HOUR)
    sim.add_run(workflows[3], "running", name="Weekly account enrichment", start_time=now - 3 * _HOUR)
    sim.start_autopilot(interval=2.0, retention=600.0, plan=demo_plan)


# Credits and account health (issue 17): in --demo the credits run out within minutes and one account
# expires; the runs using it pause DEMO_PAUSE_AFTER_INVALID later, so the page shows the invalid
# account (and the credits forecast) before the runs pause.
DEMO_CREDITS_LEFT = 500
DEMO_ACCOUNT_EXPIRES_IN = 45.0
DEMO_PAUSE_AFTER_INVALID = 30.0


def populate_demo_health(sim: Simulator, workspace_uid: str) -> None:
    """Credits that run out within minutes, three LinkedIn accounts (one nearly at its daily limit with
    inputs queued, one whose cookies expire in DEMO_ACCOUNT_EXPIRES_IN seconds)."""
    sim.set_credits(DEMO_CREDITS_LEFT, tasks_max=10_000, cost_per_run=10.0, workspace_uid=workspace_uid)
    sim.pause_after_invalid = DEMO_PAUSE_AFTER_INVALID
    sim.add_account("Alice Martin", uid="acct-alice", workspace_uid=workspace_uid, limit_used=20, queued=0)
    sim.add_account(
        "Bob Durand",
        uid="acct-bob",
        workspace_uid=workspace_uid,
        expires_in=DEMO_ACCOUNT_EXPIRES_IN,
        limit_used=10,
    )
    sim.add_account("Chloe Petit", uid="acct-chloe", workspace_uid=workspace_uid, limit_used=92, queued=40)


#: ``--demo``'s request budget: 20 requests per 10 s. Two demo polls (5 s apart) need more, and more
#: once the autopilot's runs fill pages, so the API answers some requests 429 with Retry-After and
#: X-RateLimit-* headers; the exporter waits a few seconds and the poll still succeeds.
DEMO_REQUEST_BUDGET = (20, 10.0)


def build_demo_simulator(
    seed: int = 0,
    api_key: str | None = None,
    workspace_uid: str | None = None,
    request_budget: tuple[int, float] | None = None,
) -> Simulator:
    sim = Simulator(seed=seed)
    uid = sim.add_workspace(workspace_uid, api_key)
    populate_demo(sim, uid)
    populate_demo_health(sim, uid)
    if request_budget is not None:
        sim.set_rate_limit(*request_budget, style="seconds")
    return sim


SCENARIOS = ("demo", "empty")
