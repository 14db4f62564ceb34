"""What /metrics exposes: every metric family in exposition order, and content negotiation."""

from __future__ import annotations

import math

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# name: (type, help). The order here is the order of the exposition.
FAMILIES: dict[str, tuple[str, str]] = {
    "captaindata_runs": ("gauge", "Runs the Captain Data API currently lists, by workflow and status."),
    "captaindata_runs_by_api_status": (
        "gauge",
        "Runs the Captain Data API currently lists, by workflow and by the API's own status value.",
    ),
    "captaindata_runs_postponed": (
        "gauge",
        "Runs the API lists as postponed by a limit (v4: postponed_until in the future; 0 for v3).",
    ),
    "captaindata_run_status_changes": (
        "counter",
        "Runs observed entering each status since the exporter started (runs present at its first poll "
        "are the baseline and are not counted).",
    ),
    "captaindata_run_duration_seconds": (
        "histogram",
        "Start-to-finish time of runs observed reaching finished, warning, shutdown or stopped.",
    ),
    "captaindata_running_run_max_age_seconds": (
        "gauge",
        "Time in Running of the workflow's longest-running run, as of the last successful poll "
        "(0 when none).",
    ),
    "captaindata_running_run_oldest_start_timestamp_seconds": (
        "gauge",
        "Start time of the workflow's longest-running run (absent when no run is running).",
    ),
    "captaindata_workflow_last_status_timestamp_seconds": (
        "gauge",
        "Latest time a run of the workflow was seen in each status: finish time for terminal statuses, "
        "start time otherwise.",
    ),
    "captaindata_workflow_last_success_timestamp_seconds": (
        "gauge",
        "When the workflow's runs were last read successfully.",
    ),
    "captaindata_run_needs_action": (
        "gauge",
        "1 for each run currently in warning, shutdown or paused (most recent first, capped).",
    ),
    "captaindata_api_requests": ("counter", "Requests to the Captain Data API that got an HTTP response."),
    "captaindata_api_request_failures": (
        "counter",
        "Requests to the Captain Data API that got no HTTP response, by reason (timeout, network).",
    ),
    "captaindata_api_rate_limited": ("counter", "429 Too Many Requests answers from the Captain Data API."),
    "captaindata_api_request_duration_seconds": ("histogram", "Latency of Captain Data API requests."),
    "captaindata_api_retry_after_seconds": (
        "gauge",
        "Wait asked by the workspace's most recent 429 (0 after a successful request).",
    ),
    "captaindata_up": (
        "gauge",
        "1 if the workspace's last poll read the workflow list and every workflow, else 0.",
    ),
    "captaindata_last_poll_success_timestamp_seconds": (
        "gauge",
        "When the workspace's last successful poll ended.",
    ),
    "captaindata_poll_duration_seconds": ("gauge", "Duration of the workspace's last poll."),
    "captaindata_poll_errors": ("counter", "Polls that failed or stopped paginating early, by reason."),
    "captaindata_runs_skipped": (
        "counter",
        "Runs the exporter could not understand and skipped, by reason.",
    ),
    "captaindata_workflows": ("gauge", "Workflows tracked in the workspace."),
    "captaindata_exporter_build_info": ("gauge", "Version of the exporter and of Python; always 1."),
    "captaindata_web_config_reloads": (
        "counter",
        "Re-reads of --web.config.file after a change, by result (failure: the previous one is kept).",
    ),
}


def unit_of(name: str) -> str:
    """The OpenMetrics unit of a family: its base-unit suffix (only seconds here), else none."""
    return "seconds" if name.endswith("_seconds") else ""


def negotiate(accept: str, accept_encoding: str) -> tuple[bool, bool]:
    """(OpenMetrics?, gzip?) for a request's Accept and Accept-Encoding headers."""
    return "application/openmetrics-text" in accept, accepts_gzip(accept_encoding)


def accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip()
            if quality.startswith("q="):
                try:
                    return not math.isclose(float(quality[2:]), 0.0)
                except ValueError:
                    return True
            return True
    return False
