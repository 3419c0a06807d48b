"""Parts of the benchmark (scripts/bench.py): each measures one thing and returns a Section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """One part of docs/benchmarks.md: its heading, its Markdown body (tables and what they
    show), the headline figures for the summary table, and the PNG plots it wrote."""

    title: str
    markdown: str
    #: (what, measured, target, met) rows for the summary; ``met`` is None without a target.
    headline: list[tuple[str, str, str, bool | None]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned."""

    def cell(v: object) -> str:
        return str(v)

    lines = ["| " + " | ".join(header) + " |"]
    aligns = []
    for i in range(len(header)):
        numeric = rows and all(isinstance(r[i], int | float) for r in rows)
        aligns.append("---:" if numeric else "---")
    lines.append("| " + " | ".join(aligns) + " |")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
