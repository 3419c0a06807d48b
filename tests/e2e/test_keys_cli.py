"""`parcelproof keys generate/rotate`: data keys move to a new key-encryption key; data stays."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelproof.cli import app
from parcelproof.core import envelope
from parcelproof.core.errors import DecryptionError, UnknownKeyError
from parcelproof.service.node import CourierNode
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from tests.unit.conftest import FakeLedger

runner = CliRunner()


def _node(store: SqlStore, keyring: envelope.Keyring, shipment_key: bytes) -> CourierNode:
    return CourierNode(
        courier_id=store.log_id,
        ledger=FakeLedger(),
        account="a",
        keyring=keyring,
        shipment_key=shipment_key,
        store=store,
    )


def test_rotation_rewraps_every_data_key_and_old_key_can_go(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    upgrade(engine)
    log_id, shipment_key = secrets.token_bytes(32), secrets.token_bytes(32)
    store = SqlStore(session_factory(engine), log_id)
    k1 = envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))
    old = _node(store, envelope.Keyring([k1], "k1"), shipment_key)
    for i in range(3):
        old.create_shipment(f"PPROT{i}", {"recipient": f"person {i}"}, "4000")

    generated = runner.invoke(app, ["keys", "generate", "--kid", "k2"])
    assert generated.exit_code == 0, generated.output
    kid, b64 = generated.output.strip().split("=", 1)
    k2 = envelope.KeyEncryptionKey(kid, base64.b64decode(b64))
    env = {
        "PARCELPROOF_ENVIRONMENT": "development",
        "PARCELPROOF_DATABASE_URL": sqlite_url(tmp_path),
        "PARCELPROOF_COURIER_ID": "0x" + log_id.hex(),
        "PARCELPROOF_KEYRING": f"k1={base64.b64encode(k1.key).decode()},{generated.output.strip()}",
        "PARCELPROOF_ACTIVE_KID": "k2",
    }
    rotated = runner.invoke(app, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "re-wrapped 3 data keys under k2 (from: k1)" in rotated.output
    again = runner.invoke(app, ["keys", "rotate"], env=env)
    assert "re-wrapped 0 data keys" in again.output

    only_new = _node(store, envelope.Keyring([k2], "k2"), shipment_key)
    for i in range(3):
        assert only_new.view(f"PPROT{i}", "4000", {"status"}).timeline == []
    with pytest.raises((UnknownKeyError, DecryptionError)):
        old.view("PPROT0", "4000", {"status"})  # the retired key no longer opens anything
    engine.dispose()


def test_bad_kid_and_missing_keyring_are_clear_errors(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["keys", "generate", "--kid", "bad kid!"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    missing = runner.invoke(
        app,
        ["keys", "rotate"],
        env={
            "PARCELPROOF_ENVIRONMENT": "development",
            "PARCELPROOF_KEYRING": "",
            "PARCELPROOF_DATA_DIR": str(tmp_path),
        },
    )
    assert missing.exit_code == 2
    assert "PARCELPROOF_KEYRING" in missing.output + (missing.stderr or "")
