"""The `parcelproof` command line: node (serve, anchor-worker, dev-setup, token), agent, demo."""

from __future__ import annotations

import base64
import contextlib
import io
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from parcelproof import cli_devnet, cli_ops, cli_verify
from parcelproof.cli_common import EnvFileOption
from parcelproof.cli_common import guarded as _guarded
from parcelproof.cli_common import print_error as _print_error
from parcelproof.core.errors import Error, FormatError, NetworkError
from parcelproof.service.audit import AuditAction
from parcelproof.settings import ConfigurationError

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from sqlalchemy import Engine

    from parcelproof.service.agent import Agent
    from parcelproof.service.wiring import NodeRuntime
    from parcelproof.settings import Settings

app = typer.Typer(
    help="ParcelProof: verifiable parcel tracking anchored on an Ethereum ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
contracts_app = typer.Typer(help="Build and check the ParcelLedger contract artifacts.")
app.add_typer(contracts_app, name="contracts")
token_app = typer.Typer(help="Manage the API clients of this node.", no_args_is_help=True)
app.add_typer(token_app, name="token")
agent_app = typer.Typer(
    help="What an agent's device does: sign milestones and send them to its courier's node.",
    no_args_is_help=True,
)
app.add_typer(agent_app, name="agent")
app.command("verify")(cli_verify.verify)
app.add_typer(cli_verify.bundle_app, name="bundle")

AGENT_KEY_DAYS = 365
DAY = 86400
DEV_CHAIN_WARNING = "data anchored on this chain is lost when the process stops"
LISTEN_BACKLOG = 2048

RpcOption = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        envvar="PARCELPROOF_RPC_URL",
        help="JSON-RPC URL (e.g. anvil's http://127.0.0.1:8545); default: embedded chain",
    ),
]
NodeRpcOption = Annotated[
    str | None,
    typer.Option("--rpc", help="JSON-RPC URL of the ledger chain (default: PARCELPROOF_RPC_URL)"),
]


# --- error reporting ------------------------------------------------------------------------


def _fail(console: Console, error: Exception, code: int = 2) -> typer.Exit:
    _print_error(str(error))
    return typer.Exit(code)


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


@contextlib.contextmanager
def _working(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while a long step runs (only on a terminal)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


# --- demo, contracts, deploy ----------------------------------------------------------------


@app.command()
def demo(
    rpc: RpcOption = None,
    bundle_out: Annotated[
        Path | None, typer.Option("--bundle-out", help="write the customer's proof bundle here")
    ] = None,
    consortium: Annotated[
        bool,
        typer.Option("--consortium", help="two couriers' nodes on one ledger, over HTTP"),
    ] = False,
) -> None:
    """Run the end-to-end story; exit 0 only if every verification behaved as expected.
    ``--consortium``: two couriers' nodes (own database, keys, account and HTTP API) on one
    ledger, a parcel handed between them, one bundle for the whole journey."""
    import json

    import httpx

    from parcelproof.demo import run_demo
    from parcelproof.demo_consortium import run_consortium_demo

    console = Console()
    try:
        if consortium:
            result = run_consortium_demo(console, rpc_url=rpc)
        else:
            result = run_demo(console, rpc_url=rpc, bundle_out=bundle_out)
    except Error as e:
        raise _fail(console, e) from e
    except httpx.HTTPError as e:
        raise _fail(console, ValueError(f"a node's API failed: {e}")) from e
    if bundle_out is not None and consortium and result.bundle is not None:
        bundle_out.write_text(json.dumps(result.bundle, indent=2) + "\n")
    raise typer.Exit(0 if result.ok else 1)


@contracts_app.command("build")
def contracts_build() -> None:
    """Compile contracts/ with the pinned solc (needs Node) and write contracts/artifacts/."""
    from parcelproof.chain import compile as solc

    console = Console()
    try:
        with _working("compiling contracts/ with the pinned solc"):
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
        with _working("compiling contracts/ with the pinned solc"):
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


# --- serve ----------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket up front, so a taken port fails before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY. Without it, Nagle's algorithm holds the
    # second segment of each answer until the client's delayed ACK (40 ms on Linux): every
    # request took 44 ms instead of 1 ms (docs/benchmarks.md, "Profile").
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(LISTEN_BACKLOG)  # connections queue from now on, until uvicorn serves them
    return sock


def _url(sock: socket.socket, *, https: bool = False) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if https else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _is_loopback(sock: socket.socket) -> bool:
    """Whether the socket listens on this machine only (127.0.0.0/8, ::1)."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def _plain_http_banner(out: Console, url: str) -> None:
    rule = "!" * 78
    out.print(rule, style="bold red")
    out.print(
        f"WARNING: plain HTTP on {url}, reachable from other machines: bearer tokens, "
        "postcodes and parcel details would cross the network in clear. Terminate TLS in "
        "front of this node (a reverse proxy), or pass --tls-cert and --tls-key.",
        style="bold red",
    )
    out.print(rule, style="bold red")


@contextlib.contextmanager
def _signals_absorbed() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM instead of dying: uvicorn re-raises the signal that stopped it
    after its graceful shutdown, and we still have the worker and the database to close."""
    received: list[int] = []

    def record(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_uvicorn(api: FastAPI, sock: socket.socket, tls: tuple[Path, Path] | None = None) -> None:
    import uvicorn

    config = uvicorn.Config(
        api,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    with _signals_absorbed():
        uvicorn.Server(config).run(sockets=[sock])


def _dev_chain_node(settings: Settings, stack: contextlib.ExitStack) -> tuple[NodeRuntime, str]:
    """A node on a fresh in-process chain with a temporary database: everything generated,
    nothing kept. Returns the runtime and an API token with every scope."""
    from pydantic import SecretStr

    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.service import credentials
    from parcelproof.service.wiring import embedded_chain, open_node

    w3 = embedded_chain()
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    courier_id = secrets.token_bytes(32)
    ledger.admit_courier(courier_id, account.address, sender=admin)
    data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="parcelproof-dev-chain-"))
    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    dev = settings.model_copy(
        update={
            "rpc_url": None,
            "chain_id": None,
            "ledger_address": ledger.address,
            "courier_id": "0x" + courier_id.hex(),
            "account_key": SecretStr("0x" + bytes(account.key).hex()),
            "keyring": SecretStr(f"dev={kek}"),
            "active_kid": "dev",
            "shipment_key": SecretStr(secrets.token_hex(32)),
            "database_url": SecretStr(f"sqlite:///{Path(data_dir) / 'parcelproof.sqlite'}"),
        }
    )
    runtime = open_node(dev, web3=w3)
    stack.callback(runtime.close)
    return runtime, credentials.issue(runtime.store, "dev-chain", credentials.SCOPES)


@app.command()
@_guarded
def serve(
    rpc: NodeRpcOption = None,
    host: Annotated[
        str | None, typer.Option("--host", help="listen address (default: PARCELPROOF_HOST)")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="listen port, 0 = any free port (default: PARCELPROOF_PORT)"),
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="API only: anchor with a separate `anchor-worker`"),
    ] = False,
    dev_chain: Annotated[
        bool,
        typer.Option(
            "--dev-chain",
            help="development only: a throw-away in-process chain and database (all lost on exit)",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="serve HTTPS with this PEM certificate (chain), with --tls-key "
            "(default: PARCELPROOF_TLS_CERT)",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            help="the certificate's unencrypted PEM private key (default: PARCELPROOF_TLS_KEY)",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="API processes sharing the listening socket, to use several cores (default: "
            "PARCELPROOF_API_WORKERS); the anchoring worker runs in the first only",
        ),
    ] = None,
    env_file: EnvFileOption = None,
) -> None:
    """Run the courier node's API, with its anchoring worker in a background thread."""
    from parcelproof.api.app import create_app
    from parcelproof.api.web import web_router
    from parcelproof.logs import configure_logging
    from parcelproof.service.wiring import open_node
    from parcelproof.settings import load_settings

    settings = load_settings(
        env_file,
        rpc_url=rpc,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        api_workers=workers,
    )
    tls = settings.tls_files()
    expires: datetime | None = None
    if tls is not None:
        from parcelproof.tls import check_server_files

        expires = check_server_files(*tls)  # a bad file is an error line, not a traceback
    if dev_chain and settings.environment != "development":
        raise ConfigurationError(
            f"--dev-chain is refused when PARCELPROOF_ENVIRONMENT={settings.environment}: "
            "it runs on a chain that forgets everything (development only)"
        )
    if not dev_chain and not settings.rpc_url:
        raise ConfigurationError(
            "serve needs the JSON-RPC URL of a chain that keeps its state: pass --rpc URL or "
            "set PARCELPROOF_RPC_URL (for a throw-away chain in development: --dev-chain)"
        )
    if dev_chain and settings.api_workers > 1:
        raise ConfigurationError("--dev-chain runs one process: its chain lives in it")
    configure_logging(settings.log_level)
    out = _out()
    with contextlib.ExitStack() as stack:
        sock = _listen(settings.host, settings.port)
        stack.callback(sock.close)
        # More API processes, forked before anything opens a connection or a thread: each
        # builds its own node and accepts from the same socket (the kernel spreads them).
        children = _fork_api_processes(settings.api_workers - 1)
        if children is None:  # in a forked API process: serve only
            no_worker = True
            out = Console(file=open(os.devnull, "w"))
        else:
            stack.callback(_stop_processes, children)
        token = None
        if dev_chain:
            runtime, token = _dev_chain_node(settings, stack)
        else:
            runtime = open_node(settings)
            stack.callback(runtime.close)
        api = create_app(
            runtime.services,
            max_body=settings.max_body_bytes,
            ready=runtime.ready,
            cors_origins=settings.cors_origin_list(),
            interactive_docs=settings.environment != "production",
        )
        ledger = runtime.ledger
        api.include_router(web_router(settings.public_rpc_url, ledger.chain_id, ledger.address))
        out.print(
            f"courier 0x{runtime.node.courier_id.hex()} on chain {ledger.chain_id}, "
            f"ledger {ledger.address}"
        )
        if token is not None:
            _dev_chain_banner(out, token)
        if not no_worker:
            runtime.start_worker()
        url = _url(sock, https=tls is not None)
        if tls is None and not _is_loopback(sock):
            _plain_http_banner(out, url)
        if expires is not None and expires <= datetime.now(UTC):
            out.print(
                f"WARNING: the TLS certificate expired on {expires:%Y-%m-%d}", style="bold red"
            )
        out.print(f"listening on {url}")
        _flush()
        _run_uvicorn(api, sock, tls)
        logging.getLogger("parcelproof.node").info("shutting down")


def _fork_api_processes(count: int) -> list[int] | None:
    """Fork ``count`` more API processes. Returns the children's pids in the first process,
    None in a child; a child gets SIGTERM when the first process dies."""
    children: list[int] = []
    parent = os.getpid()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _die_with(parent)
            return None
        children.append(pid)
    return children


def _die_with(parent: int) -> None:
    """Ask Linux to send SIGTERM to this process when its parent exits (prctl
    PR_SET_PDEATHSIG), so forked API processes never outlive the node."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _stop_processes(pids: list[int]) -> None:
    """SIGTERM the forked API processes and wait for them (each shuts down gracefully)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _dev_chain_banner(out: Console, token: str) -> None:
    rule = "!" * 78
    out.print(rule, style="bold red")
    out.print(
        f"WARNING --dev-chain: in-process eth-tester chain and temporary database; "
        f"{DEV_CHAIN_WARNING}.",
        style="bold red",
    )
    out.print("Never use it for real parcels. No agent key is registered.", style="bold red")
    out.print(rule, style="bold red")
    out.print("API token (all scopes, valid until the process stops):")
    out.print(token, style="bold")


def _flush() -> None:
    sys.stdout.flush()


# --- tls ------------------------------------------------------------------------------------

tls_app = typer.Typer(help="TLS for `serve`: a development certificate.", no_args_is_help=True)
app.add_typer(tls_app, name="tls")


@tls_app.command("dev-cert")
@_guarded
def tls_dev_cert(
    out_dir: Annotated[
        Path, typer.Option("--out", help="directory for dev-cert.pem and dev-key.pem")
    ],
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="repeatable: another DNS name or IP address to cover "
            "(localhost and 127.0.0.1 always are)",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Make a self-signed certificate for local development: no CA, EC P-256, 30 days.

    Clients must trust this very certificate (e.g. `curl --cacert dev-cert.pem`); never use it
    for a node others reach.
    """
    from parcelproof.tls import DEV_CERT_DAYS, write_dev_certificate

    made = write_dev_certificate(out_dir, host or [], force=force)
    out = _out()
    out.print(
        f"wrote {made.cert} (certificate for {', '.join(made.hosts)}, "
        f"valid {DEV_CERT_DAYS} days, until {made.not_after:%Y-%m-%d %H:%M} UTC)",
        markup=False,
    )
    out.print(f"wrote {made.key} (private key, mode 0600)", markup=False)
    out.print("development only: clients must trust this very certificate")
    out.print(
        f"next: parcelproof serve --tls-cert {shlex.quote(str(made.cert))} "
        f"--tls-key {shlex.quote(str(made.key))}",
        markup=False,
    )


# --- anchor-worker --------------------------------------------------------------------------


@app.command("anchor-worker")
@_guarded
def anchor_worker(rpc: NodeRpcOption = None, env_file: EnvFileOption = None) -> None:
    """Run the anchoring worker alone (one per courier log: it holds the log's lock)."""
    from parcelproof.logs import configure_logging
    from parcelproof.service.wiring import open_node
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    if not settings.rpc_url:
        raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
    configure_logging(settings.log_level)
    runtime = open_node(settings)
    stop = threading.Event()
    try:
        ledger = runtime.ledger
        _out().print(
            f"anchoring worker for courier 0x{runtime.node.courier_id.hex()} on chain "
            f"{ledger.chain_id}, ledger {ledger.address} (Ctrl-C to stop)"
        )
        _flush()
        with _signals_absorbed() as received:
            watcher = threading.Thread(target=_stop_on_signal, args=(received, stop), daemon=True)
            watcher.start()
            runtime.run_worker(stop)
    finally:
        stop.set()
        runtime.close()


def _stop_on_signal(received: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        if received:
            logging.getLogger("parcelproof.node").info("stopping on signal %d", received[0])
            stop.set()
        stop.wait(0.1)


# --- dev-setup ------------------------------------------------------------------------------


@app.command("dev-setup")
@_guarded
def dev_setup(
    rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of a local dev node (anvil)")],
    env_file: Annotated[
        Path, typer.Option("--env-file", help="where to write the node's settings")
    ] = Path(".env"),
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="database for the node (default: SQLite in data/ beside the env file)",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="overwrite the env file; allow a chain id that is not a dev chain"
        ),
    ] = False,
    join: Annotated[
        Path | None,
        typer.Option(
            "--join",
            help="the env file of the consortium's first node: admit another courier on its "
            "ledger (with its admin key) instead of deploying a new one",
        ),
    ] = None,
) -> None:
    """Set up a courier node on a local dev chain and write its settings to an env file.

    Deploys ParcelLedger (admin: a fresh key funded by the dev node) or, with ``--join``,
    uses the ledger of the consortium's first node; admits a new courier with a fresh funded
    anchoring account, generates its keyring and shipment key, registers an agent key for a
    year, creates the database and issues an API token.
    """
    setup_dev_node(_out(), rpc, env_file, database_url=database_url, force=force, join=join)


def setup_dev_node(
    out: Console,
    rpc: str,
    env_file: Path,
    *,
    database_url: str | None = None,
    force: bool = False,
    join: Path | None = None,
) -> None:
    """What `dev-setup` does (also `devnet up` on a fresh devnet)."""
    from eth_account import Account

    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.service import credentials
    from parcelproof.service.wiring import DEV_CHAIN_IDS, open_database, redacted_url
    from parcelproof.settings import load_settings
    from parcelproof.store.db import session_factory
    from parcelproof.store.sql import SqlStore

    settings = load_settings(read_env_file=False)  # the environment only: never a stale .env
    if settings.environment == "production":
        raise ConfigurationError(
            "dev-setup is for local dev chains: refused when PARCELPROOF_ENVIRONMENT=production"
        )
    env_path = env_file.resolve()
    if env_path.exists() and not force:
        raise ConfigurationError(f"{env_file} exists: pass --force to overwrite it")
    w3 = devnet.connect(rpc)
    chain_id = int(w3.eth.chain_id)
    if chain_id not in DEV_CHAIN_IDS and not force:
        raise ConfigurationError(
            f"chain {chain_id} is not a known dev chain "
            f"({', '.join(map(str, sorted(DEV_CHAIN_IDS)))}): dev-setup funds accounts from the "
            "node's unlocked keys; pass --force if you mean it"
        )
    url = database_url or f"sqlite:///{env_path.parent / 'data' / 'parcelproof.sqlite'}"

    if join is None:
        admin, account = devnet.funded_accounts(w3, 2)
        ledger = LedgerClient.deploy(w3, admin)
        out.print(f"deployed ParcelLedger at {ledger.address} on chain {chain_id}")
        out.print(f"consortium admin: {admin.address}")
    else:  # another courier on the ledger the first node's env file names
        first = load_settings(join)
        first.require("ledger_address", "admin_key")
        admin = first.admin()
        (account,) = devnet.funded_accounts(w3, 1)
        ledger = LedgerClient(w3, first.ledger_address or "")
        out.print(f"joining ParcelLedger at {ledger.address} on chain {chain_id}")
    courier_id = secrets.token_bytes(32)
    ledger.admit_courier(courier_id, account.address, sender=admin)
    out.print(f"admitted courier 0x{courier_id.hex()} with anchoring account {account.address}")
    agent = Account.create()
    now = int(time.time())
    until = now + AGENT_KEY_DAYS * DAY
    ledger.register_agent_key(agent.address, now, until, sender=account)
    out.print(f"registered agent key {agent.address} valid until {_date(until)}")

    engine = open_database(url)
    try:
        store = SqlStore(session_factory(engine), courier_id)
        token = credentials.issue(store, "dev-setup", credentials.SCOPES)
        _audit(
            engine,
            courier_id,
            AuditAction.TOKEN_ISSUE,
            token.split("_")[1],
            {"scopes": ",".join(sorted(credentials.SCOPES))},
        )
    finally:
        engine.dispose()
    out.print(f"database ready at {redacted_url(url)}")
    out.print(f"issued an API token with scopes {', '.join(sorted(credentials.SCOPES))}")

    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    values = {
        "ENVIRONMENT": "development",
        "RPC_URL": rpc,
        "PUBLIC_RPC_URL": rpc,  # a local devnet: the browser on this machine reads it directly
        "CHAIN_ID": str(chain_id),
        "LEDGER_ADDRESS": ledger.address,
        "COURIER_ID": "0x" + courier_id.hex(),
        "ACCOUNT_KEY": "0x" + bytes(account.key).hex(),
        "KEYRING": f"k1={kek}",
        "ACTIVE_KID": "k1",
        "SHIPMENT_KEY": "0x" + secrets.token_hex(32),
        "DATABASE_URL": url,
        "API_URL": f"http://{settings.host}:{settings.port or 8000}",
        "API_TOKEN": token,
        "AGENT_KEY": "0x" + bytes(agent.key).hex(),
    }
    if join is None:  # the consortium admin's key stays with the node that deployed
        values["ADMIN_KEY"] = "0x" + bytes(admin.key).hex()
    _write_env_file(env_path, values, chain_id, rpc)
    out.print(f"wrote {env_file} (mode 0600; it holds every secret of this dev node)")
    out.print(f"next: parcelproof serve --env-file {env_file}")


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _write_env_file(path: Path, values: dict[str, str], chain_id: int, rpc: str) -> None:
    """Write ``PARCELPROOF_*`` lines atomically, readable by the owner only."""
    for value in values.values():
        if "'" in value or "\n" in value:
            raise FormatError("an env file value may not contain quotes or newlines")
    from parcelproof.chain.devnet import redact

    lines = [
        f"# ParcelProof dev node, written by `parcelproof dev-setup` on {_date(int(time.time()))}",
        f"# for chain {chain_id} at {redact(rpc)}.",
        "# DEVELOPMENT ONLY: never reuse these keys on a real network. Keep this file private.",
        *(f"PARCELPROOF_{name}='{value}'" for name, value in values.items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- token ----------------------------------------------------------------------------------


@token_app.command("issue")
@_guarded
def token_issue(
    name: Annotated[str, typer.Option("--name", help="who the client is (e.g. depot-scanner-7)")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="repeatable: shipments:write, events:write, anchor:write, read, webhooks:manage",
        ),
    ],
    env_file: EnvFileOption = None,
) -> None:
    """Issue an API client; its bearer token is printed once and stored only as a hash."""
    from parcelproof.service import credentials
    from parcelproof.service.wiring import open_store
    from parcelproof.settings import load_settings

    engine, store = open_store(load_settings(env_file))
    try:
        token = credentials.issue(store, name, set(scope))
        _audit(
            engine,
            store.log_id,
            AuditAction.TOKEN_ISSUE,
            token.split("_")[1],
            {"scopes": ",".join(sorted(set(scope)))},
        )
    finally:
        engine.dispose()
    out = _out()
    scopes = ", ".join(sorted(set(scope)))
    out.print(f"issued API client {token.split('_')[1]} ({name}) with scopes {scopes}")
    out.print("bearer token (shown once):")
    out.print(token)


@token_app.command("revoke")
@_guarded
def token_revoke(
    client_id: Annotated[str, typer.Argument(help="the client id (second part of the token)")],
    env_file: EnvFileOption = None,
) -> None:
    """Revoke an API client: its token stops working at once."""
    from parcelproof.service.wiring import open_store
    from parcelproof.settings import load_settings

    engine, store = open_store(load_settings(env_file))
    try:
        store.revoke_api_client(client_id)
        _audit(engine, store.log_id, AuditAction.TOKEN_REVOKE, client_id)
    finally:
        engine.dispose()
    _out().print(f"revoked API client {client_id}")


# --- keys -----------------------------------------------------------------------------------

keys_app = typer.Typer(help="Key-encryption keys: generate, rotate.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
@_guarded
def keys_generate(
    kid: Annotated[str, typer.Option("--kid", help="id of the new key, e.g. k2 or 2026-12")],
) -> None:
    """Print a new key-encryption key as `kid=base64`: add it to PARCELPROOF_KEYRING and make it
    PARCELPROOF_ACTIVE_KID, then run `parcelproof keys rotate`."""
    from parcelproof.core import envelope

    key = envelope.KeyEncryptionKey(kid, secrets.token_bytes(32))  # validates the kid
    typer.echo(f"{key.kid}={base64.b64encode(key.key).decode()}")


@keys_app.command("rotate")
@_guarded
def keys_rotate(env_file: EnvFileOption = None) -> None:
    """Re-wrap every shipment's data key under the active key (no data is re-encrypted).
    Afterwards the old keys can be removed from PARCELPROOF_KEYRING."""
    from parcelproof.service.keyrotation import rotate
    from parcelproof.service.wiring import open_staff, open_store, open_webhooks
    from parcelproof.settings import load_settings

    settings = load_settings(env_file)
    settings.require("keyring")
    engine, store = open_store(settings)
    try:
        with progress_bar() as bar:
            task = bar.add_task("re-wrapping data keys", total=None)
            result = rotate(store, settings.node_keyring(), lambda: bar.advance(task))
        staff_secrets = open_staff(
            settings, engine, store.log_id, settings.node_keyring()
        ).rewrap_secrets()
        webhook_secrets = open_webhooks(
            settings, engine, store.log_id, settings.node_keyring()
        ).rewrap_secrets()
        _audit(
            engine,
            store.log_id,
            AuditAction.KEYS_ROTATE,
            settings.node_keyring().active_kid,
            {
                "rewrapped": result.rewrapped,
                "staff_secrets": staff_secrets,
                "webhook_secrets": webhook_secrets,
                "from_kids": ",".join(result.from_kids),
            },
        )
    finally:
        engine.dispose()
    old = ", ".join(result.from_kids) or "none"
    _out().print(
        f"re-wrapped {result.rewrapped} data keys under {settings.node_keyring().active_kid} "
        f"(from: {old}); re-sealed {staff_secrets} staff TOTP secrets and "
        f"{webhook_secrets} webhook signing secrets"
    )


# --- agent ----------------------------------------------------------------------------------


ApiUrlOption = Annotated[
    str | None, typer.Option("--api", help="node API URL (default: PARCELPROOF_API_URL)")
]
EventsTokenOption = Annotated[
    str | None,
    typer.Option("--token", help="bearer token with events:write (default: PARCELPROOF_API_TOKEN)"),
]
AgentKeyOption = Annotated[
    str | None,
    typer.Option(
        "--agent-key", help="hex private key of the agent (default: PARCELPROOF_AGENT_KEY)"
    ),
]


class _ApiProblem(Exception):
    """The node answered with a problem: shown as ``error: title: detail``, exit 1."""


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from parcelproof.chain.devnet import redact

    try:
        response = client.post(path, json=body)
    except httpx.HTTPError as e:
        raise NetworkError(
            redact(f"cannot reach the API at {client.base_url}: {type(e).__name__}")
        ) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            title = str(problem.get("title") or f"HTTP {response.status_code}")
            detail = str(problem.get("detail") or "")
        except (ValueError, AttributeError):
            title, detail = f"HTTP {response.status_code}", ""
        raise _ApiProblem(f"{title}: {detail}" if detail else title)
    try:
        parsed: dict[str, Any] = response.json()
    except ValueError:
        raise FormatError(f"the API answered {path} with something other than JSON") from None
    return parsed


def _agent_config(
    env_file: Path | None, api: str | None, token: str | None, agent_key: str | None
) -> tuple[str, dict[str, str], Agent]:
    """The node's API URL, the bearer header and the agent's signer, from the options or the
    environment; ConfigurationError naming what is missing."""
    from parcelproof.service.agent import Agent
    from parcelproof.settings import load_agent_settings, parse_hex32

    cfg = load_agent_settings(env_file, api_url=api, api_token=token, agent_key=agent_key)
    if cfg.api_token is None or not cfg.api_token.get_secret_value():
        raise ConfigurationError("missing API token: --token or PARCELPROOF_API_TOKEN")
    if cfg.agent_key is None:
        raise ConfigurationError("missing agent key: --agent-key or PARCELPROOF_AGENT_KEY")
    signer = Agent(parse_hex32(cfg.agent_key.get_secret_value(), "the agent key"))
    return cfg.api_url, {"Authorization": f"Bearer {cfg.api_token.get_secret_value()}"}, signer


def _fields(status: str, place: str | None, extra: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": status}
    if place:
        fields["place"] = place
    for item in extra:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FormatError(f"--field {item!r} is not of the form name=value")
        if name in fields or name == "time":
            raise FormatError(f"--field {name!r} is set by the command itself")
        fields[name] = value
    return fields


@agent_app.command("record")
@_guarded
def agent_record(
    tracking_number: Annotated[str, typer.Argument(help="the parcel's tracking number")],
    status: Annotated[str, typer.Argument(help="milestone, e.g. picked_up, departed, delivered")],
    place: Annotated[str | None, typer.Option("--place", help="where it happened")] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", help="repeatable extra field name=value")
    ] = None,
    api: ApiUrlOption = None,
    token: EventsTokenOption = None,
    agent_key: AgentKeyOption = None,
    event_time: Annotated[
        int | None, typer.Option("--time", help="unix time of the event (default: now)")
    ] = None,
    env_file: EnvFileOption = None,
) -> None:
    """Sign a milestone with the agent's key (EIP-712) and record it on the node."""
    import httpx

    from parcelproof.service.importer import context_from_json

    api_url, headers, signer = _agent_config(env_file, api, token, agent_key)
    fields = _fields(status, place, field or [])
    at = int(time.time()) if event_time is None else event_time
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=30.0) as client:
            c = _post(client, "/v1/shipments/context", {"tracking_number": tracking_number})
            context = context_from_json(c)
            openings, signature = signer.sign(context, fields, at)
            event = _post(
                client,
                "/v1/events",
                {
                    "event_id": uuid.uuid4().hex,
                    "tracking_number": tracking_number,
                    "event_time": at,
                    "agent": signer.address,
                    "signature": "0x" + signature.hex(),
                    "fields": [o.to_json() for o in openings],
                },
            )
    except _ApiProblem as e:
        _print_error(str(e))
        raise typer.Exit(1) from None
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"unexpected answer from the API ({type(e).__name__})") from None
    _out().print(
        f"recorded {fields['status']} for {tracking_number}: event {event['event_id']}, "
        f"sequence {event['sequence']}, leaf {event['leaf_index']}, "
        f"signed by {signer.address}"
    )


class _ImportFatalError(Error):
    """The node refused the import as a whole (credentials, scope): nothing more is tried."""


class _HttpImportApi:
    """The node's API as :func:`parcelproof.service.importer.run_import` calls it."""

    def __init__(self, client: httpx.Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._sleep = sleep

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        import httpx

        from parcelproof.chain.devnet import redact
        from parcelproof.service.importer import ImportInterruptedError

        for _ in range(10):
            try:
                response = self._client.post(path, json=body)
            except httpx.HTTPError as e:
                raise ImportInterruptedError(
                    redact(f"cannot reach the API at {self._client.base_url}: {type(e).__name__}")
                ) from None
            if response.status_code != 429:
                break
            self._sleep(min(float(response.headers.get("retry-after", "1") or 1), 30.0))
        if response.status_code in (401, 403):
            raise _ImportFatalError(f"the node refused the token: {_problem_of(response).detail}")
        if response.status_code >= 500 or response.status_code == 429:
            problem = _problem_of(response)
            raise ImportInterruptedError(
                f"the node answered {response.status_code} ({problem.detail or problem.kind})"
            )
        return response

    def context(self, tracking_number: str) -> Any:
        from parcelproof.service.importer import context_from_json

        response = self._post("/v1/shipments/context", {"tracking_number": tracking_number})
        if response.status_code >= 400:
            return _problem_of(response)
        return context_from_json(response.json())

    def bulk(self, events: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        from parcelproof.service.importer import Problem

        response = self._post("/v1/events/bulk", {"events": events, "atomic": True})
        if response.status_code >= 400:
            raise _ImportFatalError(f"the node refused the batch: {_problem_of(response).detail}")
        out: list[tuple[int, Any]] = []
        for item in response.json()["results"]:
            p = item.get("problem")
            problem = (
                Problem(str(p.get("type", "")).rsplit(":", 1)[-1], str(p.get("detail", "")))
                if isinstance(p, dict)
                else None
            )
            out.append((int(item["status"]), problem))
        return out


def _problem_of(response: httpx.Response) -> Any:
    from parcelproof.service.importer import Problem

    try:
        body = response.json()
        kind = str(body.get("type", "")).rsplit(":", 1)[-1]
        detail = str(body.get("detail") or body.get("title") or "")
    except (ValueError, AttributeError):
        kind, detail = "", ""
    return Problem(kind or f"http-{response.status_code}", detail or f"HTTP {response.status_code}")


def progress_bar() -> Any:
    """A rich progress bar on stderr (drawn only on a terminal, so pipes and logs stay clean)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


@app.command("import")
@_guarded
def import_events(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV (.csv), JSON Lines (.jsonl) or an EPCIS 2.0 document (.json); - for stdin",
            allow_dash=True,
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, jsonl or epcis (default: from the file name)",
            autocompletion=lambda: ["csv", "jsonl", "epcis"],
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="check the rows and look the shipments up; send nothing"),
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="write every rejected row (where, reason) to this CSV"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    api: ApiUrlOption = None,
    token: EventsTokenOption = None,
    agent_key: AgentKeyOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Import milestones in bulk, signed with the agent's key: each shipment's rows are stored
    all together or not at all, and a summary lists every rejected row with its reason.

    Exit 0 when every row is stored (or was by an earlier run), 1 when some were rejected,
    2 when the import could not start, 3 when the node stopped answering midway (run the
    same command again: what is stored is recognised, the rest is sent)."""
    import json as jsonlib

    import httpx

    from parcelproof.service import importer

    if fmt is not None and fmt not in importer.FORMATS:
        raise FormatError(f"--format must be one of {', '.join(importer.FORMATS)}")
    api_url, headers, signer = _agent_config(env_file, api, token, agent_key)
    stdin = str(path) == "-"
    kind: importer.Format = (
        fmt if fmt is not None else ("jsonl" if stdin else importer.detect_format(path.name))
    )
    try:
        if stdin:
            text = sys.stdin.buffer.read().decode("utf-8-sig")
        else:
            text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"the file is not UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e.strerror}") from None
    items = list(importer.read(kind, io.StringIO(text, newline="")))
    summary = importer.Summary()
    started = time.monotonic()
    interrupted: str | None = None
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=60.0) as client,
        progress_bar() as bar,
    ):
        checking = bar.add_task("checking rows", total=len(items))
        sending = bar.add_task(
            "looking shipments up" if dry_run else "importing",
            total=sum(1 for i in items if isinstance(i, importer.Row)),
        )
        try:
            importer.run_import(
                _HttpImportApi(client),
                signer,
                items,
                summary=summary,
                on_read=lambda n: bar.advance(checking, n),
                on_sent=lambda n: bar.advance(sending, n),
                dry_run=dry_run,
            )
        except importer.ImportInterruptedError as e:
            interrupted = str(e)
    elapsed = time.monotonic() - started
    if rejects is not None:
        import csv

        with rejects.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["where", "reason"])
            writer.writerows((r.where, r.reason) for r in summary.rejected)
    if json_output:
        typer.echo(
            jsonlib.dumps(
                {
                    "rows": summary.read,
                    "accepted": summary.accepted,
                    "already_imported": summary.already,
                    "rejected": [{"where": r.where, "reason": r.reason} for r in summary.rejected],
                    "not_attempted": summary.not_attempted,
                    "dry_run": dry_run,
                    "interrupted": interrupted,
                    "seconds": round(elapsed, 3),
                },
                indent=2,
            )
        )
    else:
        _print_import_summary(_out(), summary, elapsed, dry_run=dry_run, shown=20)
    if interrupted is not None:
        _print_error(
            f"{interrupted}; {summary.not_attempted:,} row(s) not sent. Run the same command "
            "again: rows already stored are recognised by their event ids"
        )
        raise typer.Exit(3)
    raise typer.Exit(1 if summary.rejected else 0)


def _print_import_summary(
    out: Console, summary: Any, elapsed: float, *, dry_run: bool, shown: int
) -> None:
    from rich.table import Table

    table = Table(title="dry run: nothing was sent" if dry_run else "import summary")
    table.add_column("rows", justify="left")
    table.add_column("count", justify="right")
    table.add_row("read", f"{summary.read:,}")
    table.add_row("would be imported" if dry_run else "imported", f"{summary.accepted:,}")
    table.add_row("already imported", f"{summary.already:,}")
    table.add_row("rejected", f"{len(summary.rejected):,}")
    if summary.not_attempted:
        table.add_row("not sent (interrupted)", f"{summary.not_attempted:,}")
    out.print(table)
    rate = summary.accepted / elapsed if elapsed > 0 else 0.0
    out.print(f"in {elapsed:.1f} s ({rate:,.0f} rows/s)", markup=False)
    if summary.rejected:
        rows = Table(title="rejected rows", show_lines=False)
        rows.add_column("where")
        rows.add_column("reason")
        for r in summary.rejected[:shown]:
            rows.add_row(Text(r.where), Text(r.reason))
        out.print(rows)
        if len(summary.rejected) > shown:
            out.print(
                f"… and {len(summary.rejected) - shown:,} more (--rejects FILE writes them all)",
                markup=False,
            )


@agent_app.command("register")
@_guarded
def agent_register(
    agent: Annotated[str, typer.Option("--agent", help="the agent key's address (0x…)")],
    days: Annotated[int, typer.Option("--days", min=1, help="validity from now")] = AGENT_KEY_DAYS,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Register an agent key for this node's courier on the ledger (signed by its account)."""
    from parcelproof.service.wiring import open_chain, open_store
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    chain = open_chain(settings)
    now = int(time.time())
    until = now + days * DAY
    chain.ledger.register_agent_key(agent, now, until, sender=chain.account)
    engine, store = open_store(settings)
    try:
        _audit(engine, store.log_id, AuditAction.AGENT_KEY_REGISTER, agent, {"valid_until": until})
    finally:
        engine.dispose()
    _out().print(
        f"registered agent key {agent} for courier 0x{chain.courier_id.hex()} "
        f"valid until {_date(until)}"
    )


@agent_app.command("revoke")
@_guarded
def agent_revoke(
    agent: Annotated[str, typer.Option("--agent", help="the agent key's address (0x…)")],
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Revoke an agent key on the ledger at once (a lost scanner, a driver who left): events it
    signs from now on are refused, and bundles show when it was revoked."""
    from parcelproof.service.wiring import open_chain, open_store
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    chain = open_chain(settings)
    chain.ledger.revoke_agent_key(agent, sender=chain.account)
    engine, store = open_store(settings)
    try:
        _audit(engine, store.log_id, AuditAction.AGENT_KEY_REVOKE, agent)
    finally:
        engine.dispose()
    _out().print(f"revoked agent key {agent} of courier 0x{chain.courier_id.hex()}")


# --- staff ----------------------------------------------------------------------------------

staff_app = typer.Typer(
    help="Staff accounts (operators, dispute resolvers, consortium admins).", no_args_is_help=True
)
app.add_typer(staff_app, name="staff")


def _staff_service(env_file: Path | None) -> tuple[Any, Any]:
    from parcelproof.service.wiring import audit_log, open_staff, open_store
    from parcelproof.settings import load_settings

    settings = load_settings(env_file)
    settings.require("keyring")
    engine, store = open_store(settings)
    service = open_staff(
        settings,
        engine,
        store.log_id,
        settings.node_keyring(),
        audit=audit_log(engine, store.log_id),
    )
    return engine, service


@staff_app.command("add")
@_guarded
def staff_add(
    username: Annotated[str, typer.Argument(help="3-64 of a-z 0-9 . _ -")],
    role: Annotated[
        str,
        typer.Option("--role", help="courier-operator, dispute-resolver or consortium-admin"),
    ],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    env_file: EnvFileOption = None,
) -> None:
    """Create a staff account (the first consortium admin is made this way). The password is
    asked for twice, never echoed; resolvers and admins must then enrol a second factor."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    engine, service = _staff_service(env_file)
    try:
        user = service.create_user(username, role, password, actor=_cli_actor())
    finally:
        engine.dispose()
    _out().print(f"created {role} {username} (id {user.user_id})")
    if role != "courier-operator":
        _out().print(
            "next: log in and enrol TOTP or a passkey; until then the account can do nothing else"
        )


@staff_app.command("list")
@_guarded
def staff_list(env_file: EnvFileOption = None) -> None:
    """List staff accounts with their role and second factors."""
    engine, service = _staff_service(env_file)
    try:
        users = service.store.users()
        rows = [(u, service.methods(u)) for u in users]
    finally:
        engine.dispose()
    from rich.table import Table

    table = Table("id", "username", "role", "second factors", "state")
    for user, methods in rows:
        table.add_row(
            user.user_id,
            _printable(user.username),
            user.role,
            ", ".join(m for m in methods if m != "recovery-code") or "none",
            "disabled" if user.disabled_at is not None else "active",
        )
    _out().print(table)


@staff_app.command("disable")
@_guarded
def staff_disable(
    user_id: Annotated[str, typer.Argument(help="the account id (see `staff list`)")],
    env_file: EnvFileOption = None,
) -> None:
    """Disable a staff account and end its sessions at once."""
    engine, service = _staff_service(env_file)
    try:
        service.disable_user(user_id, actor=_cli_actor())
    finally:
        engine.dispose()
    _out().print(f"disabled staff account {user_id}")


# --- audit ----------------------------------------------------------------------------------

audit_app = typer.Typer(
    help="The node's hash-chained audit log: verify it against the ledger, show entries.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _cli_actor() -> str:
    """The audit actor of a CLI command: ``cli:<OS user>`` (``cli`` if unknown)."""
    import getpass
    import re

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    user = re.sub(r"[^A-Za-z0-9._-]", "_", user)[:60]
    return f"cli:{user}" if user else "cli"


def _audit(
    engine: Engine,
    log_id: bytes,
    action: str,
    target: str | None = None,
    detail: dict[str, str | int | bool | None] | None = None,
) -> None:
    """Record a privileged CLI action in the node's audit log."""
    from parcelproof.service.wiring import audit_log

    audit_log(engine, log_id).record(_cli_actor(), action, target, detail)


def _printable(value: object) -> Text:
    """A stored value as plain text, control characters shown as ``?`` (never markup)."""
    shown = "".join(c if c.isprintable() else "?" for c in str(value))
    return Text(shown)


@audit_app.command("verify")
@_guarded
def audit_verify(rpc: NodeRpcOption = None, env_file: EnvFileOption = None) -> None:
    """Verify the node's audit log: every entry's hash and link, and the log against every
    head anchored on the ledger. Exit 0: intact; 1: tampered (each problem listed); 2: usage
    or configuration error."""
    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.service.wiring import audit_log, open_database, redacted_url
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    settings.require("courier_id", "ledger_address")
    if not settings.rpc_url:
        raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
    courier_id = settings.courier_id_bytes()
    ledger = LedgerClient(devnet.connect(settings.rpc_url), settings.ledger_address or "")
    if settings.chain_id is not None and ledger.chain_id != settings.chain_id:
        raise ConfigurationError(
            f"PARCELPROOF_CHAIN_ID is {settings.chain_id} but the JSON-RPC endpoint serves "
            f"chain {ledger.chain_id}"
        )
    # The chain first: a head anchored after the database is read would look like truncation.
    latest = ledger.latest_audit_head(courier_id)
    heads = ledger.audit_heads(courier_id)
    if latest is not None and all(h.size != latest.size for h in heads):
        heads.append(latest)  # the view is the truth should the event logs be incomplete
    engine = open_database(settings.database())
    try:
        log = audit_log(engine, courier_id)
        with progress_bar() as bar:
            task = bar.add_task("verifying audit entries", total=log.head()[0])
            report = log.verify_against(heads, lambda: bar.advance(task))
    finally:
        engine.dispose()

    out = _out()
    out.print(
        f"audit log of courier 0x{courier_id.hex()} in {redacted_url(settings.database())}",
        markup=False,
    )
    out.print(f"  entries          {report.size:,}", markup=False)
    if report.size:
        out.print(f"  head             0x{report.head.hex()}", markup=False)
    where = f"ledger {ledger.address} on chain {ledger.chain_id}"
    if heads:
        last = max(heads, key=lambda h: h.size)
        block = f" (block {last.block_number})" if last.block_number is not None else ""
        out.print(
            f"  anchored heads   {len(heads)} on {where}; the latest covers "
            f"{last.size:,} entries{block}",
            markup=False,
        )
    else:
        out.print(f"  anchored heads   none yet on {where}", markup=False)
    if report.ok:
        if report.unanchored:
            out.print(
                f"  not anchored     {report.unanchored:,} newest entries (protected by the hash "
                "chain only until the worker anchors them)",
                markup=False,
            )
        out.print(
            Text.assemble(
                ("INTACT", "bold green"),
                f": every entry hashes and links correctly; {report.anchored_checked} "
                "anchored head(s) match",
            )
        )
        return
    total = len(report.problems) + report.omitted
    out.print(Text.assemble(("TAMPERED", "bold red"), f": {total} problem(s)"))
    for problem in report.problems:
        out.print(Text.assemble("  - ", (f"[{problem.kind}]", "red"), " ", problem.message))
    if report.omitted:
        out.print(f"  … and {report.omitted} more problem(s) not listed", markup=False)
    out.print(
        "See docs/operations.md, 'Audit log': keep the database as it is and investigate.",
        markup=False,
    )
    raise typer.Exit(1)


@audit_app.command("show")
@_guarded
def audit_show(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="how many recent entries")
    ] = 20,
    env_file: EnvFileOption = None,
) -> None:
    """List the most recent audit entries, newest first (no verification: see `verify`)."""
    from rich.table import Table

    from parcelproof.service.wiring import audit_log, open_database
    from parcelproof.settings import load_settings

    settings = load_settings(env_file)
    courier_id = settings.courier_id_bytes()
    engine = open_database(settings.database())
    try:
        audit = audit_log(engine, courier_id)
        entries = audit.recent(limit)
        size, head = audit.head()
        anchors = audit.anchors()
    finally:
        engine.dispose()
    out = _out()
    table = Table("seq", "time (UTC)", "actor", "action", "target", "detail")
    for entry in entries:
        when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            _printable(entry.seq),
            _printable(when),
            _printable(entry.actor),
            _printable(entry.action),
            _printable(entry.target or ""),
            _printable(entry.detail_json),
        )
    if entries:
        out.print(table)
    out.print(
        f"{size:,} entries" + (f", head 0x{head.hex()}" if size else ""),
        markup=False,
    )
    if anchors:
        last = anchors[-1]
        block = f" in block {last.block_number}" if last.block_number is not None else ""
        out.print(f"latest anchored head: size {last.size:,}{block}", markup=False)
    else:
        out.print("no audit head anchored yet", markup=False)


# --- privacy --------------------------------------------------------------------------------

privacy_app = typer.Typer(
    help="Data-subject requests: export, erase (crypto-shredding), retention, receipts.",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")


def _privacy_node(env_file: Path | None, rpc: str | None) -> NodeRuntime:
    """The courier node (its keys sign erasure receipts, its ledger names the domain)."""
    from parcelproof.service.wiring import open_node
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    if not settings.rpc_url:
        raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
    return open_node(settings)


def _write_private(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` atomically to a new file only its owner can read."""
    if path.exists() and not force:
        raise ConfigurationError(f"{path} exists: pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@privacy_app.command("export")
@_guarded
def privacy_export(
    tracking_number: Annotated[str, typer.Argument(help="the parcel's tracking number")],
    out: Annotated[Path, typer.Option("--out", help="write the export (JSON) here, mode 0600")],
    force: Annotated[bool, typer.Option("--force", help="overwrite --out")] = False,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Export everything this node holds about a parcel, decrypted, as JSON (the
    parcelproof-export format of docs/privacy.md). The file holds personal data."""
    import json

    runtime = _privacy_node(env_file, rpc)
    try:
        document = runtime.node.export(tracking_number)
        shipment = document["shipment"]
        _audit(
            runtime.engine,
            runtime.node.courier_id,
            "privacy.export",
            shipment["shipmentId"],
            {"state": shipment["state"], "events": len(document["events"])},
        )
        _write_private(out, json.dumps(document, indent=2) + "\n", force=force)
    finally:
        runtime.close()
    _out().print(
        f"wrote {out}: shipment {shipment['shipmentId']} ({shipment['state']}), "
        f"{len(document['events'])} events (personal data: keep it private)",
        markup=False,
    )


@privacy_app.command("erase")
@_guarded
def privacy_erase(
    tracking_number: Annotated[str, typer.Argument(help="the parcel's tracking number")],
    yes: Annotated[
        bool, typer.Option("--yes", help="confirm: the erasure cannot be undone")
    ] = False,
    reason: Annotated[
        str, typer.Option("--reason", help="request (the data subject asked) or legal")
    ] = "request",
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Erase a parcel's details by destroying its data key (crypto-shredding) and print the
    signed erasure receipt (JSON). Erasing again prints the same receipt."""
    import json

    from parcelproof.service.privacy import OPERATOR_REASONS, check_reason

    check_reason(reason, OPERATOR_REASONS)
    if not yes:
        raise ConfigurationError(
            "erasure destroys the parcel's details for good: pass --yes to confirm"
        )
    runtime = _privacy_node(env_file, rpc)
    try:
        node = runtime.node
        shipment_id = node.shipment_id(tracking_number)
        before = node.erasure_receipt(tracking_number)
        receipt = before or node.erase(tracking_number, reason)
        if before is None:
            _audit(
                runtime.engine,
                node.courier_id,
                "privacy.erase",
                shipment_id,
                {"reason": reason, "events": receipt.erasure.event_count},
            )
    finally:
        runtime.close()
    when = _date(receipt.erasure.erased_at)
    state = "was already erased" if before is not None else "erased"
    typer.echo(f"shipment {shipment_id} {state} on {when}; signed receipt:", err=True)
    typer.echo(json.dumps(receipt.to_json(), indent=2))


@privacy_app.command("retention")
@_guarded
def privacy_retention(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be erased, erase nothing")
    ] = False,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Erase every shipment idle for longer than PARCELPROOF_RETENTION_DAYS (reason
    retention; the anchor worker also does this once a day). 0 days: retention is off."""
    from parcelproof.service.privacy import RETENTION, RETENTION_ACTOR, retention_seconds

    runtime = _privacy_node(env_file, rpc)
    try:
        days = runtime.settings.retention_days
        if days == 0:
            _out().print("retention is off (PARCELPROOF_RETENTION_DAYS=0): nothing erased")
            return
        node = runtime.node
        with _working("finding (and erasing) shipments past retention"):
            result = node.erase_expired(node.clock.now(), retention_seconds(days), dry_run=dry_run)
        if not dry_run:
            for shipment_id in result.erased:
                runtime.audit.record(
                    RETENTION_ACTOR, "privacy.erase", shipment_id, {"reason": RETENTION}
                )
    finally:
        runtime.close()
    out = _out()
    for shipment_id in result.erased:
        out.print(shipment_id, markup=False)
    verb = "would erase" if dry_run else "erased"
    out.print(
        f"{verb} {len(result.erased)} shipments idle since before {_date(result.cutoff)} "
        f"(retention {days} days)",
        markup=False,
    )


@privacy_app.command("verify-receipt")
@_guarded
def privacy_verify_receipt(
    receipt_file: Annotated[Path, typer.Argument(help="the erasure receipt (JSON)")],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc", envvar="PARCELPROOF_RPC_URL", help="JSON-RPC URL of the receipt's chain"
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="check the signature only, not who signed")
    ] = False,
) -> None:
    """Verify an erasure receipt: its EIP-712 signature and, against the chain, that the
    signer is the courier's anchoring account. Exit 0: valid; 1: invalid; 2: unusable."""
    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.core.errors import VerificationError
    from parcelproof.service.privacy import parse_receipt, verify_receipt

    receipt = parse_receipt(receipt_file.read_bytes())
    if not offline and not rpc:
        raise ConfigurationError("give --rpc URL (the chain the receipt names), or --offline")
    ledger = None
    if not offline:
        ledger = LedgerClient(devnet.connect(rpc), receipt.domain.verifying_contract)
    try:
        verify_receipt(receipt, ledger)
    except VerificationError as error:
        _print_error(f"INVALID erasure receipt: {error}")
        raise typer.Exit(1) from None
    e = receipt.erasure
    checked = "signature only (offline)" if offline else "signed by the courier's account"
    _out().print(
        f"VALID ({checked}): courier 0x{e.log_id.hex()} erased shipment 0x{e.shipment.hex()} "
        f"on {_date(e.erased_at)} after {e.event_count} events (reason {e.reason}), "
        f"signer {receipt.signer}",
        markup=False,
    )


# --- monitor --------------------------------------------------------------------------------

# Defaults of `monitor` (the same as parcelproof.service.monitor's; literal here so that the
# CLI does not import the chain stack before a command runs).
MONITOR_STALL_AFTER = 3600
MONITOR_LATE_AFTER = 900
MONITOR_REVOCATION_WINDOW = 86400
MONITOR_INTERVAL = 60.0

if TYPE_CHECKING:
    from parcelproof.service.monitor import Finding, MonitorReport


@app.command("monitor")
@_guarded
def monitor(
    rpc: NodeRpcOption = None,
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", help="ParcelLedger address (default: PARCELPROOF_LEDGER_ADDRESS)"),
    ] = None,
    from_block: Annotated[
        int,
        typer.Option(
            "--from-block",
            min=0,
            help="read logs from this block on, e.g. the ledger's deployment block (couriers "
            "admitted earlier and silent since are not seen)",
        ),
    ] = 0,
    stall_after: Annotated[
        int,
        typer.Option(
            "--stall-after",
            min=1,
            help="seconds without a checkpoint (and without any sign of life) after which an "
            "active courier is stalled",
        ),
    ] = MONITOR_STALL_AFTER,
    late_after: Annotated[
        int,
        typer.Option(
            "--late-after",
            min=1,
            help="longest acceptable unexplained wait between two consecutive checkpoints",
        ),
    ] = MONITOR_LATE_AFTER,
    revocation_window: Annotated[
        int,
        typer.Option(
            "--revocation-window",
            min=0,
            help="also report agent keys revoked up to this many seconds before a dispute "
            "was opened (0: only revocations after the opening)",
        ),
    ] = MONITOR_REVOCATION_WINDOW,
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit 0/1")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="seconds between passes (watching)")
    ] = MONITOR_INTERVAL,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="JSON: one document with --once, else one finding a line"),
    ] = False,
    env_file: EnvFileOption = None,
) -> None:
    """Watch every courier of the consortium from chain data alone: stalled logs, late
    anchoring, agent keys revoked around open disputes, anchors after removal, account changes
    and removals. Without --once, polls and prints new findings until SIGINT/SIGTERM. With
    --once, exit 0: no alert; 1: alerts; 2: usage, configuration or chain error."""
    import json

    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.core.errors import ChainError
    from parcelproof.service.monitor import LedgerReader, MonitorPolicy, analyse, new_findings
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc, ledger_address=ledger)
    if not settings.rpc_url:
        raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
    if not settings.ledger_address:
        raise ConfigurationError("missing setting: PARCELPROOF_LEDGER_ADDRESS (or --ledger)")
    client = LedgerClient(devnet.connect(settings.rpc_url), settings.ledger_address.strip())
    if settings.chain_id is not None and client.chain_id != settings.chain_id:
        raise ConfigurationError(
            f"PARCELPROOF_CHAIN_ID is {settings.chain_id} but the JSON-RPC endpoint serves "
            f"chain {client.chain_id}"
        )
    policy = MonitorPolicy(stall_after, late_after, revocation_window)
    reader = LedgerReader(client, from_block)
    reader.check()
    head = client.block_number()
    if from_block > head:
        raise ConfigurationError(f"--from-block {from_block} is beyond the chain's head {head}")

    def run() -> MonitorReport:
        snapshot = reader.read()
        # Wall-clock time, or the chain's if a dev chain runs ahead of it.
        return analyse(snapshot, policy, max(int(time.time()), snapshot.block_time))

    out = _out()
    with _working("reading the ledger's history"):
        report = run()
    if once:
        if json_output:
            typer.echo(json.dumps(report.to_json(), indent=2))
        else:
            _monitor_print_report(out, report)
        raise typer.Exit(1 if report.alerts else 0)

    seen: set[str] = set()
    stop = threading.Event()
    with _signals_absorbed() as received:
        watcher = threading.Thread(target=_stop_on_signal, args=(received, stop), daemon=True)
        watcher.start()
        try:
            if not json_output:
                _monitor_print_report(out, report, findings=False)
                out.print(f"watching every {interval:g}s (Ctrl-C to stop)", markup=False)
            while True:
                for finding in new_findings(report, seen):
                    if json_output:
                        typer.echo(json.dumps(finding.to_json()))
                    else:
                        out.print(_monitor_line(finding, report.now))
                _flush()
                if stop.wait(interval):
                    break
                try:
                    report = run()
                except ChainError as e:  # NetworkError included: keep watching
                    _print_error(f"pass failed, retrying in {interval:g}s: {e}")
        finally:
            stop.set()
    if not json_output:
        out.print("monitor stopped", markup=False)


def _monitor_print_report(out: Console, report: MonitorReport, *, findings: bool = True) -> None:
    """The human form of a :class:`~parcelproof.service.monitor.MonitorReport`: a table of
    couriers, one of findings (``--json`` has every id in full)."""
    from rich.table import Table

    from parcelproof.service.monitor import format_duration, format_time

    out.print(
        f"ledger {report.ledger} on chain {report.chain_id}: block {report.block:,} "
        f"({format_time(report.block_time)}), logs read from block {report.from_block:,}; "
        f"checked at {format_time(report.now)}",
        markup=False,
    )
    if not report.couriers:
        out.print("no courier admitted in the blocks read", markup=False)
    else:
        table = Table(title="couriers (times UTC)", title_justify="left")
        table.add_column("courier", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("size", justify="right")
        table.add_column("checkpoints", justify="right")
        table.add_column("last checkpoint")
        table.add_column("idle", no_wrap=True)
        table.add_column("last audit head")
        styles = {
            "ok": "green",
            "quiet": "yellow",
            "stalled": "bold red",
            "suspended": "yellow",
            "removed": "dim",
        }
        for c in report.couriers:
            table.add_row(
                _monitor_id(c.courier_id),
                Text(c.state, style=styles.get(c.state, "")),
                f"{c.latest_size:,}",
                f"{c.checkpoints:,}",
                _monitor_when(c.latest_checkpoint_at),
                "-" if c.idle_seconds is None else format_duration(c.idle_seconds),
                _monitor_when(c.latest_audit_head_at),
            )
        out.print(table)
    if not findings:
        return
    if report.findings:
        table = Table(title="findings", title_justify="left")
        table.add_column("severity", no_wrap=True)
        table.add_column("finding", no_wrap=True)
        table.add_column("courier", no_wrap=True)
        table.add_column("block", justify="right", no_wrap=True)
        table.add_column("what", ratio=1)
        for f in report.findings:
            table.add_row(
                Text(f.severity.value.upper(), style=_monitor_style(f.severity.value)),
                f.kind.value,
                _monitor_id(f.courier_id),
                "-" if f.block is None else str(f.block),
                Text(f.message),
            )
        out.print(table)
    alerts, notices = len(report.alerts), len(report.notices)
    if alerts:
        out.print(
            Text.assemble(("ALERTS", "bold red"), f": {alerts} alert(s), {notices} notice(s)")
        )
    else:
        out.print(Text.assemble(("OK", "bold green"), f": no alert, {notices} notice(s)"))


def _monitor_line(finding: Finding, now: int) -> Text:
    from parcelproof.service.monitor import format_time

    return Text.assemble(
        format_time(now),
        " ",
        (finding.severity.value.upper(), _monitor_style(finding.severity.value)),
        f" {finding.kind.value} courier 0x{finding.courier_id.hex()}: {finding.message}",
    )


def _monitor_when(at: int | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _monitor_id(courier_id: bytes) -> Text:
    return Text(f"0x{courier_id.hex()[:10]}…")


def _monitor_style(severity: str) -> str:
    return "bold red" if severity == "alert" else "yellow"


# --- disputes -------------------------------------------------------------------------------

dispute_app = typer.Typer(help="Evidence for dispute resolvers.", no_args_is_help=True)
app.add_typer(dispute_app, name="dispute")


@dispute_app.command("report")
@_guarded
def dispute_report(
    bundle: Annotated[Path, typer.Argument(help="the proof bundle (JSON), e.g. a dispute bundle")],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc", envvar="PARCELPROOF_RPC_URL", help="JSON-RPC URL of the bundle's chain"
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="write the HTML report here (mode 0600)")
    ] = Path("report.html"),
    late_after: Annotated[
        int,
        typer.Option(
            "--late-after",
            min=1,
            help="flag events anchored more than this many seconds after their event time",
        ),
    ] = 3600,
) -> None:
    """Write a print-ready HTML dispute report built only from a bundle and the chain.

    Exit code 0: written, the bundle verifies.
    1: written, the bundle fails verification (the report highlights the failures).
    2: unusable input (malformed bundle, unreadable file, unreachable or wrong chain).
    """
    import hashlib

    from parcelproof.service.report import Severity, build_report, render_html

    parsed = cli_verify._load(bundle)
    if not rpc:
        raise FormatError("give --rpc URL: the report reads the chain the bundle names")
    ledger = cli_verify._ledger(parsed, rpc)
    digest = hashlib.sha256(bundle.read_bytes()).digest()
    report = build_report(parsed, ledger, late_after=late_after, bundle_sha256=digest)
    _write_private(out, render_html(report), force=True)
    counts = ", ".join(f"{report.count(s)} {s.value}" for s in Severity)
    _out().print(
        f"wrote {out}: {report.verdict} ({report.summary}); findings: {counts}",
        markup=False,
    )
    raise typer.Exit(0 if report.verification.ok else 1)


# --- consortium governance --------------------------------------------------------------

consortium_app = typer.Typer(
    help="Consortium membership on the ledger (admin key): admit, suspend, reinstate, remove, "
    "rotate accounts.",
    no_args_is_help=True,
)
app.add_typer(consortium_app, name="consortium")
CourierArg = Annotated[str, typer.Argument(help="the courier's 32-byte id, 64 hex digits")]
AccountOpt = Annotated[str, typer.Option("--account", help="the anchoring account (0x…)")]


def _governance(env_file: Path | None, rpc: str | None, *, admin: bool = True) -> Any:
    """The ledger named by the settings, and the consortium admin account when needed."""
    from parcelproof.chain import devnet
    from parcelproof.chain.ledger import LedgerClient
    from parcelproof.settings import load_settings

    settings = load_settings(env_file, rpc_url=rpc)
    settings.require("ledger_address", *(("admin_key",) if admin else ()))
    if not settings.rpc_url:
        raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
    ledger = LedgerClient(devnet.connect(settings.rpc_url), settings.ledger_address or "")
    if settings.chain_id is not None and ledger.chain_id != settings.chain_id:
        raise ConfigurationError(
            f"PARCELPROOF_CHAIN_ID is {settings.chain_id} but the endpoint serves chain "
            f"{ledger.chain_id}"
        )
    _ = ledger.resolver_role  # a view call: a clear ChainError when no ParcelLedger is there
    return ledger, (settings.admin() if admin else None)


def _courier_id(text: str) -> bytes:
    from parcelproof.settings import parse_hex32

    return parse_hex32(text, "COURIER_ID")


@consortium_app.command("show")
@_guarded
def consortium_show(rpc: NodeRpcOption = None, env_file: EnvFileOption = None) -> None:
    """List the couriers the ledger admitted, their anchoring accounts and latest checkpoint
    (one courier per line: id, account, admission, state, latest checkpoint)."""
    ledger, _ = _governance(env_file, rpc, admin=False)
    members = ledger.couriers()
    out = _out()
    for member in members:
        courier = ledger.courier(member.courier_id)
        latest = ledger.latest_checkpoint(member.courier_id)
        periods = ledger.suspensions(member.courier_id)
        state = "active" if courier.active else f"removed {_date(courier.removed_at or 0)}"
        if courier.active and periods and periods[-1].ongoing:
            state = f"suspended {_date(periods[-1].suspended_at)}"
        if periods:
            state += f" ({len(periods)} suspension(s))"
        anchored = f"size {latest.size} at {_date(latest.anchored_at)}" if latest else "none"
        out.print(
            f"0x{member.courier_id.hex()}  account {courier.account}  "
            f"admitted {_date(courier.admitted_at)}  {state}  latest checkpoint: {anchored}",
            soft_wrap=True,
        )
    out.print(f"{len(members)} courier(s) on ledger {ledger.address}")


@consortium_app.command("admit")
@_guarded
def consortium_admit(
    courier_id: CourierArg,
    account: AccountOpt,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Admit a courier with its anchoring account (the courier's node holds that key)."""
    ledger, admin = _governance(env_file, rpc)
    ledger.admit_courier(_courier_id(courier_id), account, sender=admin)
    _out().print(f"admitted courier 0x{_courier_id(courier_id).hex()} with account {account}")


@consortium_app.command("remove")
@_guarded
def consortium_remove(
    courier_id: CourierArg,
    yes: Annotated[bool, typer.Option("--yes", help="confirm: removal is permanent")] = False,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Remove a courier for good: it can no longer anchor, and its agent keys stop being valid
    from now on (events signed earlier keep verifying). Its history stays on the ledger."""
    if not yes:
        raise ConfigurationError("removal is permanent: pass --yes to confirm")
    ledger, admin = _governance(env_file, rpc)
    ledger.remove_courier(_courier_id(courier_id), sender=admin)
    _out().print(f"removed courier 0x{_courier_id(courier_id).hex()}")


@consortium_app.command("suspend")
@_guarded
def consortium_suspend(
    courier_id: CourierArg,
    yes: Annotated[
        bool, typer.Option("--yes", help="confirm: events signed while suspended never verify")
    ] = False,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Suspend a courier until `consortium reinstate`: it can no longer anchor or register agent
    keys, and its agent keys are not valid while it lasts. Events signed before keep verifying;
    events dated inside the suspension never will, even after the reinstatement."""
    if not yes:
        raise ConfigurationError(
            "events dated inside a suspension never verify, even after reinstatement: "
            "pass --yes to confirm"
        )
    ledger, admin = _governance(env_file, rpc)
    ledger.suspend_courier(_courier_id(courier_id), sender=admin)
    _out().print(f"suspended courier 0x{_courier_id(courier_id).hex()}")


@consortium_app.command("reinstate")
@_guarded
def consortium_reinstate(
    courier_id: CourierArg,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """End a courier's suspension: it anchors again, and its agent keys are valid again from now
    on (within their windows)."""
    ledger, admin = _governance(env_file, rpc)
    ledger.reinstate_courier(_courier_id(courier_id), sender=admin)
    _out().print(f"reinstated courier 0x{_courier_id(courier_id).hex()}")


@consortium_app.command("set-account")
@_guarded
def consortium_set_account(
    courier_id: CourierArg,
    account: AccountOpt,
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Rotate a courier's anchoring account (a lost or compromised node key): the old account
    can no longer anchor or manage agent keys."""
    ledger, admin = _governance(env_file, rpc)
    ledger.set_courier_account(_courier_id(courier_id), account, sender=admin)
    _out().print(f"courier 0x{_courier_id(courier_id).hex()} now anchors with {account}")


@consortium_app.command("grant-resolver")
@_guarded
def consortium_grant_resolver(
    account: Annotated[str, typer.Argument(help="the dispute resolver's account (0x…)")],
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Let an account open and resolve disputes on the ledger."""
    ledger, admin = _governance(env_file, rpc)
    ledger.grant_resolver(account, sender=admin)
    _out().print(f"{account} may now resolve disputes")


@consortium_app.command("revoke-resolver")
@_guarded
def consortium_revoke_resolver(
    account: Annotated[str, typer.Argument(help="the dispute resolver's account (0x…)")],
    rpc: NodeRpcOption = None,
    env_file: EnvFileOption = None,
) -> None:
    """Withdraw an account's dispute-resolver role."""
    ledger, admin = _governance(env_file, rpc)
    ledger.revoke_resolver(account, sender=admin)
    _out().print(f"{account} may no longer resolve disputes")


app.add_typer(cli_devnet.devnet_app, name="devnet")
app.add_typer(cli_ops.db_app, name="db")
for _command in (cli_devnet.up, cli_devnet.down, cli_devnet.status, cli_devnet.reset):
    cli_devnet.devnet_app.command(_command.__name__)(_guarded(_command))


def main() -> None:
    """Console-script entry point."""
    app()
