"""Typed settings from the environment (prefix PARCELPROOF_) or a .env file; no globals."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from parcelproof.core.envelope import KEY_SIZE, KeyEncryptionKey, Keyring
from parcelproof.core.errors import Error

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

ENV_PREFIX = "PARCELPROOF_"
PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "placeholder",
        "dev",
        "test",
        "todo",
        "xxx",
        "none",
        "null",
    }
)
#: Accounts of anvil's public mnemonic ("test test … junk"): their keys are public knowledge.
DEV_ACCOUNTS = frozenset(
    a.lower()
    for a in (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
    )
)
#: A random 32-byte key has ~28 distinct byte values; fewer than this looks hand-made.
MIN_DISTINCT_BYTES = 8
#: Secrets a courier node needs to run (serve, anchor-worker).
NODE_SETTINGS = ("ledger_address", "courier_id", "account_key", "keyring", "shipment_key")

_HEX32 = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Hosts a CORS origin may name with plain http: the developer's own machine.
LOCAL_HTTP_HOSTS = frozenset({"localhost", "127.0.0.1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


class ConfigurationError(Error):
    """A setting is missing, malformed or unsafe. Names the variable, never its value."""


def env_name(field: str) -> str:
    """The environment variable of a settings field (``courier_id`` → PARCELPROOF_COURIER_ID)."""
    return ENV_PREFIX + field.upper()


def parse_hex32(text: str, name: str) -> bytes:
    """32 bytes from 64 hex digits (``0x`` optional); the error names ``name`` only."""
    text = text.strip()
    if not _HEX32.fullmatch(text):
        raise ConfigurationError(f"{name} must be 32 bytes written as 64 hex digits")
    return bytes.fromhex(text.removeprefix("0x"))


def parse_private_key(text: str, name: str) -> LocalAccount:
    """A local signing account from a hex private key; the error names ``name`` only."""
    from eth_account import Account

    key = parse_hex32(text, name)
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):  # zero or above the curve order
        raise ConfigurationError(f"{name} is not a valid secp256k1 private key") from None
    return account


def parse_keyring(text: str, active_kid: str | None, name: str = "PARCELPROOF_KEYRING") -> Keyring:
    """A keyring from ``kid=base64key[,kid=base64key…]`` (32-byte keys, standard base64).

    ``active_kid`` may be omitted when the keyring holds one key. Errors name key ids and
    positions, never key material.
    """
    keys: list[KeyEncryptionKey] = []
    seen: set[str] = set()
    entries = [e.strip() for e in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        kid, sep, encoded = entry.partition("=")
        kid = kid.strip()
        if not sep or not kid:
            raise ConfigurationError(f"{name} entry {position} is not of the form kid=base64key")
        if not _KID.fullmatch(kid):
            raise ConfigurationError(
                f"{name} entry {position}: key id must be 1-64 characters of A-Z a-z 0-9 . _ -"
            )
        if kid in seen:
            raise ConfigurationError(f"{name} holds key id {kid!r} twice")
        seen.add(kid)
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{name} key {kid!r} is not valid base64") from None
        if len(raw) != KEY_SIZE:
            raise ConfigurationError(
                f"{name} key {kid!r} has {len(raw)} bytes, want {KEY_SIZE} (AES-256)"
            )
        keys.append(KeyEncryptionKey(kid, raw))
    if active_kid is None:
        if len(keys) != 1:
            raise ConfigurationError(
                f"PARCELPROOF_ACTIVE_KID must name the active key: {name} holds {len(keys)} keys"
            )
        active_kid = keys[0].kid
    if active_kid not in seen:
        raise ConfigurationError(
            f"PARCELPROOF_ACTIVE_KID {active_kid!r} is not in {name} "
            f"(key ids: {', '.join(sorted(seen))})"
        )
    return Keyring(keys, active_kid)


def parse_cors_origins(
    origins: str | Iterable[str], name: str = "PARCELPROOF_CORS_ORIGINS"
) -> tuple[str, ...]:
    """Exact browser origins (``https://host[:port]``) from a comma-separated text or a list,
    normalised as browsers send them (lower case, no default port), duplicates dropped.

    ``*``, paths, credentials and plain ``http://`` (except for localhost and 127.0.0.1) are
    refused: the API serves personal data to whoever a browser lets read it.
    """
    items = origins.split(",") if isinstance(origins, str) else list(origins)
    found: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "*" in item:
            raise ConfigurationError(
                f"{name} may not hold '*': any web site could then read this API from its "
                "visitors' browsers; list exact origins such as https://track.example.com"
            )
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            port = -1
        host = (parts.hostname or "").lower()
        scheme = parts.scheme.lower()
        if (
            scheme not in _DEFAULT_PORTS
            or not host
            or port == -1
            or parts.username is not None
            or parts.path
            or parts.query
            or parts.fragment
            or "?" in item
            or "#" in item
        ):
            raise ConfigurationError(
                f"{name}: {item!r} is not an origin: write scheme://host[:port], "
                "without a path or a trailing slash"
            )
        if scheme == "http" and host not in LOCAL_HTTP_HOSTS:
            raise ConfigurationError(
                f"{name}: {item!r} is plain http: origins must be https "
                "(http only for localhost and 127.0.0.1)"
            )
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            netloc += f":{port}"
        origin = f"{scheme}://{netloc}"
        if origin not in found:
            found.append(origin)
    return tuple(found)


def _looks_weak(key: bytes) -> bool:
    return len(set(key)) < MIN_DISTINCT_BYTES


class Settings(BaseSettings):
    """Node settings. Secrets are :class:`SecretStr` (masked in reprs and dumps); outside
    development, placeholder or well-known secrets are refused with an error naming the
    variable. Missing secrets are refused by the commands that need them."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path("data"), description="where the default SQLite file lives")
    database_url: SecretStr | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user:pass@host/db; default: SQLite in data_dir",
    )
    rpc_url: str | None = Field(default=None, description="JSON-RPC URL of the ledger chain")
    public_rpc_url: str | None = Field(
        default=None,
        description="JSON-RPC URL customers' browsers may read the ledger through (CORS open); "
        "unset: the page runs only the checks that need no chain, and says so",
    )
    ledger_address: str | None = Field(default=None, description="ParcelLedger contract address")
    chain_id: int | None = Field(default=None, description="expected chain id (checked if set)")
    courier_id: str | None = Field(default=None, description="this node's courier id (hex32)")
    account_key: SecretStr | None = Field(
        default=None, description="hex private key of the courier's anchoring account"
    )
    keyring: SecretStr | None = Field(
        default=None, description="key-encryption keys: kid=base64key[,kid=base64key…]"
    )
    active_kid: str | None = Field(default=None, description="key id new data keys wrap under")
    shipment_key: SecretStr | None = Field(
        default=None, description="hex32 HMAC key for shipment references"
    )
    admin_key: SecretStr | None = Field(
        default=None, description="hex private key of the consortium admin (deploy only)"
    )
    resolver_key: SecretStr | None = Field(
        default=None,
        description="hex private key of the account that records dispute outcomes on chain "
        "(granted RESOLVER_ROLE with `parcelproof consortium grant-resolver`); unset: this "
        "node's dispute desk cannot resolve",
    )
    anchor_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="anchor at least this often while leaves wait (an event is anchored about "
        "this long after it is accepted; each anchoring is one transaction, ~61k gas, however "
        "many events it covers: raise it on a chain where gas is dear)",
    )
    anchor_batch_leaves: int = Field(default=256, ge=1)
    confirmations: int = Field(default=1, ge=1)
    retention_days: int = Field(
        default=90,
        ge=0,
        description="erase a shipment's details this many days after its last activity "
        "(the anchor worker checks once a day); 0 disables",
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    chain_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how old (seconds) the chain reads of a customer lookup's server-side "
        "check may be (anchored roots, agent keys, the latest checkpoint); 0: read the chain "
        "on every lookup. Customers' own verifiers always read the chain",
    )
    lookup_limit_per_client: str = Field(
        default="60/minute",
        description="customer lookups one client address may make (`limits` notation, "
        "e.g. 60/minute); behind a proxy every customer shares its address",
    )
    lookup_limit_per_parcel: str = Field(
        default="10/minute", description="lookups of one tracking number (`limits` notation)"
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes `serve` runs on its socket (one per core is a good start); "
        "each keeps its own lookup rate limits and chain-read cache",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) `serve` answers HTTPS with"
    )
    tls_key: Path | None = Field(default=None, description="unencrypted PEM key of tls_cert")
    cors_origins: str | None = Field(
        default=None,
        description="comma-separated origins whose pages may call the API (CORS); unset: none",
    )
    peers: str | None = Field(
        default=None,
        description="comma-separated base URLs of the consortium's other nodes, asked for their "
        "part of a parcel's journey on customer lookups; unset: this node's log only",
    )
    webauthn_rp_id: str = Field(
        default="localhost",
        description="WebAuthn relying-party id staff passkeys are bound to (the site's domain)",
    )
    webauthn_origins: str = Field(
        default="https://localhost:8443",
        description="comma-separated page origins staff sign in with passkeys from",
    )
    webhook_retry_base_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a failed webhook delivery is retried after this many seconds, doubling "
        "with each failure (plus up to 10% jitter, at most 6 hours)",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=30, description="attempts before a webhook delivery has failed"
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="how long one webhook attempt may take"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    fault_after_send: Literal["exit"] | None = Field(
        default=None, description="test hook: the worker dies right after a checkpoint is mined"
    )

    @field_validator("tls_cert", "tls_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("lookup_limit_per_client", "lookup_limit_per_parcel")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a rate limit such as 60/minute") from e
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        production_like = self.environment != "development"
        if production_like:
            self._refuse_placeholders()
            if self.fault_after_send is not None:
                raise ConfigurationError(
                    "PARCELPROOF_FAULT_AFTER_SEND is a test hook, refused outside development"
                )
        if self.courier_id is not None:
            parse_hex32(self.courier_id, "PARCELPROOF_COURIER_ID")
        if self.ledger_address is not None and not _ADDRESS.fullmatch(self.ledger_address.strip()):
            raise ConfigurationError("PARCELPROOF_LEDGER_ADDRESS must be a 0x-prefixed address")
        if self.keyring is not None:
            self.node_keyring()
        for name in ("account_key", "admin_key", "resolver_key", "shipment_key"):
            if getattr(self, name) is not None:
                self._secret_bytes(name)
        for name in ("account_key", "admin_key", "resolver_key"):
            if getattr(self, name) is not None:
                parse_private_key(self._secret(name), env_name(name))
        self.cors_origin_list()
        self.peer_urls()
        return self

    def _refuse_placeholders(self) -> None:
        for name in (
            "account_key",
            "admin_key",
            "resolver_key",
            "keyring",
            "shipment_key",
            "database_url",
        ):
            value: SecretStr | None = getattr(self, name)
            if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDERS:
                raise ConfigurationError(
                    f"{env_name(name)} holds a placeholder outside development "
                    f"(PARCELPROOF_ENVIRONMENT={self.environment}): set a real secret"
                )
        for name in ("account_key", "admin_key", "resolver_key", "shipment_key"):
            if getattr(self, name) is not None and _looks_weak(self._secret_bytes(name)):
                raise ConfigurationError(
                    f"{env_name(name)} looks hand-made (too few distinct bytes): outside "
                    "development use a randomly generated key"
                )
        for name in ("account_key", "admin_key", "resolver_key"):
            if getattr(self, name) is None:
                continue
            address = parse_private_key(self._secret(name), env_name(name)).address
            if address.lower() in DEV_ACCOUNTS:
                raise ConfigurationError(
                    f"{env_name(name)} is one of anvil's public dev keys: never use it "
                    "outside development"
                )
        if self.keyring is not None:
            ring = self.node_keyring()
            if any(_looks_weak(ring.get(kid).key) for kid in ring.kids):
                raise ConfigurationError(
                    "PARCELPROOF_KEYRING holds a hand-made key (too few distinct bytes): "
                    "outside development use randomly generated keys"
                )

    # --- parsed values ----------------------------------------------------------------------

    def require(self, *fields: str) -> None:
        """Raise :class:`ConfigurationError` naming every one of ``fields`` that is unset."""
        missing = [env_name(f) for f in fields if getattr(self, f) in (None, "")]
        if missing:
            raise ConfigurationError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                "(set in the environment or the env file)"
            )

    def require_node(self) -> None:
        """Everything a courier node needs besides the chain and the database URL."""
        self.require(*NODE_SETTINGS)

    def database(self) -> str:
        """The database URL: ``database_url``, or the SQLite file under ``data_dir``."""
        if self.database_url is not None and self.database_url.get_secret_value().strip():
            return self.database_url.get_secret_value().strip()
        return f"sqlite:///{self.data_dir / 'parcelproof.sqlite'}"

    def cors_origin_list(self) -> tuple[str, ...]:
        """The origins allowed to call the API from a browser (empty: CORS closed)."""
        return parse_cors_origins(self.cors_origins or "")

    def peer_urls(self) -> tuple[str, ...]:
        """The other nodes a customer lookup also asks (https; http only on localhost)."""
        return parse_cors_origins(self.peers or "", "PARCELPROOF_PEERS")

    def tls_files(self) -> tuple[Path, Path] | None:
        """The certificate and key `serve` answers HTTPS with, or None for plain HTTP."""
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            given, missing = ("cert", "key") if self.tls_key is None else ("key", "cert")
            raise ConfigurationError(
                f"TLS needs a certificate and its key: --tls-{given} "
                f"(PARCELPROOF_TLS_{given.upper()}) is set but --tls-{missing} "
                f"(PARCELPROOF_TLS_{missing.upper()}) is not; pass both, or neither for "
                "plain HTTP"
            )
        return self.tls_cert, self.tls_key

    def courier_id_bytes(self) -> bytes:
        """The courier id (and log id) as 32 bytes."""
        self.require("courier_id")
        return parse_hex32(self.courier_id or "", "PARCELPROOF_COURIER_ID")

    def account(self) -> LocalAccount:
        """The courier's anchoring account (signs checkpoints and key registrations)."""
        self.require("account_key")
        return parse_private_key(self._secret("account_key"), "PARCELPROOF_ACCOUNT_KEY")

    def resolver(self) -> LocalAccount | None:
        """The account that records dispute outcomes (PARCELPROOF_RESOLVER_KEY), if set."""
        if self.resolver_key is None:
            return None
        return parse_private_key(self._secret("resolver_key"), "PARCELPROOF_RESOLVER_KEY")

    def admin(self) -> LocalAccount:
        """The consortium admin account (deployment and membership only)."""
        self.require("admin_key")
        return parse_private_key(self._secret("admin_key"), "PARCELPROOF_ADMIN_KEY")

    def node_keyring(self) -> Keyring:
        """The key-encryption keyring for shipment data keys."""
        self.require("keyring")
        return parse_keyring(self._secret("keyring"), self.active_kid)

    def shipment_key_bytes(self) -> bytes:
        """The HMAC key of shipment references (32 bytes)."""
        self.require("shipment_key")
        return self._secret_bytes("shipment_key")

    def _secret(self, name: str) -> str:
        value: SecretStr | None = getattr(self, name)
        return "" if value is None else value.get_secret_value()

    def _secret_bytes(self, name: str) -> bytes:
        return parse_hex32(self._secret(name), env_name(name))


class AgentSettings(BaseSettings):
    """What an agent device needs: the node's API, a token and its own signing key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    api_url: str = "http://127.0.0.1:8000"
    api_token: SecretStr | None = None
    agent_key: SecretStr | None = None


def load_settings(
    env_file: Path | str | None = None, *, read_env_file: bool = True, **overrides: Any
) -> Settings:
    """Read settings from the environment and ``env_file`` (default: ``.env`` if present;
    none with ``read_env_file=False``), overrides that are not None first. Every failure is
    a :class:`ConfigurationError` naming the variable, never echoing its value."""
    return _load(Settings, env_file, read_env_file, overrides)


def load_agent_settings(
    env_file: Path | str | None = None, *, read_env_file: bool = True, **overrides: Any
) -> AgentSettings:
    """Like :func:`load_settings`, for the agent commands."""
    return _load(AgentSettings, env_file, read_env_file, overrides)


_S = TypeVar("_S", bound=BaseSettings)


def _load(
    cls: type[_S], env_file: Path | str | None, read_env_file: bool, overrides: dict[str, Any]
) -> _S:
    kwargs: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if not read_env_file:
        kwargs["_env_file"] = None
    elif env_file is not None:
        if not Path(env_file).is_file():
            raise ConfigurationError(f"env file {env_file} does not exist")
        kwargs["_env_file"] = env_file
    try:
        return cls(**kwargs)
    except ValidationError as e:
        problems = "; ".join(
            f"{env_name(str(err['loc'][0])) if err['loc'] else 'settings'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
