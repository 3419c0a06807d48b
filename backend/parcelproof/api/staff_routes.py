"""Staff routes: login with a second factor, enrolment of TOTP and passkeys, account admin."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from parcelproof.api.deps import CanEnrol, CanManageStaff, Services
from parcelproof.core.errors import NotFoundError
from parcelproof.service.authz import STAFF_ROLES, AuthenticationError
from parcelproof.service.staff import LoginStep, StaffService
from parcelproof.service.staff_records import StaffUser

staff = APIRouter(prefix="/v1/staff", tags=["staff"])
_bearer = HTTPBearer(auto_error=False)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=1024)


class CodeIn(_In):
    token: str = Field(max_length=200, description="the pending login's token")
    code: str = Field(max_length=32)


class PendingIn(_In):
    token: str = Field(max_length=200)


class PasskeyLoginIn(_In):
    token: str = Field(max_length=200)
    credential: dict[str, Any]


class ConfirmIn(_In):
    code: str = Field(max_length=32)


class PasskeyIn(_In):
    credential: dict[str, Any]
    name: str = Field(min_length=1, max_length=100)


class NewUserIn(_In):
    username: str = Field(max_length=64)
    role: str = Field(description=f"one of {', '.join(STAFF_ROLES)}")
    password: SecretStr = Field(max_length=1024)


class LoginOut(BaseModel):
    status: str = Field(description="ok | mfa-required | enrol-required")
    token: str
    expires_in: int
    methods: list[str] = Field(description="second factors a pending login can complete with")


class TotpOut(BaseModel):
    otpauth_uri: str
    qr_png: str = Field(description="data: URI of a PNG QR code of otpauth_uri")


class FactorOut(BaseModel):
    token: str = Field(description="a new session, opened with MFA; the old one is ended")
    expires_in: int
    recovery_codes: list[str] = Field(description="shown once, with the first factor only")


class UserOut(BaseModel):
    user_id: str
    username: str
    role: str
    mfa: list[str]
    disabled: bool
    session_mfa: bool | None = Field(
        default=None, description="on /me: whether this session was opened with a second factor"
    )


def _service(services: Services) -> StaffService:
    if services.staff is None:
        raise NotFoundError("staff accounts are not enabled on this node")
    return services.staff


Staff = Annotated[StaffService, Depends(_service)]


def _token(auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if auth is None:
        raise AuthenticationError("missing bearer credentials")
    return auth.credentials


Token = Annotated[str, Depends(_token)]


def _login_out(step: LoginStep) -> LoginOut:
    return LoginOut(
        status=step.status, token=step.token, expires_in=step.expires_in, methods=list(step.methods)
    )


def _user_out(service: StaffService, user: StaffUser) -> UserOut:
    return UserOut(
        user_id=user.user_id,
        username=user.username,
        role=user.role,
        mfa=[m for m in service.methods(user) if m != "recovery-code"],
        disabled=user.disabled_at is not None,
    )


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@staff.post("/login")
def login(body: LoginIn, service: Staff, services: Services, request: Request) -> LoginOut:
    """Check username and password; returns a session, or a pending login whose token
    completes with a second factor (repeated failures lock the account, doubling each time)."""
    services.limits.client(_address(request))
    return _login_out(service.login(body.username, body.password.get_secret_value()))


@staff.post("/login/totp")
def login_totp(body: CodeIn, service: Staff, services: Services, request: Request) -> LoginOut:
    """Complete a pending login with a TOTP code (each code works once)."""
    services.limits.client(_address(request))
    return _login_out(service.login_totp(body.token, body.code))


@staff.post("/login/recovery")
def login_recovery(body: CodeIn, service: Staff, services: Services, request: Request) -> LoginOut:
    """Complete a pending login with a single-use recovery code."""
    services.limits.client(_address(request))
    return _login_out(service.login_recovery(body.token, body.code))


@staff.post("/login/passkey/options")
def login_passkey_options(body: PendingIn, service: Staff) -> dict[str, Any]:
    """WebAuthn assertion options (navigator.credentials.get) for a pending login."""
    return service.login_passkey_options(body.token)


@staff.post("/login/passkey")
def login_passkey(
    body: PasskeyLoginIn, service: Staff, services: Services, request: Request
) -> LoginOut:
    """Complete a pending login with a passkey assertion (user verification required)."""
    services.limits.client(_address(request))
    return _login_out(service.login_passkey(body.token, body.credential))


@staff.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(service: Staff, token: Token) -> None:
    """End the session."""
    service.principal(token)
    service.logout(token)


@staff.get("/me")
def me(service: Staff, token: Token) -> UserOut:
    """The account behind the session."""
    out = _user_out(service, service.user_of(token))
    out.session_mfa = service.principal(token).mfa
    return out


@staff.post("/mfa/totp")
def enrol_totp(service: Staff, token: Token, _: CanEnrol) -> TotpOut:
    """Start TOTP enrolment: an otpauth URI and its QR code for an authenticator app."""
    enrolment = service.enrol_totp(token)
    png = base64.b64encode(enrolment.qr_png).decode()
    return TotpOut(otpauth_uri=enrolment.otpauth_uri, qr_png=f"data:image/png;base64,{png}")


@staff.post("/mfa/totp/confirm")
def confirm_totp(body: ConfirmIn, service: Staff, token: Token, _: CanEnrol) -> FactorOut:
    """Finish TOTP enrolment with a first code."""
    added = service.confirm_totp(token, body.code)
    return FactorOut(
        token=added.token, expires_in=added.expires_in, recovery_codes=list(added.recovery_codes)
    )


@staff.post("/mfa/passkey/options")
def passkey_options(service: Staff, token: Token, _: CanEnrol) -> dict[str, Any]:
    """WebAuthn registration options (navigator.credentials.create) for a new passkey."""
    return service.passkey_options(token)


@staff.post("/mfa/passkey")
def add_passkey(body: PasskeyIn, service: Staff, token: Token, _: CanEnrol) -> FactorOut:
    """Register a passkey (platform biometrics or a security key) from its attestation."""
    added = service.add_passkey(token, body.credential, body.name)
    return FactorOut(
        token=added.token, expires_in=added.expires_in, recovery_codes=list(added.recovery_codes)
    )


@staff.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: NewUserIn, service: Staff, admin: CanManageStaff) -> UserOut:
    """Create a staff account (consortium admins only)."""
    user = service.create_user(
        body.username, body.role, body.password.get_secret_value(), actor=admin.actor
    )
    return _user_out(service, user)


@staff.get("/users")
def list_users(service: Staff, _: CanManageStaff) -> list[UserOut]:
    """Every staff account of this node."""
    return [_user_out(service, u) for u in service.store.users()]


@staff.post("/users/{user_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
def disable_user(user_id: str, service: Staff, admin: CanManageStaff) -> None:
    """Disable an account and end its sessions."""
    service.disable_user(user_id, actor=admin.actor)
