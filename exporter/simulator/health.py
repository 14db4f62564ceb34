"""The simulator's credits and integration accounts (issue 17): ``GET /v3/workspace`` and
``GET /v3/integrations/{integration_uid}/accounts``, in the documented shapes (docs/simulator.md).

Credits burn as runs end; an account can expire, and then the runs using it go Paused with a cookie
error; its limits fill as its runs' inputs run; when the credits run out, runs go Paused for
insufficient credits. Faults make the answers hostile: junk, missing, negative or non-finite fields,
huge account lists, and cookies (and API keys and passwords) everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random
    import threading

    from exporter.clock import Clock
    from exporter.simulator.model import SimRun, SimWorkflow

HEALTH_FAULTS = ("junk", "missing", "negative", "non_finite", "cookies_everywhere", "error_with_cookies")
COOKIE_ERROR = "The LinkedIn account's cookie is invalid or expired: refresh the account's li_at cookie."
CREDITS_ERROR = "Insufficient credits: the workspace has no tasks left this month."
_ENDED = frozenset({"finished", "completed", "warning", "shutdown"})
_DONE = _ENDED | {"stopped", "paused"}
_DAY = 86400.0


@dataclass
class SimCredits:
    tasks_max: int
    tasks_used: float
    cost_per_run: float
    period_start: float
    period_end: float
    plan: str = "Growth"

    @property
    def left(self) -> float:
        return max(0.0, self.tasks_max - self.tasks_used)


@dataclass
class SimLimit:
    permalink: str
    name: str
    value: int
    used: float = 0.0
    queued: int = 0
    range_start: float = 0.0
    range_end: float = 0.0


@dataclass
class SimAccount:
    uid: str
    name: str
    integration: str
    workspace_uid: str
    cookies: dict[str, str]
    expires_at: float | None = None  # the session turns invalid then
    limits: list[SimLimit] = field(default_factory=list)

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def _cookies(rng: random.Random) -> dict[str, str]:
    """A LinkedIn session as the API returns it (random, so each account's differs)."""
    return {"li_at": f"AQED{rng.getrandbits(96):024x}", "JSESSIONID": f"ajax:{rng.getrandbits(40)}"}


class HealthModel:
    """Mixed into ``Simulator``: its credits, accounts and their faults."""

    lock: threading.RLock
    clock: Clock
    random: random.Random
    runs: dict[str, SimRun]
    workflows: dict[str, SimWorkflow]

    def _init_health(self) -> None:
        self.credits: dict[str, SimCredits] = {}  # workspace uid -> credits
        self.accounts: dict[str, SimAccount] = {}  # in the order added
        self.accounts_page_size = 10
        self.pause_after_invalid = 0.0  # runs using an expired account pause this long after it expired
        self.health_faults: set[str] = set()
        self._unbilled: set[str] = set()  # runs not ended yet that will burn credits
        self._billed_inputs = 10  # inputs of a run (the run objects say number_inputs 10)

    # Scripting API (also POST /_sim/<method>).

    def set_credits(
        self,
        tasks_left: int,
        tasks_max: int = 10_000,
        cost_per_run: float = 10.0,
        workspace_uid: str | None = None,
        period_days: float = 30.0,
        plan: str = "Growth",
    ) -> None:
        """Give the workspace credits; runs launched from now on burn ``cost_per_run`` each when they end."""
        with self.lock:
            uid = self._default_workspace(workspace_uid)
            now = self.clock.time()
            used = float(tasks_max - tasks_left)
            end = now + period_days * _DAY
            self.credits[uid] = SimCredits(tasks_max, used, cost_per_run, now - _DAY, end, plan)

    def add_account(
        self,
        name: str = "Sales account",
        *,
        uid: str | None = None,
        integration: str = "linkedin",
        workspace_uid: str | None = None,
        cookies: dict[str, str] | None = None,
        expires_in: float | None = None,
        limit_value: int = 100,
        limit_used: float = 0.0,
        queued: int = 0,
    ) -> str:
        """An integration account with one daily limit; ``expires_in`` seconds from now its cookies expire."""
        with self.lock:
            now = self.clock.time()
            account_uid = uid or self._uid()
            self.accounts[account_uid] = SimAccount(
                uid=account_uid,
                name=name,
                integration=integration,
                workspace_uid=self._default_workspace(workspace_uid),
                cookies=dict(cookies or _cookies(self.random)),
                expires_at=None if expires_in is None else now + expires_in,
                limits=[
                    SimLimit(
                        "lk-classic-connection-requests",
                        "connection requests",
                        limit_value,
                        limit_used,
                        queued,
                        now - 3600.0,
                        now + _DAY - 3600.0,
                    )
                ],
            )
            return account_uid

    def add_accounts(
        self, count: int, integration: str = "linkedin", workspace_uid: str | None = None
    ) -> None:
        """Many accounts at once (a huge list)."""
        with self.lock:
            for index in range(count):
                self.add_account(f"Account {index}", integration=integration, workspace_uid=workspace_uid)

    def remove_account(self, uid: str) -> None:
        with self.lock:
            self.accounts.pop(uid, None)

    def expire_account(self, uid: str) -> None:
        """Its cookies expire now."""
        with self.lock:
            self.accounts[uid].expires_at = self.clock.time()

    def set_account_limit(self, uid: str, used: float | None = None, queued: int | None = None) -> None:
        with self.lock:
            limit = self.accounts[uid].limits[0]
            if used is not None:
                limit.used = used
            if queued is not None:
                limit.queued = queued

    def set_health_fault(self, kind: str, on: bool = True) -> None:
        """Make the workspace and accounts answers hostile (HEALTH_FAULTS)."""
        with self.lock:
            if kind not in HEALTH_FAULTS:
                raise ValueError(f"kind must be one of {HEALTH_FAULTS}")
            (self.health_faults.add if on else self.health_faults.discard)(kind)

    def use_account(self, run_uid: str, account_uid: str) -> None:
        """The run uses the account (its runs pause when it expires)."""
        with self.lock:
            self.runs[run_uid].account_uid = account_uid

    # What the model does as time passes (Simulator.advance).

    def _default_workspace(self, workspace_uid: str | None) -> str:
        raise NotImplementedError

    def _uid(self) -> str:
        raise NotImplementedError

    def _track(self, run: SimRun) -> None:
        """A new run: billed when it ends if its workspace has credits, and given an account."""
        workflow = self.workflows.get(run.workflow_uid)
        if workflow is None:
            return
        if workflow.workspace_uid in self.credits:
            self._unbilled.add(run.uid)
        if run.account_uid is None:
            mine = [a for a in self.accounts.values() if a.workspace_uid == workflow.workspace_uid]
            if mine:
                # By workflow, not at random: the seeded runs stay the same with or without accounts.
                space = workflow.workspace_uid
                index = sorted(uid for uid, w in self.workflows.items() if w.workspace_uid == space)
                run.account_uid = mine[index.index(run.workflow_uid) % len(mine)].uid
                self._unbilled.add(run.uid)

    def _advance_health(self, now: float) -> None:
        for uid in list(self._unbilled):
            run = self.runs.get(uid)
            if run is None:
                self._unbilled.discard(uid)
                continue
            status = run.status_at(now).lower()
            workflow = self.workflows.get(run.workflow_uid)
            credits = self.credits.get(workflow.workspace_uid) if workflow is not None else None
            account = self.accounts.get(run.account_uid) if run.account_uid else None
            if status in _ENDED:
                self._unbilled.discard(uid)
                if credits is not None:
                    credits.tasks_used = min(credits.tasks_max, credits.tasks_used + credits.cost_per_run)
                if account is not None and account.limits:
                    limit = account.limits[0]
                    limit.used = min(limit.value, limit.used + self._billed_inputs)
                continue
            if status in _DONE:
                self._unbilled.discard(uid)
                continue
            expired = account is not None and account.expires_at is not None
            if expired and account is not None and account.expires_at is not None:
                expired = now >= account.expires_at + self.pause_after_invalid
            if expired:
                self._pause(run, now, COOKIE_ERROR)
            elif credits is not None and credits.left <= 0:
                self._pause(run, now, CREDITS_ERROR)

    def _pause(self, run: SimRun, now: float, error: str) -> None:
        run.timeline = [step for step in run.timeline if step[0] <= now] + [(now, "paused")]
        run.finish_time = None
        run.error_message = error
        self._unbilled.discard(run.uid)

    # The answers.

    def workspace_json(self, workspace_uid: str, now: float) -> dict[str, Any]:
        from exporter.simulator.model import format_time

        with self.lock:
            credits = self.credits.get(workspace_uid)
            if credits is None:
                body: dict[str, Any] = {
                    "name": "Simulated workspace",
                    "tasks_left": 9966,
                    "tasks_max": 10000,
                    "tasks_used": 34,
                    "plan_name": "Growth",
                }
            else:
                body = {
                    "name": "Simulated workspace",
                    "tasks_left": int(credits.left),
                    "tasks_max": credits.tasks_max,
                    "tasks_used": int(credits.tasks_used),
                    "email": "owner@example.com",
                    "plan_name": credits.plan,
                    "current_month_start": format_time(credits.period_start, "offset"),
                    "current_month_end": format_time(credits.period_end, "offset"),
                }
            return self._hostile(body, ("tasks_left", "tasks_max", "tasks_used"))

    def accounts_json(
        self, workspace_uid: str, integration: str, page: int, stats: bool, now: float
    ) -> dict[str, Any]:
        from exporter.simulator.model import format_time

        with self.lock:
            mine = [
                a
                for a in self.accounts.values()
                if a.workspace_uid == workspace_uid and a.integration == integration
            ]
            size = self.accounts_page_size
            shown = mine[page * size : (page + 1) * size]
            items = []
            for account in shown:
                limits = [
                    self._hostile(
                        {
                            "permalink": limit.permalink,
                            "level": "Classic",
                            "item_scraped": int(limit.used),
                            "limit_value": limit.value,
                            "limit_name": limit.name,
                            "start_time_range": format_time(limit.range_start, "naive"),
                            "end_time_range": format_time(limit.range_end, "naive"),
                            "templates": [],
                            "nbr_inputs_queued_next_seven_days": limit.queued,
                        },
                        ("item_scraped", "limit_value", "nbr_inputs_queued_next_seven_days"),
                    )
                    for limit in account.limits
                ]
                item: dict[str, Any] = {
                    "setup_at": format_time(now - 30 * _DAY, "naive"),
                    "name": account.name,
                    "cookies": dict(account.cookies),
                    "via_extension": True,
                    "is_shared": False,
                    "level": "Sales Navigator",
                    "is_valid": account.valid(now),
                    "uid": account.uid,
                    "application_permalink": integration,
                    "application_name": integration.capitalize(),
                    "limits": limits if stats else [],
                }
                if "missing" in self.health_faults:
                    item.pop("is_valid")
                if "junk" in self.health_faults:
                    item["is_valid"] = "yes"
                if "cookies_everywhere" in self.health_faults:
                    item["api_key"] = account.cookies.get("li_at", "")
                    item["password"] = account.cookies.get("JSESSIONID", "")
                items.append(item)
            body: dict[str, Any] = {
                "integration": {"uid": integration, "title": integration.capitalize()},
                "accounts": items,
                "next_page_exist": (page + 1) * size < len(mine),
                "number_total_acounts": len(mine),
            }
            if "cookies_everywhere" in self.health_faults and shown:
                body["cookies"] = dict(shown[0].cookies)
                for limit in (limit for item in items for limit in item["limits"]):
                    limit["cookies"] = dict(shown[0].cookies)
            return body

    def accounts_error(self, workspace_uid: str) -> dict[str, Any] | None:
        """With the ``error_with_cookies`` fault: a 400 body that quotes an account's cookies."""
        with self.lock:
            if "error_with_cookies" not in self.health_faults:
                return None
            cookies = next(
                (a.cookies for a in self.accounts.values() if a.workspace_uid == workspace_uid), {}
            )
            quoted = "; ".join(f"{name}={value}" for name, value in cookies.items())
            return {"message": f"Invalid session: {quoted}", "status_code": 400, "cookies": cookies}

    def _hostile(self, body: dict[str, Any], numbers: tuple[str, ...]) -> dict[str, Any]:
        faults = self.health_faults
        for key in numbers:
            if "missing" in faults:
                body.pop(key, None)
            elif "junk" in faults:
                body[key] = {"value": "lots"}
            elif "negative" in faults:
                body[key] = -5
            elif "non_finite" in faults:
                body[key] = math.nan if key.endswith("left") or key == "item_scraped" else math.inf
        if "junk" in faults and "current_month_end" in body:
            body["current_month_end"] = "end of the month"
        return body
