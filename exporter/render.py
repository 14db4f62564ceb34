"""Render snapshots into the Prometheus text format (0.0.4) and OpenMetrics (1.0.0).

The families, their order, headers and label names come from the metric table (``families.py``). Label
names are written in sorted order, as prometheus_client writes them, so the bytes are the same as its
writers'. Rendering is split so that a publish costs only what changed: each workflow renders
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.families import (
    ACCOUNT_INPUTS_QUEUED,
    ACCOUNT_LIMIT,
    ACCOUNT_LIMIT_RESET,
    ACCOUNT_LIMIT_USED,
    ACCOUNT_VALID,
    API_DURATION,
    API_FAILURES,
    API_RATE_LIMITED,
    API_REQUESTS,
    BUILD_INFO,
    CREDITS_LIMIT,
    CREDITS_PERIOD_END,
    CREDITS_REMAINING,
    CREDITS_USED,
    FAMILIES,
    LAST_POLL_SUCCESS,
    LAST_STATUS,
    MAX_AGE,
    NEEDS_ACTION,
    OLDEST_START,
    POLL_DURATION,
    POLL_ERRORS,
    PUSH_APPLIED,
    PUSH_APPLY,
    PUSH_LAST_EVENT,
    PUSH_MISSED,
    PUSH_REQUESTS,
    RETRY_AFTER,
    RUN_DURATION,
    RUN_FAILURES,
    RUNS,
    RUNS_BY_API_STATUS,
    RUNS_POSTPONED,
    RUNS_SKIPPED,
    SHARD,
    SHARD_INFO,
    SIDE_READ_ERRORS,
    SIDE_READ_SKIPPED,
    STATE_SAVE_ERRORS,
    STATUS_CHANGES,
    UP,
    WEB_CONFIG_RELOADS,
    WORKFLOW,
    WORKFLOW_LAST_SUCCESS,
    WORKFLOWS,
    WORKSPACE,
    WORKSPACE_INFO,
    Family,
)
from exporter.needs_action import newest_first
from exporter.sharding import WHOLE, Part, Sharding
from exporter.snapshot import HistogramSnapshot, WorkflowSnapshot, WorkspaceSnapshot

#: captaindata_web_config_reloads_total by result, process-wide; the web config source counts into it.
WEB_CONFIG_RELOAD_COUNTS: dict[str, int] = dict.fromkeys(WEB_CONFIG_RELOADS.vocab["result"], 0)
if TYPE_CHECKING:
    from exporter.push.stats import PushFigures

Chunks = tuple[bytes, ...]  # one (possibly empty) chunk of sample lines per family, in FAMILIES order
EMPTY_CHUNKS: Chunks = (b"",) * len(FAMILIES)
#: A workspace's lines of each family: its workflows' chunks and its own, referenced, not copied (the
#: workflows' chunks are cached already; a joined copy would hold every line of /metrics once more).
Fragments = tuple[tuple[bytes, ...], ...]

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


Writer = Callable[[Any], str]


def _writer(labels: Sequence[str], order: Sequence[str], end: str) -> Writer:
    """What writes ``order``'s labels (sorted) from a key: the value of the only label of ``labels``, or
    a tuple of values in ``labels``' order. Each pair is followed by a comma but the last, which is
    followed by ``end``. Plain concatenation, as str.format is 5x slower."""
    if not order:
        return lambda key: ""
    names = [f'{label}="' for label in order]
    seps = [*('",' for _ in order[1:]), f'"{end}']
    if len(labels) == 1:
        (name,), (sep,) = names, seps
        return lambda key: f"{name}{escape(key)}{sep}"
    picks = [labels.index(label) for label in order]
    if len(order) == 1:
        (name,), (sep,), (pick,) = names, seps, picks
        return lambda key: f"{name}{escape(key[pick])}{sep}"
    if len(order) == 2:
        (name_a, name_b), (sep_a, sep_b), (pick_a, pick_b) = names, seps, picks
        return lambda key: f"{name_a}{escape(key[pick_a])}{sep_a}{name_b}{escape(key[pick_b])}{sep_b}"
    steps = tuple(zip(names, picks, seps, strict=True))
    return lambda key: "".join(f"{name}{escape(key[pick])}{sep}" for name, pick, sep in steps)


def _own_labels(name: str, labels: Sequence[str], context: Sequence[str]) -> tuple[list[str], list[str]]:
    """``labels`` but the context's, in their order and sorted. They must sort before the context's,
    which are written after them as one string."""
    own = [label for label in labels if label not in context]
    ordered = sorted(own)
    if context and ordered and max(ordered) > min(context):
        raise ValueError(f"{name}: {max(ordered)!r} would sort into the shared labels {context}")
    return own, ordered


class _Shape:
    """How one family's samples are written: its sample name, its index in ``FAMILIES``, and its own
    labels (all but the shared context), written sorted by name before the context from a key (see
    ``_writer``). Histograms split them around ``le``."""

    def __init__(self, index: int, family: Family) -> None:
        self.index = index
        self.sample = f"{family.name}_total" if family.type == "counter" else family.name
        context = _context_of(family)
        own, ordered = _own_labels(family.name, family.labels, context)
        end = "," if context else ""
        self.labels = _writer(own, ordered, end)
        # The common case, written inline by _Lines.samples: one own label.
        self.single = (f'{own[0]}="', f'"{end}') if len(own) == 1 else None
        before_le = [label for label in ordered if label < "le"]
        self.head = _writer(own, before_le, ",")
        self.tail = _writer(own, ordered[len(before_le) :], ",")


_SHAPES: dict[str, _Shape] = {family.name: _Shape(index, family) for index, family in enumerate(FAMILIES)}


class _Lines:
    """Sample lines being rendered, per family. ``context`` is the rendered shared labels (a workflow's
    or a workspace's); a key gives the family's other labels: their value, or a tuple of them in the
    table's order (as the snapshots key their mappings)."""

    def __init__(self) -> None:
        self.by_family: list[list[str]] = [[] for _ in FAMILIES]

    def gauge(self, family: Family, context: str, value: object, key: object = None) -> None:
        text = number(value)
        if text is not None:
            shape = _SHAPES[family.name]
            self.by_family[shape.index].append(f"{shape.sample}{{{shape.labels(key)}{context}}} {text}\n")

    def gauges(self, family: Family, context: str, values: Mapping[Any, object]) -> None:
        self.samples(family, context, values, number)

    def counters(self, family: Family, context: str, values: Mapping[Any, object]) -> None:
        self.samples(family, context, values, _count)

    def samples(
        self,
        family: Family,
        context: str,
        values: Mapping[Any, object],
        exported: Callable[[object], str | None],
    ) -> None:
        """One sample per item of ``values``, key -> value, if the value can be exported."""
        shape = _SHAPES[family.name]
        lines = self.by_family[shape.index]
        sample = shape.sample
        if shape.single is not None:
            name, end = shape.single
            for key, value in values.items():
                text = exported(value)
                if text is not None:
                    lines.append(f"{sample}{{{name}{escape(key)}{end}{context}}} {text}\n")
            return
        labels = shape.labels
        for key, value in values.items():
            text = exported(value)
            if text is not None:
                lines.append(f"{sample}{{{labels(key)}{context}}} {text}\n")

    def histograms(self, family: Family, context: str, values: Mapping[Any, HistogramSnapshot]) -> None:
        shape = _SHAPES[family.name]
        for key, histogram in values.items():
            head = shape.head(key)
            tail = shape.tail(key) + context
            _histogram(self.by_family[shape.index], family.name, head, tail, histogram)

    def chunks(self) -> Chunks:
        return tuple(encode("".join(lines)) if lines else b"" for lines in self.by_family)


def _pair(label: str, value: object) -> str:
    return f'{label}="{escape(value)}"'


def workspace_label(name: str) -> str:
    """The rendered shared labels of a workspace's series."""
    return _pair(*WORKSPACE, name)


#: The labels a workflow adds to its workspace's, written from (uid, name).
_WORKFLOW_LABELS = _writer(*_own_labels("a workflow's labels", WORKFLOW, WORKSPACE), ",")


def _workflow_labels(workspace: str, workflow: WorkflowSnapshot) -> str:
    """The rendered shared labels of a workflow's series (``workspace`` is ``workspace_label``'s)."""
    return _WORKFLOW_LABELS((workflow.uid, workflow.name)) + workspace


def render_workflow(workspace: str, workflow: WorkflowSnapshot) -> Chunks:
    """Every series of one workflow but needs-action (capped per workspace). ``workspace`` is the
    workspace's rendered label (``workspace_label``)."""
    lines = _Lines()
    labels = _workflow_labels(workspace, workflow)
    lines.gauges(RUNS, labels, workflow.runs_by_status)
    lines.gauges(RUNS_BY_API_STATUS, labels, workflow.runs_by_api_status)
    lines.gauge(RUNS_POSTPONED, labels, workflow.postponed)
    lines.counters(STATUS_CHANGES, labels, workflow.status_changes)
    lines.counters(RUN_FAILURES, labels, workflow.failures)  # run errors
    lines.histograms(RUN_DURATION, labels, workflow.durations)
    oldest = workflow.oldest_running_start
    age = 0.0
    if oldest is not None and workflow.read_at is not None:
        age = max(0.0, workflow.read_at - oldest)
    lines.gauge(MAX_AGE, labels, age)
    if oldest is not None:
        lines.gauge(OLDEST_START, labels, oldest)
    lines.gauges(LAST_STATUS, labels, workflow.last_status_time)
    if workflow.last_success is not None:
        lines.gauge(WORKFLOW_LAST_SUCCESS, labels, workflow.last_success)
    return lines.chunks()


def render_workspace_own(workspace: str, snapshot: WorkspaceSnapshot, part: Part = WHOLE) -> Chunks:
    """The series of a workspace that are not per workflow, and its needs-action runs. For a workspace
    split by workflow (``part``), this shard's own values carry its ``shard`` label, and only the
    workspace's owner shard exports its workflow count (families.PER_SHARD)."""
    lines = _Lines()
    needing = [(workflow, run) for workflow in snapshot.workflows for run in workflow.needs_action]
    for workflow, run in newest_first(
        needing, snapshot.needs_action_limit, lambda item: item[1].since, lambda item: item[1].uid
    ):
        key = (run.status, run.uid, run.name, run.error)
        lines.gauge(NEEDS_ACTION, _workflow_labels(workspace, workflow), 1, key)
    own = f"{_pair(SHARD, part.shard)},{workspace}" if part.split else workspace
    api = snapshot.api
    lines.counters(API_REQUESTS, own, api.requests)
    lines.counters(API_FAILURES, own, api.failures)
    lines.counters(API_RATE_LIMITED, own, api.rate_limited)
    lines.histograms(API_DURATION, own, api.durations)
    lines.gauge(RETRY_AFTER, own, api.retry_after)
    lines.gauge(UP, own, 1 if snapshot.up else 0)
    if snapshot.last_success is not None:
        lines.gauge(LAST_POLL_SUCCESS, own, snapshot.last_success)
    if snapshot.last_poll_duration is not None:
        lines.gauge(POLL_DURATION, own, snapshot.last_poll_duration)
    lines.counters(POLL_ERRORS, own, snapshot.poll_errors)
    lines.counters(RUNS_SKIPPED, own, snapshot.runs_skipped)
    if not part.split:
        lines.gauge(WORKFLOWS, workspace, len(snapshot.workflows))
    elif part.owner and snapshot.workflows_tracked is not None:
        lines.gauge(WORKFLOWS, workspace, snapshot.workflows_tracked)
    lines.samples(STATE_SAVE_ERRORS, own, {None: snapshot.state_save_errors}, _count)
    _render_health(lines, workspace, snapshot)  # the owner shard's only: it alone reads them
    return lines.chunks()


# push (#16)
def render_push(figures: PushFigures) -> Chunks:
    """The push families (only when push is on): every workspace's, and the ``""`` workspace's
    unknown-workspace count."""
    lines = _Lines()
    by_workspace: dict[str, dict[str, int]] = {}
    for (workspace, outcome), count in figures.requests.items():
        by_workspace.setdefault(workspace, {})[outcome] = count
    for workspace, counts in by_workspace.items():
        lines.counters(PUSH_REQUESTS, workspace_label(workspace), counts)
    for workspace, applied in figures.applied.items():
        label = workspace_label(workspace)
        lines.counters(PUSH_APPLIED, label, {None: applied})
        lines.counters(PUSH_MISSED, label, {None: figures.missed.get(workspace, 0)})
        last = figures.last_event.get(workspace)
        if last is not None:
            lines.gauge(PUSH_LAST_EVENT, label, last)
        histogram = figures.apply_seconds.get(workspace)
        if histogram is not None:
            lines.histograms(PUSH_APPLY, label, {None: histogram})
    return lines.chunks()


def _render_health(lines: _Lines, workspace: str, snapshot: WorkspaceSnapshot) -> None:
    """Credits and account health (issue 17)."""
    credits = snapshot.credits
    if credits is not None:
        for family, value in (
            (CREDITS_REMAINING, credits.remaining),
            (CREDITS_LIMIT, credits.limit),
            (CREDITS_USED, credits.used),
            (CREDITS_PERIOD_END, credits.period_end),
        ):
            if value is not None:
                lines.gauge(family, workspace, value)
        if credits.plan:
            lines.gauge(WORKSPACE_INFO, workspace, 1, credits.plan)
    for account in snapshot.accounts:
        key = (account.integration, account.uid)
        if account.valid is not None:
            lines.gauge(ACCOUNT_VALID, workspace, 1 if account.valid else 0, (*key, account.name))
        for limit in account.limits:
            for family, value in (
                (ACCOUNT_LIMIT_USED, limit.used),
                (ACCOUNT_LIMIT, limit.value),
                (ACCOUNT_LIMIT_RESET, limit.reset),
            ):
                if value is not None:
                    lines.gauge(family, workspace, value, (*key, limit.name))
        if account.queued is not None:
            lines.gauge(ACCOUNT_INPUTS_QUEUED, workspace, account.queued, key)
    lines.counters(SIDE_READ_ERRORS, workspace, snapshot.side_errors)
    lines.counters(SIDE_READ_SKIPPED, workspace, snapshot.side_skipped)


def join_workspace(workflows: Iterable[Chunks], own: Chunks) -> Fragments:
    """A workspace's lines of every family: its workflows' chunks (in order), then its own."""
    parts: list[list[bytes]] = [[] for _ in FAMILIES]
    for chunks in (*workflows, own):
        for family, chunk in enumerate(chunks):
            if chunk:
                parts[family].append(chunk)
    return tuple(map(tuple, parts))


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
_BUILD_INFO.gauge(BUILD_INFO, "", 1, (__version__, platform.python_version()))
BUILD_INFO_LINE = _BUILD_INFO.chunks()[_SHAPES[BUILD_INFO.name].index]


def _web_config_reload_lines() -> bytes:
    lines = _Lines()
    lines.counters(WEB_CONFIG_RELOADS, "", dict(sorted(WEB_CONFIG_RELOAD_COUNTS.items())))
    return lines.chunks()[_SHAPES[WEB_CONFIG_RELOADS.name].index]


def shard_info_line(sharding: Sharding) -> bytes:
    """The ``captaindata_exporter_shard_info`` sample of this process."""
    lines = _Lines()
    lines.gauge(SHARD_INFO, "", 1, (str(sharding.shard), str(sharding.total)))
    return lines.chunks()[_SHAPES[SHARD_INFO.name].index]


UNSHARDED_INFO_LINE = shard_info_line(Sharding())


def assemble(
    workspaces: Sequence[Fragments], openmetrics: bool, shard_info: bytes = UNSHARDED_INFO_LINE
) -> bytes:
    """The whole exposition: each family that has samples, its header, then every workspace's chunk."""
    headers = OPENMETRICS_HEADERS if openmetrics else TEXT_HEADERS
    process = {
        _SHAPES[BUILD_INFO.name].index: BUILD_INFO_LINE,
        _SHAPES[WEB_CONFIG_RELOADS.name].index: _web_config_reload_lines(),
        _SHAPES[SHARD_INFO.name].index: shard_info,
    }
    body: list[bytes] = []
    for family, header in enumerate(headers):
        line = process.get(family)
        chunks = [line] if line is not None else [chunk for ws in workspaces for chunk in ws[family]]
        if chunks:
            body.append(header)
            body.extend(chunks)
    if openmetrics:
        body.append(b"# EOF\n")
    return b"".join(body)


def render(
    snapshots: Sequence[WorkspaceSnapshot],
    openmetrics: bool,
    parts: Mapping[str, Part] | None = None,
    sharding: Sharding | None = None,
    push: PushFigures | None = None,
) -> bytes:
    """Everything at once, without caches (tests and benchmarks); ``push`` when push is on."""
    joined = []
    for snapshot in snapshots:
        label = workspace_label(snapshot.name)
        flows = [render_workflow(label, workflow) for workflow in snapshot.workflows]
        part = (parts or {}).get(snapshot.name, WHOLE)
        joined.append(join_workspace(flows, render_workspace_own(label, snapshot, part)))
    if push is not None:
        joined.append(join_workspace((), render_push(push)))
    return assemble(joined, openmetrics, shard_info_line(sharding or Sharding()))
