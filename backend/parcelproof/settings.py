"""Typed settings from the environment (prefix PARCELPROOF_) or a .env file; no globals."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})


class Settings(BaseSettings):
    """Node settings. Secrets that look like placeholders are refused outside development."""

    model_config = SettingsConfigDict(
        env_prefix="PARCELPROOF_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    rpc_url: str | None = Field(
        default=None, description="JSON-RPC URL of the ledger chain; unset = embedded devnet"
    )
    ledger_address: str | None = None
    chain_id: int | None = None
    admin_key: SecretStr | None = Field(
        default=None, description="hex private key of the consortium admin (deploy only)"
    )
    data_dir: Path = Path("data")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if self.admin_key is not None and self.admin_key.get_secret_value() in PLACEHOLDERS:
            raise ValueError("PARCELPROOF_ADMIN_KEY holds a placeholder outside development")
        return self


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
