"""Turn workspace states into metric families and render them once per poll into immutable bytes."""

from __future__ import annotations

import gzip
import math
import platform
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.apistats import ENDPOINTS
from exporter.histogram import Histogram
from exporter.state import WorkspaceState
from exporter.statuses import STATUS_LABEL_VALUES

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name: (type, help). The order here is the order of the exposition.
FAMILIES: dict[str, tuple[str, str]] = {
    "captaindata_runs": ("gauge", "Runs the Captain Data API currently lists, by workflow and status."),
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
    "captaindata_up": ("gauge", "1 if the workspace's last poll succeeded, else 0."),
    "captaindata_last_poll_success_timestamp_seconds": (
        "gauge",
        "When the workspace's last successful poll ended.",
    ),
    "captaindata_poll_duration_seconds": ("gauge", "Duration of the workspace's last poll."),
    "captaindata_poll_errors": ("counter", "Polls that failed or stopped paginating early, by reason."),
    "captaindata_workflows": ("gauge", "Workflows tracked in the workspace."),
    "captaindata_exporter_build_info": ("gauge", "Version of the exporter and of Python; always 1."),
}


class _Families:
    def __init__(self) -> None:
        self.metrics = {name: Metric(name, help_text, kind) for name, (kind, help_text) in FAMILIES.items()}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        metric = self.metrics[name]
        sample = f"{name}_total" if metric.type == "counter" else name
        metric.add_sample(sample, labels, float(value))

    def add_histogram(self, name: str, labels: dict[str, str], histogram: Histogram) -> None:
        metric = self.metrics[name]
        for bound, count in histogram.cumulative():
            le = floatToGoString(bound)  # type: ignore[no-untyped-call]
            metric.add_sample(f"{name}_bucket", {**labels, "le": le}, float(count))
        metric.add_sample(f"{name}_count", labels, float(histogram.count))
        metric.add_sample(f"{name}_sum", labels, histogram.total)


def _workspace_samples(state: WorkspaceState, families: _Families) -> None:
    ws = {"workspace": state.name}
    for workflow in state.workflows:
        wf = {**ws, "workflow_uid": workflow.uid, "workflow": workflow.name}
        counts = state.status_counts(workflow)
        for status in STATUS_LABEL_VALUES:
            families.add("captaindata_runs", {**wf, "status": status}, counts.get(status, 0))
        oldest = state.oldest_running_start(workflow)
        age = max(0.0, state.polled_at - oldest) if oldest is not None else 0.0
        families.add("captaindata_running_run_max_age_seconds", wf, age)
        if oldest is not None:
            families.add("captaindata_running_run_oldest_start_timestamp_seconds", wf, oldest)
        for status in STATUS_LABEL_VALUES:
            moment = state.last_status_time.get((workflow.uid, status))
            if moment is not None:
                families.add(
                    "captaindata_workflow_last_status_timestamp_seconds", {**wf, "status": status}, moment
                )

    for (uid, name, status), value in sorted(state.status_changes.items()):
        labels = {**ws, "workflow_uid": uid, "workflow": name, "status": status}
        families.add("captaindata_run_status_changes", labels, value)
    for (uid, name, status), histogram in sorted(state.durations.items()):
        labels = {**ws, "workflow_uid": uid, "workflow": name, "status": status}
        families.add_histogram("captaindata_run_duration_seconds", labels, histogram)
    for item in state.needs_action():
        labels = {
            **ws,
            "workflow_uid": item.workflow.uid,
            "workflow": item.workflow.name,
            "status": item.run.status,
            "run_uid": item.run.uid,
            "run_name": item.run.name,
        }
        families.add("captaindata_run_needs_action", labels, 1)

    api = state.api
    for (endpoint, code), value in sorted(api.requests.items()):
        families.add("captaindata_api_requests", {**ws, "endpoint": endpoint, "code": code}, value)
    for (endpoint, reason), value in sorted(api.failures.items()):
        families.add(
            "captaindata_api_request_failures", {**ws, "endpoint": endpoint, "reason": reason}, value
        )
    for endpoint in ENDPOINTS:
        families.add("captaindata_api_rate_limited", {**ws, "endpoint": endpoint}, api.rate_limited[endpoint])
    for endpoint, histogram in sorted(api.durations.items()):
        families.add_histogram(
            "captaindata_api_request_duration_seconds", {**ws, "endpoint": endpoint}, histogram
        )
    families.add("captaindata_api_retry_after_seconds", ws, api.retry_after)

    families.add("captaindata_up", ws, 1 if state.up else 0)
    if state.last_success is not None:
        families.add("captaindata_last_poll_success_timestamp_seconds", ws, state.last_success)
    if state.last_poll_duration is not None:
        families.add("captaindata_poll_duration_seconds", ws, state.last_poll_duration)
    for reason, value in sorted(state.poll_errors.items()):
        families.add("captaindata_poll_errors", {**ws, "reason": reason}, value)
    families.add("captaindata_workflows", ws, len(state.workflows))


def build_families(states: Iterable[WorkspaceState]) -> list[Metric]:
    families = _Families()
    for state in states:
        _workspace_samples(state, families)
    families.add(
        "captaindata_exporter_build_info",
        {"version": __version__, "python_version": platform.python_version()},
        1,
    )
    return [metric for metric in families.metrics.values() if metric.samples]


class _FixedCollector(Collector):
    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


@dataclass(frozen=True)
class Exposition:
    """One poll's metrics, rendered in every format a scraper may ask for."""

    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes

    @classmethod
    def render(cls, states: Iterable[WorkspaceState]) -> Exposition:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_FixedCollector(build_families(states)))
        text = generate_text(registry)
        openmetrics = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        return cls(
            text=text,
            text_gzip=gzip.compress(text, compresslevel=6, mtime=0),
            openmetrics=openmetrics,
            openmetrics_gzip=gzip.compress(openmetrics, compresslevel=6, mtime=0),
        )

    def select(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a request's Accept and Accept-Encoding headers."""
        wants_openmetrics = "application/openmetrics-text" in accept
        wants_gzip = _accepts_gzip(accept_encoding)
        if wants_openmetrics:
            return (
                (self.openmetrics_gzip if wants_gzip else self.openmetrics),
                OPENMETRICS_CONTENT_TYPE,
                wants_gzip,
            )
        return (self.text_gzip if wants_gzip else self.text), TEXT_CONTENT_TYPE, wants_gzip


def _accepts_gzip(accept_encoding: str) -> bool:
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
