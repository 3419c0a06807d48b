"""`parcelproof monitor` on anvil: exit statuses and JSON of `--once`, usage errors, and the
watching mode as a real process (new findings only, clean stop on SIGTERM)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import LedgerClient
from parcelproof.cli import app
from parcelproof.core.merkle import MemoryLog

runner = CliRunner()
WATCH_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./.env and no PARCELPROOF_* of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PARCELPROOF_"):
            monkeypatch.delenv(name)


def _output(result: Any) -> str:
    """stdout and stderr, with rich's line wrapping undone."""
    return " ".join((result.output + (result.stderr or "")).split())


@dataclass
class World:
    url: str
    ledger: LedgerClient
    admin: LocalAccount
    resolver: LocalAccount
    account: LocalAccount
    spare: LocalAccount
    courier_id: bytes

    def open_dispute_and_revoke(self) -> tuple[bytes, str]:
        agent = Account.create().address
        self.ledger.register_agent_key(agent, 0, 2**40, sender=self.account)
        dispute = secrets.token_bytes(32)
        self.ledger.open_dispute(
            dispute,
            self.courier_id,
            secrets.token_bytes(32),
            secrets.token_bytes(32),
            sender=self.resolver,
        )
        self.ledger.revoke_agent_key(agent, sender=self.account)
        return dispute, agent


@pytest.fixture
def world(anvil_node: Anvil) -> World:
    """A fresh ledger on anvil with one courier that just anchored its first checkpoint."""
    w3 = anvil_node.web3()
    admin, resolver, account, spare = devnet.funded_accounts(w3, 4)
    ledger = LedgerClient.deploy(w3, admin)
    ledger.grant_resolver(resolver.address, sender=admin)
    courier_id = secrets.token_bytes(32)
    ledger.admit_courier(courier_id, account.address, sender=admin)
    log = MemoryLog()
    log.append(b"leaf")
    ledger.anchor_checkpoint(1, log.root(), [], sender=account)
    return World(anvil_node.url, ledger, admin, resolver, account, spare, courier_id)


def _once(world: World, *extra: str) -> Any:
    args = ["monitor", "--once", "--rpc", world.url, "--ledger", world.ledger.address, *extra]
    return runner.invoke(app, args)


@pytest.mark.anvil
def test_once_exits_0_without_alerts_and_1_with_them(world: World) -> None:
    clean = _once(world, "--json")
    assert clean.exit_code == 0, _output(clean)
    report = json.loads(clean.stdout)
    assert report["alerts"] == 0 and report["findings"] == []
    assert report["ledger"] == world.ledger.address and report["chain_id"] == 31337
    assert report["policy"] == {"stall_after": 3600, "late_after": 900, "revocation_window": 86400}
    (courier,) = report["couriers"]
    assert courier["courier_id"] == "0x" + world.courier_id.hex()
    assert (courier["state"], courier["latest_size"], courier["checkpoints"]) == ("ok", 1, 1)

    # A notice (account rotation) is reported but is no alert: still 0.
    world.ledger.set_courier_account(world.courier_id, world.spare.address, sender=world.admin)
    world.account = world.spare
    noticed = _once(world, "--json")
    assert noticed.exit_code == 0, _output(noticed)
    (notice,) = json.loads(noticed.stdout)["findings"]
    assert (notice["kind"], notice["severity"]) == ("account-changed", "notice")

    dispute, agent = world.open_dispute_and_revoke()
    alerted = _once(world, "--json")
    assert alerted.exit_code == 1, _output(alerted)
    report = json.loads(alerted.stdout)
    assert report["alerts"] == 1 and report["notices"] == 1
    alert = report["findings"][0]  # alerts first
    assert (alert["kind"], alert["severity"]) == ("key-revoked-in-dispute", "alert")
    assert alert["courier_id"] == "0x" + world.courier_id.hex()
    assert alert["details"]["dispute_id"] == "0x" + dispute.hex()
    assert alert["details"]["agent"] == agent and alert["details"]["role"] == "disputed"

    human = _once(world)
    assert human.exit_code == 1
    out = _output(human)
    assert "ALERTS: 1 alert(s), 1 notice(s)" in out
    assert "key-revoked-in-dispute" in out and "account-changed" in out
    assert f"0x{world.courier_id.hex()[:10]}" in out and "Traceback" not in out

    # The same ledger judged with a stall threshold it exceeds. The chain's clock decides, not a
    # sleep: this session's anvil may run ahead of the wall clock (other tests warp its time), and
    # the monitor takes the later of the two as "now".
    provider = cast(Any, world.ledger.w3.provider)
    provider.make_request("evm_increaseTime", [5])
    provider.make_request("evm_mine", [])
    stalled = _once(world, "--json", "--stall-after", "1", "--revocation-window", "0")
    assert stalled.exit_code == 1
    kinds = {f["kind"] for f in json.loads(stalled.stdout)["findings"]}
    assert {"stalled", "key-revoked-in-dispute"} <= kinds


@pytest.mark.anvil
def test_bad_ledger_and_settings_exit_2_with_one_clear_line(
    world: World, tmp_path: Path, anvil_node: Anvil
) -> None:
    malformed = _once(world, "--ledger", "0x1234")
    assert malformed.exit_code == 2
    assert "PARCELPROOF_LEDGER_ADDRESS must be a 0x-prefixed address" in _output(malformed)

    nothing_there = _once(world, "--json", "--ledger", "0x" + "12" * 20)
    assert nothing_there.exit_code == 2
    out = _output(nothing_there)
    assert "error: no ParcelLedger answered at that address" in out
    assert "Traceback" not in out and nothing_there.stdout == ""

    missing = runner.invoke(app, ["monitor", "--once", "--rpc", world.url])
    assert missing.exit_code == 2
    assert "missing setting: PARCELPROOF_LEDGER_ADDRESS (or --ledger)" in _output(missing)
    no_rpc = runner.invoke(app, ["monitor", "--once", "--ledger", world.ledger.address])
    assert no_rpc.exit_code == 2 and "PARCELPROOF_RPC_URL" in _output(no_rpc)
    unreachable = _once(world, "--rpc", "http://127.0.0.1:9")
    assert unreachable.exit_code == 2 and "is unreachable" in _output(unreachable)
    wrong_chain = runner.invoke(
        app,
        ["monitor", "--once", "--rpc", world.url, "--ledger", world.ledger.address],
        env={"PARCELPROOF_CHAIN_ID": "5"},
    )
    assert wrong_chain.exit_code == 2
    assert "PARCELPROOF_CHAIN_ID is 5 but the JSON-RPC endpoint serves chain 31337" in (
        _output(wrong_chain)
    )
    bad_option = _once(world, "--late-after", "0")
    assert bad_option.exit_code == 2
    future = _once(world, "--from-block", "999999999")
    assert future.exit_code == 2 and "--from-block 999999999 is beyond" in _output(future)

    # The usual settings work instead of the options.
    env_file = tmp_path / "monitor.env"
    env_file.write_text(
        f"PARCELPROOF_RPC_URL={anvil_node.url}\nPARCELPROOF_LEDGER_ADDRESS={world.ledger.address}\n"
    )
    from_env = runner.invoke(app, ["monitor", "--once", "--json", "--env-file", str(env_file)])
    assert from_env.exit_code == 0, _output(from_env)


@pytest.mark.anvil
def test_watching_prints_only_new_findings_and_stops_on_sigterm(
    world: World, tmp_path: Path
) -> None:
    world.ledger.set_courier_account(world.courier_id, world.spare.address, sender=world.admin)
    world.account = world.spare
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCELPROOF_")}
    env["PYTHONUNBUFFERED"] = "1"
    out_path, err_path = tmp_path / "monitor.out", tmp_path / "monitor.err"
    args = ["--rpc", world.url, "--ledger", world.ledger.address, "--interval", "0.2", "--json"]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "parcelproof", "monitor", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=env,
        )
    try:

        def lines(count: int) -> list[dict[str, Any]]:
            deadline = time.monotonic() + WATCH_TIMEOUT
            while time.monotonic() < deadline:
                found = [json.loads(line) for line in out_path.read_text().splitlines()]
                if len(found) >= count:
                    return found
                if proc.poll() is not None:
                    pytest.fail(f"monitor exited {proc.returncode}: {err_path.read_text()}")
                time.sleep(0.1)
            pytest.fail(f"no {count} finding line(s) within {WATCH_TIMEOUT}s")

        assert [f["kind"] for f in lines(1)] == ["account-changed"]
        _dispute, agent = world.open_dispute_and_revoke()
        found = lines(2)
        assert [f["kind"] for f in found] == ["account-changed", "key-revoked-in-dispute"]
        assert found[1]["details"]["agent"] == agent
        time.sleep(1.0)  # several more passes: nothing is repeated
        assert len(out_path.read_text().splitlines()) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WATCH_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err_path.read_text()
