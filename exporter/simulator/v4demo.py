"""The v4 demo scenario: actions with runs in all ten statuses and an autopilot that keeps them moving."""

from __future__ import annotations

import random

from exporter.simulator.model import Simulator
from exporter.simulator.v4 import V4Api

DEMO_ACTIONS = (
    "linkedin_extract_people",
    "salesnavigator_search_leads",
    "enrich_company",
    "find_work_email",
)
_HOUR = 3600.0
#: How long the demo's stuck run has been RUNNING: past the exporter's 6 h RunningTooLong threshold, so
#: the first poll of this workspace alone shows a "Running too long" row (5 h did not).
STUCK_RUNNING = 7 * _HOUR
# What an autopilot run ends as, with its weight.
_OUTCOMES = (
    ("SUCCEEDED", 55),
    ("PARTIAL_SUCCEEDED", 10),
    ("FAILED", 8),
    ("INVALID", 6),
    ("STOPPED", 5),
    ("BLOCKED", 8),
    ("SCHEDULED", 4),
    ("RUNNING", 4),
)
INPUT_ERROR = {
    "label": "INVALID_INPUT",
    "message": "The provided input is invalid: company_domain is missing.",
    "params": {"field": "company_domain"},
}

#: The demo's paused (BLOCKED) runs of its history: an expired LinkedIn session (reason account_session).
COOKIE_ERROR = {
    "label": "ACCOUNT_SESSION_EXPIRED",
    "message": "The LinkedIn session of the account expired: refresh its cookies.",
    "params": {},
}


def v4_plan(rng: random.Random) -> list[tuple[float, str]]:
    """CREATED → QUEUED → RUNNING → an outcome within seconds; INVALID right away; BLOCKED for a few
    minutes before it goes on; SCHEDULED for two minutes; some runs stay RUNNING for minutes."""
    outcome = rng.choices([o for o, _ in _OUTCOMES], weights=[w for _, w in _OUTCOMES])[0]
    if outcome == "INVALID":
        return [(0.0, "CREATED"), (rng.uniform(0.2, 1.0), "INVALID")]
    steps = [(0.0, "SCHEDULED")] if outcome == "SCHEDULED" else [(0.0, "CREATED")]
    at = rng.uniform(120.0, 240.0) if outcome == "SCHEDULED" else rng.uniform(0.2, 1.0)
    steps.append((at, "QUEUED"))
    at += rng.uniform(0.5, 3.0)
    steps.append((at, "RUNNING"))
    if outcome == "BLOCKED":
        at += rng.uniform(2.0, 10.0)
        steps.append((at, "BLOCKED"))
        at += rng.uniform(60.0, 300.0)
        steps.append((at, "RUNNING"))
        outcome = "SUCCEEDED"
    elif outcome in ("RUNNING", "SCHEDULED"):
        at += rng.uniform(120.0, 600.0) if outcome == "RUNNING" else rng.uniform(3.0, 30.0)
        outcome = "SUCCEEDED"
    steps.append((at + rng.uniform(3.0, 40.0), outcome))
    return steps


def populate_demo_v4(sim: Simulator, workspace_uid: str) -> None:
    """Two days of history in every status, one run RUNNING for 7 hours, one BLOCKED on a limit, and
    an autopilot launching a run every 3 seconds (forgotten after 10 minutes)."""
    api = V4Api.of(sim)
    now = sim.clock.time()
    rng = sim.random
    history = (
        ("SUCCEEDED", 12),
        ("PARTIAL_SUCCEEDED", 3),
        ("FAILED", 2),
        ("INVALID", 1),
        ("STOPPED", 1),
        ("BLOCKED", 1),
        ("QUEUED", 1),
        ("CREATED", 1),
        ("SCHEDULED", 1),
    )
    for action in DEMO_ACTIONS:
        for status, count in history:
            for index in range(count):
                created = now - rng.uniform(0.5, 40.0) * _HOUR
                updated = min(now - 1, created + rng.uniform(60.0, 2 * _HOUR))
                started = created + 5 if status not in ("CREATED", "QUEUED", "SCHEDULED", "INVALID") else None
                api.add_run(
                    action,
                    status,
                    workspace_uid=workspace_uid,
                    created_at=created,
                    updated_at=updated,
                    started_at=started,
                    last_error=INPUT_ERROR
                    if status == "FAILED" and index == 0
                    else COOKIE_ERROR
                    if status == "BLOCKED"
                    else None,
                )
    api.add_run(
        DEMO_ACTIONS[1],
        "RUNNING",
        workspace_uid=workspace_uid,
        created_at=now - STUCK_RUNNING,
        started_at=now - STUCK_RUNNING,
        updated_at=now - STUCK_RUNNING,
    )
    api.add_run(
        DEMO_ACTIONS[0],
        "BLOCKED",
        workspace_uid=workspace_uid,
        created_at=now - 2 * _HOUR,
        started_at=now - 2 * _HOUR,
        updated_at=now - _HOUR,
        postponed_until=now + 3 * _HOUR,
    )
    api.start_autopilot(3.0, 600.0, DEMO_ACTIONS, v4_plan, workspace_uid)


def add_demo_v4_workspace(sim: Simulator) -> str:
    """A second workspace with the v4 demo in it; returns its API key (the v4 key names the user)."""
    uid = sim.add_workspace()
    populate_demo_v4(sim, uid)
    return sim.workspaces[uid].api_key
