"""The dispute routes through the real app, a real chain and a real database: a customer opens
a dispute with their parcel's capability (the lookup's 404 and rate limits), an operator opens
one with the tracking number, and a resolver with a second factor lists, reads (full
disclosure, audited), assigns, comments and resolves it, the outcome hash landing on chain."""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import rfc8785
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from web3 import Web3

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.ratelimit import PublicLimits
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.service import credentials
from parcelproof.service.audit import AuditLog
from parcelproof.service.disputes import DisputeDesk
from parcelproof.service.ports import Store
from parcelproof.service.staff import StaffService, WebAuthnConfig, totp_now
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import session_factory
from parcelproof.store.disputes_sql import SqlDisputeStore
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.api.conftest import STAFF_ORIGIN, STAFF_RP_ID, Api
from tests.conftest import make_courier
from tests.support.hashing import FAST_HASHER

PARCEL, POSTCODE = "PP161803398DE", "10115"
DETAILS = {"recipient": "Jürgen Weiß", "street": "Invalidenstraße 1"}
NOTE = "Nobody rang; the card says Herr Weiß refused it."
SUMMARY = "Driver GPS shows no stop at Invalidenstraße; parcel re-sent to Herr Weiß."
PASSWORD = "a long staff passphrase"


@dataclass
class Desk:
    client: TestClient
    ledger: LedgerClient
    log_id: bytes
    services: NodeServices
    resolver_account: LocalAccount
    operator: str
    resolver: str
    resolver_id: str
    machine: str
    audit: AuditLog

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def _staff_token(staff: StaffService, username: str, role: str, *, mfa: bool) -> str:
    staff.create_user(username, role, PASSWORD)
    step = staff.login(username, PASSWORD)
    if not mfa:
        return step.token
    uri = staff.enrol_totp(step.token).otpauth_uri
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    return staff.confirm_totp(step.token, totp_now(secret)).token


@pytest.fixture
def desk(chain: Web3, sql_stores: Callable[[bytes], Store], sql_engine: Engine) -> Iterator[Desk]:
    """The app over a courier node with its dispute desk; the desk's resolver account holds
    the ledger's RESOLVER_ROLE."""
    c = make_courier(chain, sql_stores, "dispute-api", cached_keys=True)
    store = c.node.store
    assert isinstance(store, SqlStore)
    (resolver_account,) = devnet.funded_accounts(chain, 1)
    c.ledger.grant_resolver(resolver_account.address, sender=c.admin)
    sessions = session_factory(sql_engine)
    audit = AuditLog(SqlAuditStore(sessions, store.log_id))
    staff = StaffService(
        SqlStaffStore(sessions, store.log_id),
        c.node.keyring,
        webauthn=WebAuthnConfig(rp_id=STAFF_RP_ID, origins=(STAFF_ORIGIN,)),
        hasher=FAST_HASHER,
        audit=audit,
    )
    disputes = DisputeDesk(
        c.node,
        c.ledger,
        SqlDisputeStore(sessions, store.log_id),
        resolver=resolver_account,
        audit=audit,
    )
    services = NodeServices(
        node=c.node,
        ledger=c.ledger,
        clients=store,
        staff=staff,
        audit=audit,
        limits=PublicLimits("100/minute", "4/minute"),
        disputes=disputes,
    )
    c.node.create_shipment(PARCEL, DETAILS, POSTCODE)
    c.driver.record(c.node, PARCEL, {"status": "picked_up", "place": "Berlin"}, c.now - 60)
    c.node.anchor()
    resolver = _staff_token(staff, "res.one", "dispute-resolver", mfa=True)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield Desk(
            client,
            c.ledger,
            c.node.courier_id,
            services,
            resolver_account,
            operator=_staff_token(staff, "ops.one", "courier-operator", mfa=False),
            resolver=resolver,
            resolver_id=staff.principal(resolver).subject,
            machine=credentials.issue(store, "machine", credentials.SCOPES),
            audit=audit,
        )


def _events(d: Desk) -> list[dict[str, Any]]:
    return [{"log_id": "0x" + d.log_id.hex(), "sequence": 0}]


def _open(d: Desk, **extra: Any) -> dict[str, Any]:
    body = {"tracking_number": PARCEL, "postcode": POSTCODE, "events": _events(d)}
    r = d.client.post("/v1/disputes", json={"reason": "not-delivered", "note": NOTE} | body | extra)
    assert r.status_code == 201, r.text
    opened: dict[str, Any] = r.json()
    return opened


def test_a_customer_opens_a_dispute_whose_claim_hash_is_on_chain(desk: Desk) -> None:
    opened = _open(desk)
    on_chain = desk.ledger.dispute(bytes.fromhex(opened["dispute_id"][2:]))
    claim_hash = hashlib.sha256(rfc8785.dumps(opened["claim"])).digest()
    assert on_chain.subject_hash == claim_hash == bytes.fromhex(opened["subject_hash"][2:])
    assert on_chain.evidence_hash == bytes.fromhex(opened["evidence_hash"][2:])
    assert opened["state"] == "open" and opened["opened_by"] == "customer"
    assert NOTE not in str(opened) and PARCEL not in str(opened)


def test_a_wrong_factor_gets_the_lookups_404_and_guessing_is_rate_limited(desk: Desk) -> None:
    body = {"tracking_number": PARCEL, "events": _events(desk), "reason": "late"}
    wrong = desk.client.post("/v1/disputes", json=body | {"postcode": "99999"})
    unknown = desk.client.post(
        "/v1/disputes", json=body | {"tracking_number": "PP000000000DE", "postcode": POSTCODE}
    )
    lookup = desk.client.post("/v1/lookup", json={"tracking_number": PARCEL, "postcode": "99999"})
    assert wrong.status_code == unknown.status_code == lookup.status_code == 404
    assert wrong.json()["detail"] == unknown.json()["detail"] == lookup.json()["detail"]
    codes = [
        desk.client.post("/v1/disputes", json=body | {"postcode": "99999"}).status_code
        for _ in range(3)
    ]
    assert codes[-1] == 429  # 4 a minute per tracking number, lookups and disputes together


def test_an_operator_opens_a_dispute_and_a_machine_token_may_not(desk: Desk) -> None:
    body = {"tracking_number": PARCEL, "events": _events(desk), "reason": "damaged"}
    r = desk.client.post("/v1/disputes/courier", json=body, headers=desk.auth(desk.operator))
    assert r.status_code == 201, r.text
    assert r.json()["opened_by"].startswith("staff:")
    denied = desk.client.post("/v1/disputes/courier", json=body, headers=desk.auth(desk.machine))
    assert denied.status_code == 403
    assert desk.client.post("/v1/disputes/courier", json=body).status_code == 401


def test_a_resolver_reads_assigns_comments_and_resolves(desk: Desk) -> None:
    opened = _open(desk)
    did = opened["dispute_id"]
    auth = desk.auth(desk.resolver)
    listed = desk.client.get("/v1/disputes", headers=auth)
    assert listed.status_code == 200
    assert [x["dispute_id"] for x in listed.json()] == [did]
    assert NOTE not in listed.text and "Weiß" not in listed.text and PARCEL not in listed.text

    detail = desk.client.get(f"/v1/disputes/{did}", headers=auth)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [n["text"] for n in body["notes"]] == [NOTE]
    assert body["current"]["verification"]["ok"] is True
    assert any(
        t["fields"].get("place") == "Berlin" for t in body["evidence"]["timeline"]
    )  # full disclosure
    evidence_hash = hashlib.sha256(rfc8785.dumps(body["evidence"])).hexdigest()
    assert "0x" + evidence_hash == opened["evidence_hash"]
    last = desk.audit.store.entries()[-1]
    assert (last.action, last.actor) == ("evidence.read", f"staff:{desk.resolver_id}")

    operator_id = "x" * 24
    bad = desk.client.post(
        f"/v1/disputes/{did}/assign", json={"assignee": operator_id}, headers=auth
    )
    assert bad.status_code == 422
    r = desk.client.post(
        f"/v1/disputes/{did}/assign", json={"assignee": desk.resolver_id}, headers=auth
    )
    assert r.status_code == 200 and r.json()["state"] == "assigned", r.text
    r = desk.client.post(f"/v1/disputes/{did}/comments", json={"text": "Called."}, headers=auth)
    assert r.status_code == 201, r.text
    r = desk.client.post(
        f"/v1/disputes/{did}/resolve", json={"outcome": "settled", "summary": SUMMARY}, headers=auth
    )
    assert r.status_code == 200, r.text
    resolved = r.json()
    expected = hashlib.sha256(
        rfc8785.dumps(
            {
                "disputeId": did,
                "outcome": "settled",
                "summaryHash": "0x" + hashlib.sha256(SUMMARY.encode()).hexdigest(),
            }
        )
    ).digest()
    on_chain = desk.ledger.dispute(bytes.fromhex(did[2:]))
    assert on_chain.outcome_hash == expected == bytes.fromhex(resolved["outcome_hash"][2:])
    assert on_chain.resolved_by == desk.resolver_account.address

    again = desk.client.post(
        f"/v1/disputes/{did}/resolve", json={"outcome": "upheld", "summary": SUMMARY}, headers=auth
    )
    late = desk.client.post(f"/v1/disputes/{did}/comments", json={"text": "x"}, headers=auth)
    assert again.status_code == late.status_code == 409
    assert "already resolved" in again.json()["detail"]
    actions = [e.action for e in desk.audit.store.entries() if e.action.startswith("dispute.")]
    assert actions == ["dispute.open", "dispute.assign", "dispute.comment", "dispute.resolve"]


def test_resolve_without_a_resolver_account_answers_409(desk: Desk) -> None:
    did = _open(desk)["dispute_id"]
    assert desk.services.disputes is not None
    desk.client.app.state.services = replace(  # type: ignore[attr-defined]
        desk.services, disputes=replace(desk.services.disputes, resolver=None)
    )
    auth = desk.auth(desk.resolver)
    desk.client.post(
        f"/v1/disputes/{did}/assign", json={"assignee": desk.resolver_id}, headers=auth
    )
    r = desk.client.post(
        f"/v1/disputes/{did}/resolve", json={"outcome": "upheld", "summary": SUMMARY}, headers=auth
    )
    assert r.status_code == 409
    assert "PARCELPROOF_RESOLVER_KEY" in r.json()["detail"]


def test_an_unknown_dispute_is_404(desk: Desk) -> None:
    auth = desk.auth(desk.resolver)
    assert desk.client.get("/v1/disputes/0x" + "00" * 32, headers=auth).status_code == 404
    assert desk.client.get("/v1/disputes/nonsense", headers=auth).status_code == 404


def test_a_node_without_a_dispute_desk_answers_404(api: Api) -> None:
    r = api.client.post(
        "/v1/disputes",
        json={
            "tracking_number": PARCEL,
            "postcode": POSTCODE,
            "events": [{"log_id": "0x" + "00" * 32, "sequence": 0}],
            "reason": "late",
        },
    )
    assert r.status_code == 404
    assert r.json()["detail"] == "disputes are not enabled on this node"


def test_a_resolver_gets_the_evidence_report_of_a_dispute(desk: Desk) -> None:
    opened = _open(desk)
    url = f"/v1/disputes/{opened['dispute_id']}/report"
    r = desk.client.get(url, headers=desk.auth(desk.resolver))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    html = r.text
    assert "Parcel evidence report" in html and "<script" not in html
    assert "checks passed" in html and PARCEL not in html
    reads = [e for e in desk.audit.entries() if e.action == "evidence.read"]
    assert reads and reads[-1].actor == f"staff:{desk.resolver_id}"
    assert desk.client.get(url, headers=desk.auth(desk.operator)).status_code == 403
    assert (
        desk.client.get(url + "?late_after=0", headers=desk.auth(desk.resolver)).status_code == 422
    )
