"""docs/metrics.md is the contract: it must list exactly what /metrics really emits, with the same types;
a stable metric's name, type and labels never change without a note in CHANGELOG.md."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from exporter.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"
CHANGELOG = ROOT / "CHANGELOG.md"
STABLE = Path(__file__).resolve().parent / "stable_metrics.yaml"
ROW = re.compile(
    r"^\| `(captaindata_[a-z_]+)` \| (gauge|counter|histogram) \| ([a-z_, ]+) \| (stable|experimental) \|"
)


def rows() -> dict[str, tuple[str, frozenset[str], str]]:
    """metric (counters without _total) -> (type, labels, stability)."""
    found = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels, stability = match.groups()
            found[name.removesuffix("_total") if kind == "counter" else name] = (
                kind,
                frozenset(label.strip() for label in labels.split(",")),
                stability,
            )
    return found


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    return {name: (kind, labels) for name, (kind, labels, _) in rows().items()}


async def test_docs_match_what_the_exporter_emits(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-1", "A")
    now = time.time()
    sim.add_run("wf-1", "running", start_time=now - 100)
    moving = sim.add_run("wf-1", "pending")
    sim.add_run("wf-1", "warning", start_time=now - 100, finish_time=now)
    sim.add_fault("drop", count=1)
    harness = harness_for()
    await harness.poll()
    sim.update_run(moving, "finished", start_time=now - 30, finish_time=now)
    exposition = await harness.poll()

    emitted: dict[str, tuple[str, frozenset[str]]] = {}
    for name, family in exposition.families.items():
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        emitted[name] = (family.type, frozenset(labels))
    assert emitted == documented()


def test_every_row_has_a_stability() -> None:
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| `captaindata_")]
    assert len(lines) == len(rows()) >= 20, "a metric row without type, labels and stability"


def changelog_mentions(name: str) -> bool:
    return f"`{name}`" in CHANGELOG.read_text() or f"`{name}_total`" in CHANGELOG.read_text()


def test_stable_metrics_change_only_with_a_changelog_note() -> None:
    """tests/stable_metrics.yaml pins every stable metric's type and labels. A stable metric that is gone,
    changed, or new must be named in CHANGELOG.md (then update the pin in the same change)."""
    pinned: dict[str, dict[str, Any]] = yaml.safe_load(STABLE.read_text())
    stable = {name: (kind, labels) for name, (kind, labels, level) in rows().items() if level == "stable"}
    for name, pin in pinned.items():
        now = stable.get(name)
        if now != (pin["type"], frozenset(pin["labels"])):
            assert changelog_mentions(name), f"stable metric {name} changed ({pin} -> {now}): CHANGELOG.md?"
    for name in stable.keys() - pinned.keys():
        assert changelog_mentions(name), f"new stable metric {name}: name it in CHANGELOG.md and pin it"


def test_the_stability_check_can_fail(tmp_path: Path) -> None:
    pinned: dict[str, dict[str, Any]] = yaml.safe_load(STABLE.read_text())
    assert "captaindata_runs" in pinned
    assert set(pinned["captaindata_runs"]["labels"]) == {"workspace", "workflow_uid", "workflow", "status"}
    assert not changelog_mentions("captaindata_no_such_metric")
