"""Development chains and connections: in-process eth-tester, anvil from npm, any JSON-RPC URL.

The well-known anvil/eth-tester dev accounts are public knowledge: never use them, or any chain
started here, for real funds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import Web3Exception
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint, Wei

from parcelproof.core.errors import ChainError, NetworkError

#: Receipt poll interval for JSON-RPC nodes (web3's default is 100 ms; dev nodes mine at once).
RECEIPT_POLL_LATENCY = 0.01
#: Seconds to wait for a transaction receipt before giving up.
RECEIPT_TIMEOUT = 120.0
#: Default chain id of anvil and of the chains it is told to impersonate.
ANVIL_CHAIN_ID = 31337
#: Environment variable overriding the anvil executable.
ANVIL_ENV = "PARCELPROOF_ANVIL"
#: Funding per account created by :func:`funded_accounts` (10 ether).
DEFAULT_FUNDING_WEI = 10 * 10**18

_LISTENING = re.compile(r"Listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
_PLATFORMS = {"linux": "linux", "darwin": "darwin", "win32": "win32"}
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def embedded_web3() -> Web3:
    """An in-process chain (eth-tester on py-evm) that mines each transaction immediately."""
    from eth_tester import EthereumTester, PyEVMBackend

    tester = EthereumTester(backend=PyEVMBackend(), auto_mine_transactions=True)
    return Web3(EthereumTesterProvider(tester))


def connect(rpc_url: str | None, *, timeout: float = 30.0) -> Web3:
    """Connect to ``rpc_url`` (HTTP JSON-RPC), or to a fresh embedded chain when ``None``.

    Checks the endpoint answers ``eth_chainId``; wraps any transport failure in
    :class:`NetworkError`.
    """
    if rpc_url is None:
        return embedded_web3()
    if not rpc_url.startswith(("http://", "https://")):
        raise NetworkError(f"unsupported JSON-RPC URL {rpc_url!r}: use http:// or https://")
    # eth_chainId is remembered: web3's request validation asks it before every call and
    # transaction otherwise, doubling the round trips (an endpoint's chain never changes).
    w3 = Web3(
        HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
    )
    # Consortium chains (Clique, QBFT) carry long extraData that web3 refuses by default.
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    try:
        w3.eth.chain_id  # noqa: B018 - a cheap liveness probe
    except (OSError, Web3Exception) as e:
        raise NetworkError(redact(f"JSON-RPC endpoint {rpc_url} is unreachable: {e}")) from e
    return w3


def is_embedded(w3: Web3) -> bool:
    """True for an in-process eth-tester chain."""
    return isinstance(w3.provider, EthereumTesterProvider)


def receipt_poll_latency(w3: Web3) -> float:
    """How often to poll for receipts on this connection."""
    return 0.0 if is_embedded(w3) else RECEIPT_POLL_LATENCY


def funded_accounts(
    w3: Web3, n: int, *, value_wei: int = DEFAULT_FUNDING_WEI
) -> list[LocalAccount]:
    """Create ``n`` fresh local keys, each funded with ``value_wei`` from the node's first
    unlocked dev account (eth-tester, anvil). Fails on nodes without unlocked accounts."""
    try:
        dev_accounts = w3.eth.accounts
    except (OSError, Web3Exception) as e:
        raise NetworkError(redact(f"cannot list the node's accounts: {e}")) from e
    if not dev_accounts:
        raise ChainError("the node has no unlocked dev accounts to fund from")
    source = dev_accounts[0]
    accounts: list[LocalAccount] = [Account.create() for _ in range(n)]
    try:
        hashes = [
            w3.eth.send_transaction({"from": source, "to": acct.address, "value": Wei(value_wei)})
            for acct in accounts
        ]
        for tx_hash in hashes:
            receipt = w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=receipt_poll_latency(w3)
            )
            if receipt["status"] != 1:
                raise ChainError(f"funding transaction {tx_hash.hex()} failed")
    except OSError as e:
        raise NetworkError(redact(f"funding accounts failed: {e}")) from e
    except Web3Exception as e:
        raise ChainError(redact(f"funding accounts failed: {e}")) from e
    return accounts


# --- anvil ----------------------------------------------------------------------------------


def anvil_binary(node_modules: Path | None = None) -> Path:
    """The anvil executable of the platform package under ``node_modules/@foundry-rs``
    (or ``$PARCELPROOF_ANVIL``)."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ChainError(f"{ANVIL_ENV}={override} does not exist")
        return path
    os_name = _PLATFORMS.get(sys.platform)
    arch = _ARCHES.get(platform.machine().lower())
    if os_name is None or arch is None:
        raise ChainError(f"no anvil npm package for {sys.platform}/{platform.machine()}")
    if node_modules is None:
        from parcelproof.chain.compile import node_modules_dir

        node_modules = node_modules_dir()
    exe = "anvil.exe" if os_name == "win32" else "anvil"
    path = node_modules / "@foundry-rs" / f"anvil-{os_name}-{arch}" / "bin" / exe
    if not path.is_file():
        raise ChainError(
            f"anvil not found at {path}: run `npm ci` (package @foundry-rs/anvil) "
            f"or set {ANVIL_ENV}"
        )
    return path


class Anvil:
    """A local anvil node on a free 127.0.0.1 port, as a context manager.

    ``state`` (optional) is a JSON file that anvil loads at start and writes back on a clean
    stop (``--state``), so the chain survives restarts; without it the chain is forgotten.
    """

    def __init__(
        self,
        *,
        chain_id: int = ANVIL_CHAIN_ID,
        state: Path | str | None = None,
        accounts: int = 10,
        start_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.chain_id = chain_id
        self.state = Path(state) if state is not None else None
        self.accounts = accounts
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self.url = ""
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._logdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def log_path(self) -> Path | None:
        """File with anvil's output while it runs."""
        return Path(self._logdir.name) / "anvil.log" if self._logdir else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Anvil:
        """Start anvil and wait (bounded) until it answers JSON-RPC."""
        if self._proc is not None:
            raise ChainError("anvil is already started")
        binary = anvil_binary()
        self._logdir = tempfile.TemporaryDirectory(prefix="parcelproof-anvil-")
        log_path = Path(self._logdir.name) / "anvil.log"
        args = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
        ]
        if self.state is not None:
            args += ["--state", str(self.state)]
        args += list(self.extra_args)
        with log_path.open("wb") as log:
            try:
                self._proc = subprocess.Popen(  # noqa: S603 - fixed executable, our arguments
                    args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as e:
                self._cleanup_logs()
                raise ChainError(f"cannot start {binary}: {e}") from e
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ChainError(f"anvil exited during start-up: {self._log_tail()}")
            if not self.url:
                match = _LISTENING.search(self._log_text())
                if match:
                    self.port = int(match.group(2))
                    self.url = f"http://{match.group(1)}:{self.port}"
            if self.url and self._answers():
                return
            time.sleep(0.05)
        raise ChainError(f"anvil did not answer within {self.start_timeout}s: {self._log_tail()}")

    def _answers(self) -> bool:
        return answers_chain_id(self.url, self.chain_id)

    def web3(self) -> Web3:
        """A connection to this node."""
        if not self.url:
            raise ChainError("anvil is not running")
        return connect(self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node: SIGTERM (anvil then writes ``--state``), wait, SIGKILL as a fallback.
        Idempotent; always reaps the process so no zombie is left behind."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:
                proc.wait()
        self.url = ""
        self.port = 0
        self._cleanup_logs()

    def _cleanup_logs(self) -> None:
        if self._logdir is not None:
            self._logdir.cleanup()
            self._logdir = None

    def _log_text(self) -> str:
        path = self.log_path
        try:
            return path.read_text(errors="replace") if path else ""
        except OSError:
            return ""

    def _log_tail(self, lines: int = 15) -> str:
        tail = self._log_text().strip().splitlines()[-lines:]
        return "\n".join(tail) or "(no output)"

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def quick_rpc(url: str, method: str, timeout: float = 1.0) -> object:
    """One bare JSON-RPC call to a local dev node (no web3: start-up probes stay cheap).
    Raises OSError, ValueError, KeyError or TypeError when it does not answer properly."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
    request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
        return json.load(reply)["result"]


def answers_chain_id(url: str, chain_id: int) -> bool:
    """Whether the node at ``url`` answers ``eth_chainId`` with ``chain_id``."""
    try:
        return int(str(quick_rpc(url, "eth_chainId")), 16) == chain_id
    except (OSError, ValueError, KeyError, TypeError):
        return False


def redact(text: str) -> str:
    """Hide credentials and API keys that providers embed in RPC URLs (user:password@, long
    path tokens), wherever they appear in ``text`` (e.g. an error message quoting the URL)."""
    text = re.sub(r"//[^/@\s]+@", "//***@", text)
    return re.sub(r"/[0-9A-Za-z_-]{20,}", "/***", text)
