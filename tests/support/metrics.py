"""Read an exposition the way Prometheus would: with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Series:
    name: str
    labels: frozenset[tuple[str, str]]
    value: float

    def label(self, key: str) -> str:
        return dict(self.labels)[key]


class ScrapedMetrics:
    """A scraped exposition, parsed (not to be confused with exporter.exposition, which renders one)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.series = [
            Series(sample.name, frozenset(sample.labels.items()), sample.value)
            for family in self.families.values()
            for sample in family.samples
        ]

    def find(self, name: str, **labels: str) -> list[Series]:
        wanted = set(labels.items())
        return [s for s in self.series if s.name == name and wanted <= s.labels]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        if len(found) != 1:
            raise AssertionError(f"expected one {name}{labels}, found {len(found)}: {found[:5]}")
        return found[0].value

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.find(name, **labels))

    def names(self) -> set[str]:
        return {s.name for s in self.series}
