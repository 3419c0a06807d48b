"""The performance benchmark in one run: gas per milestone, the node's figures, proof scaling.

Everything runs in one process on one fresh anvil started here: the gas benchmark
(ParcelProof checkpoints against a naive contract and EAS, scripts/benchkit/gas.py), the
node's bulk ingest, accept-to-anchor latency and customer lookups on PostgreSQL and SQLite
(scripts/benchkit/node.py), then proof generation and verification against log size
(scripts/benchkit/proofs.py). Each part's tables are printed as it finishes, then a summary
of every headline figure and the machine they were measured on. ``--write-docs`` writes the
whole of docs/benchmarks.md and its plots in docs/benchmarks/ (``make bench``); ``--smoke``
is the reduced run that checks the benchmark still works in well under a minute
(``make bench-smoke``; CI runs it from tests/bench/test_bench_smoke.py).

    .venv/bin/python scripts/bench.py --write-docs
    .venv/bin/python scripts/bench.py --smoke
    .venv/bin/python scripts/bench.py --only gas,proofs --out /tmp/bench
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from tests.conftest import PG_URL  # noqa: E402

from benchkit import Section, gas, node, plots, proofs, table  # noqa: E402
from parcelproof.chain import compile as solc  # noqa: E402
from parcelproof.chain.devnet import Anvil, anvil_binary  # noqa: E402
from parcelproof.core.errors import Error  # noqa: E402
from parcelproof.store.db import make_engine  # noqa: E402

DOCS = ROOT / "docs"
DOC_NAME = "benchmarks.md"
#: The record of the profiling work (hand-written: before/after of each hot spot removed).
PROFILE = Path(__file__).resolve().parent / "benchkit" / "profile.md"
PLOT_DIR_NAME = "benchmarks"  # next to the Markdown file; the page links benchmarks/<name>.png
PARTS = ("gas", "node", "proofs")
DATABASES = ("postgresql", "sqlite")
SUMMARY_HEADER = ("What", "Measured", "Target", "Met")
DEFAULT_SEED = 8  # the node part's default workload seed


@dataclass(frozen=True)
class Plan:
    """How much each part measures."""

    gas_sizes: tuple[int, ...] = gas.SIZES
    node_plan: node.NodePlan = field(default_factory=node.NodePlan)
    proof_sizes: tuple[int, ...] = (10**3, 10**4, 10**5, 10**6, 10**7)
    proof_samples: int = 1000


FULL = Plan()
SMOKE = Plan(gas_sizes=(1, 10), node_plan=node.SMOKE, proof_sizes=(1000, 5000), proof_samples=50)


class Refused(Exception):
    """The run cannot start: one line for the operator, no traceback."""


# --- the machine ----------------------------------------------------------------------------


def _proc_field(path: str, name: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def cpu() -> str:
    """CPU model (from /proc/cpuinfo) and how many CPUs this process may use."""
    model = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"
    count = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else count
    cpus = f"{usable} CPUs" if usable == count else f"{usable} of {count} CPUs usable"
    return f"{cpus}, {model}"


def ram() -> str:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "24589508 kB"
    if total is None:
        return "unknown"
    return f"{int(total.split()[0]) / 2**20:.1f} GiB"


def operating_system() -> str:
    pretty = None
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"')
    return f"{pretty or platform.system()}, kernel {platform.release()}"


def anvil_version() -> str:
    try:
        out = subprocess.run(
            [str(anvil_binary()), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (Error, OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e})"
    first = out.strip().splitlines()[0] if out.strip() else "unknown"
    return " ".join(first.replace("Version:", "").split())


def postgres_version(pg_url: str) -> str:
    """The server's version, asked over SQL; :class:`Refused` when it does not answer."""
    url = make_url(pg_url)
    probe = url.update_query_dict({"connect_timeout": "3"}).render_as_string(hide_password=False)
    engine = make_engine(probe)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())
    except Exception as e:  # any driver failure: the one line below says what to do
        reason = type(getattr(e, "orig", None) or e).__name__
        raise Refused(
            f"PostgreSQL at {url.host}:{url.port or 5432}/{url.database} is unreachable "
            f"({reason}): start it, or pass --pg-url"
        ) from e
    finally:
        engine.dispose()


# --- the run --------------------------------------------------------------------------------


@dataclass
class Run:
    """What one run measured, and the facts of where and how."""

    sections: list[Section] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    part_seconds: dict[str, float] = field(default_factory=dict)
    smoke: bool = False


def needs_postgres(parts: Sequence[str], databases: Sequence[str]) -> bool:
    return "proofs" in parts or ("node" in parts and "postgresql" in databases)


def preflight(parts: Sequence[str], databases: Sequence[str], pg_url: str) -> dict[str, str]:
    """Check what the selected parts need before anything long starts; the versions found."""
    versions: dict[str, str] = {}
    if "gas" in parts:
        try:
            versions["eas"] = gas.eas_version()
        except Error as e:
            raise Refused(str(e)) from e
    try:
        versions["solc"] = solc.compiler_version()
    except Error as e:
        if "gas" in parts:
            raise Refused(str(e)) from e
        versions["solc"] = f"unavailable ({e})"
    if "gas" in parts or "node" in parts:
        try:
            anvil_binary()
        except Error as e:
            raise Refused(str(e)) from e
    versions["anvil"] = anvil_version()
    if needs_postgres(parts, databases):
        versions["postgresql"] = postgres_version(pg_url)
    return versions


def show(section: Section) -> None:
    """A finished part, on the terminal."""
    print(f"\n## {section.title}\n\n{section.markdown}\n", flush=True)
    if section.headline:
        print(text_table(SUMMARY_HEADER, summary_rows([section])), flush=True)
    for plot in section.plots:
        print(f"  plot: {plot.name}", flush=True)


@contextlib.contextmanager
def chain(parts: Sequence[str]) -> Iterator[str]:
    """The run's one fresh anvil when a part needs a chain: its JSON-RPC URL ("" without)."""
    if "gas" not in parts and "node" not in parts:
        yield ""
        return
    try:
        anvil = Anvil().start()
    except Error as e:
        raise Refused(f"cannot start anvil: {e}") from e
    try:
        yield anvil.url
    finally:
        anvil.stop()


def measure(
    plan: Plan,
    parts: Sequence[str],
    *,
    databases: Sequence[str],
    pg_url: str,
    seed: int,
    plot_dir: Path,
    smoke: bool,
    log: Callable[[str], None] = print,
) -> Run:
    """Run the selected parts in order (gas, node, proofs), printing each as it finishes."""
    run = Run(smoke=smoke)

    def timed(name: str, started: float) -> None:
        run.part_seconds[name] = time.perf_counter() - started
        log(f"[{name}: {run.part_seconds[name]:.1f} s]")

    with chain(parts) as rpc_url:
        if "gas" in parts:
            log(f"gas per milestone at batches of {', '.join(map(str, plan.gas_sizes))} …")
            started = time.perf_counter()
            section = gas.run(rpc_url, sizes=plan.gas_sizes, plot_dir=plot_dir)
            timed("gas", started)
            run.sections.append(section)
            show(section)
        if "node" in parts:
            log(f"the node on {', '.join(databases)} …")
            started = time.perf_counter()
            results, sections = node.run(
                rpc_url,
                pg_url if "postgresql" in databases else None,
                databases=databases,
                plan=plan.node_plan,
                seed=seed,
                log=log,
            )
            plots.attach_node_plots(results, sections, plot_dir)
            timed("node", started)
            for section in sections:
                run.sections.append(section)
                show(section)
    if "proofs" in parts:
        log(f"proofs against log size, n = {', '.join(map(str, plan.proof_sizes))} …")
        started = time.perf_counter()
        section = proofs.run(
            plan.proof_sizes, pg_url=pg_url, plot_dir=plot_dir, samples=plan.proof_samples
        )
        timed("proofs", started)
        run.sections.append(section)
        show(section)
    return run


# --- reporting ------------------------------------------------------------------------------


def met(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def summary_rows(sections: Sequence[Section]) -> list[list[str]]:
    """Every section's headline rows: what | measured | target | met."""
    return [
        [what, measured, target or "—", met(ok)]
        for s in sections
        for what, measured, target, ok, *_ in s.headline
    ]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain-text columns for the terminal."""
    cells = [[str(c).replace("**", "") for c in row] for row in [list(header), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def machine_facts(
    versions: dict[str, str],
    *,
    started: datetime.datetime,
    wall_s: float,
    part_seconds: dict[str, float],
    command: str,
) -> list[tuple[str, str]]:
    """The machine and the run, as (what, value) rows."""
    facts = [
        ("CPU", cpu()),
        ("RAM", ram()),
        ("Operating system", operating_system()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
    ]
    if "postgresql" in versions:
        facts.append(("PostgreSQL", versions["postgresql"]))
    facts += [("anvil", versions.get("anvil", "not used")), ("solc", versions.get("solc", "—"))]
    if "eas" in versions:
        facts.append(("EAS contracts", versions["eas"]))
    facts += [
        ("Date", started.strftime("%Y-%m-%d %H:%M UTC")),
        ("Command", f"`{command}`"),
        (
            "Wall time",
            f"{wall_s:,.0f} s in all ("
            + ", ".join(f"{name} {s:,.0f} s" for name, s in part_seconds.items())
            + ")",
        ),
    ]
    return facts


def render(run: Run, plot_names: dict[Path, str]) -> str:
    """The whole of docs/benchmarks.md: title, how to reproduce, the summary, the machine,
    then every section with its plots (linked as ``benchmarks/<name>.png``)."""
    parts = [
        "# Benchmarks",
        "",
        "<!-- Generated by scripts/bench.py (`make bench`); edits here are overwritten. -->",
        "",
        "Reproduce with `make bench` (it runs `scripts/bench.py --write-docs`, which rewrites "
        "this page and its plots in `docs/benchmarks/`). Every figure on this page comes from "
        "one run of that script, on one fresh anvil it starts, on the machine described "
        "below; nothing is copied from another run or machine, except the closing record of "
        "the profiling work (`scripts/benchkit/profile.md`), which says how its figures were "
        "taken. Each section says what it measured and how; the summary collects their "
        "headline figures against the targets.",
    ]
    if run.smoke:
        parts += [
            "",
            "> Smoke run (`scripts/bench.py --smoke`): reduced sizes, to check that the "
            "benchmark works. These are not the published figures.",
        ]
    parts += [
        "",
        "## Summary",
        "",
        table(SUMMARY_HEADER, summary_rows(run.sections)),
        "",
        "## The machine and the run",
        "",
        table(("", ""), [[f"**{what}**", value] for what, value in run.facts]),
    ]
    for section in run.sections:
        parts += ["", f"## {section.title}"]
        if section.markdown.strip():
            parts += ["", section.markdown.strip()]
        for plot in section.plots:
            parts += ["", f"![{section.title}]({PLOT_DIR_NAME}/{plot_names[plot]})"]
    parts += ["", PROFILE.read_text(encoding="utf-8").strip()]
    return "\n".join(parts) + "\n"


def write_docs(run: Run, dest: Path) -> Path:
    """Write ``dest``/benchmarks.md and its plots into ``dest``/benchmarks/ (any PNG left
    there from an earlier run is removed first). Returns the Markdown file."""
    plot_dir = dest / PLOT_DIR_NAME
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots_ = [p for s in run.sections for p in s.plots]
    names: dict[Path, str] = {}
    for plot in plots_:
        name = plot.name
        if name in names.values():
            raise ValueError(f"two plots are named {name}")
        names[plot] = name
    staged = {plot: plot.read_bytes() for plot in plots_}  # plots may already live in plot_dir
    for old in plot_dir.glob("*.png"):
        old.unlink()
    for plot, data in staged.items():
        (plot_dir / names[plot]).write_bytes(data)
    doc = dest / DOC_NAME
    doc.write_text(render(run, names), encoding="utf-8")
    return doc


# --- the command ----------------------------------------------------------------------------


def _choices(value: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    wrong = [v for v in chosen if v not in allowed]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(
            f"{what}: {', '.join(wrong) or 'none given'}; choose from {', '.join(allowed)}"
        )
    return chosen


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[-4:]),
    )
    parser.add_argument(
        "--write-docs", action="store_true", help=f"write docs/{DOC_NAME} and docs/benchmarks/"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the reduced run (well under a minute)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"write {DOC_NAME} and {PLOT_DIR_NAME}/*.png here (default: a new temporary "
        "directory, unless --write-docs)",
    )
    parser.add_argument(
        "--only",
        type=lambda v: _choices(v, PARTS, "unknown part"),
        default=PARTS,
        help=f"comma-separated parts to run (default: {','.join(PARTS)})",
    )
    parser.add_argument(
        "--databases",
        type=lambda v: _choices(v, DATABASES, "unknown database"),
        default=DATABASES,
        help="comma-separated, for the node part; latency and lookups run on the first "
        f"(default: {','.join(DATABASES)})",
    )
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (default: %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="the node part's workload seed"
    )
    args = parser.parse_args(argv)
    if args.smoke and args.write_docs:
        parser.error(
            "--smoke does not write docs: its reduced figures are not the published ones "
            "(drop --write-docs, or use --out DIR)"
        )
    if args.write_docs and args.out is not None:
        parser.error("--write-docs writes docs/; --out writes elsewhere: choose one")
    if args.write_docs and set(args.only) != set(PARTS):
        parser.error(
            f"--write-docs needs every part in one run: docs/{DOC_NAME} is written whole "
            "(drop --only, or use --out DIR)"
        )
    return args


def command_line(args: argparse.Namespace) -> str:
    """The run's options as a command (the PostgreSQL URL without its password)."""
    words = ["scripts/bench.py"]
    words += ["--smoke"] if args.smoke else []
    words += ["--write-docs"] if args.write_docs else []
    if tuple(args.only) != PARTS:
        words += ["--only", ",".join(args.only)]
    if tuple(args.databases) != DATABASES:
        words += ["--databases", ",".join(args.databases)]
    if args.pg_url != PG_URL:
        words += ["--pg-url", make_url(args.pg_url).render_as_string(hide_password=True)]
    if args.seed != DEFAULT_SEED:
        words += ["--seed", str(args.seed)]
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows through pipes and tee
    plan = SMOKE if args.smoke else FULL
    parts = [p for p in PARTS if p in args.only]
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    command = command_line(args)
    with tempfile.TemporaryDirectory(prefix="parcelproof-bench-plots-") as staging:
        try:
            versions = preflight(parts, args.databases, args.pg_url)
            print(f"ParcelProof benchmark{' (smoke)' if args.smoke else ''}: {', '.join(parts)}")
            run = measure(
                plan,
                parts,
                databases=args.databases,
                pg_url=args.pg_url,
                seed=args.seed,
                plot_dir=Path(staging),
                smoke=args.smoke,
            )
        except Refused as e:
            print(f"bench: {e}", file=sys.stderr)
            return 1
        wall_s = time.perf_counter() - started
        run.facts = machine_facts(
            versions,
            started=started_at,
            wall_s=wall_s,
            part_seconds=run.part_seconds,
            command=command,
        )
        print("\n## Summary\n")
        print(text_table(SUMMARY_HEADER, summary_rows(run.sections)))
        print("\n## The machine and the run\n")
        width = max(len(what) for what, _ in run.facts)
        for what, value in run.facts:
            print(f"{what.ljust(width)}  {value.strip('`')}")
        if args.write_docs:
            dest = DOCS
        elif args.out is not None:
            dest = args.out
        else:
            dest = Path(tempfile.mkdtemp(prefix="parcelproof-bench-"))
        doc = write_docs(run, dest)
    print(f"\nwrote {doc} and {len(list((dest / PLOT_DIR_NAME).glob('*.png')))} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
