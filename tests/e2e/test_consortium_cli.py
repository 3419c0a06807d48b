"""`parcelproof consortium`: membership governance on a real chain (anvil) with the admin key;
a non-admin key is refused by the contract, and every refusal is one line with exit 2."""

from __future__ import annotations

import secrets

import pytest
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.cli import app
from parcelproof.core.errors import ContractRevertError, SuspendedCourierError

runner = CliRunner()
pytestmark = pytest.mark.anvil


def test_admit_rotate_resolve_suspend_reinstate_and_remove(anvil_node: devnet.Anvil) -> None:
    w3 = devnet.connect(anvil_node.url)
    admin, first, second, resolver, outsider = devnet.funded_accounts(w3, 5)
    ledger = LedgerClient.deploy(w3, admin)
    env = {
        "PARCELPROOF_ENVIRONMENT": "development",
        "PARCELPROOF_RPC_URL": anvil_node.url,
        "PARCELPROOF_LEDGER_ADDRESS": ledger.address,
        "PARCELPROOF_ADMIN_KEY": "0x" + admin.key.hex(),
    }
    courier = secrets.token_bytes(32)
    cid = "0x" + courier.hex()

    def run(*args: str, env_over: dict[str, str] | None = None) -> tuple[int, str]:
        result = runner.invoke(app, ["consortium", *args], env={**env, **(env_over or {})})
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    assert run("admit", cid, "--account", first.address)[0] == 0
    code, shown = run("show")
    assert code == 0 and courier.hex() in shown and "active" in shown and "1 courier(s)" in shown

    assert run("set-account", cid, "--account", second.address)[0] == 0
    assert ledger.courier(courier).account == second.address
    with pytest.raises(ContractRevertError):  # the old node key can no longer anchor
        ledger.anchor_checkpoint(1, b"\x01" * 32, [], sender=first)
    ledger.anchor_checkpoint(1, b"\x01" * 32, [], sender=second)

    assert run("grant-resolver", resolver.address)[0] == 0
    assert ledger.is_resolver(resolver.address)
    assert run("revoke-resolver", resolver.address)[0] == 0
    assert not ledger.is_resolver(resolver.address)

    code, out = run("suspend", cid)
    assert code == 2 and "--yes" in out
    assert not ledger.is_suspended(courier)
    assert run("suspend", cid, "--yes")[0] == 0
    assert ledger.is_suspended(courier)
    code, shown = run("show")
    assert code == 0 and "suspended" in shown and "(1 suspension(s))" in shown
    with pytest.raises(SuspendedCourierError):  # the node can no longer anchor
        ledger.anchor_checkpoint(2, b"\x02" * 32, [b"\x03" * 32], sender=second)
    code, out = run("suspend", cid, "--yes")
    assert code == 2 and "ParcelLedgerCourierSuspended" in out
    outsider_admin = {"PARCELPROOF_ADMIN_KEY": "0x" + outsider.key.hex()}
    code, out = run("reinstate", cid, env_over=outsider_admin)
    assert code == 2 and "AccessControl" in out
    assert run("reinstate", cid)[0] == 0
    assert not ledger.is_suspended(courier)
    code, out = run("reinstate", cid)
    assert code == 2 and "ParcelLedgerCourierNotSuspended" in out
    code, shown = run("show")
    assert code == 0 and "active" in shown and "(1 suspension(s))" in shown
    [period] = ledger.suspensions(courier)
    assert period.reinstated_at is not None

    code, out = run("remove", cid)
    assert code == 2 and "--yes" in out
    assert ledger.courier(courier).active
    assert run("remove", cid, "--yes")[0] == 0
    assert not ledger.courier(courier).active
    code, out = run("admit", cid, "--account", first.address)  # a removed id never returns
    assert code == 2 and "error:" in out

    outsider_key = {"PARCELPROOF_ADMIN_KEY": "0x" + outsider.key.hex()}
    code, out = run(
        "admit", "0x" + secrets.token_hex(32), "--account", outsider.address, env_over=outsider_key
    )
    assert code == 2 and "AccessControl" in out


def test_missing_settings_are_named(anvil_node: devnet.Anvil) -> None:
    result = runner.invoke(
        app,
        ["consortium", "admit", "0x" + "11" * 32, "--account", "0x" + "22" * 20],
        env={"PARCELPROOF_ENVIRONMENT": "development", "PARCELPROOF_RPC_URL": anvil_node.url},
    )
    assert result.exit_code == 2
    assert (
        "PARCELPROOF_LEDGER_ADDRESS" in result.output and "PARCELPROOF_ADMIN_KEY" in result.output
    )
    bad = runner.invoke(
        app,
        ["consortium", "show"],
        env={
            "PARCELPROOF_ENVIRONMENT": "development",
            "PARCELPROOF_RPC_URL": anvil_node.url,
            "PARCELPROOF_LEDGER_ADDRESS": "0x" + "33" * 20,
        },
    )
    assert bad.exit_code == 2 and "error:" in bad.output
