"""The persistent local devnet: one background anvil under the data directory, its state kept."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from parcelproof.chain.devnet import ANVIL_CHAIN_ID, answers_chain_id, anvil_binary, quick_rpc
from parcelproof.core.errors import ChainError

#: Files of a devnet directory.
STATE_FILE = "anvil-state.json"
INFO_FILE = "devnet.json"
LOG_FILE = "anvil.log"
#: Default JSON-RPC port of the local devnet (the usual dev-node port).
DEFAULT_PORT = 8545
#: Seconds between anvil's state dumps: a kill -9 loses at most this much chain history.
STATE_INTERVAL = 1


@dataclass(frozen=True)
class DevnetStatus:
    """What `devnet status` reports."""

    directory: Path
    running: bool
    pid: int | None = None
    url: str | None = None
    chain_id: int | None = None
    block_number: int | None = None
    state_bytes: int | None = None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust the signal check
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalDevnet:
    """One anvil per directory, detached from the command that starts it.

    ``up`` starts it (or finds it running), ``down`` stops it so that it writes its state,
    ``status`` says whether it runs and where. The chain survives ``down``/``up`` through
    anvil's ``--state`` file, dumped every :data:`STATE_INTERVAL` seconds and on exit.
    """

    def __init__(
        self, directory: Path, *, port: int = DEFAULT_PORT, chain_id: int = ANVIL_CHAIN_ID
    ) -> None:
        self.directory = directory
        self.port = port
        self.chain_id = chain_id

    @property
    def state_file(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def _info_file(self) -> Path:
        return self.directory / INFO_FILE

    def _info(self) -> dict[str, object]:
        try:
            info = json.loads(self._info_file.read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def status(self) -> DevnetStatus:
        """Whether the devnet runs, its URL, chain id and head block."""
        info = self._info()
        pid, url = info.get("pid"), info.get("url")
        state = self.state_file.stat().st_size if self.state_file.exists() else None
        if not isinstance(pid, int) or not isinstance(url, str) or not _alive(pid):
            return DevnetStatus(self.directory, running=False, state_bytes=state)
        try:
            chain_id = int(str(quick_rpc(url, "eth_chainId")), 16)
            block = int(str(quick_rpc(url, "eth_blockNumber")), 16)
        except (OSError, ValueError, KeyError, TypeError):
            return DevnetStatus(self.directory, running=True, pid=pid, url=url, state_bytes=state)
        return DevnetStatus(self.directory, True, pid, url, chain_id, block, state)

    def up(self, timeout: float = 30.0) -> DevnetStatus:
        """Start anvil in the background on ``port`` with the directory's state; when it
        already runs, report it. Raises ChainError when it cannot start (port taken, a corrupt
        state file, no anvil) with the end of its log."""
        current = self.status()
        if current.running:
            if current.chain_id is None:
                raise ChainError(
                    f"the devnet process {current.pid} runs but does not answer at {current.url}"
                )
            return current
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = anvil_binary()
        if not _port_free(self.port):
            # Checked first: another node on the port would answer our readiness probe.
            raise ChainError(
                f"127.0.0.1:{self.port} is taken by another process: stop it, or pass --port"
            )
        args = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(STATE_INTERVAL),
            "--preserve-historical-states",
        ]
        url = f"http://127.0.0.1:{self.port}"
        with self.log_file.open("ab") as log:
            try:
                proc = subprocess.Popen(  # noqa: S603 - fixed executable, our arguments
                    args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # outlives this command and its Ctrl-C
                )
            except OSError as e:
                raise ChainError(f"cannot start {binary}: {e}") from e
        self._info_file.write_text(json.dumps({"pid": proc.pid, "url": url}) + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._info_file.unlink(missing_ok=True)
                raise ChainError(f"anvil exited during start-up:\n{self._log_tail()}")
            if answers_chain_id(url, self.chain_id):
                return self.status()
            time.sleep(0.1)
        self.down()
        raise ChainError(
            f"anvil did not answer at {url} within {timeout:.0f}s:\n{self._log_tail()}"
        )

    def down(self, timeout: float = 15.0) -> bool:
        """Stop anvil with SIGTERM (it then writes its state), SIGKILL after ``timeout``.
        Returns False when it was not running."""
        pid = self._info().get("pid")
        self._info_file.unlink(missing_ok=True)
        if not isinstance(pid, int) or not _alive(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        return True

    def _log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
