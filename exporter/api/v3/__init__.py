"""Captain Data API v3: workflows, then each workflow's runs ("jobs") page by page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from exporter.api.adapter import USER_AGENT, ApiAdapter, ReadRun, SideRead, SideReader
from exporter.api.v3.statuses import API_STATUS_VALUES

if TYPE_CHECKING:
    from exporter.config import Config, WorkspaceConfig
    from exporter.failures import ErrorReader
    from exporter.guide import ApiCall, StatusGuide
    from exporter.sink import PollSource
    from exporter.transport import ApiTransport
    from exporter.unknown_statuses import UnknownStatuses

DEFAULT_BASE_URL: Final = "https://api.captaindata.co"
#: The ``endpoint`` label of each request (the runs path with its workflow left as a placeholder).
WORKFLOWS_ENDPOINT: Final = "/v3/workflows"
RUNS_ENDPOINT: Final = "/v3/workflows/{workflow_uid}/jobs"
#: The ``endpoint`` label of the one-run read a push event becomes.
RUN_ENDPOINT: Final = "/v3/jobs/{job_uid}"
# Credits and account health (issue 17): the side reads' endpoints.
WORKSPACE_ENDPOINT: Final = "/v3/workspace"
ACCOUNTS_ENDPOINT: Final = "/v3/integrations/{integration_uid}/accounts"


def _headers(workspace: WorkspaceConfig) -> dict[str, str]:
    return {
        "Authorization": f"x-api-key {workspace.api_key.reveal()}",
        "x-project-id": workspace.workspace_uid,
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


def _source(
    transport: ApiTransport,
    workspace: WorkspaceConfig,
    config: Config,
    clock: Callable[[], float] = time.time,
) -> PollSource:
    # Imported here: the configuration reads this adapter, and --check-config must not load the HTTP client.
    from exporter.api.v3.source import V3Source

    return V3Source(transport, workspace, config, clock)


def _run_path(uid: str) -> str:
    return "/v3/jobs/" + quote(uid, safe="")


def _parse_run(
    body: bytes, unknown: UnknownStatuses, errors: ErrorReader, now: float | None = None
) -> ReadRun | None:
    from exporter.api.v3.parser import parse_run_body

    return parse_run_body(body, unknown, now, errors)


def _credits(transport: ApiTransport, workspace: WorkspaceConfig) -> SideReader:
    from exporter.api.v3.side import CreditsReader  # see _source

    return CreditsReader(transport, workspace)


def _accounts(transport: ApiTransport, workspace: WorkspaceConfig) -> SideReader:
    from exporter.api.v3.side import AccountsReader

    return AccountsReader(transport, workspace)


def _api_calls(guide: StatusGuide) -> tuple[ApiCall, ...]:
    return guide.api_calls


def _action(guide: StatusGuide) -> str:
    return guide.action


ADAPTER: Final = ApiAdapter(
    version="v3",
    default_base_url=DEFAULT_BASE_URL,
    endpoints=(WORKFLOWS_ENDPOINT, RUNS_ENDPOINT),
    api_status_values=API_STATUS_VALUES,
    headers=_headers,
    source=_source,
    api_calls=_api_calls,
    action=_action,
    run_endpoint=RUN_ENDPOINT,
    run_path=_run_path,
    parse_run=_parse_run,
    side_reads=(
        SideRead("credits", (WORKSPACE_ENDPOINT,), _credits),
        SideRead("accounts", (ACCOUNTS_ENDPOINT,), _accounts),
    ),
)
