"""TEMPORARY stand-in for the render branch's Published (removed when it is merged)."""

from __future__ import annotations

import platform
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.exposition import FAMILIES, _FixedCollector
from exporter.snapshot import HistogramSnapshot, WorkspaceSnapshot
from exporter.statuses import STATUS_LABEL_VALUES

EXTRA = {
    "captaindata_workflow_last_success_timestamp_seconds": ("gauge", "When the workflow's runs were last read."),
    "captaindata_runs_skipped": ("counter", "Runs skipped."),
}


class Published:
    def __init__(self, workspace_names: Sequence[str]) -> None:
        self.names = list(workspace_names)
        self.latest: dict[str, WorkspaceSnapshot] = {}

    def publish(self, snapshot: WorkspaceSnapshot) -> None:
        self.latest[snapshot.name] = snapshot

    def workspaces(self) -> tuple[WorkspaceSnapshot, ...]:
        return tuple(self.latest[n] for n in self.names if n in self.latest)

    @property
    def ready(self) -> bool:
        return all(n in self.latest and self.latest[n].attempted for n in self.names)

    async def exposition(self, openmetrics: bool, gzip: bool) -> bytes:
        return self.text()

    def text(self) -> bytes:
        fams = {n: Metric(n, h, k) for n, (k, h) in {**FAMILIES, **EXTRA}.items()}

        def add(name: str, labels: dict[str, str], value: float) -> None:
            m = fams[name]
            m.add_sample(f"{name}_total" if m.type == "counter" else name, labels, float(value))

        def hist(name: str, labels: dict[str, str], h: HistogramSnapshot) -> None:
            m = fams[name]
            for b, c in zip((*h.bounds, float("inf")), h.cumulative, strict=True):
                m.add_sample(f"{name}_bucket", {**labels, "le": floatToGoString(b)}, float(c))  # type: ignore[no-untyped-call]
            m.add_sample(f"{name}_count", labels, float(h.count))
            m.add_sample(f"{name}_sum", labels, h.total)

        for s in self.workspaces():
            ws = {"workspace": s.name}
            na = []
            for w in s.workflows:
                wf = {**ws, "workflow_uid": w.uid, "workflow": w.name}
                for st in STATUS_LABEL_VALUES:
                    add("captaindata_runs", {**wf, "status": st}, w.runs_by_status[st])
                    add("captaindata_run_status_changes", {**wf, "status": st}, w.status_changes[st])
                for st, h in sorted(w.durations.items()):
                    hist("captaindata_run_duration_seconds", {**wf, "status": st}, h)
                o = w.oldest_running_start
                add("captaindata_running_run_max_age_seconds", wf, max(0.0, (w.read_at or 0) - o) if o else 0)
                if o is not None:
                    add("captaindata_running_run_oldest_start_timestamp_seconds", wf, o)
                for st in STATUS_LABEL_VALUES:
                    if st in w.last_status_time:
                        add("captaindata_workflow_last_status_timestamp_seconds", {**wf, "status": st}, w.last_status_time[st])
                if w.last_success is not None:
                    add("captaindata_workflow_last_success_timestamp_seconds", wf, w.last_success)
                na.extend((r, w) for r in w.needs_action)
            na.sort(key=lambda p: (p[0].since or 0, p[0].uid), reverse=True)
            for r, w in na[: s.needs_action_limit]:
                add("captaindata_run_needs_action", {**ws, "workflow_uid": w.uid, "workflow": w.name, "status": r.status, "run_uid": r.uid, "run_name": r.name}, 1)
            for (e, c), v in sorted(s.api.requests.items()):
                add("captaindata_api_requests", {**ws, "endpoint": e, "code": c}, v)
            for (e, r), v in sorted(s.api.failures.items()):
                add("captaindata_api_request_failures", {**ws, "endpoint": e, "reason": r}, v)
            for (e, lt), v in sorted(s.api.rate_limited.items()):
                add("captaindata_api_rate_limited", {**ws, "endpoint": e, "limit_type": lt}, v)
            for e, h in sorted(s.api.durations.items()):
                hist("captaindata_api_request_duration_seconds", {**ws, "endpoint": e}, h)
            add("captaindata_api_retry_after_seconds", ws, s.api.retry_after)
            add("captaindata_up", ws, 1 if s.up else 0)
            if s.last_success is not None:
                add("captaindata_last_poll_success_timestamp_seconds", ws, s.last_success)
            if s.last_poll_duration is not None:
                add("captaindata_poll_duration_seconds", ws, s.last_poll_duration)
            for r, v in sorted(s.poll_errors.items()):
                add("captaindata_poll_errors", {**ws, "reason": r}, v)
            for r, v in sorted(s.runs_skipped.items()):
                add("captaindata_runs_skipped", {**ws, "reason": r}, v)
            add("captaindata_workflows", ws, len(s.workflows))
        add("captaindata_exporter_build_info", {"version": __version__, "python_version": platform.python_version()}, 1)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_FixedCollector([m for m in fams.values() if m.samples]))
        return generate_latest(reg)
