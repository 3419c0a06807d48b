"""The node benchmark's plots: lookup latency percentiles by clients, accept-to-anchor latency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit import Section, percentile

LOOKUP_PLOT = "lookup-latency.png"
ANCHOR_PLOT = "anchor-latency.png"
#: The targets of the node's headline rows (scripts/benchkit/node.py), drawn as guides.
LOOKUP_P99_TARGET_MS = 100.0
ANCHOR_P50_TARGET_S = 2.0
PERCENTILES = (50, 90, 99)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lookups(figures: Any) -> dict[int, list[float]]:
    """Clients -> latencies (s) of one database's figures, only those with answers."""
    lookups = getattr(figures, "lookups", None) or {}
    return {int(n): list(lat) for n, lat in sorted(lookups.items()) if lat}


def _latency(figures: Any) -> list[float]:
    return list(getattr(figures, "latency", None) or [])


def lookup_plot(results: Sequence[Any], plot_dir: Path) -> Path | None:
    """p50/p90/p99 lookup latency (ms) against concurrent clients, one line per percentile
    (and database, when more than one measured lookups); None when none did."""
    measured = [(getattr(f, "database", "?"), _lookups(f)) for f in results]
    measured = [(db, lookups) for db, lookups in measured if lookups]
    if not measured:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    styles = ("-", "--", ":", "-.")
    markers = {50: "o", 90: "s", 99: "^"}
    clients: set[int] = set()
    drawn: list[float] = []
    for i, (database, lookups) in enumerate(measured):
        xs = list(lookups)
        clients.update(xs)
        for q in PERCENTILES:
            ys = [percentile(lookups[n], q) * 1000 for n in xs]
            drawn += ys
            label = f"p{q}" if len(measured) == 1 else f"{database}: p{q}"
            ax.plot(xs, ys, linestyle=styles[i % len(styles)], marker=markers[q], label=label)
    ax.axhline(LOOKUP_P99_TARGET_MS, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        f"p99 target ≤ {LOOKUP_P99_TARGET_MS:g} ms",
        (min(clients), LOOKUP_P99_TARGET_MS),
        textcoords="offset points",
        xytext=(2, 4),
        color="grey",
        fontsize=8,
    )
    if max(clients) >= 10 * min(clients):
        ax.set_xscale("log")
    ax.set_xticks(sorted(clients))
    ax.set_xticklabels([str(n) for n in sorted(clients)])
    ax.minorticks_off()
    if max(drawn) > 20 * min(drawn):  # queueing at many clients: keep the low end readable
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("lookup latency, ms")
    title = "Customer lookup latency with verification"
    if len(measured) == 1:
        title += f" ({measured[0][0]})"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / LOOKUP_PLOT
    fig.savefig(path)
    plt.close(fig)
    return path


def anchor_plot(results: Sequence[Any], plot_dir: Path) -> Path | None:
    """The accept-to-anchored latency distribution: histogram and empirical CDF with its
    p50/p90/p99 marked; None when no database measured it."""
    measured = [(getattr(f, "database", "?"), _latency(f)) for f in results]
    measured = [(db, lat) for db, lat in measured if lat]
    if not measured:
        return None
    plt = _pyplot()
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for database, latency in measured:
        ordered = sorted(latency)
        n = len(ordered)
        line = cdf.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=database)
        colour = line[0].get_color()
        hist.hist(ordered, bins=min(40, max(5, n // 5)), alpha=0.6, color=colour, label=database)
        for q in PERCENTILES:
            value = percentile(ordered, q)
            cdf.plot([value], [q / 100], "o", color=colour)
            cdf.annotate(
                f"p{q} {value:.2f} s",
                (value, q / 100),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=8,
                color=colour,
            )
    for ax in (hist, cdf):
        ax.axvline(ANCHOR_P50_TARGET_S, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("seconds from accepted (the node's answer) to anchored")
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
    hist.set_ylabel("events")
    hist.set_title("Accepted → anchored: distribution")
    cdf.set_ylabel("fraction of events anchored")
    cdf.set_ylim(0, 1.02)
    cdf.set_title(f"Empirical CDF (dashed: p50 target ≤ {ANCHOR_P50_TARGET_S:g} s)")
    if len(measured) > 1:
        hist.legend()
        cdf.legend(loc="lower right")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / ANCHOR_PLOT
    fig.savefig(path)
    plt.close(fig)
    return path


def attach_node_plots(
    results: Sequence[Any], sections: list[Section], plot_dir: Path
) -> list[Path]:
    """Draw the node plots and add each to the node section it illustrates (by title: the
    one about anchoring, the one about lookups; else the last node section, or a section of
    its own when there is none). Returns the plots written."""
    written: list[Path] = []
    for draw, keyword in ((anchor_plot, "anchor"), (lookup_plot, "lookup")):
        path = draw(results, plot_dir)
        if path is None:
            continue
        written.append(path)
        home = next((s for s in sections if keyword in s.title.lower()), None)
        if home is None:
            if not sections:
                sections.append(Section("The node's latency plots", ""))
            home = sections[-1]
        home.plots.append(path)
    return written
