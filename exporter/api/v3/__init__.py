"""Captain Data API v3: workflows, then each workflow's runs ("jobs") page by page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.api.adapter import USER_AGENT, ApiAdapter
from exporter.api.v3.source import ENDPOINTS, V3Source
from exporter.api.v3.statuses import API_STATUS_VALUES

if TYPE_CHECKING:
    from exporter.config import WorkspaceConfig
    from exporter.guide import ApiCall, StatusGuide

DEFAULT_BASE_URL = "https://api.captaindata.co"


def _headers(workspace: WorkspaceConfig) -> dict[str, str]:
    return {
        "Authorization": f"x-api-key {workspace.api_key.reveal()}",
        "x-project-id": workspace.workspace_uid,
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


def _api_calls(guide: StatusGuide) -> tuple[ApiCall, ...]:
    return guide.api_calls


def _action(guide: StatusGuide) -> str:
    return guide.action


ADAPTER = ApiAdapter(
    version="v3",
    default_base_url=DEFAULT_BASE_URL,
    endpoints=ENDPOINTS,
    api_status_values=API_STATUS_VALUES,
    headers=_headers,
    source=V3Source,
    api_calls=_api_calls,
    action=_action,
)
