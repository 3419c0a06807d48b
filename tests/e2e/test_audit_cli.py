"""`parcelproof audit verify/show`, and the CLI's privileged commands writing audit entries."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import LedgerClient
from parcelproof.cli import app
from parcelproof.service.audit import AuditAction, AuditLog, verify
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade

runner = CliRunner()


def _output(result: object) -> str:
    """stdout and stderr, with rich's line wrapping undone."""
    text_out = getattr(result, "output", "") + (getattr(result, "stderr", "") or "")
    return " ".join(text_out.split())


def _env_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "node.env"
    path.write_text("".join(f"PARCELPROOF_{k}={v}\n" for k, v in values.items()))
    return path


def _audit(tmp_path: Path, courier_id: bytes) -> AuditLog:
    engine = make_engine(sqlite_url(tmp_path / "data"))
    upgrade(engine)
    return AuditLog(SqlAuditStore(session_factory(engine), courier_id))


@pytest.mark.anvil
def test_verify_exits_0_when_intact_then_1_after_a_raw_sql_edit(
    anvil_node: Anvil, tmp_path: Path
) -> None:
    w3 = anvil_node.web3()
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    courier_id = secrets.token_bytes(32)
    ledger.admit_courier(courier_id, account.address, sender=admin)
    audit = _audit(tmp_path, courier_id)
    for i in range(4):
        audit.record("staff:u7", AuditAction.PERSONAL_DATA_READ, f"shipment-{i}", {"fields": 2})
    assert audit.anchor(ledger, sender=account) is not None
    audit.record("cli:ops", AuditAction.KEYS_ROTATE, "k2", {"rewrapped": 4})
    env = _env_file(
        tmp_path,
        {
            "ENVIRONMENT": "development",
            "DATABASE_URL": sqlite_url(tmp_path / "data"),
            "COURIER_ID": "0x" + courier_id.hex(),
            "LEDGER_ADDRESS": ledger.address,
            "RPC_URL": anvil_node.url,
        },
    )

    intact = runner.invoke(app, ["audit", "verify", "--env-file", str(env)])
    assert intact.exit_code == 0, intact.output
    out = _output(intact)
    assert "INTACT" in out and "1 anchored head(s) match" in out
    assert "entries 5" in out and "the latest covers 4 entries" in out
    assert "not anchored 1 newest entries" in out

    shown = runner.invoke(app, ["audit", "show", "--limit", "2", "--env-file", str(env)])
    assert shown.exit_code == 0, shown.output
    out = _output(shown)
    assert "keys.rotate" in out and "shipment-3" in out and "shipment-2" not in out
    assert "5 entries" in out and "latest anchored head: size 4" in out

    engine = make_engine(sqlite_url(tmp_path / "data"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET target = 'shipment-99' WHERE seq = 1"))
    engine.dispose()
    tampered = runner.invoke(app, ["audit", "verify", "--env-file", str(env)])
    assert tampered.exit_code == 1, tampered.output
    out = _output(tampered)
    assert "TAMPERED: 1 problem(s)" in out
    assert "[edited] entry seq 1 was edited: stored hash 0x" in out
    assert "Traceback" not in out

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq >= 2"))
    engine.dispose()
    truncated = runner.invoke(
        app, ["audit", "verify", "--rpc", anvil_node.url, "--env-file", str(env)]
    )
    assert truncated.exit_code == 1
    out = _output(truncated)
    assert "TAMPERED: 2 problem(s)" in out
    assert (
        "[truncated] the ledger anchored an audit head at size 4 but the local log ends at size 2"
        in out
    )


def test_verify_needs_a_chain_and_an_admitted_courier(tmp_path: Path) -> None:
    env = _env_file(
        tmp_path,
        {
            "ENVIRONMENT": "development",
            "DATABASE_URL": sqlite_url(tmp_path / "data"),
            "COURIER_ID": "0x" + "ab" * 32,
            "LEDGER_ADDRESS": "0x" + "12" * 20,
        },
    )
    no_rpc = runner.invoke(
        app, ["audit", "verify", "--env-file", str(env)], env={"PARCELPROOF_RPC_URL": ""}
    )
    assert no_rpc.exit_code == 2
    assert "PARCELPROOF_RPC_URL" in _output(no_rpc) and "Traceback" not in _output(no_rpc)
    missing = runner.invoke(app, ["audit", "verify", "--env-file", str(tmp_path / "nope.env")])
    assert missing.exit_code == 2 and "does not exist" in _output(missing)
    bad_limit = runner.invoke(app, ["audit", "show", "--limit", "0", "--env-file", str(env)])
    assert bad_limit.exit_code == 2


def test_token_and_key_commands_write_audit_entries(tmp_path: Path) -> None:
    courier_id = secrets.token_bytes(32)
    kek1 = base64.b64encode(secrets.token_bytes(32)).decode()
    kek2 = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {
        "PARCELPROOF_ENVIRONMENT": "development",
        "PARCELPROOF_DATABASE_URL": sqlite_url(tmp_path / "data"),
        "PARCELPROOF_COURIER_ID": "0x" + courier_id.hex(),
        "PARCELPROOF_KEYRING": f"k1={kek1},k2={kek2}",
        "PARCELPROOF_ACTIVE_KID": "k2",
    }
    issued = runner.invoke(app, ["token", "issue", "--name", "depot-7", "--scope", "read"], env=env)
    assert issued.exit_code == 0, issued.output
    client_id = issued.output.split("issued API client ")[1].split()[0]
    revoked = runner.invoke(app, ["token", "revoke", client_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    rotated = runner.invoke(app, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output

    entries = _audit(tmp_path, courier_id).entries()
    assert [(e.action, e.target) for e in entries] == [
        ("token.issue", client_id),
        ("token.revoke", client_id),
        ("keys.rotate", "k2"),
    ]
    assert entries[0].detail == {"scopes": "read"}  # the client's name is not recorded
    assert entries[2].detail.items() >= {"from_kids": "", "rewrapped": 0}.items()
    assert all(e.actor.startswith("cli") for e in entries)
    assert verify(entries).ok

    shown = runner.invoke(app, ["audit", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    out = _output(shown)
    assert "token.issue" in out and "keys.rotate" in out and "no audit head anchored yet" in out
