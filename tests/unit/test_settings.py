"""Settings: parsing, refusal of placeholder and missing secrets, secrets kept out of reprs,
errors and logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parcelproof.logs import REDACTED, configure_logging, redact
from parcelproof.settings import (
    ConfigurationError,
    Settings,
    load_agent_settings,
    load_settings,
    parse_keyring,
)

ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PARCELPROOF_* variable or ./.env of the developer's leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("PARCELPROOF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def secrets_() -> dict[str, str]:
    """A complete, random set of node secrets (as a production node would have)."""
    return {
        "courier_id": "0x" + secrets.token_hex(32),
        "ledger_address": "0x" + secrets.token_hex(20),
        "account_key": "0x" + secrets.token_hex(32),
        "keyring": f"k1={_b64()},k2={_b64()}",
        "active_kid": "k2",
        "shipment_key": secrets.token_hex(32),
    }


def _settings(**values: Any) -> Settings:
    return load_settings(read_env_file=False, **values)


# --- parsing --------------------------------------------------------------------------------


def test_defaults_run_a_development_node_on_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = _settings(data_dir=tmp_path / "node")
    assert s.environment == "development"
    assert s.database() == f"sqlite:///{tmp_path / 'node' / 'parcelproof.sqlite'}"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert (s.anchor_interval_seconds, s.anchor_batch_leaves, s.confirmations) == (1.0, 256, 1)
    assert s.max_body_bytes == 4 * 1024 * 1024


def test_reads_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch, secrets_: dict[str, str]
) -> None:
    for name, value in secrets_.items():
        monkeypatch.setenv(f"PARCELPROOF_{name.upper()}", value)
    monkeypatch.setenv("PARCELPROOF_ENVIRONMENT", "production")
    monkeypatch.setenv("PARCELPROOF_DATABASE_URL", "postgresql://pp:pw@db.internal/pp")
    monkeypatch.setenv("PARCELPROOF_ANCHOR_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("PARCELPROOF_ANCHOR_BATCH_LEAVES", "7")
    monkeypatch.setenv("PARCELPROOF_CONFIRMATIONS", "3")
    monkeypatch.setenv("PARCELPROOF_PORT", "9000")
    s = load_settings()
    assert s.environment == "production"
    assert s.database() == "postgresql://pp:pw@db.internal/pp"
    assert (s.anchor_interval_seconds, s.anchor_batch_leaves, s.confirmations) == (2.5, 7, 3)
    assert s.port == 9000
    assert s.courier_id_bytes() == bytes.fromhex(secrets_["courier_id"][2:])
    assert s.shipment_key_bytes() == bytes.fromhex(secrets_["shipment_key"])
    assert s.node_keyring().kids == ("k1", "k2")
    assert s.node_keyring().active_kid == "k2"
    assert s.account().key == bytes.fromhex(secrets_["account_key"][2:])


def test_reads_an_env_file_and_overrides_win(tmp_path: Path, secrets_: dict[str, str]) -> None:
    env = tmp_path / "node.env"
    env.write_text(
        "".join(f"PARCELPROOF_{k.upper()}='{v}'\n" for k, v in secrets_.items())
        + "PARCELPROOF_PORT=9001\n"
    )
    s = load_settings(env, port=9002)
    assert s.port == 9002
    assert s.node_keyring().active_kid == "k2"


def test_a_missing_env_file_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"env file nope\.env does not exist"):
        load_settings("nope.env")


def test_malformed_values_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PARCELPROOF_PORT"):
        _settings(port="eighty")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_ANCHOR_INTERVAL_SECONDS"):
        _settings(anchor_interval_seconds=0)
    with pytest.raises(ConfigurationError, match="PARCELPROOF_COURIER_ID must be 32 bytes"):
        _settings(courier_id="0x1234")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_LEDGER_ADDRESS"):
        _settings(ledger_address="ledger")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_SHIPMENT_KEY must be 32 bytes"):
        _settings(shipment_key="abcd")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_ACCOUNT_KEY is not a valid"):
        _settings(account_key="0x" + "00" * 32)


# --- keyring --------------------------------------------------------------------------------


def test_keyring_with_one_key_needs_no_active_kid() -> None:
    ring = parse_keyring(f" 2026-01 = {_b64()} ", None)
    assert ring.kids == ("2026-01",) and ring.active_kid == "2026-01"


@pytest.mark.parametrize(
    ("desc", "text", "active", "message"),
    [
        ("no equals sign", "k1", None, "entry 1 is not of the form kid=base64key"),
        ("empty entry", "k1=KEY,", None, "entry 2 is not of the form"),
        ("bad key id", "k 1=KEY", None, "entry 1: key id must be"),
        ("duplicate key id", "k1=KEY,k1=KEY", "k1", "holds key id 'k1' twice"),
        ("not base64", "k1=not*base64!", None, "key 'k1' is not valid base64"),
        ("16-byte key", "k1=" + base64.b64encode(b"x" * 16).decode(), None, "has 16 bytes"),
        ("ambiguous active key", "k1=KEY,k2=KEY", None, "must name the active key"),
        ("unknown active key", "k1=KEY", "k9", "'k9' is not in PARCELPROOF_KEYRING"),
    ],
)
def test_keyring_errors(desc: str, text: str, active: str | None, message: str) -> None:
    key = _b64()
    with pytest.raises(ConfigurationError, match=message) as raised:
        parse_keyring(text.replace("KEY", key), active)
    assert key not in str(raised.value), desc


def test_keyring_errors_surface_at_load_time() -> None:
    with pytest.raises(ConfigurationError, match="PARCELPROOF_KEYRING key 'k1' has 3 bytes"):
        _settings(keyring="k1=YWJj")


# --- placeholders and missing secrets ------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("shipment_key", "changeme"),
        ("keyring", "TODO"),
        ("account_key", "CHANGE-ME"),
        ("admin_key", ""),
        ("database_url", "xxx"),
    ],
)
def test_placeholders_are_refused_outside_development(
    environment: str, name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _settings(environment=environment, **{name: value})
    message = str(raised.value)
    assert f"PARCELPROOF_{name.upper()} holds a placeholder outside development" in message
    assert not value or value not in message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("shipment_key", "11" * 32, "PARCELPROOF_SHIPMENT_KEY looks hand-made"),
        ("account_key", "0x" + "0123" * 16, "PARCELPROOF_ACCOUNT_KEY looks hand-made"),
        ("account_key", ANVIL_KEY_0, "PARCELPROOF_ACCOUNT_KEY is one of anvil's public dev keys"),
        ("admin_key", ANVIL_KEY_0, "PARCELPROOF_ADMIN_KEY is one of anvil's public dev keys"),
        (
            "keyring",
            "k1=" + base64.b64encode(bytes(32)).decode(),
            "PARCELPROOF_KEYRING holds a hand-made key",
        ),
    ],
)
def test_well_known_or_hand_made_keys_are_refused_in_production(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        _settings(environment="production", **{name: value})
    assert value.removeprefix("0x") not in str(raised.value)
    _settings(environment="development", **{name: value})  # fine on a laptop


def test_the_fault_hook_is_refused_outside_development() -> None:
    assert _settings(fault_after_send="exit").fault_after_send == "exit"
    with pytest.raises(ConfigurationError, match="PARCELPROOF_FAULT_AFTER_SEND is a test hook"):
        _settings(environment="production", fault_after_send="exit")


def test_missing_node_secrets_are_named_all_at_once(secrets_: dict[str, str]) -> None:
    partial = {k: v for k, v in secrets_.items() if k in ("courier_id", "active_kid")}
    s = _settings(environment="production", **partial)
    with pytest.raises(ConfigurationError) as raised:
        s.require_node()
    assert str(raised.value) == (
        "missing settings: PARCELPROOF_LEDGER_ADDRESS, PARCELPROOF_ACCOUNT_KEY, "
        "PARCELPROOF_KEYRING, PARCELPROOF_SHIPMENT_KEY (set in the environment or the env file)"
    )
    with pytest.raises(ConfigurationError, match="missing setting: PARCELPROOF_ACCOUNT_KEY"):
        s.account()
    with pytest.raises(ConfigurationError, match="missing setting: PARCELPROOF_SHIPMENT_KEY"):
        s.shipment_key_bytes()
    _settings(environment="production", **secrets_).require_node()


# --- secrets stay secret -------------------------------------------------------------------


def test_secrets_are_masked_in_repr_str_and_dumps(secrets_: dict[str, str]) -> None:
    db = "postgresql://pp:hunter2-db-password@db/pp"
    s = _settings(database_url=db, admin_key="0x" + secrets.token_hex(32), **secrets_)
    shown = repr(s) + str(s) + s.model_dump_json() + json.dumps(s.model_dump(), default=str)
    for name in ("account_key", "keyring", "shipment_key"):
        assert secrets_[name].removeprefix("0x") not in shown
    assert "hunter2-db-password" not in shown
    assert s.admin_key is not None and s.admin_key.get_secret_value()[2:] not in shown
    assert "**********" in repr(s)


def test_errors_never_echo_secret_values(secrets_: dict[str, str]) -> None:
    """pydantic echoes inputs in its errors by default: ours must not, even for a model-level
    failure whose input is every setting at once."""
    bad = dict(secrets_, port="not-a-port")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(read_env_file=False, **bad)
    for name in ("account_key", "keyring", "shipment_key"):
        assert secrets_[name].removeprefix("0x")[:16] not in str(raised.value)
    with pytest.raises(Exception) as direct:  # any type: only the text matters
        Settings(_env_file=None, **bad)  # type: ignore[arg-type]
    assert secrets_["shipment_key"][:16] not in str(direct.value)


def test_agent_settings_read_the_api_token_and_key_as_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARCELPROOF_API_URL", "http://node:8000")
    monkeypatch.setenv("PARCELPROOF_API_TOKEN", "ppk_abc_secretpart")
    a = load_agent_settings(agent_key="0x" + "ab" * 32)
    assert a.api_url == "http://node:8000"
    assert a.api_token is not None and a.api_token.get_secret_value() == "ppk_abc_secretpart"
    assert "secretpart" not in repr(a) and "abab" not in repr(a)


# --- logs (logs.py): what a misplaced log call would leak ----------------------------------


@pytest.fixture
def log_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        yield logging.getLogger("parcelproof.test"), stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_logs_are_one_json_object_per_line_with_extra_fields(
    log_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = log_lines
    log.info(
        "request",
        extra={"request_id": "r1", "method": "POST", "route": "/v1/events", "status": 201},
    )
    (entry,) = _records(stream)
    assert entry["level"] == "INFO" and entry["logger"] == "parcelproof.test"
    assert entry["message"] == "request"
    assert (entry["route"], entry["status"], entry["request_id"]) == ("/v1/events", 201, "r1")
    assert entry["time"].endswith("+00:00")


def test_secrets_tokens_and_postcodes_in_args_are_redacted(
    log_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = log_lines
    key, kek = "0x" + secrets.token_hex(32), _b64()
    token = "ppk_0123abcd_" + secrets.token_urlsafe(32)
    log.warning("key %s keyring %s", key, f"k1={kek}")
    log.warning("header %s", f"Authorization: Bearer {token}")
    log.warning("body %s", json.dumps({"tracking_number": "PP1", "postcode": "1012 AB"}))
    log.warning("dsn %s", "postgresql://pp:hunter2@db/pp")
    log.info("fields", extra={"postcode": "1012 AB", "api_token": token, "route": "/v1/lookup"})
    try:
        raise ValueError(f"bad key {key}")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    for leaked in (key[2:], kek, token, "1012 AB", "hunter2"):
        assert leaked not in text
    entries = _records(stream)
    assert entries[4]["postcode"] == REDACTED and entries[4]["route"] == "/v1/lookup"
    assert entries[5]["exc_type"] == "ValueError"
    assert '"postcode": "[redacted]"' in entries[2]["message"]


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "anchored checkpoint of size 12 for 0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert redact(text) == text


def test_lookup_limits_and_chain_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings()
    assert (s.lookup_limit_per_client, s.lookup_limit_per_parcel) == ("60/minute", "10/minute")
    assert s.chain_cache_seconds == 2.0
    monkeypatch.setenv("PARCELPROOF_LOOKUP_LIMIT_PER_CLIENT", "100000/minute")
    monkeypatch.setenv("PARCELPROOF_CHAIN_CACHE_SECONDS", "0")
    s = Settings(_env_file=None)
    assert (s.lookup_limit_per_client, s.chain_cache_seconds) == ("100000/minute", 0.0)
    with pytest.raises(ConfigurationError, match="not a rate limit"):
        _settings(lookup_limit_per_parcel="ten a minute")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_CHAIN_CACHE_SECONDS"):
        _settings(chain_cache_seconds=-1)
