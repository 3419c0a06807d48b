"""Start a throw-away anvil from node_modules, run the demo against it, stop it."""

from __future__ import annotations

import sys

from rich.console import Console

from parcelproof.chain.devnet import Anvil
from parcelproof.core.errors import Error
from parcelproof.demo import run_demo


def main() -> int:
    console = Console()
    try:
        with Anvil() as node:
            console.print(f"[dim]anvil {node.url} (chain id {node.chain_id})[/]")
            return 0 if run_demo(console, rpc_url=node.url).ok else 1
    except Error as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
