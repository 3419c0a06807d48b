"""`parcelproof staff add/list/disable` and `agent revoke`: accounts made from the command line
(never echoing the password), audit-logged; agent keys revoked on a real chain."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.cli import app
from parcelproof.core import envelope
from parcelproof.service.staff import StaffService
from parcelproof.service.wiring import audit_log
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.models import StaffUserRow
from parcelproof.store.staff_sql import SqlStaffStore

runner = CliRunner()
PASSWORD = "a long admin passphrase"


def _env(tmp_path: Path, log_id: bytes, key: bytes) -> dict[str, str]:
    return {
        "PARCELPROOF_ENVIRONMENT": "development",
        "PARCELPROOF_DATABASE_URL": sqlite_url(tmp_path),
        "PARCELPROOF_COURIER_ID": "0x" + log_id.hex(),
        "PARCELPROOF_KEYRING": f"k1={base64.b64encode(key).decode()}",
    }


def test_staff_accounts_from_the_command_line(tmp_path: Path) -> None:
    log_id, key = secrets.token_bytes(32), secrets.token_bytes(32)
    env = _env(tmp_path, log_id, key)
    added = runner.invoke(
        app,
        ["staff", "add", "adm.first", "--role", "consortium-admin", "--password-stdin"],
        env=env,
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "created consortium-admin adm.first" in added.output
    assert "enrol" in added.output and PASSWORD not in added.output

    prompted = runner.invoke(
        app,
        ["staff", "add", "ops.first", "--role", "courier-operator"],
        env=env,
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output

    listed = runner.invoke(app, ["staff", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "adm.first" in listed.output and "ops.first" in listed.output

    engine = make_engine(sqlite_url(tmp_path))
    upgrade(engine)
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", key)], "k1")
    service = StaffService(SqlStaffStore(session_factory(engine), log_id), keyring)
    assert service.login("adm.first", PASSWORD).status == "enrol-required"
    with engine.connect() as c:
        user_id = c.scalar(select(StaffUserRow.user_id).where(StaffUserRow.username == "ops.first"))
    assert user_id is not None

    token = service.login("ops.first", PASSWORD).token
    disabled = runner.invoke(app, ["staff", "disable", user_id], env=env)
    assert disabled.exit_code == 0, disabled.output
    with pytest.raises(Exception, match="invalid"):
        service.principal(token)

    actions = [e.action for e in audit_log(engine, log_id).entries()]
    assert actions.count("staff.create") == 2 and "staff.disable" in actions
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "root"], PASSWORD, "role must be one of"),
        (["--role", "courier-operator"], "short", "password must be 12"),
    ],
)
def test_bad_staff_input_is_a_message_and_exit_2(
    tmp_path: Path, args: list[str], stdin: str, message: str
) -> None:
    env = _env(tmp_path, secrets.token_bytes(32), secrets.token_bytes(32))
    result = runner.invoke(
        app, ["staff", "add", "someone", *args, "--password-stdin"], env=env, input=stdin + "\n"
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_duplicate_username_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path, secrets.token_bytes(32), secrets.token_bytes(32))
    cmd = ["staff", "add", "ops.one", "--role", "courier-operator", "--password-stdin"]
    assert runner.invoke(app, cmd, env=env, input=PASSWORD + "\n").exit_code == 0
    again = runner.invoke(app, cmd, env=env, input=PASSWORD + "\n")
    assert again.exit_code != 0 and "already exists" in again.output


@pytest.mark.anvil
def test_agent_key_revoked_on_chain_from_the_command_line(
    tmp_path: Path, anvil_node: devnet.Anvil
) -> None:
    w3 = devnet.connect(anvil_node.url)
    admin, account = devnet.funded_accounts(w3, 2)
    ledger = LedgerClient.deploy(w3, admin)
    courier = secrets.token_bytes(32)
    ledger.admit_courier(courier, account.address, sender=admin)
    agent = devnet.funded_accounts(w3, 3)[2].address
    env = {
        **_env(tmp_path, courier, secrets.token_bytes(32)),
        "PARCELPROOF_RPC_URL": anvil_node.url,
        "PARCELPROOF_LEDGER_ADDRESS": ledger.address,
        "PARCELPROOF_ACCOUNT_KEY": "0x" + account.key.hex(),
    }
    registered = runner.invoke(app, ["agent", "register", "--agent", agent], env=env)
    assert registered.exit_code == 0, registered.output
    now = int(w3.eth.get_block("latest")["timestamp"])
    assert ledger.is_agent_key_valid(courier, agent, now)
    revoked = runner.invoke(app, ["agent", "revoke", "--agent", agent], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert not ledger.is_agent_key_valid(courier, agent, now + 1)
    engine = make_engine(sqlite_url(tmp_path))
    actions = [e.action for e in audit_log(engine, courier).entries()]
    engine.dispose()
    assert actions == ["agent-key.register", "agent-key.revoke"]
