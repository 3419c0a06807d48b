"""Stored records of staff accounts (users, passkeys, sessions) and the port that keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StaffUser:
    """A staff account as stored: no password, only its argon2id hash; the TOTP secret sealed."""

    user_id: str
    username: str
    role: str
    password_hash: str
    totp_sealed: bytes | None
    totp_confirmed: bool
    totp_last_step: int | None
    failed_attempts: int
    locked_until: int | None
    created_at: int
    disabled_at: int | None

    def __repr__(self) -> str:  # never print hashes or sealed secrets
        return f"StaffUser(user_id={self.user_id!r}, role={self.role!r})"


@dataclass(frozen=True)
class Passkey:
    """A registered WebAuthn credential."""

    credential_id: bytes
    user_id: str
    public_key: bytes
    sign_count: int
    name: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True)
class StaffSession:
    """A pending login (second factor due) or a session, known by the hash of its token."""

    token_hash: bytes
    user_id: str
    kind: str  # "pending" | "session"
    mfa: bool
    challenge: bytes | None
    created_at: int
    expires_at: int
    revoked_at: int | None


class StaffStore(Protocol):
    """Where staff accounts live (one courier log's)."""

    def add_user(self, user: StaffUser) -> None: ...

    def user(self, user_id: str) -> StaffUser | None: ...

    def user_by_name(self, username: str) -> StaffUser | None: ...

    def users(self) -> list[StaffUser]: ...

    def record_failure(self, user_id: str, now: int, threshold: int, base: int, cap: int) -> int:
        """Count a failed attempt; lock for ``base * 2**(n - threshold)`` seconds (at most
        ``cap``) once ``threshold`` is reached. Returns the new count."""
        ...

    def reset_failures(self, user_id: str) -> None: ...

    def set_password(self, user_id: str, password_hash: str) -> None: ...

    def set_disabled(self, user_id: str, at: int | None) -> None: ...

    def set_totp(self, user_id: str, sealed: bytes | None, confirmed: bool) -> None: ...

    def accept_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used if it is later than the last one used (atomically)."""
        ...

    def replace_recovery_codes(self, user_id: str, hashes: Sequence[bytes]) -> None: ...

    def use_recovery_code(self, user_id: str, code_hash: bytes, now: int) -> bool: ...

    def recovery_codes_left(self, user_id: str) -> int: ...

    def add_passkey(self, passkey: Passkey) -> None: ...

    def passkeys(self, user_id: str) -> list[Passkey]: ...

    def passkey(self, credential_id: bytes) -> Passkey | None: ...

    def advance_sign_count(self, credential_id: bytes, new_count: int, now: int) -> bool:
        """Store a passkey's new signature counter; False if it did not grow (a clone)."""
        ...

    def add_session(self, session: StaffSession) -> None: ...

    def session(self, token_hash: bytes) -> StaffSession | None: ...

    def set_challenge(self, token_hash: bytes, challenge: bytes | None) -> None: ...

    def revoke_session(self, token_hash: bytes, now: int) -> None: ...

    def revoke_sessions_of(self, user_id: str, now: int) -> None: ...
