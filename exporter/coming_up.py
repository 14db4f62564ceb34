"""The "Coming up" rows (issue 17): what will pause runs before it does. Credits left and when they run
out at the current burn rate, invalid accounts, and account limits over the alert's threshold, each with
its action (``coming_up.yaml``), its runbook and, for an invalid account, the API call that refreshes it.
Built from the published snapshots only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Final
from urllib.parse import quote

import yaml

from exporter.conventions import KNOBS, RUNBOOK_BASE_URL, runbook_url
from exporter.guide import API_CALLS
from exporter.snapshot import WorkspaceSnapshot

#: Rows shown at most (the totals say how many there are).
COMING_UP_CAP: Final = 100
#: A limit used above this share is listed (the alert's default, CaptainDataAccountLimitNearlyReached).
LIMIT_THRESHOLD: Final = int(KNOBS["account_limit_percent"].default) / 100


@dataclass(frozen=True)
class Kind:
    alert: str
    title: str
    action: str


def _load() -> dict[str, Kind]:
    data: dict[str, dict[str, str]] = yaml.safe_load(
        files(__package__).joinpath("coming_up.yaml").read_text(encoding="utf-8")
    )
    return {name: Kind(**entry) for name, entry in data.items()}


KINDS: Final = _load()
#: The most urgent first: what pauses runs now, then what will.
_ORDER: Final = {
    name: rank
    for rank, name in enumerate(
        ("credits_exhausted", "account_invalid", "credits_soon", "account_limit", "credits_ok")
    )
}


def _row(kind: str, workspace: str, **fields: Any) -> dict[str, Any]:
    known = KINDS[kind]
    return {
        "kind": kind,
        "title": known.title,
        "workspace": workspace,
        **fields,
        "action": known.action,
        "runbook": runbook_url(known.alert, RUNBOOK_BASE_URL),
    }


def _credits(ws: WorkspaceSnapshot) -> dict[str, Any] | None:
    credits = ws.credits
    if credits is None or credits.remaining is None:
        return None
    forecast = ws.forecast
    if credits.remaining <= 0:
        kind = "credits_exhausted"
    elif forecast is not None and forecast.runs_out_at is not None and forecast.before_period_end:
        kind = "credits_soon"
    else:
        kind = "credits_ok"
    return _row(
        kind,
        ws.name,
        remaining=credits.remaining,
        limit=credits.limit,
        period_end=credits.period_end,
        burn_per_hour=None if forecast is None else forecast.burn_per_hour,
        runs_out_at=None if forecast is None else forecast.runs_out_at,
    )


def build_coming_up(snapshots: Sequence[WorkspaceSnapshot]) -> tuple[list[dict[str, Any]], int]:
    """The rows (at most COMING_UP_CAP, the most urgent first) and how many there are in all."""
    rows: list[dict[str, Any]] = []
    update = API_CALLS["UPDATE_INTEGRATION_ACCOUNT"].render()
    for ws in snapshots:
        row = _credits(ws)
        if row is not None:
            rows.append(row)
        for account in ws.accounts:
            who = {
                "integration": account.integration,
                "account_uid": account.uid,
                "account": account.name,
            }
            if account.valid is False:
                call = update.replace("{integration_uid}", quote(account.integration, safe=""))
                rows.append(_row("account_invalid", ws.name, **who, api_call=call))
            for limit in account.limits:
                if limit.used is not None and limit.value and limit.used / limit.value > LIMIT_THRESHOLD:
                    rows.append(
                        _row(
                            "account_limit",
                            ws.name,
                            **who,
                            limit=limit.name,
                            used=limit.used,
                            value=limit.value,
                            reset=limit.reset,
                            queued=account.queued,
                        )
                    )
    rows.sort(key=lambda row: _ORDER[row["kind"]])
    return rows[:COMING_UP_CAP], len(rows)
