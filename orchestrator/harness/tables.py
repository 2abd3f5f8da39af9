"""Plain-text tables for the terminal: the CLI's listings and the tools' reports.

Here rather than in the CLI so that the benchmark's report can render them
without the tooling importing the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` under upper-cased ``headers``, columns padded; None prints as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def short_time(value: str | None) -> str | None:
    """``2026-11-24T07:01:02.123456+00:00`` -> ``07:01:02.123``."""
    if not value or "T" not in value:
        return value
    return value.split("T", 1)[1][:12]
