"""Captain Data API v3: workflows, then each workflow's runs ("jobs") page by page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from exporter.api.adapter import USER_AGENT, ApiAdapter, SideRead, SideReader
from exporter.api.v3.statuses import API_STATUS_VALUES

if TYPE_CHECKING:
    from exporter.config import Config, WorkspaceConfig
    from exporter.guide import ApiCall, StatusGuide
    from exporter.sink import PollSource
    from exporter.transport import ApiTransport

DEFAULT_BASE_URL: Final = "https://api.captaindata.co"
#: The ``endpoint`` label of each request (the runs path with its workflow left as a placeholder).
WORKFLOWS_ENDPOINT: Final = "/v3/workflows"
RUNS_ENDPOINT: Final = "/v3/workflows/{workflow_uid}/jobs"
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
    side_reads=(
        SideRead("credits", (WORKSPACE_ENDPOINT,), _credits),
        SideRead("accounts", (ACCOUNTS_ENDPOINT,), _accounts),
    ),
)
