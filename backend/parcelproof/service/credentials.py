"""Courier API credentials: issued once, stored only as a hash, checked with scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Protocol

from parcelproof.service.authz import (
    API_CLIENT,
    CLIENT_SCOPES,
    AuthenticationError,
    PermissionDeniedError,
    Principal,
)
from parcelproof.service.ports import ApiClientRecord

PREFIX = "ppk"
SCOPES = CLIENT_SCOPES

__all__ = [
    "PREFIX",
    "SCOPES",
    "ApiClients",
    "AuthenticationError",
    "ScopeError",
    "authenticate",
    "authenticate_client",
    "issue",
    "principal",
]


class ScopeError(PermissionDeniedError):
    """The credential is valid but lacks the scope this operation needs."""


class ApiClients(Protocol):
    """Where API clients are kept (secrets only as SHA-256: they are 256-bit random)."""

    def add_api_client(
        self, client_id: str, name: str, secret_hash: bytes, scopes: Sequence[str]
    ) -> ApiClientRecord: ...

    def api_client(self, client_id: str) -> ApiClientRecord | None: ...


def issue(clients: ApiClients, name: str, scopes: set[str] | frozenset[str]) -> str:
    """Create a client and return its bearer token; the token is never stored."""
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise AuthenticationError(f"unknown or empty scopes: {sorted(unknown)}")
    client_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    clients.add_api_client(
        client_id, name, hashlib.sha256(secret.encode()).digest(), sorted(scopes)
    )
    return f"{PREFIX}_{client_id}_{secret}"


def authenticate_client(clients: ApiClients, token: str) -> ApiClientRecord:
    """Return the active client a bearer token belongs to (constant-time secret check)."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise AuthenticationError("invalid credentials")
    client = clients.api_client(parts[1])
    presented = hashlib.sha256(parts[2].encode()).digest()
    expected = client.secret_hash if client else hashlib.sha256(b"decoy").digest()
    if not hmac.compare_digest(presented, expected) or client is None or not client.active:
        raise AuthenticationError("invalid credentials")
    return client


def authenticate(clients: ApiClients, token: str, scope: str) -> ApiClientRecord:
    """Return the client a bearer token belongs to, if it holds ``scope``."""
    client = authenticate_client(clients, token)
    if scope not in client.scopes:
        raise ScopeError(f"this credential lacks the {scope!r} scope")
    return client


def principal(client: ApiClientRecord) -> Principal:
    """The principal a machine client acts as: role courier-api-client, its scopes."""
    return Principal("client", client.client_id, API_CLIENT, frozenset(client.scopes))
