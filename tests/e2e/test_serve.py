"""A courier node as real processes on anvil: dev-setup, serve, agent record, anchor-worker."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from dotenv import dotenv_values
from sqlalchemy import text

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.errors import ChainError, UnknownCourierError
from parcelproof.service.wiring import AccountMismatchError, open_chain
from parcelproof.settings import ConfigurationError, load_settings
from parcelproof.store.db import make_engine, session_factory
from parcelproof.store.sql import SqlStore
from tests.conftest import with_search_path

PARCEL, POSTCODE = "PP2026E2E01NL", "1012 AB"
STARTUP_TIMEOUT = 60.0
ANCHOR_TIMEOUT = 60.0
FAST_ANCHORING = {
    "PARCELPROOF_ANCHOR_INTERVAL_SECONDS": "1",
    "PARCELPROOF_ANCHOR_BATCH_LEAVES": "1",
}
T = TypeVar("T")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCELPROOF_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parcelproof", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _until(what: str, probe: Callable[[], T | None], timeout: float = ANCHOR_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


class Proc:
    """A long-running `parcelproof` process whose output goes to files in ``cwd``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "parcelproof", *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, pattern: str, *, stream: str = "stdout", timeout: float = 60.0) -> str:
        """The first match of ``pattern``; fails (with the output) if the process exits."""

        def probe() -> str | None:
            found = re.search(pattern, self.stdout() if stream == "stdout" else self.stderr())
            if found:
                return found.group(1) if found.groups() else found.group(0)
            if self.popen.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.popen.returncode}:\n"
                    f"{self.stdout()}\n{self.stderr()}"
                )
            return None

        return _until(f"{pattern!r} from {self.name}", probe, timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait (bounded), SIGKILL as a fallback; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@contextmanager
def running(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Proc]:
    proc = Proc(name, args, env, cwd)
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class DevNode:
    """What `parcelproof dev-setup` produced."""

    dir: Path
    env_file: Path
    values: dict[str, str]
    setup_output: str

    def env(self, **extra: str) -> dict[str, str]:
        return _clean_env(**{**self.values, **extra})

    @property
    def courier_id(self) -> bytes:
        return bytes.fromhex(self.values["PARCELPROOF_COURIER_ID"][2:])

    def store(self) -> tuple[Any, SqlStore]:
        engine = make_engine(self.values["PARCELPROOF_DATABASE_URL"])
        return engine, SqlStore(session_factory(engine), self.courier_id)

    def ledger(self) -> LedgerClient:
        w3 = devnet.connect(self.values["PARCELPROOF_RPC_URL"])
        return LedgerClient(w3, self.values["PARCELPROOF_LEDGER_ADDRESS"])


def dev_setup(directory: Path, anvil: Anvil, *extra: str) -> DevNode:
    directory.mkdir(parents=True, exist_ok=True)
    env_file = directory / "node.env"
    args = ["dev-setup", "--rpc", anvil.url, "--env-file", str(env_file), *extra]
    result = _run(args, _clean_env(), directory)
    assert result.returncode == 0, result.stdout + result.stderr
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return DevNode(directory, env_file, values, result.stdout + result.stderr)


@contextmanager
def serving(node: DevNode, *args: str, **env: str) -> Iterator[tuple[Proc, httpx.Client]]:
    """`parcelproof serve` on a free port, ready; stopped (SIGTERM) on exit."""
    with running("serve", ["serve", "--port", "0", *args], node.env(**env), node.dir) as proc:
        url = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)", timeout=STARTUP_TIMEOUT)
        with httpx.Client(base_url=url, timeout=30.0) as client:
            _until("/readyz", lambda: _ready(client), STARTUP_TIMEOUT)
            yield proc, client


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _auth(node: DevNode, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or node.values['PARCELPROOF_API_TOKEN']}"}


def _create_shipment(node: DevNode, client: httpx.Client) -> None:
    r = client.post(
        "/v1/shipments",
        headers=_auth(node),
        json={"tracking_number": PARCEL, "postcode": POSTCODE, "details": {"recipient": "Noor"}},
    )
    assert r.status_code == 201, r.text


def _record(
    node: DevNode, client: httpx.Client, status: str, *extra: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = node.env(PARCELPROOF_API_URL=str(client.base_url).rstrip("/"))
    if token is not None:
        env["PARCELPROOF_API_TOKEN"] = token
    return _run(["agent", "record", PARCEL, status, *extra], env, node.dir, timeout=60)


def _lookup(client: httpx.Client) -> dict[str, Any]:
    r = client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": POSTCODE})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- the whole story ------------------------------------------------------------------------


@pytest.mark.anvil
def test_serve_records_anchors_and_verifies(anvil_node: Anvil, tmp_path: Path) -> None:
    node = dev_setup(tmp_path / "node", anvil_node)
    assert stat.S_IMODE(node.env_file.stat().st_mode) == 0o600
    secret_values = [
        node.values[f"PARCELPROOF_{n}"]
        for n in ("ACCOUNT_KEY", "ADMIN_KEY", "AGENT_KEY", "SHIPMENT_KEY", "API_TOKEN")
    ] + [node.values["PARCELPROOF_KEYRING"].split("=", 1)[1]]
    for value in secret_values:
        assert value.removeprefix("0x") not in node.setup_output
    assert "node.env" in node.setup_output

    with serving(node, **FAST_ANCHORING) as (proc, client):
        _create_shipment(node, client)

        # A scanner gets its own token with events:write only.
        issued = _run(
            ["token", "issue", "--name", "scanner-7", "--scope", "events:write"],
            node.env(),
            node.dir,
        )
        assert issued.returncode == 0, issued.stderr
        scanner = issued.stdout.strip().splitlines()[-1]
        assert scanner.startswith("ppk_")

        first = _record(node, client, "picked_up", "--place", "Amsterdam depot", token=scanner)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "sequence 0" in first.stdout
        second = _record(node, client, "departed", "--field", "vehicle=van-12")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "sequence 1" in second.stdout

        # The node's API problem is shown as `error: title: detail`, exit 1.
        refused = _record(node, client, "delivered", "--field", "status=lost")
        assert refused.returncode == 2 and "is set by the command itself" in refused.stderr
        revoked = _run(["token", "revoke", scanner.split("_")[1]], node.env(), node.dir)
        assert revoked.returncode == 0, revoked.stderr
        denied = _record(node, client, "arrived", token=scanner)
        assert denied.returncode == 1
        assert denied.stderr.strip() == "error: Unauthorized: invalid credentials"

        def anchored() -> dict[str, Any] | None:
            body = _lookup(client)
            done = all(t["anchoring"] != "pending" for t in body["timeline"])
            return body if done and body["timeline"] else None

        body = _until("both events anchored", anchored)
        assert [t["fields"]["status"] for t in body["timeline"]] == ["picked_up", "departed"]
        assert body["timeline"][0]["fields"]["place"] == "Amsterdam depot"
        assert body["verification"]["ok"] is True, body["verification"]
        report = client.post("/v1/verify", json=body["bundle"]).json()
        assert report["ok"] is True, report
        chain = {"chainId": 31337, "ledger": node.values["PARCELPROOF_LEDGER_ADDRESS"]}
        assert body["bundle"]["chain"] == chain

        ready = client.get("/readyz").json()
        assert ready == {"status": "ready", "database": "ok", "ledger": "ok", "anchoring": "ok"}
        assert "parcelproof_http_requests_total" in client.get("/metrics").text
        page = client.get("/")
        assert page.status_code == 200 and "ParcelProof" in page.text
        assert "content-security-policy" in page.headers
        config = client.get("/v1/config").json()
        assert config == {**chain, "chainId": 31337, "rpcUrl": anvil_node.url}

    assert proc.popen.returncode == 0, proc.stderr()
    logs = [json.loads(line) for line in proc.stderr().splitlines()]
    assert {"time", "level", "logger", "message"} <= logs[0].keys()
    events = [e for e in logs if e.get("route") == "/v1/events"]
    assert [e["status"] for e in events] == [201, 201]
    assert all({"request_id", "method", "ms"} <= e.keys() for e in events)
    contexts = [e["status"] for e in logs if e.get("route") == "/v1/shipments/context"]
    assert contexts == [200, 200, 401]
    assert any(e["message"].startswith("anchored checkpoint of size") for e in logs)
    assert logs[-1]["message"] == "anchoring worker stopped"
    everything = proc.stdout() + proc.stderr()
    for value in [*secret_values, scanner, POSTCODE, "Noor"]:
        assert value.removeprefix("0x") not in everything


# --- refusals -------------------------------------------------------------------------------


def test_serve_without_an_rpc_url_refuses_to_start(tmp_path: Path) -> None:
    result = _run(["serve"], _clean_env(), tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "PARCELPROOF_RPC_URL" in result.stderr and "--dev-chain" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_dev_chain_is_refused_in_production(tmp_path: Path) -> None:
    env = _clean_env(PARCELPROOF_ENVIRONMENT="production")
    result = _run(["serve", "--dev-chain"], env, tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --dev-chain is refused when PARCELPROOF_ENVIRONMENT=production: it runs on a "
        "chain that forgets everything (development only)"
    )


def test_dev_chain_serves_with_a_loud_warning_and_a_token(tmp_path: Path) -> None:
    with running("dev", ["serve", "--dev-chain", "--port", "0"], _clean_env(), tmp_path) as proc:
        url = proc.wait_for(r"listening on (http://127\.0\.0\.1:\d+)", timeout=STARTUP_TIMEOUT)
        out = proc.stdout()
        assert "data anchored on this chain is lost when the process stops" in out
        token = re.search(r"^(ppk_\S+)$", out, re.MULTILINE)
        assert token is not None
        with httpx.Client(base_url=url, timeout=30.0) as client:
            assert client.get("/readyz").status_code == 200
            r = client.post(
                "/v1/shipments",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                json={"tracking_number": PARCEL, "postcode": POSTCODE},
            )
            assert r.status_code == 201, r.text
    assert proc.popen.returncode == 0, proc.stderr()


@pytest.mark.anvil
def test_open_chain_refuses_an_unknown_courier_a_foreign_account_and_a_wrong_chain(
    anvil_node: Anvil,
) -> None:
    w3 = anvil_node.web3()
    admin, account, stranger = devnet.funded_accounts(w3, 3)
    ledger = LedgerClient.deploy(w3, admin)
    courier = secrets.token_bytes(32)
    ledger.admit_courier(courier, account.address, sender=admin)

    def settings(courier_id: bytes, key: bytes, **extra: Any) -> Any:
        values = {
            "rpc_url": anvil_node.url,
            "ledger_address": ledger.address,
            "courier_id": "0x" + courier_id.hex(),
            "account_key": "0x" + key.hex(),
        }
        return load_settings(read_env_file=False, **{**values, **extra})

    assert open_chain(settings(courier, bytes(account.key))).courier_id == courier
    with pytest.raises(UnknownCourierError, match="PARCELPROOF_COURIER_ID is not a member"):
        open_chain(settings(secrets.token_bytes(32), bytes(account.key)))
    with pytest.raises(AccountMismatchError, match=f"controls {stranger.address}, but"):
        open_chain(settings(courier, bytes(stranger.key)))
    with pytest.raises(ConfigurationError, match="PARCELPROOF_CHAIN_ID is 1 but"):
        open_chain(settings(courier, bytes(account.key), chain_id=1))
    with pytest.raises(ChainError, match="no ParcelLedger answered at that address"):
        open_chain(
            settings(courier, bytes(account.key), ledger_address="0x" + secrets.token_hex(20))
        )


# --- crash safety ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """dev-setup arguments for the node's database: its default SQLite file, or a throw-away
    PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield []
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema = f"pp_e2e_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield ["--database-url", with_search_path(pg_url, schema)]
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _size(store: SqlStore, size: int) -> Callable[[], bool]:
    """Whether the store's latest checkpoint has ``size``."""

    def probe() -> bool:
        latest = store.latest_checkpoint()
        return latest is not None and latest.size == size

    return probe


@pytest.mark.anvil
def test_worker_killed_right_after_its_checkpoint_is_mined_recovers_without_duplicate(
    anvil_node: Anvil, tmp_path: Path, database: list[str]
) -> None:
    node = dev_setup(tmp_path / "node", anvil_node, *database)
    ledger = node.ledger()
    engine, store = node.store()
    try:
        with serving(node, "--no-worker") as (api, client):
            _create_shipment(node, client)
            assert _record(node, client, "picked_up").returncode == 0

            crashed = _run(
                ["anchor-worker"],
                node.env(**FAST_ANCHORING, PARCELPROOF_FAULT_AFTER_SEND="exit"),
                node.dir,
                timeout=ANCHOR_TIMEOUT,
            )
            assert crashed.returncode == 137, crashed.stdout + crashed.stderr
            assert "fault hook" in crashed.stderr
            assert [c.size for c in ledger.checkpoints(node.courier_id)] == [1]
            assert store.latest_checkpoint() is None  # mined, but never recorded locally

            worker_env = node.env(**FAST_ANCHORING)
            with running("worker", ["anchor-worker"], worker_env, node.dir) as worker:
                _until("the restarted worker to record the mined checkpoint", _size(store, 1))
                # A second worker for the same log waits for the first one's lock.
                with running("worker-2", ["anchor-worker"], worker_env, node.dir) as second:
                    second.wait_for("another worker anchors this log", stream="stderr")
                    assert _record(node, client, "departed").returncode == 0
                    _until("the next checkpoint", _size(store, 2))
                assert second.popen.returncode == 0, second.stderr()
                assert "anchored checkpoint" not in second.stderr()
            assert worker.popen.returncode == 0, worker.stderr()

            sizes = [c.size for c in ledger.checkpoints(node.courier_id)]
            assert sizes == [1, 2]  # exactly one checkpoint of size 1: no duplicate sent
            assert [c.size for c in store.checkpoints()] == [1, 2]
            body = _lookup(client)
            assert body["verification"]["ok"] is True, body["verification"]
        assert api.popen.returncode == 0, api.stderr()
    finally:
        engine.dispose()


# --- readiness (in process) -----------------------------------------------------------------


def test_readiness_reports_a_dead_worker_and_close_is_idempotent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that dies (here: its log no longer matches the anchored root) turns /readyz
    to 503 while the API keeps answering."""
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    from parcelproof.api.app import create_app
    from parcelproof.cli import _dev_chain_node
    from parcelproof.core.errors import VerificationError

    def broken_log(stop: object, **_: object) -> None:
        raise VerificationError("the ledger holds a root this log does not produce")

    with ExitStack() as stack:
        runtime, token = _dev_chain_node(load_settings(read_env_file=False), stack)
        app = create_app(runtime.services, ready=runtime.ready)
        with TestClient(app) as client:
            assert client.get("/readyz").json() == {
                "status": "ready",
                "database": "ok",
                "ledger": "ok",
            }
            monkeypatch.setattr(runtime.worker, "run", broken_log)
            runtime.start_worker()
            _until("the worker to die", lambda: runtime.ready()["anchoring"] != "ok")
            r = client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["anchoring"] == "stopped (VerificationError)"
            assert client.get("/healthz").status_code == 200
            headers = {"Authorization": f"Bearer {token}"}
            body = {"tracking_number": PARCEL, "postcode": POSTCODE}
            assert client.post("/v1/shipments", headers=headers, json=body).status_code == 201
        runtime.close()
        runtime.close()
