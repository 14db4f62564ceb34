"""docs/metrics.md is the contract: it must list exactly what /metrics really emits, with the same types."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from exporter.simulator import Simulator

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(captaindata_[a-z_]+)` \| (gauge|counter|histogram) \| ([a-z_, ]+) \|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            rows[name.removesuffix("_total") if kind == "counter" else name] = (
                kind,
                frozenset(label.strip() for label in labels.split(",")),
            )
    return rows


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
