"""The metric table (exporter/families.py) is the contract, checked as kube-state-metrics checks its docs:
docs/metrics.md lists exactly its families, with the same types, labels (in the table's order), stability
and label values; /metrics emits exactly what it declares, and only the values it declares; a stable
metric's name, type and labels never change without a note in CHANGELOG.md."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.families import FAMILIES, PER_SHARD, PUSH_FAMILIES, Family
from exporter.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"
CHANGELOG = ROOT / "CHANGELOG.md"
STABLE = Path(__file__).resolve().parent / "stable_metrics.yaml"
GOLDEN_METRICS = Path(__file__).resolve().parent / "golden" / "metrics.txt"
ROW = re.compile(r"^\| `(captaindata_[a-z_]+)` \| ([a-z]+) \| ([a-z_, ]+) \| ([a-z]+) \| (.+) \|$")
LABEL_ROW = re.compile(r"^\| `([a-z_]+)` \| (.+) \|$")
WORD = re.compile(r"`([a-z][a-z0-9_]*)`")


@dataclass(frozen=True)
class Row:
    type: str
    labels: tuple[str, ...]
    stability: str
    meaning: str


def shown(family: Family) -> str:
    """The name the doc and the text format show: counters with ``_total``."""
    return f"{family.name}_total" if family.type == "counter" else family.name


def parse(doc: str) -> tuple[dict[str, Row], dict[str, str], list[str]]:
    """(metric rows by shown name, "Labels used throughout" rows by label, metric lines that do not parse)."""
    rows: dict[str, Row] = {}
    labels: dict[str, str] = {}
    broken = []
    for line in doc.splitlines():
        match = ROW.match(line)
        if match:
            name, kind, names, stability, meaning = match.groups()
            rows[name] = Row(kind, tuple(label.strip() for label in names.split(",")), stability, meaning)
        elif line.startswith("| `captaindata_"):
            broken.append(line)
        elif (label := LABEL_ROW.match(line)) and label.group(1) != "series":
            labels[label.group(1)] = label.group(2)
    return rows, labels, broken


def shared_vocabularies() -> dict[str, set[str]]:
    """label -> every value it takes in any family."""
    values: dict[str, set[str]] = {}
    for family in FAMILIES:
        for label, vocab in family.vocab.items():
            values.setdefault(label, set()).update(vocab)
    return values


def problems(doc: str) -> list[str]:
    """Every way ``doc`` disagrees with the metric table."""
    rows, label_rows, broken = parse(doc)
    found = [f"a metric row without type, labels and stability: {line[:60]}" for line in broken]
    shared = shared_vocabularies()
    words = {name for family in FAMILIES for name in (family.name, shown(family), *family.labels)}
    for label, values in shared.items():
        if label in label_rows:
            missing = values - set(WORD.findall(label_rows[label]))
            if missing:
                found.append(f"label {label}: the doc's label table does not give {sorted(missing)}")
    for family in FAMILIES:
        row = rows.pop(shown(family), None)
        if row is None:
            found.append(f"{shown(family)}: no row (as {family.type} | {', '.join(family.labels)})")
            continue
        declared = Row(family.type, family.labels, family.stability, row.meaning)
        if row != declared:
            found.append(
                f"{shown(family)}: the doc says {row.type} | {', '.join(row.labels)} | {row.stability}"
            )
        if not family.vocab:
            continue
        mentioned = set(WORD.findall(row.meaning))
        for label, vocab in family.vocab.items():
            documented = label in label_rows and set(vocab) == shared[label]
            missing = set() if documented else set(vocab) - mentioned
            if missing:
                found.append(f"{shown(family)}: its row does not give the {label} values {sorted(missing)}")
        allowed = words.union(*family.vocab.values())
        if mentioned - allowed:
            found.append(
                f"{shown(family)}: its row names values it never takes: {sorted(mentioned - allowed)}"
            )
    found.extend(f"{name}: documented, but not in exporter/families.py" for name in rows)
    return found


def test_the_doc_matches_the_metric_table() -> None:
    assert problems(DOC.read_text()) == []


def detached_rows(doc: str) -> list[str]:
    """Table rows that Markdown does not render as rows: a row after a blank line without a header."""
    lines = doc.splitlines()
    found = []
    for index, line in enumerate(lines):
        starts = line.startswith("|") and (index == 0 or not lines[index - 1].startswith("|"))
        header = index + 1 < len(lines) and re.fullmatch(r"\|(?:-+\|)+", lines[index + 1].replace(" ", ""))
        if starts and not header:
            found.append(line[:60])
    return found


def test_every_row_of_the_doc_is_in_a_table() -> None:
    doc = DOC.read_text()
    assert detached_rows(doc) == []
    assert detached_rows(doc.replace("| `workflow_uid` |", "\n| `workflow_uid` |", 1))  # it can fail


def sharding_section(doc: str) -> str:
    return doc.split("\n## Sharding\n", 1)[1].split("\n## ", 1)[0]


def test_the_sharding_section_names_every_per_shard_family() -> None:
    """families.PER_SHARD carry a ``shard`` label on a split workspace: the doc must say which."""
    named = set(WORD.findall(sharding_section(DOC.read_text())))
    assert {shown(family) for family in PER_SHARD} - named == set()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("| `captaindata_up` | gauge |", "| `captaindata_up` | counter |"), "captaindata_up: the doc says"),
        (("| workspace, endpoint, code |", "| workspace, code, endpoint |"), "api_requests_total: the doc"),
        (
            ("| workspace, reason | experimental |", "| workspace, reason | stable |"),
            "runs_skipped_total: the doc",
        ),
        (("`partial_succeeded`, ", ""), "does not give the api_status values ['partial_succeeded']"),
        (("v3: `running`", "v3: `success`, `running`"), "names values it never takes: ['success']"),
        (("`invalid_timestamp` (", "(the timestamp "), "does not give the reason values"),
        (("`running`, `pending`, `finished`", "`running`, `finished`"), "label status: the doc's label"),
        (("| `captaindata_workflows` |", "| `captaindata_workflow` |"), "captaindata_workflow: documented"),
        (
            ("| `captaindata_poll_errors_total` |", "| `captaindata_poll_errors` |"),
            "poll_errors_total: no row",
        ),
    ],
)
def test_the_doc_check_can_fail(change: tuple[str, str], expected: str) -> None:
    doc = DOC.read_text()
    assert change[0] in doc
    found = problems(doc.replace(change[0], change[1], 1))
    assert any(expected in problem for problem in found), found


def emitted(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """metric (counters without _total) -> (type, label names), as an exposition shows them."""
    found = {}
    for family in text_string_to_metric_families(text):
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        found[family.name] = (family.type, frozenset(labels))
    return found


def declared(push: bool = False) -> dict[str, tuple[str, frozenset[str]]]:
    """The table's families; the push families only when push is on (tests/test_push_wire.py)."""
    return {
        family.name: (family.type, frozenset(family.labels))
        for family in FAMILIES
        if push or family not in PUSH_FAMILIES
    }


async def test_the_exporter_emits_what_the_table_declares(sim: Simulator, harness_for: Any) -> None:
    sim.add_workflow("wf-1", "A")
    now = time.time()
    sim.add_run("wf-1", "running", start_time=now - 100)
    moving = sim.add_run("wf-1", "pending")
    failing = sim.add_run("wf-1", "running", start_time=now - 100)  # run errors: counted by cause
    sim.add_run("wf-1", "warning", start_time=now - 100, finish_time=now)
    sim.add_fault("drop", count=1)
    sim.set_credits(500)  # credits and account health (issue 17)
    sim.add_account("Ann", uid="acct-1", queued=3)
    harness = harness_for()
    await harness.poll()
    sim.update_run(moving, "finished", start_time=now - 30, finish_time=now)
    sim.update_run(failing, "shutdown", finish_time=now)
    await harness.read_side()
    exposition = await harness.poll()
    assert emitted(exposition.text) == declared()


def test_the_golden_exposition_takes_only_declared_label_values() -> None:
    """The golden scenario (a v3 and a v4 workspace, every kind of failure) against the vocabularies."""
    text = re.sub(r"(?m)^([^#\n].*) \S+$", r"\1 0", GOLDEN_METRICS.read_text())  # masked, T0+...
    assert emitted(text) == declared()
    vocab = {family.name: family.vocab for family in FAMILIES}
    checked = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, values in vocab[family.name].items():
                assert sample.labels[label] in values, f"{sample.name}: {label}={sample.labels[label]!r}"
                checked += 1
    assert checked > 100


def changelog_mentions(name: str) -> bool:
    return f"`{name}`" in CHANGELOG.read_text() or f"`{name}_total`" in CHANGELOG.read_text()


def test_stable_metrics_change_only_with_a_changelog_note() -> None:
    """tests/stable_metrics.yaml pins every stable metric's type and labels. A stable metric of the table
    that is gone, changed, or new must be named in CHANGELOG.md (then update the pin in the same change)."""
    pinned: dict[str, dict[str, Any]] = yaml.safe_load(STABLE.read_text())
    stable = {name: kind for name, kind in declared().items() if name in stable_names()}
    for name, pin in pinned.items():
        now = stable.get(name)
        if now != (pin["type"], frozenset(pin["labels"])):
            assert changelog_mentions(name), f"stable metric {name} changed ({pin} -> {now}): CHANGELOG.md?"
    for name in stable.keys() - pinned.keys():
        assert changelog_mentions(name), f"new stable metric {name}: name it in CHANGELOG.md and pin it"


def stable_names() -> set[str]:
    return {family.name for family in FAMILIES if family.stability == "stable"}


def test_the_stability_check_can_fail() -> None:
    pinned: dict[str, dict[str, Any]] = yaml.safe_load(STABLE.read_text())
    assert set(pinned) == stable_names()
    assert set(pinned["captaindata_runs"]["labels"]) == {"workspace", "workflow_uid", "workflow", "status"}
    assert not changelog_mentions("captaindata_no_such_metric")
