"""Staff over HTTP: login, TOTP and passkey enrolment and login, admin-only account creation,
lockout as 429 problem+json with Retry-After, and no secret ever in a log line."""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import pytest

from parcelproof.service.staff import totp_now
from tests.api.conftest import STAFF_ORIGIN, Api
from tests.support.authenticator import SoftAuthenticator

PASSWORD = "staff passphrase over http"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(api: Api, username: str, password: str = PASSWORD) -> Any:
    return api.client.post("/v1/staff/login", json={"username": username, "password": password})


def _enrol_totp(api: Api, token: str) -> tuple[str, str, list[str]]:
    r = api.client.post("/v1/staff/mfa/totp", headers=_bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["qr_png"].startswith("data:image/png;base64,")
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(body["otpauth_uri"]).query)["secret"][0]
    r = api.client.post(
        "/v1/staff/mfa/totp/confirm", json={"code": totp_now(secret)}, headers=_bearer(token)
    )
    assert r.status_code == 200, r.text
    return secret, r.json()["token"], r.json()["recovery_codes"]


def test_admin_enrols_totp_then_creates_an_operator(api: Api) -> None:
    api.staff.create_user("adm.http", "consortium-admin", PASSWORD)
    r = _login(api, "adm.http")
    assert r.status_code == 200 and r.json()["status"] == "enrol-required"
    token = r.json()["token"]
    assert api.client.get("/v1/staff/me", headers=_bearer(token)).json()["session_mfa"] is False
    new_user = {"username": "ops.http", "role": "courier-operator", "password": PASSWORD}
    denied = api.client.post("/v1/staff/users", json=new_user, headers=_bearer(token))
    assert denied.status_code == 403 and "second factor" in denied.json()["detail"]

    _, mfa_token, codes = _enrol_totp(api, token)
    assert len(codes) == 10
    old = api.client.get("/v1/staff/me", headers=_bearer(token))
    assert old.status_code == 401  # enrolment re-issued the session
    me = api.client.get("/v1/staff/me", headers=_bearer(mfa_token)).json()
    assert me["role"] == "consortium-admin" and me["mfa"] == ["totp"] and me["session_mfa"]

    created = api.client.post("/v1/staff/users", json=new_user, headers=_bearer(mfa_token))
    assert created.status_code == 201, created.text
    listed = api.client.get("/v1/staff/users", headers=_bearer(mfa_token)).json()
    assert {u["username"] for u in listed} == {"adm.http", "ops.http"}
    operator = _login(api, "ops.http").json()
    assert operator["status"] == "ok"
    r = api.client.post("/v1/staff/users", json=new_user, headers=_bearer(operator["token"]))
    assert r.status_code == 403  # operators do not manage staff


def test_totp_login_over_http_refuses_a_replayed_code(api: Api) -> None:
    api.staff.create_user("res.http", "dispute-resolver", PASSWORD)
    secret, _, _ = _enrol_totp(api, _login(api, "res.http").json()["token"])
    pending = _login(api, "res.http").json()
    assert pending["status"] == "mfa-required" and "totp" in pending["methods"]
    # The enrolment already used this step's code: a replay, even on a fresh pending login.
    r = api.client.post(
        "/v1/staff/login/totp", json={"token": pending["token"], "code": totp_now(secret)}
    )
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


def test_recovery_code_login_over_http(api: Api) -> None:
    api.staff.create_user("adm.rec", "consortium-admin", PASSWORD)
    _, _, codes = _enrol_totp(api, _login(api, "adm.rec").json()["token"])
    pending = _login(api, "adm.rec").json()
    r = api.client.post(
        "/v1/staff/login/recovery", json={"token": pending["token"], "code": codes[3]}
    )
    assert r.status_code == 200 and r.json()["status"] == "ok"
    pending = _login(api, "adm.rec").json()
    r = api.client.post(
        "/v1/staff/login/recovery", json={"token": pending["token"], "code": codes[3]}
    )
    assert r.status_code == 401


def test_passkey_enrolment_and_login_over_http(api: Api) -> None:
    api.staff.create_user("adm.key", "consortium-admin", PASSWORD)
    token = _login(api, "adm.key").json()["token"]
    device = SoftAuthenticator(STAFF_ORIGIN)
    options = api.client.post("/v1/staff/mfa/passkey/options", headers=_bearer(token)).json()
    r = api.client.post(
        "/v1/staff/mfa/passkey",
        json={"credential": device.create(options), "name": "fingerprint on laptop"},
        headers=_bearer(token),
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["recovery_codes"]) == 10
    pending = _login(api, "adm.key").json()
    assert "passkey" in pending["methods"]
    options = api.client.post(
        "/v1/staff/login/passkey/options", json={"token": pending["token"]}
    ).json()
    assert options["userVerification"] == "required"
    r = api.client.post(
        "/v1/staff/login/passkey",
        json={"token": pending["token"], "credential": device.get(options)},
    )
    assert r.status_code == 200, r.text
    me = api.client.get("/v1/staff/me", headers=_bearer(r.json()["token"])).json()
    assert me["mfa"] == ["passkey"]


def test_lockout_is_429_with_retry_after(api: Api) -> None:
    api.staff.create_user("ops.lock", "courier-operator", PASSWORD)
    for _ in range(4):
        assert _login(api, "ops.lock", "not the password!").status_code == 401
    r = _login(api, "ops.lock", "not the password!")
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("account-locked")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert _login(api, "ops.lock").status_code == 429


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x", "password": PASSWORD, "extra": 1},
        {"username": "x"},
        {"username": "x" * 65, "password": PASSWORD},
        {"username": "x", "password": "p" * 1025},
        {"username": ["x"], "password": PASSWORD},
    ],
)
def test_malformed_login_bodies_are_422_without_echo(api: Api, body: dict[str, Any]) -> None:
    r = api.client.post("/v1/staff/login", json=body)
    assert r.status_code == 422
    assert PASSWORD not in r.text


def test_no_password_code_or_token_reaches_the_logs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.staff.create_user("adm.logs", "consortium-admin", PASSWORD)
    first = _login(api, "adm.logs").json()["token"]
    secret, token, codes = _enrol_totp(api, first)
    _login(api, "adm.logs", "wrong password here")
    pending = _login(api, "adm.logs").json()["token"]
    api.client.post("/v1/staff/login/totp", json={"token": pending, "code": "123456"})
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    for value in (PASSWORD, "wrong password here", secret, token, first, pending, *codes):
        assert value not in logged
