"""Who may call what: every route of the OpenAPI checked against one table, for every kind of
caller; a new route without an entry fails. Plus object-level checks across couriers."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from web3 import Web3

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.ratelimit import PublicLimits
from parcelproof.api.web import web_router
from parcelproof.service import credentials
from parcelproof.service.ports import Store
from parcelproof.service.staff import StaffService, WebAuthnConfig, totp_now
from parcelproof.store.db import session_factory
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.api.conftest import STAFF_ORIGIN, STAFF_RP_ID, Api
from tests.conftest import make_courier
from tests.support.hashing import FAST_HASHER

PASSWORD = "a long staff passphrase"

ANYONE = "anyone"  # public: the customer's capability (tracking number + factor) is in the body
STAFF = "staff"  # any staff session, even one that must still enrol a second factor
CLIENTS = (
    "client:shipments:write",
    "client:events:write",
    "client:anchor:write",
    "client:read",
    "client:webhooks:manage",
)
CALLERS = (
    "anonymous",
    *CLIENTS,
    "operator",
    "resolver",
    "admin",
    "resolver-without-mfa",
)
STAFF_CALLERS = ("operator", "resolver", "admin", "resolver-without-mfa")

#: (method, path) -> who may call it. Everyone else gets 401 or 403.
TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): frozenset({ANYONE}),
    ("GET", "/readyz"): frozenset({ANYONE}),
    ("GET", "/v1/config"): frozenset({ANYONE}),
    ("POST", "/v1/lookup"): frozenset({ANYONE}),
    ("POST", "/v1/lookup/bundle"): frozenset({ANYONE}),
    ("POST", "/v1/verify"): frozenset({ANYONE}),
    ("POST", "/v1/shipments"): frozenset({"client:shipments:write", "operator"}),
    ("POST", "/v1/shipments/context"): frozenset({"client:events:write"}),
    ("POST", "/v1/events"): frozenset({"client:events:write"}),
    ("POST", "/v1/events/bulk"): frozenset({"client:events:write"}),
    ("POST", "/v1/anchor"): frozenset({"client:anchor:write", "operator", "admin"}),
    ("POST", "/v1/evidence"): frozenset({"client:read", "resolver"}),
    ("POST", "/v1/epcis/export"): frozenset({"client:read", "resolver"}),
    ("POST", "/v1/privacy/export"): frozenset({"operator", "admin"}),
    ("POST", "/v1/privacy/erase"): frozenset({"operator", "admin"}),
    ("POST", "/v1/staff/login"): frozenset({ANYONE}),
    ("POST", "/v1/staff/login/totp"): frozenset({ANYONE}),
    ("POST", "/v1/staff/login/recovery"): frozenset({ANYONE}),
    ("POST", "/v1/staff/login/passkey/options"): frozenset({ANYONE}),
    ("POST", "/v1/staff/login/passkey"): frozenset({ANYONE}),
    ("POST", "/v1/staff/logout"): frozenset({STAFF}),
    ("GET", "/v1/staff/me"): frozenset({STAFF}),
    ("POST", "/v1/staff/mfa/totp"): frozenset({STAFF}),
    ("POST", "/v1/staff/mfa/totp/confirm"): frozenset({STAFF}),
    ("POST", "/v1/staff/mfa/passkey/options"): frozenset({STAFF}),
    ("POST", "/v1/staff/mfa/passkey"): frozenset({STAFF}),
    ("POST", "/v1/staff/users"): frozenset({"admin"}),
    ("GET", "/v1/staff/users"): frozenset({"admin"}),
    ("POST", "/v1/staff/users/{user_id}/disable"): frozenset({"admin"}),
    ("POST", "/v1/disputes"): frozenset({ANYONE}),  # the parcel's capability is in the body
    ("POST", "/v1/disputes/courier"): frozenset({"operator", "resolver"}),
    ("GET", "/v1/disputes"): frozenset({"resolver"}),
    ("GET", "/v1/disputes/{dispute_id}"): frozenset({"resolver"}),
    ("GET", "/v1/disputes/{dispute_id}/report"): frozenset({"resolver"}),
    ("POST", "/v1/disputes/{dispute_id}/assign"): frozenset({"resolver"}),
    ("POST", "/v1/disputes/{dispute_id}/comments"): frozenset({"resolver"}),
    ("POST", "/v1/disputes/{dispute_id}/resolve"): frozenset({"resolver"}),
    ("POST", "/v1/webhooks"): frozenset({"client:webhooks:manage", "operator", "admin"}),
    ("GET", "/v1/webhooks"): frozenset({"client:webhooks:manage", "operator", "admin"}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): frozenset(
        {"client:webhooks:manage", "operator", "admin"}
    ),
    ("POST", "/v1/webhooks/{webhook_id}/test"): frozenset(
        {"client:webhooks:manage", "operator", "admin"}
    ),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): frozenset(
        {"client:webhooks:manage", "operator", "admin"}
    ),
    ("GET", "/v1/console/overview"): frozenset({"operator", "resolver", "admin"}),
    ("GET", "/v1/console/shipments"): frozenset({"operator", "resolver", "admin"}),
    ("GET", "/v1/console/checkpoints"): frozenset({"operator", "resolver", "admin"}),
}


def _allowed(entry: frozenset[str], caller: str) -> bool:
    return ANYONE in entry or caller in entry or (STAFF in entry and caller in STAFF_CALLERS)


def _staff_token(staff: StaffService, username: str, role: str, *, mfa: bool) -> str:
    staff.create_user(username, role, PASSWORD)
    step = staff.login(username, PASSWORD)
    if not mfa:
        return step.token
    uri = staff.enrol_totp(step.token).otpauth_uri
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    return staff.confirm_totp(step.token, totp_now(secret)).token


def _tokens(api: Api) -> dict[str, str | None]:
    store = api.node.store
    tokens: dict[str, str | None] = {"anonymous": None}
    for caller in CLIENTS:
        scope = caller.removeprefix("client:")
        tokens[caller] = credentials.issue(store, caller, {scope})  # type: ignore[arg-type]
    tokens["operator"] = _staff_token(api.staff, "ops.one", "courier-operator", mfa=False)
    tokens["resolver"] = _staff_token(api.staff, "res.one", "dispute-resolver", mfa=True)
    tokens["admin"] = _staff_token(api.staff, "adm.one", "consortium-admin", mfa=True)
    tokens["resolver-without-mfa"] = _staff_token(
        api.staff, "res.two", "dispute-resolver", mfa=False
    )
    return tokens


def _routes(client: TestClient) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}


def _app_with_page(api: Api) -> TestClient:
    services: NodeServices = api.client.app.state.services  # type: ignore[attr-defined]
    roomy = PublicLimits("1000/minute", "1000/minute")  # this test calls each route 9 times
    app = create_app(replace(services, limits=roomy))
    app.include_router(web_router(None, api.ledger.chain_id, api.ledger.address))
    return TestClient(app, raise_server_exceptions=False)


def test_every_route_is_in_the_table_and_the_table_has_no_stale_entries(api: Api) -> None:
    routes = _routes(_app_with_page(api))
    missing = routes - TABLE.keys()
    assert not missing, f"routes without an authorization entry: {sorted(missing)}"
    stale = TABLE.keys() - routes
    assert not stale, f"table entries for routes that do not exist: {sorted(stale)}"


def test_every_route_answers_every_caller_as_the_table_says(api: Api) -> None:
    client = _app_with_page(api)
    tokens = _tokens(api)
    wrong: list[str] = []
    # Logging out ends the session, so that route goes last.
    for (method, path), entry in sorted(TABLE.items(), key=lambda kv: kv[0][1].endswith("logout")):
        url = path.replace("{user_id}", "0" * 24).replace("{dispute_id}", "0x" + "00" * 32)
        url = url.replace("{webhook_id}", "wh_" + "0" * 24)
        for caller in CALLERS:
            token = tokens[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = client.request(method, url, headers=headers, json={} if method == "POST" else None)
            if r.status_code == 429:
                pytest.fail(f"rate limited on {method} {path}: raise the test limits")
            denied = r.status_code in (401, 403)
            if _allowed(entry, caller) == denied:
                wrong.append(f"{method} {path} as {caller}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_forged_and_revoked_credentials_get_401(api: Api) -> None:
    client = api.client
    for token in ("ppk_x_y", "pps_forged", "ppl_pending-is-not-a-session", "Basic abc", ""):
        r = client.post("/v1/evidence", json={}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    pending = api.staff.login(*_pending_user(api.staff)).token
    r = client.get("/v1/staff/me", headers={"Authorization": f"Bearer {pending}"})
    assert r.status_code == 401


def _pending_user(staff: StaffService) -> tuple[str, str]:
    _staff_token(staff, "res.pending", "dispute-resolver", mfa=True)
    return "res.pending", PASSWORD


# --- object level: two couriers sharing one database ----------------------------------------


@dataclass
class Pair:
    a: Api
    b_client: TestClient
    b_token: str
    b_staff: StaffService


@pytest.fixture
def pair(
    api: Api, chain: Web3, sql_stores: Callable[[bytes], Store], sql_engine: Engine
) -> Iterator[Pair]:
    """Courier A (the ``api`` fixture) and courier B, on the same database."""
    b = make_courier(chain, sql_stores, "courier-b", cached_keys=True)
    store = b.node.store
    assert isinstance(store, SqlStore)
    staff = StaffService(
        SqlStaffStore(session_factory(sql_engine), store.log_id),
        b.node.keyring,
        webauthn=WebAuthnConfig(rp_id=STAFF_RP_ID, origins=(STAFF_ORIGIN,)),
        hasher=FAST_HASHER,
    )
    app = create_app(NodeServices(node=b.node, ledger=b.ledger, clients=store, staff=staff))
    token = credentials.issue(store, "b", credentials.SCOPES)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Pair(api, client, token, staff)


def _create(client: TestClient, token: str, tracking: str, postcode: str) -> None:
    r = client.post(
        "/v1/shipments",
        headers={"Authorization": f"Bearer {token}"},
        json={"tracking_number": tracking, "postcode": postcode, "details": {"name": "N. B."}},
    )
    assert r.status_code == 201, r.text


def test_a_courier_never_reads_or_writes_another_couriers_shipments(pair: Pair) -> None:
    a, b = pair.a, pair.b_client
    _create(a.client, a.token, "PPA000000001", "1012 AB")
    # B's machine credential means nothing at A, and A's nothing at B.
    for path in ("/v1/evidence", "/v1/shipments/context"):
        r = a.client.post(
            path,
            json={"tracking_number": "PPA000000001"},
            headers={"Authorization": f"Bearer {pair.b_token}"},
        )
        assert r.status_code == 401, r.text
    # B's own credential on B's node does not find A's shipment (same answer as unknown).
    headers = {"Authorization": f"Bearer {pair.b_token}"}
    r = b.post("/v1/evidence", json={"tracking_number": "PPA000000001"}, headers=headers)
    unknown = b.post("/v1/evidence", json={"tracking_number": "PPX999999999"}, headers=headers)
    assert r.status_code == unknown.status_code == 404
    assert r.json()["detail"] == unknown.json()["detail"]
    r = b.post("/v1/shipments/context", json={"tracking_number": "PPA000000001"}, headers=headers)
    assert r.status_code == 404
    # B may register the same tracking number for itself: it is a different shipment.
    _create(b, pair.b_token, "PPA000000001", "9999 ZZ")
    lookup = a.client.post(
        "/v1/lookup", json={"tracking_number": "PPA000000001", "postcode": "9999 ZZ"}
    )
    assert lookup.status_code == 404  # B's factor does not open A's parcel


def test_a_staff_session_of_one_courier_is_worthless_at_another(pair: Pair) -> None:
    token = _staff_token(pair.b_staff, "res.b", "dispute-resolver", mfa=True)
    r = pair.a.client.post(
        "/v1/evidence",
        json={"tracking_number": "PPA000000001"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 401
    r = pair.a.client.post("/v1/staff/login", json={"username": "res.b", "password": PASSWORD})
    assert r.status_code == 401


def test_a_customer_only_reaches_their_own_parcel(api: Api) -> None:
    _create(api.client, api.token, "PPC000000001", "1012 AB")
    _create(api.client, api.token, "PPC000000002", "3511 XX")
    mine = api.client.post(
        "/v1/lookup", json={"tracking_number": "PPC000000001", "postcode": "1012 AB"}
    )
    theirs = api.client.post(
        "/v1/lookup", json={"tracking_number": "PPC000000002", "postcode": "1012 AB"}
    )
    assert mine.status_code == 200, mine.text
    assert theirs.status_code == 404
