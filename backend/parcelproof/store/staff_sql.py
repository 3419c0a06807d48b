"""SQL implementation of the staff-account port: users, recovery codes, passkeys, sessions."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.errors import ConflictError, FormatError, NotFoundError
from parcelproof.service.staff_records import Passkey, StaffSession, StaffUser
from parcelproof.store.db import engine_of, transaction
from parcelproof.store.models import (
    StaffPasskeyRow,
    StaffRecoveryCodeRow,
    StaffSessionRow,
    StaffUserRow,
)


class SqlStaffStore:
    """Staff accounts of one courier log in SQL; each method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], log_id: bytes) -> None:
        if not isinstance(log_id, bytes) or len(log_id) != 32:
            raise FormatError("log id must be 32 bytes")
        self._sessions = sessions
        self._log_id = log_id
        self._dialect = engine_of(sessions).dialect.name

    # --- users ------------------------------------------------------------------------------

    def add_user(self, user: StaffUser) -> None:
        with self._transaction(write=True) as s:
            taken = s.scalar(
                select(StaffUserRow.user_id).where(
                    StaffUserRow.log_id == self._log_id, StaffUserRow.username == user.username
                )
            )
            if taken is not None:
                raise ConflictError("a staff account with this username already exists")
            s.add(
                StaffUserRow(
                    user_id=user.user_id,
                    log_id=self._log_id,
                    username=user.username,
                    role=user.role,
                    password_hash=user.password_hash,
                    totp_sealed=user.totp_sealed,
                    totp_confirmed=user.totp_confirmed,
                    totp_last_step=user.totp_last_step,
                    failed_attempts=user.failed_attempts,
                    locked_until=user.locked_until,
                    created_at=user.created_at,
                    disabled_at=user.disabled_at,
                )
            )

    def user(self, user_id: str) -> StaffUser | None:
        with self._transaction() as s:
            row = s.get(StaffUserRow, user_id)
            return None if row is None or row.log_id != self._log_id else _user(row)

    def user_by_name(self, username: str) -> StaffUser | None:
        with self._transaction() as s:
            row = s.scalar(
                select(StaffUserRow).where(
                    StaffUserRow.log_id == self._log_id, StaffUserRow.username == username
                )
            )
            return None if row is None else _user(row)

    def users(self) -> list[StaffUser]:
        with self._transaction() as s:
            rows = s.scalars(
                select(StaffUserRow)
                .where(StaffUserRow.log_id == self._log_id)
                .order_by(StaffUserRow.created_at, StaffUserRow.user_id)
            )
            return [_user(r) for r in rows]

    def record_failure(self, user_id: str, now: int, threshold: int, base: int, cap: int) -> int:
        with self._transaction(write=True) as s:
            row = self._user_row(s, user_id, lock=True)
            row.failed_attempts += 1
            if row.failed_attempts >= threshold:
                delay = min(cap, base * 2 ** (row.failed_attempts - threshold))
                row.locked_until = now + delay
            return row.failed_attempts

    def reset_failures(self, user_id: str) -> None:
        with self._transaction(write=True) as s:
            row = self._user_row(s, user_id, lock=True)
            row.failed_attempts = 0
            row.locked_until = None

    def set_password(self, user_id: str, password_hash: str) -> None:
        with self._transaction(write=True) as s:
            self._user_row(s, user_id).password_hash = password_hash

    def set_disabled(self, user_id: str, at: int | None) -> None:
        with self._transaction(write=True) as s:
            self._user_row(s, user_id).disabled_at = at

    def set_totp(self, user_id: str, sealed: bytes | None, confirmed: bool) -> None:
        with self._transaction(write=True) as s:
            row = self._user_row(s, user_id)
            row.totp_sealed = sealed
            row.totp_confirmed = confirmed
            if sealed is None:
                row.totp_last_step = None

    def accept_totp_step(self, user_id: str, step: int) -> bool:
        with self._transaction(write=True) as s:
            result = s.execute(
                update(StaffUserRow)
                .where(
                    StaffUserRow.user_id == user_id,
                    StaffUserRow.log_id == self._log_id,
                    or_(StaffUserRow.totp_last_step.is_(None), StaffUserRow.totp_last_step < step),
                )
                .values(totp_last_step=step)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- recovery codes ---------------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, hashes: Sequence[bytes]) -> None:
        with self._transaction(write=True) as s:
            self._user_row(s, user_id)
            s.execute(delete(StaffRecoveryCodeRow).where(StaffRecoveryCodeRow.user_id == user_id))
            s.add_all(StaffRecoveryCodeRow(user_id=user_id, code_hash=h) for h in hashes)

    def use_recovery_code(self, user_id: str, code_hash: bytes, now: int) -> bool:
        with self._transaction(write=True) as s:
            result = s.execute(
                update(StaffRecoveryCodeRow)
                .where(
                    StaffRecoveryCodeRow.user_id == user_id,
                    StaffRecoveryCodeRow.code_hash == code_hash,
                    StaffRecoveryCodeRow.used_at.is_(None),
                )
                .values(used_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def recovery_codes_left(self, user_id: str) -> int:
        with self._transaction() as s:
            count = s.scalar(
                select(func.count())
                .select_from(StaffRecoveryCodeRow)
                .where(
                    StaffRecoveryCodeRow.user_id == user_id,
                    StaffRecoveryCodeRow.used_at.is_(None),
                )
            )
            return int(count or 0)

    # --- passkeys ---------------------------------------------------------------------------

    def add_passkey(self, passkey: Passkey) -> None:
        with self._transaction(write=True) as s:
            self._user_row(s, passkey.user_id)
            if s.get(StaffPasskeyRow, passkey.credential_id) is not None:
                raise ConflictError("this passkey is already registered")
            s.add(
                StaffPasskeyRow(
                    credential_id=passkey.credential_id,
                    user_id=passkey.user_id,
                    public_key=passkey.public_key,
                    sign_count=passkey.sign_count,
                    name=passkey.name,
                    created_at=passkey.created_at,
                    last_used_at=passkey.last_used_at,
                )
            )

    def passkeys(self, user_id: str) -> list[Passkey]:
        with self._transaction() as s:
            rows = s.scalars(
                select(StaffPasskeyRow)
                .where(StaffPasskeyRow.user_id == user_id)
                .order_by(StaffPasskeyRow.created_at)
            )
            return [_passkey(r) for r in rows]

    def passkey(self, credential_id: bytes) -> Passkey | None:
        with self._transaction() as s:
            row = s.get(StaffPasskeyRow, credential_id)
            if row is None or self.user(row.user_id) is None:
                return None
            return _passkey(row)

    def advance_sign_count(self, credential_id: bytes, new_count: int, now: int) -> bool:
        with self._transaction(write=True) as s:
            # Authenticators that keep no counter always report 0: accept 0 -> 0.
            result = s.execute(
                update(StaffPasskeyRow)
                .where(
                    StaffPasskeyRow.credential_id == credential_id,
                    or_(
                        StaffPasskeyRow.sign_count < new_count,
                        (StaffPasskeyRow.sign_count == 0) & (new_count == 0),
                    ),
                )
                .values(sign_count=new_count, last_used_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- sessions ---------------------------------------------------------------------------

    def add_session(self, session: StaffSession) -> None:
        with self._transaction(write=True) as s:
            self._user_row(s, session.user_id)
            s.add(
                StaffSessionRow(
                    token_hash=session.token_hash,
                    user_id=session.user_id,
                    kind=session.kind,
                    mfa=session.mfa,
                    challenge=session.challenge,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    revoked_at=session.revoked_at,
                )
            )

    def session(self, token_hash: bytes) -> StaffSession | None:
        with self._transaction() as s:
            row = s.get(StaffSessionRow, token_hash)
            if row is None:
                return None
            owner = s.get(StaffUserRow, row.user_id)
            if owner is None or owner.log_id != self._log_id:
                return None
            return _session(row)

    def set_challenge(self, token_hash: bytes, challenge: bytes | None) -> None:
        with self._transaction(write=True) as s:
            row = s.get(StaffSessionRow, token_hash)
            if row is None:
                raise NotFoundError("no such session")
            row.challenge = challenge

    def revoke_session(self, token_hash: bytes, now: int) -> None:
        with self._transaction(write=True) as s:
            row = s.get(StaffSessionRow, token_hash)
            if row is not None and row.revoked_at is None:
                row.revoked_at = now

    def revoke_sessions_of(self, user_id: str, now: int) -> None:
        with self._transaction(write=True) as s:
            s.execute(
                update(StaffSessionRow)
                .where(StaffSessionRow.user_id == user_id, StaffSessionRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    # --- internals --------------------------------------------------------------------------

    def _user_row(self, s: Session, user_id: str, *, lock: bool = False) -> StaffUserRow:
        query = select(StaffUserRow).where(
            StaffUserRow.user_id == user_id, StaffUserRow.log_id == self._log_id
        )
        if lock and self._dialect == "postgresql":
            query = query.with_for_update()
        row = s.scalar(query)
        if row is None:
            raise NotFoundError("no such staff account")
        return row

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(
            self._sessions,
            self._dialect,
            write=write,
            conflict=lambda _name: "the staff record conflicts with one already stored",
            what="staff account operation",
        )


def _user(row: StaffUserRow) -> StaffUser:
    return StaffUser(
        user_id=row.user_id,
        username=row.username,
        role=row.role,
        password_hash=row.password_hash,
        totp_sealed=row.totp_sealed,
        totp_confirmed=bool(row.totp_confirmed),
        totp_last_step=row.totp_last_step,
        failed_attempts=row.failed_attempts,
        locked_until=row.locked_until,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _passkey(row: StaffPasskeyRow) -> Passkey:
    return Passkey(
        credential_id=row.credential_id,
        user_id=row.user_id,
        public_key=row.public_key,
        sign_count=row.sign_count,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


def _session(row: StaffSessionRow) -> StaffSession:
    return StaffSession(
        token_hash=row.token_hash,
        user_id=row.user_id,
        kind=row.kind,
        mfa=bool(row.mfa),
        challenge=row.challenge,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
