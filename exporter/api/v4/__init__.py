"""Captain Data API v4 (2025+): one listing of runs, newest change first, each naming its action."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from exporter.api.adapter import USER_AGENT, ApiAdapter, ReadRun
from exporter.api.v4.settings import DEFAULT_V4_BASE_URL, read_v4_config
from exporter.api.v4.statuses import V4_API_STATUS_VALUES

if TYPE_CHECKING:
    from exporter.config import Config, WorkspaceConfig
    from exporter.failures import ErrorReader
    from exporter.guide import ApiCall, StatusGuide
    from exporter.sink import PollSource
    from exporter.transport import ApiTransport
    from exporter.unknown_statuses import UnknownStatuses

#: The ``endpoint`` label of the runs listing, whatever ``v4.path`` says.
RUNS_ENDPOINT: Final = "/v4/runs"
#: The ``endpoint`` label of the one-run read a push event becomes.
RUN_ENDPOINT: Final = "/v4/runs/{run_uid}"


def _headers(workspace: WorkspaceConfig) -> dict[str, str]:
    return {"X-API-Key": workspace.api_key.reveal(), "Accept": "application/json", "User-Agent": USER_AGENT}


def _source(
    transport: ApiTransport,
    workspace: WorkspaceConfig,
    config: Config,
    clock: Callable[[], float] = time.time,
) -> PollSource:
    # Imported here: the configuration reads this adapter, and --check-config must not load the HTTP client.
    from exporter.api.v4.source import V4Source

    return V4Source(transport, workspace, config, clock)


def _run_path(uid: str) -> str:
    return "/v4/runs/" + quote(uid, safe="")


def _parse_run(
    body: bytes, unknown: UnknownStatuses, errors: ErrorReader, now: float | None = None
) -> ReadRun | None:
    from exporter.api.v4.parser import parse_v4_run_body

    return parse_v4_run_body(body, unknown, now, errors)


def _api_calls(guide: StatusGuide) -> tuple[ApiCall, ...]:
    return guide.v4_api_calls


def _action(guide: StatusGuide) -> str:
    return guide.v4_action or guide.action


ADAPTER: Final = ApiAdapter(
    version="v4",
    default_base_url=DEFAULT_V4_BASE_URL,
    endpoints=(RUNS_ENDPOINT,),
    api_status_values=V4_API_STATUS_VALUES,
    headers=_headers,
    source=_source,
    api_calls=_api_calls,
    action=_action,
    run_endpoint=RUN_ENDPOINT,
    run_path=_run_path,
    parse_run=_parse_run,
    push_adds_workflow=True,
    needs_workspace_uid=False,  # the key names the workspace
    settings_key="v4",
    read_settings=read_v4_config,
    # Credits and accounts (issue 17): the v4 docs publish no credits or accounts endpoint with a
    # documented shape (only a quotas page is named), so v4 has no side read yet. One is a
    # SideRead("credits", (endpoint,), reader) here once the API documents it; the configuration, the
    # poller, the metrics and the page take it from there.
    side_reads=(),
)
