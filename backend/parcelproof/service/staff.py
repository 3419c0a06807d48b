"""Staff accounts: argon2id passwords, TOTP and passkey second factors, recovery codes,
short-lived sessions, and back-off with lockout after repeated failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from parcelproof.core import envelope
from parcelproof.core.errors import ConflictError, Error, FormatError, NotFoundError
from parcelproof.service.authz import (
    MFA_REQUIRED,
    STAFF_ROLES,
    AuthenticationError,
    Principal,
    staff_permissions,
)
from parcelproof.service.ports import AuditSink, Clock, SystemClock
from parcelproof.service.staff_records import Passkey, StaffSession, StaffStore, StaffUser

SESSION_PREFIX = "pps"
PENDING_PREFIX = "ppl"
TOTP_PERIOD = 30
TOTP_DIGITS = 6
RECOVERY_CODES = 10
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
ISSUER = "ParcelProof"
_TOTP_AAD_PURPOSE = "staff-totp"


class AccountLockedError(Error):
    """Too many failed attempts: the account is locked for ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(f"too many failed attempts: try again in {self.retry_after} s")


@dataclass(frozen=True)
class Policy:
    """Lifetimes and the lockout curve (after ``lock_threshold`` failures: ``lock_base``
    seconds, doubling with each further failure, at most ``lock_cap``)."""

    session_ttl: int = 15 * 60
    pending_ttl: int = 5 * 60
    lock_threshold: int = 5
    lock_base: int = 60
    lock_cap: int = 60 * 60


@dataclass(frozen=True)
class WebAuthnConfig:
    """The relying party passkeys are bound to: its id (a domain) and the page origins."""

    rp_id: str = "localhost"
    rp_name: str = "ParcelProof"
    origins: tuple[str, ...] = ("https://localhost:8443",)


@dataclass(frozen=True)
class LoginStep:
    """The answer to a login step: a session, or a pending login naming the factors due."""

    status: str  # "ok" | "mfa-required" | "enrol-required"
    token: str
    expires_in: int
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class TotpEnrolment:
    """A TOTP secret offered for enrolment: as an otpauth URI and as a QR image (PNG)."""

    otpauth_uri: str
    qr_png: bytes = field(repr=False)

    def __repr__(self) -> str:  # the URI carries the secret
        return "TotpEnrolment(<secret>)"


@dataclass(frozen=True)
class FactorAdded:
    """A second factor was enrolled: the new MFA session, and recovery codes if first."""

    token: str
    expires_in: int
    recovery_codes: tuple[str, ...] = ()


def _hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


class StaffService:
    """Accounts, logins and second factors of the staff of one courier node."""

    def __init__(
        self,
        store: StaffStore,
        keyring: envelope.Keyring,
        *,
        webauthn: WebAuthnConfig | None = None,
        policy: Policy | None = None,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.webauthn = webauthn or WebAuthnConfig()
        self.policy = policy or Policy()
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._clock = clock or SystemClock()
        self._audit = audit
        self._decoy: str | None = None

    def attach_audit(self, audit: AuditSink) -> None:
        """Record logins, failures, enrolments and account changes in ``audit``."""
        self._audit = audit

    # --- accounts ---------------------------------------------------------------------------

    def create_user(
        self, username: str, role: str, password: str, *, actor: str = "system"
    ) -> StaffUser:
        """Create an account (username: 3-64 of a-z 0-9 . _ -; password: 12+ characters)."""
        if not isinstance(username, str) or not USERNAME.match(username):
            raise FormatError("username must be 3-64 characters: a-z, 0-9, '.', '_' or '-'")
        if role not in STAFF_ROLES:
            raise FormatError(f"role must be one of {', '.join(STAFF_ROLES)}")
        self._check_password(username, password)
        user = StaffUser(
            user_id=secrets.token_hex(12),
            username=username,
            role=role,
            password_hash=self._hasher.hash(password),
            totp_sealed=None,
            totp_confirmed=False,
            totp_last_step=None,
            failed_attempts=0,
            locked_until=None,
            created_at=self._clock.now(),
            disabled_at=None,
        )
        self.store.add_user(user)
        self._record(actor, "staff.create", user.user_id, {"role": role})
        return user

    def disable_user(self, user_id: str, *, actor: str = "system") -> None:
        """Disable an account and end its sessions."""
        if self.store.user(user_id) is None:
            raise NotFoundError("no such staff account")
        now = self._clock.now()
        self.store.set_disabled(user_id, now)
        self.store.revoke_sessions_of(user_id, now)
        self._record(actor, "staff.disable", user_id)

    def _check_password(self, username: str, password: str) -> None:
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise FormatError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
        if username.lower() in password.lower():
            raise FormatError("password must not contain the username")

    # --- login ------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> LoginStep:
        """Check a password. With a second factor enrolled this returns a pending login
        (``mfa-required``) whose token completes with TOTP, a passkey or a recovery code."""
        user = self.store.user_by_name(username) if isinstance(username, str) else None
        if user is None:
            # Unknown usernames still cost one argon2 verification: same answer, similar time.
            if self._decoy is None:
                self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
            self._verify_password(self._decoy, password)
            self._record("anonymous", "staff.login-failed", None, {"reason": "credentials"})
            raise AuthenticationError("invalid username or password")
        self._check_not_locked(user)
        if not self._verify_password(user.password_hash, password):
            self._fail(user, "password")
        if user.disabled_at is not None:
            self._record(
                f"staff:{user.user_id}", "staff.login-failed", user.user_id, {"reason": "disabled"}
            )
            raise AuthenticationError("invalid username or password")
        if self._hasher.check_needs_rehash(user.password_hash):
            self.store.set_password(user.user_id, self._hasher.hash(password))
        methods = self._methods(user)
        if methods:
            token = self._new_session(user.user_id, "pending", mfa=False)
            return LoginStep("mfa-required", token, self.policy.pending_ttl, methods)
        self.store.reset_failures(user.user_id)
        token = self._new_session(user.user_id, "session", mfa=False)
        self._record(f"staff:{user.user_id}", "staff.login", user.user_id, {"mfa": False})
        status = "enrol-required" if user.role in MFA_REQUIRED else "ok"
        return LoginStep(status, token, self.policy.session_ttl)

    def login_totp(self, pending_token: str, code: str) -> LoginStep:
        """Complete a pending login with a TOTP code (a code is accepted once only)."""
        user, session = self._pending(pending_token)
        if not user.totp_confirmed or not self._totp_ok(user, code):
            self._fail(user, "totp")
        return self._complete(user, session, "totp")

    def login_recovery(self, pending_token: str, code: str) -> LoginStep:
        """Complete a pending login with one of the single-use recovery codes."""
        user, session = self._pending(pending_token)
        digest = _hash_token(_normalise_code(code) if isinstance(code, str) else "")
        if not self.store.use_recovery_code(user.user_id, digest, self._clock.now()):
            self._fail(user, "recovery-code")
        return self._complete(user, session, "recovery-code")

    def login_passkey_options(self, pending_token: str) -> dict[str, Any]:
        """WebAuthn assertion options for a pending login (a fresh challenge each time)."""
        user, session = self._pending(pending_token)
        passkeys = self.store.passkeys(user.user_id)
        if not passkeys:
            raise ConflictError("no passkey is registered for this account")
        options = generate_authentication_options(
            rp_id=self.webauthn.rp_id,
            allow_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in passkeys],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        self.store.set_challenge(session.token_hash, options.challenge)
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    def login_passkey(self, pending_token: str, credential: Mapping[str, Any]) -> LoginStep:
        """Complete a pending login with a WebAuthn assertion (user verification required:
        a fingerprint, face or device PIN)."""
        user, session = self._pending(pending_token)
        challenge = session.challenge
        self.store.set_challenge(session.token_hash, None)  # one answer per challenge
        passkey = self._passkey_of(user, credential)
        if challenge is None or passkey is None:
            self._fail(user, "passkey")
        try:
            verified = verify_authentication_response(
                credential=dict(credential),
                expected_challenge=challenge,
                expected_rp_id=self.webauthn.rp_id,
                expected_origin=list(self.webauthn.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError):
            self._fail(user, "passkey")
        now = self._clock.now()
        if not self.store.advance_sign_count(passkey.credential_id, verified.new_sign_count, now):
            self._fail(user, "passkey-counter")
        return self._complete(user, session, "passkey")

    def logout(self, token: str) -> None:
        """End a session (or a pending login)."""
        self.store.revoke_session(_hash_token(token), self._clock.now())

    def principal(self, token: str) -> Principal:
        """The principal of a live session token; AuthenticationError otherwise."""
        user, session = self._live(token, "session")
        return Principal(
            "staff", user.user_id, user.role, staff_permissions(user.role, session.mfa), session.mfa
        )

    def user_of(self, token: str) -> StaffUser:
        """The account of a live session token."""
        return self._live(token, "session")[0]

    # --- enrolment --------------------------------------------------------------------------

    def enrol_totp(self, token: str) -> TotpEnrolment:
        """Offer a new TOTP secret (replacing one not yet confirmed)."""
        user, _ = self._live(token, "session")
        if user.totp_confirmed:
            raise ConflictError("TOTP is already enrolled for this account")
        secret = pyotp.random_base32(length=32)
        self.store.set_totp(user.user_id, self._seal_secret(user.user_id, secret), False)
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=user.username, issuer_name=ISSUER
        )
        return TotpEnrolment(uri, qr_png(uri))

    def confirm_totp(self, token: str, code: str) -> FactorAdded:
        """Confirm TOTP enrolment with a first code; the session is re-issued with MFA."""
        user, session = self._live(token, "session")
        if user.totp_sealed is None or user.totp_confirmed:
            raise ConflictError("no TOTP enrolment is waiting for confirmation")
        if not self._totp_ok(user, code):
            self._fail(user, "totp-enrol")
        self.store.set_totp(user.user_id, user.totp_sealed, True)
        return self._factor_added(user, session, "totp")

    def passkey_options(self, token: str) -> dict[str, Any]:
        """WebAuthn registration options for a new passkey of the session's account."""
        user, session = self._live(token, "session")
        options = generate_registration_options(
            rp_id=self.webauthn.rp_id,
            rp_name=self.webauthn.rp_name,
            user_name=user.username,
            user_id=user.user_id.encode(),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=p.credential_id)
                for p in self.store.passkeys(user.user_id)
            ],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
        )
        self.store.set_challenge(session.token_hash, options.challenge)
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    def add_passkey(self, token: str, credential: Mapping[str, Any], name: str) -> FactorAdded:
        """Register a passkey from the authenticator's attestation; the session is re-issued
        with MFA."""
        user, session = self._live(token, "session")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise FormatError("passkey name must be 1-100 characters")
        challenge = session.challenge
        self.store.set_challenge(session.token_hash, None)
        if challenge is None:
            raise ConflictError("ask for passkey options first")
        try:
            verified = verify_registration_response(
                credential=dict(credential),
                expected_challenge=challenge,
                expected_rp_id=self.webauthn.rp_id,
                expected_origin=list(self.webauthn.origins),
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as e:
            raise AuthenticationError(f"passkey registration did not verify: {e}") from e
        self.store.add_passkey(
            Passkey(
                credential_id=verified.credential_id,
                user_id=user.user_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                name=name,
                created_at=self._clock.now(),
                last_used_at=None,
            )
        )
        return self._factor_added(user, session, "passkey")

    def new_recovery_codes(self, token: str) -> tuple[str, ...]:
        """Replace the account's recovery codes (needs a session opened with MFA)."""
        user, session = self._live(token, "session")
        if not session.mfa:
            raise AuthenticationError("log in with your second factor to renew recovery codes")
        return self._issue_recovery_codes(user)

    def methods(self, user: StaffUser) -> tuple[str, ...]:
        """The second factors this account has: totp, passkey, recovery-code."""
        return self._methods(user)

    def rewrap_secrets(self) -> int:
        """Re-seal every TOTP secret under the keyring's active key (with `keys rotate`)."""
        count = 0
        for user in self.store.users():
            if user.totp_sealed is None:
                continue
            wrapped = json.loads(user.totp_sealed)
            if wrapped["key"]["kid"] == self.keyring.active_kid:
                continue
            secret = self._open_secret(user.user_id, user.totp_sealed)
            self.store.set_totp(
                user.user_id, self._seal_secret(user.user_id, secret), user.totp_confirmed
            )
            count += 1
        return count

    # --- internals --------------------------------------------------------------------------

    def _record(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: Mapping[str, str | int | bool | None] | None = None,
    ) -> None:
        if self._audit is not None:
            self._audit.record(actor, action, target, detail)

    def _verify_password(self, stored: str, password: object) -> bool:
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _check_not_locked(self, user: StaffUser) -> None:
        now = self._clock.now()
        if user.locked_until is not None and now < user.locked_until:
            raise AccountLockedError(user.locked_until - now)

    def _fail(self, user: StaffUser, reason: str) -> NoReturn:
        p = self.policy
        count = self.store.record_failure(
            user.user_id, self._clock.now(), p.lock_threshold, p.lock_base, p.lock_cap
        )
        self._record(
            f"staff:{user.user_id}",
            "staff.login-failed",
            user.user_id,
            {"reason": reason, "failures": count},
        )
        if count >= p.lock_threshold:
            self.store.revoke_sessions_of(user.user_id, self._clock.now())
            delay = min(p.lock_cap, p.lock_base * 2 ** (count - p.lock_threshold))
            raise AccountLockedError(delay)
        raise AuthenticationError(
            "invalid credentials" if reason != "password" else "invalid username or password"
        )

    def _methods(self, user: StaffUser) -> tuple[str, ...]:
        methods = []
        if user.totp_confirmed:
            methods.append("totp")
        if self.store.passkeys(user.user_id):
            methods.append("passkey")
        if methods and self.store.recovery_codes_left(user.user_id):
            methods.append("recovery-code")
        return tuple(methods)

    def _new_session(self, user_id: str, kind: str, *, mfa: bool) -> str:
        prefix = SESSION_PREFIX if kind == "session" else PENDING_PREFIX
        token = f"{prefix}_{secrets.token_urlsafe(32)}"
        now = self._clock.now()
        ttl = self.policy.session_ttl if kind == "session" else self.policy.pending_ttl
        self.store.add_session(
            StaffSession(_hash_token(token), user_id, kind, mfa, None, now, now + ttl, None)
        )
        return token

    def _live(self, token: str, kind: str) -> tuple[StaffUser, StaffSession]:
        if not isinstance(token, str) or len(token) > 200:
            raise AuthenticationError("invalid credentials")
        session = self.store.session(_hash_token(token))
        now = self._clock.now()
        if (
            session is None
            or session.kind != kind
            or session.revoked_at is not None
            or now >= session.expires_at
        ):
            raise AuthenticationError("invalid or expired credentials")
        user = self.store.user(session.user_id)
        if user is None or user.disabled_at is not None:
            raise AuthenticationError("invalid or expired credentials")
        return user, session

    def _pending(self, token: str) -> tuple[StaffUser, StaffSession]:
        user, session = self._live(token, "pending")
        self._check_not_locked(user)
        return user, session

    def _complete(self, user: StaffUser, pending: StaffSession, method: str) -> LoginStep:
        now = self._clock.now()
        self.store.revoke_session(pending.token_hash, now)
        self.store.reset_failures(user.user_id)
        token = self._new_session(user.user_id, "session", mfa=True)
        self._record(
            f"staff:{user.user_id}", "staff.login", user.user_id, {"mfa": True, "method": method}
        )
        return LoginStep("ok", token, self.policy.session_ttl)

    def _factor_added(self, user: StaffUser, session: StaffSession, kind: str) -> FactorAdded:
        first = not self.store.recovery_codes_left(user.user_id)
        codes = self._issue_recovery_codes(user) if first else ()
        self.store.revoke_session(session.token_hash, self._clock.now())
        token = self._new_session(user.user_id, "session", mfa=True)
        self._record(f"staff:{user.user_id}", "staff.mfa-enrol", user.user_id, {"factor": kind})
        return FactorAdded(token, self.policy.session_ttl, codes)

    def _issue_recovery_codes(self, user: StaffUser) -> tuple[str, ...]:
        codes = []
        for _ in range(RECOVERY_CODES):
            raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 80 bits, 16 characters
            codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
        self.store.replace_recovery_codes(
            user.user_id, [_hash_token(_normalise_code(c)) for c in codes]
        )
        return tuple(codes)

    def _totp_ok(self, user: StaffUser, code: object) -> bool:
        """Whether ``code`` is the TOTP of the previous, current or next 30-second step and
        later than the last accepted one (each code works once)."""
        if user.totp_sealed is None or not isinstance(code, str):
            return False
        code = code.strip()
        if len(code) != TOTP_DIGITS or not code.isdigit():
            return False
        totp = pyotp.TOTP(
            self._open_secret(user.user_id, user.totp_sealed),
            digits=TOTP_DIGITS,
            interval=TOTP_PERIOD,
        )
        current = self._clock.now() // TOTP_PERIOD
        for step in (current - 1, current, current + 1):
            if hmac.compare_digest(totp.at(step * TOTP_PERIOD), code):
                return self.store.accept_totp_step(user.user_id, step)
        return False

    def _passkey_of(self, user: StaffUser, credential: Mapping[str, Any]) -> Passkey | None:
        raw_id = credential.get("rawId") or credential.get("id")
        if not isinstance(raw_id, str):
            return None
        try:
            credential_id = base64.urlsafe_b64decode(raw_id + "=" * (-len(raw_id) % 4))
        except ValueError:
            return None
        passkey = self.store.passkey(credential_id)
        return passkey if passkey is not None and passkey.user_id == user.user_id else None

    def _seal_secret(self, user_id: str, secret: str) -> bytes:
        owner = f"staff-{user_id}"
        return envelope.seal_secret(self.keyring, owner, secret, purpose=_TOTP_AAD_PURPOSE)

    def _open_secret(self, user_id: str, blob: bytes) -> str:
        owner = f"staff-{user_id}"
        return envelope.open_secret(self.keyring, owner, blob, purpose=_TOTP_AAD_PURPOSE)


def qr_png(text: str) -> bytes:
    """A QR code of ``text`` as PNG bytes (for authenticator apps to scan)."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=5, border=4)
    return buffer.getvalue()


def totp_now(secret: str, at: int | None = None) -> str:
    """The TOTP code of ``secret`` at ``at`` (Unix seconds; now by default)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).at(
        int(time.time()) if at is None else at
    )
