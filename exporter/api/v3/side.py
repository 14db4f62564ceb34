"""v3's side reads (issue 17): the workspace's credits (GET /v3/workspace) and each integration's
accounts (GET /v3/integrations/{integration_uid}/accounts?stats=true&page=N).

The parsers copy out the fields the exporter exports and nothing else: the accounts answer session
cookies and may answer API keys and passwords. A field that is junk (a string where a number belongs,
a negative or non-finite number) is left out and counted, never the whole answer; only an answer that
is not a JSON object raises BadResponse, and its message never quotes the body.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

from exporter.api.v3 import ACCOUNTS_ENDPOINT, WORKSPACE_ENDPOINT
from exporter.config import WorkspaceConfig
from exporter.families import INVALID_ITEM, INVALID_UID, INVALID_VALUE, OVER_MAX_ACCOUNTS
from exporter.health import LABEL_MAX_CHARS, Account, AccountLimit, AccountsPage, Credits, count_value
from exporter.parsing import BadResponse, load_json
from exporter.sink import StateSink
from exporter.text import clean_identifier, clean_text
from exporter.timestamps import parse_timestamp
from exporter.transport import ApiTransport

logger = logging.getLogger(__name__)

#: Periods and limit ranges end in the future: a period end up to this far ahead is a timestamp.
_FUTURE: Final = 400 * 86400.0
#: Limits kept per account (the documented LinkedIn accounts have a handful).
MAX_LIMITS: Final = 50


def _object(body: bytes, what: str) -> dict[str, object]:
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise BadResponse(f"expected a JSON object ({what}), got {type(payload).__name__}")
    return payload


def _count(item: dict[str, object], key: str, skipped: Counter[str]) -> float | None:
    """A count of ``item``; absent or null is None, anything else that is not one is counted."""
    value = item.get(key)
    if value is None:
        return None
    number = count_value(value)
    if number is None:
        skipped[INVALID_VALUE] += 1
    return number


def _moment(item: dict[str, object], key: str, now: float, skipped: Counter[str]) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    moment = parse_timestamp(value, now + _FUTURE)
    if moment is None:
        skipped[INVALID_VALUE] += 1
    return moment


def _label(value: object) -> str:
    return clean_text(" ".join(value.split()), LABEL_MAX_CHARS) if isinstance(value, str) else ""


def parse_workspace_body(body: bytes, now: float | None = None) -> tuple[Credits, Counter[str]]:
    """GET /v3/workspace: the credits, and the fields skipped."""
    now = time.time() if now is None else now
    payload = _object(body, "the workspace")
    skipped: Counter[str] = Counter()
    credits = Credits(
        remaining=_count(payload, "tasks_left", skipped),
        limit=_count(payload, "tasks_max", skipped),
        used=_count(payload, "tasks_used", skipped),
        period_start=_moment(payload, "current_month_start", now, skipped),
        period_end=_moment(payload, "current_month_end", now, skipped),
        plan=_label(payload.get("plan_name")),
    )
    return credits, skipped


def _limits(
    item: dict[str, object], now: float, skipped: Counter[str]
) -> tuple[list[AccountLimit], float | None]:
    raw = item.get("limits")
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        skipped[INVALID_VALUE] += 1
        return [], None
    limits: dict[str, AccountLimit] = {}
    queued: float | None = None
    for entry in raw[:MAX_LIMITS]:
        if not isinstance(entry, dict):
            skipped[INVALID_ITEM] += 1
            continue
        name = _label(entry.get("limit_name")) or _label(entry.get("permalink"))
        if not name.strip() or name in limits:
            skipped[INVALID_ITEM] += 1
            continue
        limits[name] = AccountLimit(
            name=name,
            used=_count(entry, "item_scraped", skipped),
            value=_count(entry, "limit_value", skipped),
            reset=_moment(entry, "end_time_range", now, skipped),
        )
        waiting = _count(entry, "nbr_inputs_queued_next_seven_days", skipped)
        if waiting is not None:
            queued = waiting if queued is None else max(queued, waiting)
    skipped[INVALID_ITEM] += max(0, len(raw) - MAX_LIMITS)
    return list(limits.values()), queued


def parse_accounts_body(body: bytes, integration: str, now: float | None = None) -> AccountsPage:
    """One page of GET /v3/integrations/{integration}/accounts: each account's uid, name, validity,
    limits and queued inputs; nothing else of it is kept."""
    now = time.time() if now is None else now
    payload = _object(body, "a page of accounts")
    page = AccountsPage()
    items = payload.get("accounts")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise BadResponse("accounts is not a JSON array")
    for item in items:
        if not isinstance(item, dict):
            page.skipped[INVALID_ITEM] += 1
            continue
        uid = clean_identifier(item.get("uid"))
        if uid is None:
            page.skipped[INVALID_UID] += 1
            continue
        valid = item.get("is_valid")
        if valid is not None and not isinstance(valid, bool):
            page.skipped[INVALID_VALUE] += 1
            valid = None
        limits, queued = _limits(item, now, page.skipped)
        page.accounts.append(
            Account(
                integration=integration,
                uid=clean_text(uid, LABEL_MAX_CHARS),
                name=_label(item.get("name")),
                valid=valid,
                limits=tuple(limits),
                queued=queued,
            )
        )
    page.next_page = payload.get("next_page_exist") is True
    total = payload.get("number_total_acounts", payload.get("number_total_accounts"))
    if isinstance(total, int) and not isinstance(total, bool) and 0 <= total < 10**12:
        page.total = total
    return page


class CreditsReader:
    """Reads the workspace's credits: one request."""

    def __init__(
        self,
        transport: ApiTransport,
        workspace: WorkspaceConfig,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.transport = transport
        self.clock = transport.clock.time if clock is None else clock  # the injected clock

    async def read(self, sink: StateSink) -> None:
        credits, skipped = await self.transport.get(
            WORKSPACE_ENDPOINT, "/v3/workspace", None, self._parse, side=True
        )
        await sink.credits_read(credits, skipped, self.clock())  # when read: the burn rate's time

    def _parse(self, body: bytes) -> tuple[Credits, Counter[str]]:
        return parse_workspace_body(body, self.clock())


class AccountsReader:
    """Reads every configured integration's accounts, page by page until ``next_page_exist`` is
    false, keeping at most ``accounts.max_accounts`` in all (the first ones listed)."""

    def __init__(
        self,
        transport: ApiTransport,
        workspace: WorkspaceConfig,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.transport = transport
        self.workspace = workspace.name
        self.settings = workspace.accounts
        self.max_pages = transport.api.max_pages
        self.clock = transport.clock.time if clock is None else clock  # the injected clock
        self._warned_cap = False

    async def read(self, sink: StateSink) -> None:
        room = self.settings.max_accounts
        skipped: Counter[str] = Counter()
        listings: dict[str, tuple[list[Account], bool]] = {}
        for integration in self.settings.integrations:
            accounts, complete, over = await self._integration(integration, room, skipped)
            room -= len(accounts)
            listings[integration] = (accounts, complete)
            if over:
                skipped[OVER_MAX_ACCOUNTS] += over
        if skipped[OVER_MAX_ACCOUNTS] and not self._warned_cap:
            self._warned_cap = True
            logger.warning(
                "more accounts than accounts.max_accounts; the others are counted, not exported",
                extra={
                    "workspace": self.workspace,
                    "max_accounts": self.settings.max_accounts,
                    "over": skipped[OVER_MAX_ACCOUNTS],
                },
            )
        await sink.accounts_read(listings, skipped, self.settings.max_accounts)

    async def _integration(
        self, integration: str, room: int, skipped: Counter[str]
    ) -> tuple[list[Account], bool, int]:
        """Its accounts (at most ``room``), whether the listing is complete, and how many were left
        out for the cap."""
        path = f"/v3/integrations/{integration}/accounts"
        accounts: dict[str, Account] = {}
        over = 0
        seen = 0
        for number in range(self.max_pages):
            page = await self.transport.get(
                ACCOUNTS_ENDPOINT,
                path,
                {"stats": "true", "page": str(number)},
                lambda body: parse_accounts_body(body, integration, self.clock()),
                side=True,
            )
            skipped.update(page.skipped)
            new = [account for account in page.accounts if account.uid not in accounts]
            seen += len(new)
            for account in new:
                if len(accounts) < room:
                    accounts[account.uid] = account
                else:
                    over += 1
            if len(accounts) >= room and page.next_page:
                # The cap is reached: the API's total says how many more there are, without reading them.
                if page.total is not None:
                    over += max(0, page.total - seen)
                return list(accounts.values()), True, over
            if not page.next_page:
                return list(accounts.values()), True, over
            if page.accounts and not new:
                logger.warning(
                    "the API repeated a page of accounts; stopping here",
                    extra={"workspace": self.workspace, "integration": integration, "page": number},
                )
                return list(accounts.values()), False, over
        logger.warning(
            "page cap reached reading accounts; the accounts not read keep their last values",
            extra={"workspace": self.workspace, "integration": integration, "max_pages": self.max_pages},
        )
        return list(accounts.values()), False, over
