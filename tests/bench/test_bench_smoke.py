"""scripts/bench.py: the smoke run end to end (so the benchmark never rots), its refusals, and the
docs page and node plots it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench.py"
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402
from benchkit import Section, node, plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
#: Every kind of headline figure, as the summary names it.
HEADLINE_KINDS = {
    "gas": "gas per milestone",
    "ingest": "ingested per second",
    "anchored latency": "accepted → anchored",
    "lookup": "lookup p99",
    "verifications": "verifications per second",
}
SMOKE_PLOTS = {
    "gas-per-milestone.png",
    "anchor-latency.png",
    "lookup-latency.png",
    "proof-time.png",
    "proof-memory.png",
}


def _bench(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> SimpleNamespace:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return SimpleNamespace(code=done.returncode, out=done.stdout, err=done.stderr)


# --- the smoke run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("bench-smoke")
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.stat().st_mtime_ns if doc.exists() else None
    result = _bench("--smoke", "--out", str(out), "--pg-url", pg_url, timeout=240)
    result.dir = out
    result.docs_untouched = (doc.stat().st_mtime_ns if doc.exists() else None) == before
    return result


@pytest.mark.anvil
@pytest.mark.slow
def test_smoke_run_prints_every_headline_kind_and_the_machine(smoke: SimpleNamespace) -> None:
    assert smoke.code == 0, smoke.err[-3000:]
    _, found, rest = smoke.out.partition("\n## Summary\n")
    assert found, smoke.out[-3000:]
    summary, _, machine = rest.partition("\n## The machine and the run\n")
    for kind, words in HEADLINE_KINDS.items():
        assert words in summary, f"no {kind} headline in the summary:\n{summary}"
    for sections_title in ("## Gas per milestone", "## Bulk ingest throughput"):
        assert sections_title in smoke.out.partition("\n## Summary\n")[0]  # printed as they came
    for fact in ("CPU", "RAM", "Python", "PostgreSQL", "anvil", "solc", "Date", "Wall time"):
        assert f"\n{fact} " in machine, fact


@pytest.mark.anvil
@pytest.mark.slow
def test_smoke_run_writes_its_page_and_plots_to_out_not_docs(smoke: SimpleNamespace) -> None:
    assert smoke.code == 0, smoke.err[-3000:]
    page = (smoke.dir / "benchmarks.md").read_text()
    written = {p.name for p in (smoke.dir / "benchmarks").glob("*.png")}
    assert written == SMOKE_PLOTS
    for name in written:
        assert (smoke.dir / "benchmarks" / name).read_bytes().startswith(PNG)
        assert f"(benchmarks/{name})" in page
    assert "Smoke run" in page
    assert page.index("## Summary") < page.index("## Gas per milestone")
    assert smoke.docs_untouched


# --- refusals -------------------------------------------------------------------------------


def test_smoke_refuses_to_write_docs() -> None:
    result = _bench("--smoke", "--write-docs")
    assert result.code == 2
    assert "--smoke does not write docs" in result.err
    assert "Traceback" not in result.err


def test_unreachable_postgres_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    result = _bench("--only", "proofs", "--pg-url", url, "--out", str(tmp_path))
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "bench: PostgreSQL at 127.0.0.1:1/test is unreachable (OperationalError): "
        "start it, or pass --pg-url"
    ]
    assert not (tmp_path / "benchmarks.md").exists()


def test_missing_eas_checkout_is_one_line_and_exit_1(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"  # a contracts directory with no node_modules beside it
    contracts.mkdir()
    (contracts / "ParcelLedger.sol").write_text("")
    result = _bench("--smoke", env={"PARCELPROOF_CONTRACTS_DIR": str(contracts)})
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert line.startswith("bench: the EAS contracts") and "make setup-bench" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--write-docs", "--only", "gas"], "--write-docs needs every part"),
        (["--write-docs", "--out", "x"], "choose one"),
        (["--only", "gas,chain"], "unknown part: chain"),
        (["--databases", "mysql"], "unknown database: mysql"),
    ],
)
def test_options_that_cannot_run_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.parse_args(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_options() -> None:
    args = bench.parse_args(["--only", "proofs,gas", "--databases", "sqlite", "--seed", "3"])
    assert args.only == ("proofs", "gas")
    assert args.databases == ("sqlite",)
    assert bench.command_line(args) == (
        "scripts/bench.py --only proofs,gas --databases sqlite --seed 3"
    )
    hidden = bench.parse_args(["--pg-url", "postgresql+psycopg://u:secret@db:5432/x"])
    assert "secret" not in bench.command_line(hidden)


# --- the docs writer ------------------------------------------------------------------------


def _png(path: Path, tag: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG + tag)
    return path


def _fake_run(tmp_path: Path, *, smoke: bool = False) -> bench.Run:
    elsewhere = tmp_path / "made-here"
    gas = Section(
        "Gas per milestone",
        "| k | gas |\n| ---: | ---: |\n| 1 | 60,000 |",
        headline=[("ParcelProof gas per milestone at batches of 1,000", "64", "≤ 100", True)],
        plots=[_png(elsewhere / "gas-per-milestone.png", b"gas")],
    )
    lookups = Section(
        "Customer lookups with verification",
        "a table",
        headline=[
            ("lookup p99 at 50 clients", "140 ms", "≤ 100 ms", False),
            ("lookups per second", "900", "", None),
        ],
        plots=[_png(elsewhere / "lookup-latency.png", b"lookup")],
    )
    bare = Section("Proofs against log size", "no plots here")
    facts = bench.machine_facts(
        {"anvil": "anvil 1.7.1", "solc": "0.8.30", "postgresql": "15.20"},
        started=bench.datetime.datetime(2026, 1, 2, 3, 4, tzinfo=bench.datetime.UTC),
        wall_s=1234.5,
        part_seconds={"gas": 100.0, "node": 1000.0, "proofs": 134.5},
        command="scripts/bench.py --write-docs",
    )
    return bench.Run(sections=[gas, lookups, bare], facts=facts, smoke=smoke)


def test_write_docs_writes_the_whole_page_and_its_plots(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    dest = tmp_path / "docs"
    _png(dest / "benchmarks" / "stale.png", b"from an earlier run")
    (dest / "benchmarks" / "notes.txt").write_text("kept")
    doc = bench.write_docs(run, dest)

    assert doc == dest / "benchmarks.md"
    page = doc.read_text()
    assert page.startswith("# Benchmarks\n")
    assert "`make bench`" in page and "one run of that script" in page
    assert "Smoke run" not in page
    order = [
        "## Summary",
        "## The machine and the run",
        "## Gas per milestone",
        "## Customer lookups with verification",
        "## Proofs against log size",
    ]
    assert [page.index(h) for h in order] == sorted(page.index(h) for h in order)
    assert "| What | Measured | Target | Met |" in page
    assert "| ParcelProof gas per milestone at batches of 1,000 | 64 | ≤ 100 | yes |" in page
    assert "| lookup p99 at 50 clients | 140 ms | ≤ 100 ms | **no** |" in page
    assert "| lookups per second | 900 | — | — |" in page
    for fact in ("**CPU**", "**RAM**", "**PostgreSQL** | 15.20", "**anvil** | anvil 1.7.1"):
        assert fact in page
    assert "2026-01-02 03:04 UTC" in page
    assert "1,234 s in all (gas 100 s, node 1,000 s, proofs 134 s)" in page
    assert "![Gas per milestone](benchmarks/gas-per-milestone.png)" in page
    assert "![Customer lookups with verification](benchmarks/lookup-latency.png)" in page
    # each plot right after its own section's text, before the next section
    assert page.index("benchmarks/lookup-latency.png") < page.index("## Proofs against log size")
    assert page.index("a table") < page.index("benchmarks/lookup-latency.png")
    assert page.count("![") == 2
    pngs = {p.name: p.read_bytes() for p in (dest / "benchmarks").glob("*.png")}
    assert pngs == {"gas-per-milestone.png": PNG + b"gas", "lookup-latency.png": PNG + b"lookup"}
    assert (dest / "benchmarks" / "notes.txt").read_text() == "kept"

    # Written again from plots that already live there: still whole, nothing lost.
    for section in run.sections:
        section.plots = [dest / "benchmarks" / p.name for p in section.plots]
    assert bench.write_docs(run, dest).read_text() == page
    assert {p.name for p in (dest / "benchmarks").glob("*.png")} == set(pngs)


def test_a_smoke_page_says_so_and_plot_names_must_differ(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, smoke=True)
    assert "> Smoke run" in bench.write_docs(run, tmp_path / "out").read_text()
    run.sections[1].plots = [_png(tmp_path / "other" / "gas-per-milestone.png", b"clash")]
    with pytest.raises(ValueError, match=r"two plots are named gas-per-milestone\.png"):
        bench.write_docs(run, tmp_path / "again")


def test_summary_rows_and_terminal_table() -> None:
    sections = [
        Section("a", "", headline=[("x", "1", "≥ 2", False)]),
        Section("b", "", headline=[("a longer what", "2", "", None)]),
    ]
    rows = bench.summary_rows(sections)
    assert rows == [["x", "1", "≥ 2", "**no**"], ["a longer what", "2", "—", "—"]]
    lines = bench.text_table(bench.SUMMARY_HEADER, rows).splitlines()
    assert lines[0].split() == ["What", "Measured", "Target", "Met"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["x", "1", "≥", "2", "no"]
    assert lines[2].index("1") == lines[3].index("2")  # aligned columns


# --- the node plots -------------------------------------------------------------------------


def test_node_plots_go_to_the_sections_they_illustrate(tmp_path: Path) -> None:
    pg = node.NodeFigures(
        "postgresql",
        latency=[0.1 * (i % 13) for i in range(60)],
        lookups={1: [0.01, 0.012, 0.02], 10: [0.03, 0.05, 0.09], 50: [0.1, 0.2, 0.3]},
    )
    sqlite = node.NodeFigures("sqlite")  # ingest only: nothing to draw
    sections = [
        Section("Bulk ingest throughput", ""),
        Section("From accepted to anchored", ""),
        Section("Customer lookups with verification", ""),
    ]
    written = plots.attach_node_plots([pg, sqlite], sections, tmp_path)
    assert [p.name for p in written] == [plots.ANCHOR_PLOT, plots.LOOKUP_PLOT]
    assert [s.plots for s in sections] == [[], [written[0]], [written[1]]]
    for path in written:
        assert path.read_bytes().startswith(PNG)


def test_node_plots_tolerate_other_figures_and_missing_sections(tmp_path: Path) -> None:
    figures = SimpleNamespace(database="sqlite", latency=[0.5, 0.7, 1.1], extra_field=3)
    sections: list[Section] = []
    written = plots.attach_node_plots([figures], sections, tmp_path)
    assert [p.name for p in written] == [plots.ANCHOR_PLOT]
    assert len(sections) == 1 and sections[0].plots == written
    assert plots.attach_node_plots([node.NodeFigures("sqlite")], [], tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
