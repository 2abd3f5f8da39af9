"""Counters that survive their process: the last ``/metrics`` scrape of every incarnation.

A process killed on purpose loses its counters, so :class:`MetricsBook` keeps
the last scrape of every incarnation of every process and sums them.
"""

from __future__ import annotations

import re
from collections import defaultdict

from orchestrator.harness.processes import ManagedProcess

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class MetricsBook:
    """The last scrape of every incarnation of every process, summed on demand."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], dict[str, float]] = {}

    def record(self, process: ManagedProcess, values: dict[str, float] | None) -> None:
        """Keep ``values`` as the latest of ``process``'s current incarnation."""
        if values is not None:
            self._last[(process.name, process.incarnation)] = values

    def latest(self, process: ManagedProcess) -> dict[str, float]:
        """The latest scrape of ``process``'s current incarnation (empty if none)."""
        return self._last.get((process.name, process.incarnation), {})

    def total(self, metric: str, prefix: str = "") -> float:
        """``metric`` summed over its label sets and every incarnation whose name starts
        with ``prefix``."""
        return sum(
            value
            for (name, _), values in self._last.items()
            if name.startswith(prefix)
            for sample, value in values.items()
            if sample == metric or sample.startswith(metric + "{")
        )

    def by_label(self, metric: str, label: str, prefix: str = "") -> dict[str, float]:
        """``metric`` summed per value of ``label`` over every incarnation."""
        sums: dict[str, float] = defaultdict(float)
        for (name, _), values in self._last.items():
            if not name.startswith(prefix):
                continue
            for sample, value in values.items():
                if sample.startswith(metric + "{"):
                    labels = dict(_LABEL.findall(sample))
                    sums[labels.get(label, "")] += value
        return dict(sums)
