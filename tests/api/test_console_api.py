"""The staff console's API (/v1/console/*) through the real app, a real chain and a real
database: what each route answers on a node with anchored, confirmed and waiting events, an
erased shipment and open disputes; who may call it; paging validated as problem+json."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from web3 import Web3

from parcelproof.api.app import create_app
from parcelproof.api.console_routes import worker_health
from parcelproof.api.deps import NodeServices
from parcelproof.chain import devnet
from parcelproof.service import credentials
from parcelproof.service.disputes import DisputeDesk
from parcelproof.service.ports import Store
from parcelproof.service.staff import StaffService, WebAuthnConfig, totp_now
from parcelproof.store.db import session_factory
from parcelproof.store.disputes_sql import SqlDisputeStore
from parcelproof.store.memory import MemoryStore
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.api.conftest import STAFF_ORIGIN, STAFF_RP_ID
from tests.conftest import make_courier
from tests.support.hashing import FAST_HASHER

PASSWORD = "a long staff passphrase"
POSTCODE = "1012 AB"
PARCELS = ("PPCONSOLE0001", "PPCONSOLE0002", "PPCONSOLE0003", "PPCONSOLE0004")


class StepClock:
    """A clock the test moves: creation times differ, ages are exact."""

    def __init__(self, now: int) -> None:
        self.t = now

    def now(self) -> int:
        return self.t


@dataclass
class Console:
    client: TestClient
    clock: StepClock
    log_id: bytes
    store: SqlStore
    ids: dict[str, str]  # tracking number -> shipment id
    tokens: dict[str, str]
    machine: str

    def get(self, path: str, caller: str = "operator") -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[caller]}"}
        return self.client.get(path, headers=headers)


def _staff_token(staff: StaffService, username: str, role: str, *, mfa: bool) -> str:
    staff.create_user(username, role, PASSWORD)
    step = staff.login(username, PASSWORD)
    if not mfa:
        return step.token
    uri = staff.enrol_totp(step.token).otpauth_uri
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    return staff.confirm_totp(step.token, totp_now(secret)).token


@pytest.fixture
def console(
    chain: Web3, sql_stores: Callable[[bytes], Store], sql_engine: Engine
) -> Iterator[Console]:
    """A node with four shipments: #1 two events, anchored and confirmed; #2 one event,
    anchored; #3 one event still waiting; #4 erased. One open dispute, one resolved."""
    c = make_courier(chain, sql_stores, "console-api", cached_keys=True)
    store = c.node.store
    assert isinstance(store, SqlStore)
    clock = StepClock(c.now - 3000)
    c.node.clock = clock
    (resolver_account,) = devnet.funded_accounts(chain, 1)
    c.ledger.grant_resolver(resolver_account.address, sender=c.admin)
    sessions = session_factory(sql_engine)
    staff = StaffService(
        SqlStaffStore(sessions, store.log_id),
        c.node.keyring,
        webauthn=WebAuthnConfig(rp_id=STAFF_RP_ID, origins=(STAFF_ORIGIN,)),
        hasher=FAST_HASHER,
    )
    desk = DisputeDesk(
        c.node, c.ledger, SqlDisputeStore(sessions, store.log_id), resolver=resolver_account
    )
    ids = {}
    for parcel in PARCELS:
        clock.t += 60
        ids[parcel] = c.node.create_shipment(parcel, {"name": "A. Person"}, POSTCODE).shipment_id
    one, two, three, four = PARCELS
    clock.t += 60
    c.driver.record(c.node, one, {"status": "picked_up", "place": "Amsterdam"}, clock.t - 10)
    c.driver.record(c.node, two, {"status": "picked_up", "place": "Utrecht"}, clock.t - 5)
    c.driver.record(c.node, four, {"status": "picked_up", "place": "Delft"}, clock.t - 5)
    first = c.node.anchor()
    assert first is not None and first.size == 3
    store.mark_checkpoint(first.size, "confirmed")
    clock.t += 60
    c.driver.record(c.node, one, {"status": "departed", "place": "Hub"}, clock.t - 3)
    second = c.node.anchor()
    assert second is not None and second.size == 4
    clock.t += 60
    c.driver.record(c.node, three, {"status": "picked_up", "place": "Depot"}, clock.t - 2)
    c.node.erase(four, "request")
    machine = credentials.issue(store, "machine", credentials.SCOPES)
    tokens = {
        "operator": _staff_token(staff, "ops.one", "courier-operator", mfa=False),
        "resolver": _staff_token(staff, "res.one", "dispute-resolver", mfa=True),
        "admin": _staff_token(staff, "adm.one", "consortium-admin", mfa=True),
        "resolver-without-mfa": _staff_token(staff, "res.two", "dispute-resolver", mfa=False),
        "machine": machine,
    }
    resolver_id = staff.principal(tokens["resolver"]).subject
    log_event = [(c.node.courier_id, 0)]
    desk.open_as_courier("staff:x", one, log_event, "late", None)
    closed = desk.open_as_courier("staff:x", two, log_event, "other", None)
    desk.assign("staff:y", closed.dispute_id, resolver_id)
    desk.resolve("staff:y", closed.dispute_id, "rejected", "Delivered on time.")
    services = NodeServices(
        node=c.node,
        ledger=c.ledger,
        clients=store,
        staff=staff,
        disputes=desk,
        anchor_interval_seconds=30,
    )
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield Console(client, clock, c.node.courier_id, store, ids, tokens, machine)


def test_overview_shows_the_log_its_anchoring_and_the_counts(console: Console) -> None:
    console.clock.t += 20
    r = console.get("/v1/console/overview", "resolver")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["courier_id"] == "0x" + console.log_id.hex()
    assert body["now"] == console.clock.t
    assert (body["log_size"], body["anchored_size"], body["confirmed_size"]) == (5, 4, 3)
    assert body["waiting"] == 1 and body["sending"] == 0
    waiting = console.store.event_at_leaf(4)
    assert waiting is not None and waiting.shipment_id == console.ids[PARCELS[2]]
    assert body["oldest_waiting_at"] == waiting.recorded_at
    assert body["oldest_waiting_age"] == 20
    latest = body["latest_checkpoint"]
    [stored] = [c for c in console.store.checkpoints() if c.size == 4]
    assert latest == {
        "size": 4,
        "root": "0x" + stored.root.hex(),
        "status": "anchored",
        "tx_hash": "0x" + stored.tx_hash.hex() if stored.tx_hash else None,
        "block_number": stored.block_number,
        "recorded_at": stored.created_at,
        "updated_at": stored.updated_at,
    }
    assert latest["tx_hash"] is not None and latest["block_number"] is not None
    assert body["anchor_interval_seconds"] == 30
    assert body["worker"]["state"] == "ok"
    assert body["shipments"] == 4
    assert body["disputes_visible"] is True and body["open_disputes"] == 1


def test_overview_hides_disputes_from_roles_that_may_not_list_them(console: Console) -> None:
    for caller in ("operator", "admin"):
        body = console.get("/v1/console/overview", caller).json()
        assert body["disputes_visible"] is False and body["open_disputes"] is None, caller
        assert body["shipments"] == 4


def test_overview_calls_a_worker_that_left_events_waiting_late_then_stalled(
    console: Console,
) -> None:
    console.clock.t += 2 * 30 + 61
    late = console.get("/v1/console/overview").json()["worker"]
    assert late["state"] == "late" and "121 s old" in late["detail"]
    console.clock.t += 10 * 30 + 300
    stalled = console.get("/v1/console/overview").json()["worker"]
    assert stalled["state"] == "stalled" and "is the worker running" in stalled["detail"]


def test_worker_health_thresholds() -> None:
    assert worker_health(0, None, 30).state == "idle"
    assert worker_health(3, 0, 30).state == "ok"
    assert worker_health(3, 120, 30).state == "ok"
    assert worker_health(3, 121, 30).state == "late"
    assert worker_health(3, 600, 30).state == "late"
    assert worker_health(3, 601, 30).state == "stalled"
    assert worker_health(3, 601, 300).state == "ok"  # a slower interval waits longer
    assert worker_health(3, 661, 300).state == "late"


def test_shipments_newest_first_with_status_events_and_anchoring(console: Console) -> None:
    r = console.get("/v1/console/shipments")
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], page["offset"], page["limit"]) == (4, 0, 20)
    rows = {row["shipment_id"]: row for row in page["items"]}
    assert [row["shipment_id"] for row in page["items"]] == [
        console.ids[p] for p in reversed(PARCELS)
    ]
    one, two, three, four = (rows[console.ids[p]] for p in PARCELS)
    assert (one["status"], one["events"], one["anchoring"]) == ("departed", 2, "anchored")
    assert (two["status"], two["events"], two["anchoring"]) == ("picked_up", 1, "confirmed")
    assert (three["status"], three["events"], three["anchoring"]) == ("picked_up", 1, "pending")
    assert four["erased"] is True and four["status"] is None and four["events"] == 1
    assert not one["erased"] and one["created_at"] < two["created_at"] < three["created_at"]
    last = console.store.last_event(console.ids[PARCELS[0]])
    assert last is not None
    assert (one["status_time"], one["recorded_at"]) == (last.event_time, last.recorded_at)
    # Nothing personal: no tracking number, no place, no name, no postcode.
    text = r.text
    for secret in (*PARCELS, "Amsterdam", "Hub", "A. Person", POSTCODE):
        assert secret not in text


def test_shipments_pages(console: Console) -> None:
    first = console.get("/v1/console/shipments?limit=3").json()
    second = console.get("/v1/console/shipments?limit=3&offset=3").json()
    assert len(first["items"]) == 3 and len(second["items"]) == 1
    assert first["total"] == second["total"] == 4
    seen = [row["shipment_id"] for row in first["items"] + second["items"]]
    assert seen == [console.ids[p] for p in reversed(PARCELS)]
    assert console.get("/v1/console/shipments?offset=10").json()["items"] == []


def test_checkpoints_latest_first(console: Console) -> None:
    r = console.get("/v1/console/checkpoints", "admin")
    assert r.status_code == 200, r.text
    assert [(c["size"], c["status"]) for c in r.json()] == [(4, "anchored"), (3, "confirmed")]
    [only] = console.get("/v1/console/checkpoints?limit=1").json()
    assert only["size"] == 4 and only["root"].startswith("0x") and len(only["root"]) == 66


@pytest.mark.parametrize(
    "query",
    [
        "/v1/console/shipments?limit=0",
        "/v1/console/shipments?limit=101",
        "/v1/console/shipments?offset=-1",
        "/v1/console/shipments?limit=ten",
        "/v1/console/checkpoints?limit=0",
        "/v1/console/checkpoints?limit=1000",
    ],
)
def test_paging_parameters_are_validated(console: Console, query: str) -> None:
    r = console.get(query)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 422


@pytest.mark.parametrize("path", ["overview", "shipments", "checkpoints"])
def test_who_may_read_the_console(console: Console, path: str) -> None:
    url = f"/v1/console/{path}"
    assert console.client.get(url).status_code == 401
    forged = console.client.get(url, headers={"Authorization": "Bearer pps_forged"})
    assert forged.status_code == 401
    for caller in ("machine", "resolver-without-mfa"):
        r = console.get(url, caller)
        assert r.status_code == 403, (caller, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for caller in ("operator", "resolver", "admin"):
        assert console.get(url, caller).status_code == 200, caller


def test_memory_store_answers_the_console_reads_like_the_sql_store(console: Console) -> None:
    memory = MemoryStore()
    assert memory.shipment_count() == 0 and memory.newest_shipments(0, 10) == []
    assert memory.event_at_leaf(0) is None and memory.newest_checkpoints(5) == []
    sql = console.store
    for record in reversed(sql.newest_shipments(0, 100)):
        memory.add_shipment(record)
    events = sorted(
        (e for s in sql.newest_shipments(0, 100) for e in sql.events(s.shipment_id)),
        key=lambda e: e.leaf_index,
    )
    for e in events:
        memory.append_event(e, bytes(32))
    for cp in sql.checkpoints():
        memory.add_checkpoint(cp.anchored())
    assert memory.shipment_count() == sql.shipment_count() == 4
    for offset, limit in ((0, 2), (2, 2), (1, 10), (4, 1)):
        assert [r.shipment_id for r in memory.newest_shipments(offset, limit)] == [
            r.shipment_id for r in sql.newest_shipments(offset, limit)
        ]
    for leaf in range(6):
        assert memory.event_at_leaf(leaf) == sql.event_at_leaf(leaf)
    assert [c.size for c in memory.newest_checkpoints(1)] == [
        c.size for c in sql.newest_checkpoints(1)
    ]
