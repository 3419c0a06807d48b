"""Staff accounts on SQLite and PostgreSQL: argon2id, TOTP with replay protection, recovery
codes, passkeys from a software authenticator, mandatory MFA, lockout, session expiry."""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass

import pytest
import segno
from sqlalchemy import Engine, select, update

from parcelproof.core import envelope
from parcelproof.core.errors import ConflictError, DecryptionError, FormatError
from parcelproof.service.authz import AuthenticationError, PermissionDeniedError
from parcelproof.service.staff import (
    AccountLockedError,
    Policy,
    StaffService,
    WebAuthnConfig,
    qr_png,
    totp_now,
)
from parcelproof.store.db import session_factory
from parcelproof.store.models import StaffSessionRow, StaffUserRow
from parcelproof.store.staff_sql import SqlStaffStore
from tests.support.authenticator import SoftAuthenticator

ORIGIN = "https://ops.parcelproof.test"
RP_ID = "ops.parcelproof.test"
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000

    def now(self) -> int:
        return self.t


@dataclass
class Env:
    service: StaffService
    clock: Clock
    engine: Engine
    keyring: envelope.Keyring
    audit: list[tuple[str, str, str | None, dict[str, object]]]


class _Audit:
    def __init__(self, into: list[tuple[str, str, str | None, dict[str, object]]]) -> None:
        self.into = into

    def record(self, actor: str, action: str, target: str | None = None, detail=None) -> None:  # type: ignore[no-untyped-def]
        self.into.append((actor, action, target, dict(detail or {})))


def _service(
    engine: Engine, keyring: envelope.Keyring, clock: Clock, audit: _Audit
) -> StaffService:
    return StaffService(
        SqlStaffStore(session_factory(engine), b"\x01" * 32),
        keyring,
        webauthn=WebAuthnConfig(rp_id=RP_ID, origins=(ORIGIN,)),
        policy=Policy(),
        clock=clock,
        audit=audit,
    )


@pytest.fixture
def env(sql_engine: Engine) -> Env:
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    clock = Clock()
    entries: list[tuple[str, str, str | None, dict[str, object]]] = []
    return Env(
        _service(sql_engine, keyring, clock, _Audit(entries)), clock, sql_engine, keyring, entries
    )


def _secret(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _with_totp(env: Env, username: str, role: str) -> tuple[str, str, tuple[str, ...]]:
    """Create an account, enrol TOTP; return (secret, MFA session token, recovery codes)."""
    env.service.create_user(username, role, PASSWORD)
    step = env.service.login(username, PASSWORD)
    secret = _secret(env.service.enrol_totp(step.token).otpauth_uri)
    added = env.service.confirm_totp(step.token, totp_now(secret, env.clock.now()))
    env.clock.t += 30  # the enrolment code's step is used up
    return secret, added.token, added.recovery_codes


# --- passwords --------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_only(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    with env.engine.connect() as c:
        stored = c.scalar(select(StaffUserRow.password_hash))
    assert stored is not None and stored.startswith("$argon2id$")
    assert "$m=65536,t=3,p=4$" in stored  # RFC 9106's low-memory profile, as production runs
    assert PASSWORD not in stored


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("Al", PASSWORD, "username must be"),
        ("bad name", PASSWORD, "username must be"),
        ("ops.two", "short", "password must be 12"),
        ("ops.two", "my name is ops.two!", "must not contain the username"),
    ],
)
def test_weak_or_malformed_accounts_are_refused(
    env: Env, username: str, password: str, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        env.service.create_user(username, "courier-operator", password)


def test_unknown_role_and_duplicate_username_are_refused(env: Env) -> None:
    with pytest.raises(FormatError, match="role must be one of"):
        env.service.create_user("ops.one", "root", PASSWORD)
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    with pytest.raises(ConflictError, match="already exists"):
        env.service.create_user("ops.one", "dispute-resolver", PASSWORD)


def test_wrong_password_and_unknown_user_get_the_same_answer(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    with pytest.raises(AuthenticationError) as wrong:
        env.service.login("ops.one", PASSWORD + "x")
    with pytest.raises(AuthenticationError) as unknown:
        env.service.login("nobody", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "invalid username or password"


def test_repeated_failures_lock_the_account_with_doubling_back_off(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            env.service.login("ops.one", "wrong password!!")
    with pytest.raises(AccountLockedError) as locked:
        env.service.login("ops.one", "wrong password!!")
    assert locked.value.retry_after == 60
    with pytest.raises(AccountLockedError):  # even the right password waits
        env.service.login("ops.one", PASSWORD)
    env.clock.t += 61
    with pytest.raises(AccountLockedError) as again:
        env.service.login("ops.one", "wrong password!!")
    assert again.value.retry_after == 120
    env.clock.t += 121
    assert env.service.login("ops.one", PASSWORD).status == "ok"
    with pytest.raises(AuthenticationError):  # the count starts again after a success
        env.service.login("ops.one", "wrong password!!")
    failures = [e for e in env.audit if e[1] == "staff.login-failed"]
    assert len(failures) >= 7 and all(PASSWORD not in str(e) for e in env.audit)


def test_disabled_accounts_cannot_log_in_and_lose_their_sessions(env: Env) -> None:
    user = env.service.create_user("ops.one", "courier-operator", PASSWORD)
    token = env.service.login("ops.one", PASSWORD).token
    env.service.disable_user(user.user_id)
    with pytest.raises(AuthenticationError):
        env.service.principal(token)
    with pytest.raises(AuthenticationError):
        env.service.login("ops.one", PASSWORD)


# --- sessions and mandatory MFA ----------------------------------------------------------------


def test_sessions_are_short_lived_and_end_on_logout(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    token = env.service.login("ops.one", PASSWORD).token
    assert token.startswith("pps_")
    assert env.service.principal(token).role == "courier-operator"
    env.clock.t += env.service.policy.session_ttl
    with pytest.raises(AuthenticationError, match="expired"):
        env.service.principal(token)
    token = env.service.login("ops.one", PASSWORD).token
    env.service.logout(token)
    with pytest.raises(AuthenticationError):
        env.service.principal(token)
    with env.engine.connect() as c:  # only hashes of tokens are stored
        hashes = c.scalars(select(StaffSessionRow.token_hash)).all()
    assert all(token.encode() not in h for h in hashes)


@pytest.mark.parametrize("role", ["dispute-resolver", "consortium-admin"])
def test_resolvers_and_admins_can_only_enrol_until_they_have_a_second_factor(
    env: Env, role: str
) -> None:
    env.service.create_user("staff.one", role, PASSWORD)
    step = env.service.login("staff.one", PASSWORD)
    assert step.status == "enrol-required"
    principal = env.service.principal(step.token)
    assert principal.permissions == {"mfa:enrol"}
    with pytest.raises(PermissionDeniedError, match="needs a second factor"):
        principal.check("audit:read")
    _, token, _ = _with_totp(env, "staff.two", role)
    assert "audit:read" in env.service.principal(token).permissions


def test_operators_may_work_without_mfa_but_a_pending_login_is_not_a_session(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    assert (
        "privacy:export"
        in env.service.principal(env.service.login("ops.one", PASSWORD).token).permissions
    )
    _, _, _ = _with_totp(env, "ops.two", "courier-operator")
    pending = env.service.login("ops.two", PASSWORD)
    assert pending.status == "mfa-required" and pending.token.startswith("ppl_")
    with pytest.raises(AuthenticationError):
        env.service.principal(pending.token)


# --- TOTP -------------------------------------------------------------------------------------


def test_totp_enrolment_gives_an_otpauth_uri_and_its_qr_code(env: Env) -> None:
    env.service.create_user("res.one", "dispute-resolver", PASSWORD)
    step = env.service.login("res.one", PASSWORD)
    enrolment = env.service.enrol_totp(step.token)
    uri = urllib.parse.urlsplit(enrolment.otpauth_uri)
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    query = urllib.parse.parse_qs(uri.query)
    assert query["issuer"] == ["ParcelProof"] and len(query["secret"][0]) == 32
    assert enrolment.qr_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert enrolment.qr_png == qr_png(enrolment.otpauth_uri)
    assert segno.make(enrolment.otpauth_uri, error="m").designator  # a valid QR symbol
    assert query["secret"][0] not in repr(enrolment)


def test_totp_secret_is_sealed_under_the_keyring(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    with env.engine.connect() as c:
        sealed = c.scalar(select(StaffUserRow.totp_sealed))
    assert sealed is not None and secret.encode() not in sealed
    other = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    stranger = _service(env.engine, other, env.clock, _Audit([]))
    pending = stranger.login("res.one", PASSWORD)
    with pytest.raises(DecryptionError):
        stranger.login_totp(pending.token, totp_now(secret, env.clock.now()))


def test_totp_login_wrong_code_then_right_code(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    pending = env.service.login("res.one", PASSWORD)
    assert pending.methods == ("totp", "recovery-code")
    wrong = _wrong(totp_now(secret, env.clock.now()))
    with pytest.raises(AuthenticationError, match="invalid credentials"):
        env.service.login_totp(pending.token, wrong)
    with pytest.raises(AuthenticationError):
        env.service.login_totp(pending.token, "12345x")
    done = env.service.login_totp(pending.token, totp_now(secret, env.clock.now()))
    assert done.status == "ok" and env.service.principal(done.token).mfa
    with pytest.raises(AuthenticationError):  # the pending login is used up
        env.service.login_totp(pending.token, totp_now(secret, env.clock.now()))


def test_a_replayed_totp_code_is_refused(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    code = totp_now(secret, env.clock.now())
    env.service.login_totp(env.service.login("res.one", PASSWORD).token, code)
    replay = env.service.login("res.one", PASSWORD)
    with pytest.raises(AuthenticationError):
        env.service.login_totp(replay.token, code)
    # An older step (still inside the drift window) is a replay too.
    with pytest.raises(AuthenticationError):
        env.service.login_totp(replay.token, totp_now(secret, env.clock.now() - 30))
    env.clock.t += 30
    assert env.service.login_totp(replay.token, totp_now(secret, env.clock.now())).status == "ok"


def test_totp_codes_outside_the_drift_window_are_refused(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    pending = env.service.login("res.one", PASSWORD)
    with pytest.raises(AuthenticationError):
        env.service.login_totp(pending.token, totp_now(secret, env.clock.now() + 90))


def test_wrong_second_factors_count_towards_the_lockout(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    pending = env.service.login("res.one", PASSWORD)
    wrong = _wrong(totp_now(secret, env.clock.now()))
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            env.service.login_totp(pending.token, wrong)
    with pytest.raises(AccountLockedError):
        env.service.login_totp(pending.token, wrong)
    with pytest.raises(AuthenticationError):  # the lock also ended the pending login
        env.service.login_totp(pending.token, totp_now(secret, env.clock.now()))


def test_enrolling_totp_twice_is_a_conflict(env: Env) -> None:
    _, token, _ = _with_totp(env, "res.one", "dispute-resolver")
    with pytest.raises(ConflictError, match="already enrolled"):
        env.service.enrol_totp(token)


# --- recovery codes ---------------------------------------------------------------------------


def test_recovery_codes_work_once_each(env: Env) -> None:
    _, _, codes = _with_totp(env, "adm.one", "consortium-admin")
    assert len(codes) == 10 and len(set(codes)) == 10
    pending = env.service.login("adm.one", PASSWORD)
    done = env.service.login_recovery(pending.token, codes[0].lower().replace("-", " "))
    assert env.service.principal(done.token).mfa
    again = env.service.login("adm.one", PASSWORD)
    with pytest.raises(AuthenticationError):
        env.service.login_recovery(again.token, codes[0])
    assert env.service.login_recovery(again.token, codes[1]).status == "ok"


# --- passkeys (WebAuthn) ----------------------------------------------------------------------


def _with_passkey(env: Env, username: str, role: str = "consortium-admin") -> SoftAuthenticator:
    env.service.create_user(username, role, PASSWORD)
    step = env.service.login(username, PASSWORD)
    device = SoftAuthenticator(ORIGIN)
    options = env.service.passkey_options(step.token)
    assert options["authenticatorSelection"]["userVerification"] == "required"
    added = env.service.add_passkey(step.token, device.create(options), "work laptop")
    assert len(added.recovery_codes) == 10
    assert env.service.principal(added.token).mfa
    return device


def test_passkey_registration_and_login(env: Env) -> None:
    device = _with_passkey(env, "adm.one")
    pending = env.service.login("adm.one", PASSWORD)
    assert "passkey" in pending.methods
    options = env.service.login_passkey_options(pending.token)
    done = env.service.login_passkey(pending.token, device.get(options))
    principal = env.service.principal(done.token)
    assert principal.mfa and "staff:manage" in principal.permissions
    assert [e[3].get("method") for e in env.audit if e[1] == "staff.login"][-1] == "passkey"


def test_passkey_registration_from_another_origin_is_refused(env: Env) -> None:
    env.service.create_user("adm.one", "consortium-admin", PASSWORD)
    step = env.service.login("adm.one", PASSWORD)
    device = SoftAuthenticator(ORIGIN)
    options = env.service.passkey_options(step.token)
    with pytest.raises(AuthenticationError, match="did not verify"):
        env.service.add_passkey(step.token, device.create(options, origin="https://evil.test"), "x")
    with pytest.raises(ConflictError, match="options first"):  # the challenge was spent
        env.service.add_passkey(step.token, device.create(options), "x")


def test_passkey_without_user_verification_is_refused(env: Env) -> None:
    env.service.create_user("adm.one", "consortium-admin", PASSWORD)
    step = env.service.login("adm.one", PASSWORD)
    device = SoftAuthenticator(ORIGIN, user_verified=False)
    with pytest.raises(AuthenticationError, match="did not verify"):
        env.service.add_passkey(
            step.token, device.create(env.service.passkey_options(step.token)), "x"
        )


@pytest.mark.parametrize(
    "attack",
    [
        "replayed assertion",
        "wrong origin",
        "wrong rp id",
        "cloned device",
        "forged signature",
        "no user verification",
    ],
)
def test_passkey_assertion_attacks_fail(env: Env, attack: str) -> None:
    device = _with_passkey(env, "adm.one")
    pending = env.service.login("adm.one", PASSWORD)
    options = env.service.login_passkey_options(pending.token)
    if attack == "replayed assertion":
        answer = device.get(options)
        env.service.login_passkey(pending.token, answer)
        pending = env.service.login("adm.one", PASSWORD)
        env.service.login_passkey_options(pending.token)  # a new challenge
    elif attack == "wrong origin":
        answer = device.get(options, origin="https://evil.test")
    elif attack == "wrong rp id":
        answer = device.get(options, rp_id="evil.test")
    elif attack == "cloned device":
        env.service.login_passkey(pending.token, device.get(options))  # counter 1 stored
        pending = env.service.login("adm.one", PASSWORD)
        options = env.service.login_passkey_options(pending.token)
        clone = SoftAuthenticator(
            ORIGIN, key=device.key, credential_id=device.credential_id, sign_count=0
        )
        answer = clone.get(options)  # counter 1 again: not greater than the stored one
    elif attack == "forged signature":
        answer = SoftAuthenticator(ORIGIN, credential_id=device.credential_id).get(options)
    else:
        device.user_verified = False
        answer = device.get(options)
    with pytest.raises((AuthenticationError, AccountLockedError)):
        env.service.login_passkey(pending.token, answer)


def test_a_passkey_of_another_account_does_not_open_this_one(env: Env) -> None:
    mallory = _with_passkey(env, "adm.mallory")
    _with_passkey(env, "adm.alice")
    pending = env.service.login("adm.alice", PASSWORD)
    options = env.service.login_passkey_options(pending.token)
    with pytest.raises(AuthenticationError):
        env.service.login_passkey(pending.token, mallory.get(options))


def test_passkey_login_needs_options_first(env: Env) -> None:
    device = _with_passkey(env, "adm.one")
    pending = env.service.login("adm.one", PASSWORD)
    with pytest.raises(AuthenticationError):
        env.service.login_passkey(pending.token, device.get({"challenge": "AAAA", "rpId": RP_ID}))


# --- key rotation -----------------------------------------------------------------------------


def test_rotation_reseals_totp_secrets_under_the_new_key(env: Env) -> None:
    secret, _, _ = _with_totp(env, "res.one", "dispute-resolver")
    rotated = env.keyring.with_key(envelope.KeyEncryptionKey("k2", secrets.token_bytes(32)))
    service = _service(env.engine, rotated, env.clock, _Audit([]))
    assert service.rewrap_secrets() == 1
    assert service.rewrap_secrets() == 0
    only_new = rotated.without("k1")
    fresh = _service(env.engine, only_new, env.clock, _Audit([]))
    pending = fresh.login("res.one", PASSWORD)
    assert fresh.login_totp(pending.token, totp_now(secret, env.clock.now())).status == "ok"


def test_sessions_of_a_log_are_invisible_to_another_log_sharing_the_database(env: Env) -> None:
    env.service.create_user("ops.one", "courier-operator", PASSWORD)
    token = env.service.login("ops.one", PASSWORD).token
    other = StaffService(
        SqlStaffStore(session_factory(env.engine), b"\x02" * 32), env.keyring, clock=env.clock
    )
    with pytest.raises(AuthenticationError):
        other.principal(token)
    with pytest.raises(AuthenticationError):
        other.login("ops.one", PASSWORD)
    with env.engine.begin() as c:  # and a row moved to another log stops working here
        c.execute(update(StaffUserRow).values(log_id=b"\x03" * 32))
    with pytest.raises(AuthenticationError):
        env.service.principal(token)
