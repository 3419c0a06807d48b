"""`parcelproof verify` and `parcelproof bundle redact`: need only a bundle and a chain."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from parcelproof.core.bundle import Bundle, Report, bundle_to_json, parse_bundle, verify_bundle
from parcelproof.core.encoding import MAX_JSON_DEPTH, json_depth_exceeds
from parcelproof.core.errors import ChainError, Error, FormatError
from parcelproof.core.redact import keep_fields, redact

VALID, INVALID, UNUSABLE = 0, 1, 2
bundle_app = typer.Typer(help="Work with proof bundles offline.", no_args_is_help=True)


def _load(path: Path) -> Bundle:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e.strerror}") from None
    if json_depth_exceeds(raw):
        raise FormatError(f"{path} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path} is not JSON: {e}") from None
    return parse_bundle(obj)


def _ledger(bundle: Bundle, rpc: str) -> Any:
    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient

    w3 = devnet.connect(rpc)
    ledger = LedgerClient(w3, bundle.ledger)
    if ledger.chain_id != bundle.chain_id:
        raise ChainError(
            f"the endpoint serves chain {ledger.chain_id}, the bundle was anchored on chain "
            f"{bundle.chain_id}: use an RPC URL of that chain"
        )
    return ledger


def _print(console: Console, report: Report) -> None:
    for c in report.checks:
        mark = "[yellow]·[/]" if c.skipped else ("[green]✓[/]" if c.ok else "[bold red]✗[/]")
        detail = f" [dim]— {escape(c.detail)}[/]" if c.detail else ""
        console.print(f"{mark} {c.name:<25} {escape(c.subject)}{detail}")
    counts = Counter(
        "skipped" if c.skipped else ("passed" if c.ok else "failed") for c in report.checks
    )
    console.print()
    if report.failures:
        console.print(
            f"[bold red]INVALID[/]: {counts['failed']} of {len(report.checks)} checks failed"
        )
    elif report.skipped:
        console.print(
            f"[bold yellow]VALID AS FAR AS CHECKED[/]: {counts['passed']} passed; NOT checked "
            f"(offline, nothing read from the chain): {counts['skipped']} — checkpoint roots, "
            "agent-key validity and the ledger itself"
        )
    else:
        console.print(
            f"[bold green]VALID[/]: all {counts['passed']} checks passed against the chain"
        )


def verify(
    bundle: Annotated[Path, typer.Argument(help="the proof bundle (JSON) to verify")],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc", envvar="PARCELPROOF_RPC_URL", help="JSON-RPC URL of the bundle's chain"
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="check everything except what needs the chain")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify a proof bundle with nothing but the bundle and the chain.

    Exit code 0: valid; 1: invalid; 2: unusable input (malformed bundle, unreadable file,
    unreachable or wrong chain).
    """
    console = Console()
    try:
        parsed = _load(bundle)
        if not offline and not rpc:
            raise FormatError("give --rpc URL (the chain the bundle names), or --offline")
        report = verify_bundle(parsed, None if offline else _ledger(parsed, rpc or ""))
    except Error as e:
        if as_json:
            print(json.dumps({"ok": False, "usable": False, "error": str(e)}))
        else:
            console.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(UNUSABLE) from None
    if as_json:
        print(json.dumps({**report.to_json(), "usable": True}, indent=2))
    else:
        _print(console, report)
    raise typer.Exit(VALID if report.ok else INVALID)


@bundle_app.command("redact")
def redact_command(
    source: Annotated[Path, typer.Argument(help="the bundle to derive from")],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the result")],
    reveal: Annotated[
        str, typer.Option("--reveal", help="comma-separated fields to keep revealed")
    ] = "status,time",
    only_status: Annotated[
        list[str] | None,
        typer.Option("--only-status", help="keep them only on events with this status"),
    ] = None,
) -> None:
    """Derive a smaller bundle offline (e.g. only "delivered at T"); it still verifies."""
    console = Console()
    try:
        smaller = redact(_load(source), keep_fields(reveal.split(","), only_status or ()))
        output.write_text(json.dumps(bundle_to_json(smaller), indent=2) + "\n")
    except Error as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(UNUSABLE) from None
    except OSError as e:
        console.print(f"[bold red]error:[/] cannot write {output}: {e.strerror}")
        raise typer.Exit(UNUSABLE) from None
    shown = sum(len(ev.disclosure.revealed) for lg in smaller.logs for ev in lg.events)
    console.print(f"wrote {output}: {shown} fields revealed, every other one as a digest only")
