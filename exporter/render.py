"""Render snapshots into the Prometheus text format (0.0.4) and OpenMetrics (1.0.0).

Label names are written in sorted order, as prometheus_client writes them, so the bytes are the same
as its writers'. Rendering is split so that a publish costs only what changed: each workflow renders
its own chunk of every family it has series in, each workspace joins its workflows' chunks and adds
its own series, and the body is the families' headers with every workspace's chunk under each. Sample
lines are the same in both formats (label values escape backslash, quote and newline in both); only
the headers differ, and OpenMetrics ends with ``# EOF``.

Nothing here can fail on a name: label values are escaped and any character UTF-8 cannot encode (a
lone surrogate) becomes U+FFFD. Nothing non-finite reaches a sample: a gauge or counter sample whose
value is not finite (or a counter below 0) is left out, and a histogram series whose sum is not finite
or negative, or whose buckets are inconsistent, is left out whole (buckets, count and sum), as the
formats cannot carry part of one.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import math
import platform
from collections.abc import Iterable, Sequence

from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.exposition import FAMILIES, unit_of
from exporter.snapshot import HistogramSnapshot, RunView, WorkflowSnapshot, WorkspaceSnapshot

FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
_INDEX = {name: index for index, name in enumerate(FAMILY_NAMES)}
RUNS = _INDEX["captaindata_runs"]
RUNS_BY_API_STATUS = _INDEX["captaindata_runs_by_api_status"]
RUNS_POSTPONED = _INDEX["captaindata_runs_postponed"]
STATUS_CHANGES = _INDEX["captaindata_run_status_changes"]
RUN_DURATION = _INDEX["captaindata_run_duration_seconds"]
MAX_AGE = _INDEX["captaindata_running_run_max_age_seconds"]
OLDEST_START = _INDEX["captaindata_running_run_oldest_start_timestamp_seconds"]
LAST_STATUS = _INDEX["captaindata_workflow_last_status_timestamp_seconds"]
WORKFLOW_LAST_SUCCESS = _INDEX["captaindata_workflow_last_success_timestamp_seconds"]
NEEDS_ACTION = _INDEX["captaindata_run_needs_action"]
API_REQUESTS = _INDEX["captaindata_api_requests"]
API_FAILURES = _INDEX["captaindata_api_request_failures"]
API_RATE_LIMITED = _INDEX["captaindata_api_rate_limited"]
API_DURATION = _INDEX["captaindata_api_request_duration_seconds"]
RETRY_AFTER = _INDEX["captaindata_api_retry_after_seconds"]
UP = _INDEX["captaindata_up"]
LAST_POLL_SUCCESS = _INDEX["captaindata_last_poll_success_timestamp_seconds"]
POLL_DURATION = _INDEX["captaindata_poll_duration_seconds"]
POLL_ERRORS = _INDEX["captaindata_poll_errors"]
RUNS_SKIPPED = _INDEX["captaindata_runs_skipped"]
WORKFLOWS = _INDEX["captaindata_workflows"]
BUILD_INFO = _INDEX["captaindata_exporter_build_info"]
WEB_CONFIG_RELOADS = _INDEX["captaindata_web_config_reloads"]
#: captaindata_web_config_reloads_total by result; the web config source counts into it.
WEB_CONFIG_RELOAD_COUNTS: dict[str, int] = {"success": 0, "failure": 0}

Chunks = tuple[bytes, ...]  # one (possibly empty) chunk of sample lines per family, in FAMILY_NAMES order
EMPTY_CHUNKS: Chunks = (b"",) * len(FAMILY_NAMES)

_ENCODE_ERRORS = "captaindata.replace"


def _replace_unencodable(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "\ufffd".encode() * (error.end - error.start), error.end  # bytes: UTF-8 takes no other str


codecs.register_error(_ENCODE_ERRORS, _replace_unencodable)


def encode(text: str) -> bytes:
    """UTF-8, with anything unencodable (lone surrogates) replaced by U+FFFD."""
    return text.encode("utf-8", _ENCODE_ERRORS)


def escape(value: object) -> str:
    """A label value as both formats want it between its quotes."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: object) -> str | None:
    """A sample value as prometheus_client writes it, or None when it must not be exported."""
    if type(value) is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"  # what repr(float(value)) gives, without the float round trip
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(as_float):
        return None
    return str(floatToGoString(as_float))  # type: ignore[no-untyped-call]


def _count(value: object) -> str | None:
    """A counter value: finite and not negative."""
    text = number(value)
    return None if text is None or text.startswith("-") else text


@functools.lru_cache(maxsize=64)
def _le_values(bounds: tuple[float, ...]) -> tuple[str, ...] | None:
    values = [number(bound) for bound in bounds]
    if any(value is None for value in values) or list(bounds) != sorted(set(bounds)):
        return None
    return (*(value for value in values if value is not None), "+Inf")


def _histogram(lines: list[str], name: str, head: str, tail: str, histogram: HistogramSnapshot) -> None:
    """Append one histogram series, or nothing if any part of it could not be exported faithfully.
    ``head`` holds the labels that sort before ``le`` (each followed by a comma), ``tail`` the others."""
    try:
        les = _le_values(tuple(histogram.bounds))
        cumulative = tuple(histogram.cumulative)
    except TypeError:
        return
    if les is None or len(cumulative) != len(les):
        return
    counts = [_count(value) for value in cumulative]
    total = _count(histogram.total)
    if total is None or any(count is None for count in counts):
        return
    if any(later < earlier for earlier, later in itertools.pairwise(cumulative)):
        return
    for le, count in zip(les, counts, strict=True):
        lines.append(f'{name}_bucket{{{head}le="{le}",{tail}}} {count}\n')
    labels = head + tail
    lines.append(f"{name}_count{{{labels}}} {counts[-1]}\n")
    lines.append(f"{name}_sum{{{labels}}} {total}\n")


class _Lines:
    """Sample lines being rendered, per family."""

    def __init__(self) -> None:
        self.by_family: list[list[str]] = [[] for _ in FAMILY_NAMES]

    def gauge(self, family: int, labels: str, value: object) -> None:
        text = number(value)
        if text is not None:
            self.by_family[family].append(f"{FAMILY_NAMES[family]}{{{labels}}} {text}\n")

    def counter(self, family: int, labels: str, value: object) -> None:
        text = _count(value)
        if text is not None:
            self.by_family[family].append(f"{FAMILY_NAMES[family]}_total{{{labels}}} {text}\n")

    def histogram(self, family: int, head: str, tail: str, histogram: HistogramSnapshot) -> None:
        _histogram(self.by_family[family], FAMILY_NAMES[family], head, tail, histogram)

    def chunks(self) -> Chunks:
        return tuple(encode("".join(lines)) if lines else b"" for lines in self.by_family)


def workspace_label(name: str) -> str:
    return f'workspace="{escape(name)}"'


def _workflow_labels(workspace: str, workflow: WorkflowSnapshot) -> str:
    return f'workflow="{escape(workflow.name)}",workflow_uid="{escape(workflow.uid)}",{workspace}'


def render_workflow(workspace: str, workflow: WorkflowSnapshot) -> Chunks:
    """Every series of one workflow but needs-action (capped per workspace). ``workspace`` is the
    workspace's rendered label (``workspace_label``)."""
    lines = _Lines()
    labels = _workflow_labels(workspace, workflow)
    for status, value in workflow.runs_by_status.items():
        lines.gauge(RUNS, f'status="{escape(status)}",{labels}', value)
    for api_status, value in workflow.runs_by_api_status.items():
        lines.gauge(RUNS_BY_API_STATUS, f'api_status="{escape(api_status)}",{labels}', value)
    lines.gauge(RUNS_POSTPONED, labels, workflow.postponed)
    for status, value in workflow.status_changes.items():
        lines.counter(STATUS_CHANGES, f'status="{escape(status)}",{labels}', value)
    for status, histogram in workflow.durations.items():
        lines.histogram(RUN_DURATION, "", f'status="{escape(status)}",{labels}', histogram)
    oldest = workflow.oldest_running_start
    age = 0.0
    if oldest is not None and workflow.read_at is not None:
        age = max(0.0, workflow.read_at - oldest)
    lines.gauge(MAX_AGE, labels, age)
    if oldest is not None:
        lines.gauge(OLDEST_START, labels, oldest)
    for status, moment in workflow.last_status_time.items():
        lines.gauge(LAST_STATUS, f'status="{escape(status)}",{labels}', moment)
    if workflow.last_success is not None:
        lines.gauge(WORKFLOW_LAST_SUCCESS, labels, workflow.last_success)
    return lines.chunks()


def _recency(item: tuple[WorkflowSnapshot, RunView]) -> tuple[float, str]:
    since = item[1].since
    moment = since if isinstance(since, float | int) and math.isfinite(since) else 0.0
    return (moment, str(item[1].uid))


def render_workspace_own(workspace: str, snapshot: WorkspaceSnapshot) -> Chunks:
    """The series of a workspace that are not per workflow, and its needs-action runs."""
    lines = _Lines()
    needing = [(workflow, run) for workflow in snapshot.workflows for run in workflow.needs_action]
    needing.sort(key=_recency, reverse=True)
    for workflow, run in needing[: max(0, snapshot.needs_action_limit)]:
        labels = (
            f'run_name="{escape(run.name)}",run_uid="{escape(run.uid)}",status="{escape(run.status)}",'
            f"{_workflow_labels(workspace, workflow)}"
        )
        lines.gauge(NEEDS_ACTION, labels, 1)
    api = snapshot.api
    for (endpoint, code), value in api.requests.items():
        lines.counter(API_REQUESTS, f'code="{escape(code)}",endpoint="{escape(endpoint)}",{workspace}', value)
    for (endpoint, reason), value in api.failures.items():
        lines.counter(
            API_FAILURES, f'endpoint="{escape(endpoint)}",reason="{escape(reason)}",{workspace}', value
        )
    for (endpoint, limit_type), value in api.rate_limited.items():
        labels = f'endpoint="{escape(endpoint)}",limit_type="{escape(limit_type)}",{workspace}'
        lines.counter(API_RATE_LIMITED, labels, value)
    for endpoint, histogram in api.durations.items():
        lines.histogram(API_DURATION, f'endpoint="{escape(endpoint)}",', workspace, histogram)
    lines.gauge(RETRY_AFTER, workspace, api.retry_after)
    lines.gauge(UP, workspace, 1 if snapshot.up else 0)
    if snapshot.last_success is not None:
        lines.gauge(LAST_POLL_SUCCESS, workspace, snapshot.last_success)
    if snapshot.last_poll_duration is not None:
        lines.gauge(POLL_DURATION, workspace, snapshot.last_poll_duration)
    for reason, value in snapshot.poll_errors.items():
        lines.counter(POLL_ERRORS, f'reason="{escape(reason)}",{workspace}', value)
    for reason, value in snapshot.runs_skipped.items():
        lines.counter(RUNS_SKIPPED, f'reason="{escape(reason)}",{workspace}', value)
    lines.gauge(WORKFLOWS, workspace, len(snapshot.workflows))
    return lines.chunks()


def join_workspace(workflows: Iterable[Chunks], own: Chunks) -> Chunks:
    """A workspace's chunk of every family: its workflows' chunks (in order), then its own."""
    parts: list[list[bytes]] = [[] for _ in FAMILY_NAMES]
    for chunks in (*workflows, own):
        for family, chunk in enumerate(chunks):
            if chunk:
                parts[family].append(chunk)
    return tuple(b"".join(part) for part in parts)


def _help_text(help_text: str) -> str:
    return help_text.replace("\\", "\\\\").replace("\n", "\\n")


def _text_header(name: str, kind: str, help_text: str) -> bytes:
    shown = f"{name}_total" if kind == "counter" else name
    return encode(f"# HELP {shown} {_help_text(help_text)}\n# TYPE {shown} {kind}\n")


def _openmetrics_header(name: str, kind: str, help_text: str) -> bytes:
    quoted = _help_text(help_text).replace('"', '\\"')  # OpenMetrics escapes quotes in HELP too
    header = f"# HELP {name} {quoted}\n# TYPE {name} {kind}\n"
    unit = unit_of(name)
    return encode(header + (f"# UNIT {name} {unit}\n" if unit else ""))


TEXT_HEADERS = tuple(_text_header(name, kind, help_text) for name, (kind, help_text) in FAMILIES.items())
OPENMETRICS_HEADERS = tuple(
    _openmetrics_header(name, kind, help_text) for name, (kind, help_text) in FAMILIES.items()
)
BUILD_INFO_LINE = encode(
    f'captaindata_exporter_build_info{{python_version="{escape(platform.python_version())}",'
    f'version="{escape(__version__)}"}} 1.0\n'
)


def _web_config_reload_lines() -> bytes:
    name = FAMILY_NAMES[WEB_CONFIG_RELOADS]
    counts = sorted(WEB_CONFIG_RELOAD_COUNTS.items())
    return encode("".join(f'{name}_total{{result="{result}"}} {_count(count)}\n' for result, count in counts))


def assemble(workspaces: Sequence[Chunks], openmetrics: bool) -> bytes:
    """The whole exposition: each family that has samples, its header, then every workspace's chunk."""
    headers = OPENMETRICS_HEADERS if openmetrics else TEXT_HEADERS
    body: list[bytes] = []
    for family, header in enumerate(headers):
        if family == BUILD_INFO:
            chunks = [BUILD_INFO_LINE]
        elif family == WEB_CONFIG_RELOADS:
            chunks = [_web_config_reload_lines()]
        else:
            chunks = [ws[family] for ws in workspaces if ws[family]]
        if chunks:
            body.append(header)
            body.extend(chunks)
    if openmetrics:
        body.append(b"# EOF\n")
    return b"".join(body)


def render(snapshots: Sequence[WorkspaceSnapshot], openmetrics: bool) -> bytes:
    """Everything at once, without caches (tests and benchmarks)."""
    joined = []
    for snapshot in snapshots:
        label = workspace_label(snapshot.name)
        flows = [render_workflow(label, workflow) for workflow in snapshot.workflows]
        joined.append(join_workspace(flows, render_workspace_own(label, snapshot)))
    return assemble(joined, openmetrics)
