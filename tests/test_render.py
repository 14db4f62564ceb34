"""The renderer against prometheus_client's parsers and writers and promtool, hostile names included,
and Published's caching: per workflow, per workspace, per format."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import math
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest as prometheus_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as prometheus_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.families import FAMILIES, PER_SHARD, SHARD
from exporter.published import Published
from exporter.push.stats import PushFigures, PushStats
from exporter.render import render
from exporter.sharding import Part, Sharding
from exporter.snapshot import HistogramSnapshot, WorkspaceSnapshot
from tests.support.snapshots import NOW, big_workspace, workflow, workspace

HOSTILE_NAMES = [
    "plain",
    'quote " inside',
    "back\\slash \\n not a newline",
    "new\nline",
    "lone \ud800 surrogate and \udfff",
    "emoji 🚀 and é",
    "braces } { , = # EOF",
    "carriage\rreturn\ttab\x00nul\u2028",
    "",
]


def exported(name: str) -> str:
    """What a name becomes: lone surrogates are replaced."""
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in name)


def push_figures(name: str) -> PushFigures:
    """push (#16): every push family with samples, under the hostile workspace name too."""
    stats = PushStats([name, "second"], now=lambda: 1_700_000_000.0)
    stats.count(name, "accepted")
    stats.count("not configured", "accepted")
    stats.applied(name, 0.2)
    stats.missed("second")
    return stats.figures()


def snapshots(name: str) -> list[WorkspaceSnapshot]:
    flows = (workflow("wf-1", name), workflow("wf-2", "other", runs=0, oldest_running_start=None))
    return [workspace(name, flows), workspace("second", (workflow("wf-3", name),))]


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def rewritten(metrics: list[Metric], openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    if openmetrics:
        return prometheus_openmetrics(registry)  # type: ignore[no-untyped-call,no-any-return]
    return prometheus_text(registry)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_text_parses_and_prometheus_client_writes_the_same_bytes(name: str) -> None:
    body = render(snapshots(name), openmetrics=False, push=push_figures(name))
    families = list(parse_text(body.decode()))
    assert rewritten(families, openmetrics=False) == body
    runs = next(family for family in families if family.name == "captaindata_runs")
    assert {sample.labels["workflow"] for sample in runs.samples} == {exported(name), "other"}
    assert {family.name for family in families} == {family.name for family in FAMILIES}


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_openmetrics_parses_and_prometheus_client_writes_the_same_bytes(name: str) -> None:
    body = render(snapshots(name), openmetrics=True, push=push_figures(name))
    families = list(parse_openmetrics(body.decode()))  # type: ignore[no-untyped-call]
    assert rewritten(families, openmetrics=True) == body
    assert body.endswith(b"# EOF\n")
    by_name = {family.name: family for family in families}
    assert by_name["captaindata_run_duration_seconds"].unit == "seconds"
    assert by_name["captaindata_workflow_last_success_timestamp_seconds"].unit == "seconds"
    assert by_name["captaindata_runs"].unit == ""
    assert by_name["captaindata_runs_skipped"].type == "counter"
    assert not [s for f in families for s in f.samples if s.name.endswith("_created")]
    needing = by_name["captaindata_run_needs_action"].samples
    assert {sample.labels["run_name"] for sample in needing} >= {f"{exported(name)} run"}


def test_the_body_follows_the_metric_table() -> None:
    """Every family in the table's order, with its type, unit and labels, and label values from its
    vocabularies (the test snapshots use only values the exporter emits)."""
    body = render(snapshots("plain"), openmetrics=True, push=push_figures("plain"))
    families = list(parse_openmetrics(body.decode()))  # type: ignore[no-untyped-call]
    assert [(f.name, f.type, f.unit) for f in families] == [(f.name, f.type, f.unit) for f in FAMILIES]
    for parsed, declared in zip(families, FAMILIES, strict=True):
        assert parsed.samples, declared.name
        for sample in parsed.samples:
            assert set(sample.labels) - {"le"} == set(declared.labels), sample
            for label, values in declared.vocab.items():
                assert sample.labels[label] in values, sample


@pytest.mark.parametrize("owner", [True, False])
def test_a_split_workspace_adds_the_shard_label_to_exactly_the_per_shard_families(owner: bool) -> None:
    """On a workspace split by workflow (families.PER_SHARD): the shard's own series carry ``shard``,
    every other family its declared labels only; captaindata_workflows comes from the owner shard."""
    part = Part(shard=1, total=3, split=True, owner=owner)
    split = dataclasses.replace(snapshots("plain")[0], workflows_tracked=5)  # the whole workspace's count
    body = render(
        [split],
        openmetrics=True,
        parts={"plain": part},
        sharding=Sharding(shard=1, total=3),
        push=push_figures("plain"),
    )
    families = {f.name: f for f in parse_openmetrics(body.decode())}  # type: ignore[no-untyped-call]
    per_shard = {family.name for family in PER_SHARD}
    for declared in FAMILIES:
        parsed = families.get(declared.name)
        if parsed is None:
            assert (declared.name, owner) == ("captaindata_workflows", False)
            continue
        expected = set(declared.labels) | ({SHARD} if declared.name in per_shard else set())
        for sample in parsed.samples:
            assert set(sample.labels) - {"le"} == expected, sample
            if declared.name in per_shard:
                assert sample.labels[SHARD] == "1"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_promtool_accepts_the_text_format(name: str) -> None:
    # promtool check metrics reads the text format only (an OpenMetrics body is checked by the parser).
    body = render(snapshots(name), openmetrics=False)
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    broken = body.replace(b"# TYPE captaindata_up gauge", b"# TYPE captaindata_up counter")
    assert subprocess.run(["promtool", "check", "metrics"], input=broken, capture_output=True).returncode != 0


NAN, INF = math.nan, math.inf


def non_finite() -> list[WorkspaceSnapshot]:
    bad_histogram = HistogramSnapshot((60.0, 300.0), (1, 2, 2), NAN, 2)
    flow = workflow(
        "wf-bad",
        "bad",
        oldest_running_start=-INF,
        read_at=NAN,
        last_status_time={"running": INF, "finished": NOW},
        last_success=NAN,
        status_changes={"running": NAN, "finished": -1, "warning": 2},
        durations={
            "finished": bad_histogram,
            "warning": HistogramSnapshot((60.0, 300.0), (3, 2, 5), 10.0, 5),  # not cumulative
            "stopped": HistogramSnapshot((60.0, INF), (1, 1, 1), 10.0, 1),
            "shutdown": HistogramSnapshot((60.0, 300.0), (1, 1, 1), 30.0, 99),  # count from +Inf
        },
    )
    base = workspace("ws", (flow,), last_poll_duration=INF, last_success=-NAN)
    return [dataclasses.replace(base, api=dataclasses.replace(base.api, retry_after=INF))]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_nothing_non_finite_reaches_a_sample(openmetrics: bool) -> None:
    body = render(non_finite(), openmetrics=openmetrics).decode()
    parse: Any = parse_openmetrics if openmetrics else parse_text
    samples = {(s.name, s.labels.get("status", "")): s.value for f in parse(body) for s in f.samples}
    assert all(math.isfinite(value) for value in samples.values())
    assert "NaN" not in body
    assert "Inf" not in body.replace('le="+Inf"', "")
    assert ("captaindata_running_run_oldest_start_timestamp_seconds", "") not in samples
    assert ("captaindata_workflow_last_status_timestamp_seconds", "running") not in samples
    assert samples[("captaindata_workflow_last_status_timestamp_seconds", "finished")] == NOW
    assert ("captaindata_run_status_changes_total", "running") not in samples
    assert ("captaindata_run_status_changes_total", "finished") not in samples
    assert samples[("captaindata_run_status_changes_total", "warning")] == 2
    assert samples[("captaindata_running_run_max_age_seconds", "")] == 0
    durations = {status for name, status in samples if name.startswith("captaindata_run_duration")}
    assert durations == {"shutdown"}
    assert samples[("captaindata_run_duration_seconds_count", "shutdown")] == 1
    assert ("captaindata_api_retry_after_seconds", "") not in samples
    assert ("captaindata_poll_duration_seconds", "") not in samples


async def test_each_format_renders_once_per_publish_and_gzip_matches() -> None:
    published = Published(["a", "b"])
    before = parse_text((await published.exposition(openmetrics=False, gzip=False)).decode())
    assert {
        s.labels["workspace"]: s.value for f in before for s in f.samples if s.name == "captaindata_up"
    } == {
        "a": 0,
        "b": 0,
    }
    assert not published.ready
    published.publish(workspace("a", (workflow("wf-1", "one"),)))
    published.publish(workspace("b", (workflow("wf-2", "two"),)))
    assert published.ready
    text = await published.exposition(openmetrics=False, gzip=False)
    assert await published.exposition(openmetrics=False, gzip=False) is text  # cached
    assert gzip.decompress(await published.exposition(openmetrics=False, gzip=True)) == text
    openmetrics = await published.exposition(openmetrics=True, gzip=False)
    assert gzip.decompress(await published.exposition(openmetrics=True, gzip=True)) == openmetrics
    assert text == render(published.workspaces(), openmetrics=False)
    assert openmetrics == render(published.workspaces(), openmetrics=True)
    published.publish(workspace("a", (workflow("wf-1", "renamed"),)))
    again = await published.exposition(openmetrics=False, gzip=False)
    assert again != text
    assert again == render(published.workspaces(), openmetrics=False)
    assert [s.name for s in published.workspaces()] == ["a", "b"]


async def test_a_publish_rerenders_only_what_changed() -> None:
    published = Published(["a", "b"])
    one, two = workflow("wf-1", "one"), workflow("wf-2", "two")
    published.publish(workspace("a", (one, two)))
    published.publish(workspace("b", (workflow("wf-3", "three"),)))
    await published.exposition(openmetrics=False, gzip=False)
    chunks_b = published._workspace_chunks["b"]
    chunks_two = published._workflow_chunks["a"]["wf-2"]
    published.publish(workspace("a", (dataclasses.replace(one, version=one.version + 10**9, name="1"), two)))
    body = await published.exposition(openmetrics=True, gzip=False)
    assert published._workspace_chunks["b"] is chunks_b
    assert published._workflow_chunks["a"]["wf-2"] is chunks_two
    assert published._workflow_chunks["a"]["wf-1"] is not chunks_two
    assert body == render(published.workspaces(), openmetrics=True)
    published.publish(workspace("a", (two,)))  # wf-1 deleted: its series and its cache go
    body = await published.exposition(openmetrics=False, gzip=False)
    assert set(published._workflow_chunks["a"]) == {"wf-2"}
    assert b'workflow_uid="wf-1"' not in body


async def test_a_big_format_in_use_is_refreshed_after_a_publish_and_no_other() -> None:
    published = Published(["big"], render_gap=0.0)
    snapshot = big_workspace("big", 40)
    published.publish(snapshot)
    first = await published.exposition(openmetrics=True, gzip=True)
    published.publish(
        dataclasses.replace(snapshot, version=snapshot.version + 10**9, last_poll_duration=77.0)
    )
    for _ in range(100):  # the refresh starts on the loop's next turns, without any scrape
        if published._renders:
            break
        await asyncio.sleep(0)
    await asyncio.gather(*(task for _, task in published._renders.values()))
    fresh = await published.exposition(openmetrics=True, gzip=True)
    assert published._bodies[(True, True)][1] is fresh
    assert fresh != first
    assert b'captaindata_poll_duration_seconds{workspace="big"} 77.0' in gzip.decompress(fresh)
    assert (False, False) not in published._bodies  # nobody asked for the text format
    assert (False, True) not in published._bodies


async def test_big_renders_start_at_most_once_per_gap() -> None:
    published = Published(["big"], render_gap=3600.0)
    snapshot = big_workspace("big", 40)
    published.publish(snapshot)
    first = await published.exposition(openmetrics=False, gzip=False)
    published.publish(dataclasses.replace(snapshot, version=snapshot.version + 10**9, up=False))
    assert await published.exposition(openmetrics=False, gzip=False) is first
    assert not published._renders
    assert set(published._timers) == {(False, False)}  # it renders once the gap has passed
    published._timers.pop((False, False)).cancel()
