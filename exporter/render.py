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
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.families import (
    API_DURATION,
    API_FAILURES,
    API_RATE_LIMITED,
    API_REQUESTS,
    BUILD_INFO,
    FAMILIES,
    LAST_POLL_SUCCESS,
    LAST_STATUS,
    MAX_AGE,
    NEEDS_ACTION,
    OLDEST_START,
    POLL_DURATION,
    POLL_ERRORS,
    RETRY_AFTER,
    RUN_DURATION,
    RUNS,
    RUNS_BY_API_STATUS,
    RUNS_POSTPONED,
    RUNS_SKIPPED,
    STATUS_CHANGES,
    UP,
    WORKFLOW,
    WORKFLOW_LAST_SUCCESS,
    WORKFLOWS,
    WORKSPACE,
    Family,
)
from exporter.snapshot import HistogramSnapshot, RunView, WorkflowSnapshot, WorkspaceSnapshot

Chunks = tuple[bytes, ...]  # one (possibly empty) chunk of sample lines per family, in FAMILIES order
EMPTY_CHUNKS: Chunks = (b"",) * len(FAMILIES)

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


def _context_of(family: Family) -> tuple[str, ...]:
    """The labels a family shares with others, rendered once per workflow or workspace."""
    for context in (WORKFLOW, WORKSPACE):
        if set(context) <= set(family.labels):
            return context
    return ()


Writer = Callable[[tuple[object, ...]], str]


def _writer(labels: Sequence[str], order: Sequence[str], end: str) -> Writer:
    """What writes ``order``'s labels (sorted) from values given in ``labels``' order, each pair followed
    by a comma but the last, which is followed by ``end``. Plain concatenation: str.format is 5x slower."""
    if not order:
        return lambda values: ""
    names = [f'{label}="' for label in order]
    seps = [*('",' for _ in order[1:]), f'"{end}']
    picks = [labels.index(label) for label in order]
    if len(order) == 1:
        (name,), (sep,), (pick,) = names, seps, picks
        return lambda values: f"{name}{escape(values[pick])}{sep}"
    if len(order) == 2:
        (name_a, name_b), (sep_a, sep_b), (pick_a, pick_b) = names, seps, picks
        return lambda values: (
            f"{name_a}{escape(values[pick_a])}{sep_a}{name_b}{escape(values[pick_b])}{sep_b}"
        )
    steps = tuple(zip(names, picks, seps, strict=True))
    return lambda values: "".join(f"{name}{escape(values[pick])}{sep}" for name, pick, sep in steps)


class _Shape:
    """How one family's samples are written: its sample name, its index in ``FAMILIES``, and its own
    labels (all but the shared context), written sorted by name before the context from values given
    in the table's order. Histograms split them around ``le``."""

    def __init__(self, index: int, family: Family) -> None:
        self.index = index
        self.sample = f"{family.name}_total" if family.type == "counter" else family.name
        context = _context_of(family)
        own = [label for label in family.labels if label not in context]
        ordered = sorted(own)
        if context and ordered and max(ordered) > min(context):
            raise ValueError(f"{family.name}: {max(ordered)!r} would sort into the shared labels {context}")
        self.labels = _writer(own, ordered, "," if context else "")
        before_le = [label for label in ordered if label < "le"]
        self.head = _writer(own, before_le, ",")
        self.tail = _writer(own, ordered[len(before_le) :], ",")


_SHAPES: dict[str, _Shape] = {family.name: _Shape(index, family) for index, family in enumerate(FAMILIES)}


class _Lines:
    """Sample lines being rendered, per family. ``context`` is the rendered shared labels (a workflow's
    or a workspace's); ``own`` the values of the family's other labels, in the table's order."""

    def __init__(self) -> None:
        self.by_family: list[list[str]] = [[] for _ in FAMILIES]

    def gauge(self, family: Family, context: str, value: object, *own: object) -> None:
        text = number(value)
        if text is not None:
            shape = _SHAPES[family.name]
            self.by_family[shape.index].append(f"{shape.sample}{{{shape.labels(own)}{context}}} {text}\n")

    def counter(self, family: Family, context: str, value: object, *own: object) -> None:
        text = _count(value)
        if text is not None:
            shape = _SHAPES[family.name]
            self.by_family[shape.index].append(f"{shape.sample}{{{shape.labels(own)}{context}}} {text}\n")

    def histogram(self, family: Family, context: str, histogram: HistogramSnapshot, *own: object) -> None:
        shape = _SHAPES[family.name]
        head = shape.head(own)
        tail = shape.tail(own) + context
        _histogram(self.by_family[shape.index], family.name, head, tail, histogram)

    def chunks(self) -> Chunks:
        return tuple(encode("".join(lines)) if lines else b"" for lines in self.by_family)


def _pair(label: str, value: object) -> str:
    return f'{label}="{escape(value)}"'


def workspace_label(name: str) -> str:
    """The rendered shared labels of a workspace's series."""
    return _pair(*WORKSPACE, name)


def _workflow_labels(workspace: str, workflow: WorkflowSnapshot) -> str:
    pairs = {"workspace": workspace, "workflow_uid": _pair("workflow_uid", workflow.uid)}
    pairs["workflow"] = _pair("workflow", workflow.name)
    return ",".join(pairs[label] for label in _WORKFLOW_ORDER)


_WORKFLOW_ORDER = sorted(WORKFLOW)


def render_workflow(workspace: str, workflow: WorkflowSnapshot) -> Chunks:
    """Every series of one workflow but needs-action (capped per workspace). ``workspace`` is the
    workspace's rendered label (``workspace_label``)."""
    lines = _Lines()
    labels = _workflow_labels(workspace, workflow)
    for status, value in workflow.runs_by_status.items():
        lines.gauge(RUNS, labels, value, status)
    for api_status, value in workflow.runs_by_api_status.items():
        lines.gauge(RUNS_BY_API_STATUS, labels, value, api_status)
    lines.gauge(RUNS_POSTPONED, labels, workflow.postponed)
    for status, value in workflow.status_changes.items():
        lines.counter(STATUS_CHANGES, labels, value, status)
    for status, histogram in workflow.durations.items():
        lines.histogram(RUN_DURATION, labels, histogram, status)
    oldest = workflow.oldest_running_start
    age = 0.0
    if oldest is not None and workflow.read_at is not None:
        age = max(0.0, workflow.read_at - oldest)
    lines.gauge(MAX_AGE, labels, age)
    if oldest is not None:
        lines.gauge(OLDEST_START, labels, oldest)
    for status, moment in workflow.last_status_time.items():
        lines.gauge(LAST_STATUS, labels, moment, status)
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
        lines.gauge(NEEDS_ACTION, _workflow_labels(workspace, workflow), 1, run.status, run.uid, run.name)
    api = snapshot.api
    for (endpoint, code), value in api.requests.items():
        lines.counter(API_REQUESTS, workspace, value, endpoint, code)
    for (endpoint, reason), value in api.failures.items():
        lines.counter(API_FAILURES, workspace, value, endpoint, reason)
    for (endpoint, limit_type), value in api.rate_limited.items():
        lines.counter(API_RATE_LIMITED, workspace, value, endpoint, limit_type)
    for endpoint, histogram in api.durations.items():
        lines.histogram(API_DURATION, workspace, histogram, endpoint)
    lines.gauge(RETRY_AFTER, workspace, api.retry_after)
    lines.gauge(UP, workspace, 1 if snapshot.up else 0)
    if snapshot.last_success is not None:
        lines.gauge(LAST_POLL_SUCCESS, workspace, snapshot.last_success)
    if snapshot.last_poll_duration is not None:
        lines.gauge(POLL_DURATION, workspace, snapshot.last_poll_duration)
    for reason, value in snapshot.poll_errors.items():
        lines.counter(POLL_ERRORS, workspace, value, reason)
    for reason, value in snapshot.runs_skipped.items():
        lines.counter(RUNS_SKIPPED, workspace, value, reason)
    lines.gauge(WORKFLOWS, workspace, len(snapshot.workflows))
    return lines.chunks()


def join_workspace(workflows: Iterable[Chunks], own: Chunks) -> Chunks:
    """A workspace's chunk of every family: its workflows' chunks (in order), then its own."""
    parts: list[list[bytes]] = [[] for _ in FAMILIES]
    for chunks in (*workflows, own):
        for family, chunk in enumerate(chunks):
            if chunk:
                parts[family].append(chunk)
    return tuple(b"".join(part) for part in parts)


def _help_text(help_text: str) -> str:
    return help_text.replace("\\", "\\\\").replace("\n", "\\n")


def _text_header(family: Family) -> bytes:
    shown = _SHAPES[family.name].sample
    return encode(f"# HELP {shown} {_help_text(family.help)}\n# TYPE {shown} {family.type}\n")


def _openmetrics_header(family: Family) -> bytes:
    name = family.name
    quoted = _help_text(family.help).replace('"', '\\"')  # OpenMetrics escapes quotes in HELP too
    header = f"# HELP {name} {quoted}\n# TYPE {name} {family.type}\n"
    return encode(header + (f"# UNIT {name} {family.unit}\n" if family.unit else ""))


TEXT_HEADERS = tuple(_text_header(family) for family in FAMILIES)
OPENMETRICS_HEADERS = tuple(_openmetrics_header(family) for family in FAMILIES)
_BUILD_INFO = _Lines()
_BUILD_INFO.gauge(BUILD_INFO, "", 1, __version__, platform.python_version())
BUILD_INFO_LINE = _BUILD_INFO.chunks()[_SHAPES[BUILD_INFO.name].index]


def assemble(workspaces: Sequence[Chunks], openmetrics: bool) -> bytes:
    """The whole exposition: each family that has samples, its header, then every workspace's chunk."""
    headers = OPENMETRICS_HEADERS if openmetrics else TEXT_HEADERS
    build_info = _SHAPES[BUILD_INFO.name].index
    body: list[bytes] = []
    for family, header in enumerate(headers):
        chunks = (
            [BUILD_INFO_LINE] if family == build_info else [ws[family] for ws in workspaces if ws[family]]
        )
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
