"""`parcelproof devnet up|down|status|reset`: the persistent local chain of a full local system."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from parcelproof.chain.localnet import DEFAULT_PORT, DevnetStatus, LocalDevnet
from parcelproof.settings import ConfigurationError

devnet_app = typer.Typer(
    help="A local anvil that keeps its chain under the data directory, with a node set up on it.",
    no_args_is_help=True,
)

#: The node's settings inside the data directory (written by `devnet up`, read by `serve`).
NODE_ENV = "node.env"
#: The node's SQLite database inside the data directory.
NODE_DB = "parcelproof.sqlite"

DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="PARCELPROOF_DATA_DIR",
        help="where the devnet keeps its chain, the node its settings and database",
    ),
]
PortOption = Annotated[int, typer.Option("--port", help="anvil's JSON-RPC port on 127.0.0.1")]


def _devnet(data_dir: Path, port: int = DEFAULT_PORT) -> LocalDevnet:
    return LocalDevnet(data_dir / "devnet", port=port)


def _print_status(out: Console, status: DevnetStatus) -> None:
    if not status.running:
        kept = f"; chain state kept ({status.state_bytes:,} bytes)" if status.state_bytes else ""
        out.print(f"devnet: stopped{kept}")
        return
    out.print(f"devnet: running (pid {status.pid}) at {status.url}")
    if status.chain_id is not None:
        out.print(f"chain id {status.chain_id}, block {status.block_number}")


def _ledger_code(url: str, env_file: Path) -> tuple[str, bool]:
    """The ledger address the node's env file names and whether the chain holds its code."""
    from parcelproof.chain import devnet
    from parcelproof.settings import load_settings

    settings = load_settings(env_file)
    settings.require("ledger_address")
    address = settings.ledger_address or ""
    w3 = devnet.connect(url)
    return address, len(w3.eth.get_code(w3.to_checksum_address(address))) > 0


def up(data_dir: DataDirOption = Path("data"), port: PortOption = DEFAULT_PORT) -> None:
    """Start the devnet (or find it running); on its first start deploy the ledger and set a
    courier node up on it (settings in DATA_DIR/node.env, database DATA_DIR/parcelproof.sqlite).
    """
    from parcelproof.cli import _out, setup_dev_node

    out = _out()
    net = _devnet(data_dir, port)
    status = net.up()
    _print_status(out, status)
    url = status.url or ""
    env_file = data_dir / NODE_ENV
    if env_file.exists():
        address, deployed = _ledger_code(url, env_file)
        if not deployed:
            raise ConfigurationError(
                f"the devnet has no contract at {address}, the ledger {env_file} names: its "
                "chain state was lost. Start over with `parcelproof devnet reset --yes`"
            )
        out.print(f"ledger {address} (deployed earlier; settings in {env_file})")
        out.print(f"next: parcelproof serve --env-file {env_file}")
    else:
        database = f"sqlite:///{(data_dir / NODE_DB).resolve()}"
        setup_dev_node(out, url, env_file, database_url=database)


def down(data_dir: DataDirOption = Path("data")) -> None:
    """Stop the devnet; it writes its chain state first, and `devnet up` resumes it."""
    from parcelproof.cli import _out

    stopped = _devnet(data_dir).down()
    _out().print("devnet: stopped" if stopped else "devnet: was not running")


def status(data_dir: DataDirOption = Path("data")) -> None:
    """Whether the devnet runs, where, and the ledger the node uses (exit code 3 if stopped)."""
    from parcelproof.cli import _out

    out = _out()
    current = _devnet(data_dir).status()
    _print_status(out, current)
    env_file = data_dir / NODE_ENV
    if current.running and current.url and env_file.exists():
        address, deployed = _ledger_code(current.url, env_file)
        out.print(f"ledger {address}: {'deployed' if deployed else 'MISSING from the chain'}")
    if not current.running:
        raise typer.Exit(3)


def reset(
    data_dir: DataDirOption = Path("data"),
    yes: Annotated[bool, typer.Option("--yes", help="really delete it")] = False,
) -> None:
    """Stop the devnet and delete its chain, the node's settings and its database."""
    from parcelproof.cli import _out

    if not yes:
        raise ConfigurationError(
            f"reset deletes the devnet chain, {data_dir / NODE_ENV} and {data_dir / NODE_DB}: "
            "pass --yes"
        )
    net = _devnet(data_dir)
    net.down()
    shutil.rmtree(net.directory, ignore_errors=True)
    for name in (NODE_ENV, NODE_DB, NODE_DB + "-wal", NODE_DB + "-shm"):
        (data_dir / name).unlink(missing_ok=True)
    _out().print(f"devnet reset: {data_dir} holds no chain, settings or database any more")
