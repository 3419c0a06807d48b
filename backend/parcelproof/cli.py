"""The `parcelproof` command line: demo, contract build/check, deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from parcelproof.core.errors import Error

app = typer.Typer(
    help="ParcelProof: verifiable parcel tracking anchored on an Ethereum ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
contracts_app = typer.Typer(help="Build and check the ParcelLedger contract artifacts.")
app.add_typer(contracts_app, name="contracts")

RpcOption = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        envvar="PARCELPROOF_RPC_URL",
        help="JSON-RPC URL (e.g. anvil's http://127.0.0.1:8545); default: embedded chain",
    ),
]


def _fail(console: Console, error: Exception, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code)


@app.command()
def demo(
    rpc: RpcOption = None,
    bundle_out: Annotated[
        Path | None, typer.Option("--bundle-out", help="write the customer's proof bundle here")
    ] = None,
) -> None:
    """Run the end-to-end story; exit 0 only if every verification behaved as expected."""
    from parcelproof.demo import run_demo

    console = Console()
    try:
        result = run_demo(console, rpc_url=rpc, bundle_out=bundle_out)
    except Error as e:
        raise _fail(console, e) from e
    raise typer.Exit(0 if result.ok else 1)


@contracts_app.command("build")
def contracts_build() -> None:
    """Compile contracts/ with the pinned solc (needs Node) and write contracts/artifacts/."""
    from parcelproof.chain import compile as solc

    console = Console()
    try:
        written = solc.write_artifacts()
    except Error as e:
        raise _fail(console, e) from e
    for path in written:
        console.print(f"wrote {path}")


@contracts_app.command("check")
def contracts_check() -> None:
    """Rebuild and compare with the committed artifacts; exit 1 if any is stale."""
    from parcelproof.chain import compile as solc

    console = Console()
    try:
        stale = solc.check_artifacts()
    except Error as e:
        raise _fail(console, e) from e
    if stale:
        console.print(
            f"[bold red]stale artifacts:[/] {', '.join(stale)} — run `parcelproof contracts build`"
        )
        raise typer.Exit(1)
    console.print("[green]artifacts are up to date[/]")


@app.command()
def deploy(
    rpc: RpcOption = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="PARCELPROOF_ADMIN_KEY",
            help="hex private key of the consortium admin (funded on that chain)",
        ),
    ] = None,
) -> None:
    """Deploy ParcelLedger with the committed artifact and print its address."""
    from eth_account import Account

    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient

    console = Console()
    try:
        w3 = devnet.connect(rpc)
        if admin_key:
            try:
                admin = Account.from_key(admin_key)
            except ValueError as e:
                raise _fail(console, ValueError("--admin-key is not a valid private key")) from e
        elif rpc is None:
            (admin,) = devnet.funded_accounts(w3, 1)
        else:
            raise _fail(console, ValueError("--admin-key (or PARCELPROOF_ADMIN_KEY) is required"))
        ledger = LedgerClient.deploy(w3, admin)
    except Error as e:
        raise _fail(console, e) from e
    console.print(f"ParcelLedger deployed at [bold]{ledger.address}[/] on chain {ledger.chain_id}")
    console.print(f"admin: {admin.address}")


def main() -> None:
    """Console-script entry point."""
    app()
