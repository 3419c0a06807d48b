"""Consortium lookups: node A asks node B (separate database, keys and chain account, same
ledger) and answers with one bundle proving the whole journey; B's logs join only through a
countersigned handoff, a peer cannot slip in another parcel, and a dead peer costs nothing."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import hex32, parse_bundle, verify_bundle
from parcelproof.core.commitment import JsonValue
from parcelproof.service.agent import Agent
from parcelproof.service.federation import PEER_HEADER, PeerAnswer, PeerLookup, merge
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.node import CourierNode
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore

PARCEL, POSTCODE = "PP7700112233NL", "3511 AB"
DAY = 86400


@dataclass
class Consortium:
    ledger: LedgerClient
    a: CourierNode
    b: CourierNode
    driver_a: Agent
    driver_b: Agent
    b_client: TestClient
    now: int

    def app_a(self, peers: PeerLookup | None) -> TestClient:
        store = self.a.store
        assert isinstance(store, SqlStore)
        services = NodeServices(node=self.a, ledger=self.ledger, clients=store, peers=peers)
        return TestClient(create_app(services), raise_server_exceptions=False)


def _node(ledger: LedgerClient, account: Any, courier: bytes, path: Path) -> CourierNode:
    engine = make_engine(sqlite_url(path))
    upgrade(engine)
    return CourierNode(
        courier_id=courier,
        ledger=ledger,
        account=account,
        keyring=envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1"),
        shipment_key=secrets.token_bytes(32),
        store=SqlStore(session_factory(engine), courier),
        agent_keys=AgentKeyDirectory(ledger),
    )


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    w3 = devnet.connect(None)
    admin, account_a, account_b = devnet.funded_accounts(w3, 3)
    ledger = LedgerClient.deploy(w3, admin)
    id_a, id_b = secrets.token_bytes(32), secrets.token_bytes(32)
    ledger.admit_courier(id_a, account_a.address, sender=admin)
    ledger.admit_courier(id_b, account_b.address, sender=admin)
    now = max(int(time.time()), int(w3.eth.get_block("latest")["timestamp"]))
    driver_a, driver_b = Agent(secrets.token_bytes(32)), Agent(secrets.token_bytes(32))
    ledger.register_agent_key(driver_a.address, now - DAY, now + DAY, sender=account_a)
    ledger.register_agent_key(driver_b.address, now - DAY, now + DAY, sender=account_b)
    a = _node(ledger, account_a, id_a, tmp_path / "a")
    b = _node(ledger, account_b, id_b, tmp_path / "b")
    store_b = b.store
    assert isinstance(store_b, SqlStore)
    app_b = create_app(NodeServices(node=b, ledger=ledger, clients=store_b))
    with TestClient(app_b, raise_server_exceptions=False) as b_client:
        yield Consortium(ledger, a, b, driver_a, driver_b, b_client, now)


def _journey(c: Consortium, tracking: str = PARCEL) -> None:
    """Picked up by A, handed to B (offer on A, accept on B, both countersigned), delivered."""
    t = c.now - 3600
    created = c.a.create_shipment(tracking, {"recipient": "Noor"}, POSTCODE)
    at_b = c.b.create_shipment(
        tracking, {"recipient": "Noor"}, POSTCODE, access_token=created.access_token
    )
    c.driver_a.record(c.a, tracking, {"status": "picked_up", "place": "Utrecht"}, t)
    ref_a, ref_b = c.a.event_context(tracking).shipment, c.b.event_context(tracking).shipment
    handoff = eip712.Handoff(
        secrets.token_bytes(32), c.a.courier_id, ref_a, c.b.courier_id, ref_b, t + 600
    )
    sig_a = c.driver_a.sign_handoff(c.a.domain, handoff)
    sig_b = c.driver_b.sign_handoff(c.b.domain, handoff)
    common: dict[str, JsonValue] = {
        "handoff_id": hex32(handoff.handoff_id),
        "handoff_time": t + 600,
        "place": "Arnhem",
    }
    offer = c.driver_a.record(
        c.a,
        tracking,
        {
            "status": "handoff_offered",
            "handoff_to": hex32(c.b.courier_id),
            "counterparty_shipment": hex32(ref_b),
            "counterparty_agent": c.driver_b.address,
            "counterparty_signature": "0x" + sig_b.hex(),
            **common,
        },
        t + 600,
    )
    c.driver_b.record(
        c.b,
        tracking,
        {
            "status": "handoff_accepted",
            "handoff_of": hex32(offer.commitment),
            "handoff_from": hex32(c.a.courier_id),
            "counterparty_shipment": hex32(ref_a),
            "counterparty_agent": c.driver_a.address,
            "counterparty_signature": "0x" + sig_a.hex(),
            **common,
        },
        t + 900,
    )
    c.driver_b.record(c.b, tracking, {"status": "out_for_delivery"}, t + 1500)
    delivered = {"status": "delivered", "confirmation_code": at_b.confirmation_code}
    c.driver_b.record(c.b, tracking, delivered, t + 1800)
    c.a.anchor()
    c.b.anchor()


def _lookup(client: TestClient, tracking: str = PARCEL) -> Any:
    return client.post("/v1/lookup", json={"tracking_number": tracking, "postcode": POSTCODE})


def test_one_lookup_at_a_proves_the_whole_journey(consortium: Consortium) -> None:
    _journey(consortium)
    alone = _lookup(consortium.app_a(None)).json()
    assert len(alone["bundle"]["logs"]) == 1
    r = _lookup(consortium.app_a(PeerLookup([("node-b", consortium.b_client)])))
    assert r.status_code == 200, r.text
    body = r.json()
    logs = {lg["logId"] for lg in body["bundle"]["logs"]}
    assert logs == {hex32(consortium.a.courier_id), hex32(consortium.b.courier_id)}
    statuses = [t["fields"].get("status") for t in body["timeline"]]
    assert statuses == [
        "picked_up",
        "handoff_offered",
        "handoff_accepted",
        "out_for_delivery",
        "delivered",
    ]
    assert body["verification"]["ok"] is True
    report = verify_bundle(body["bundle"], consortium.ledger)  # the customer checks it again
    assert report.ok and {c.name for c in report.checks} >= {"handoff", "handoff-countersignature"}


def test_a_peers_own_question_is_answered_from_its_log_only(consortium: Consortium) -> None:
    _journey(consortium)
    r = consortium.b_client.post(
        "/v1/lookup",
        json={"tracking_number": PARCEL, "postcode": POSTCODE},
        headers={PEER_HEADER: "1"},
    )
    assert r.status_code == 200 and len(r.json()["bundle"]["logs"]) == 1


def test_a_peer_cannot_slip_in_another_parcels_log(consortium: Consortium) -> None:
    _journey(consortium)
    _journey(consortium, "PP9900000001NL")  # another parcel, same two couriers
    own = parse_bundle(_lookup(consortium.app_a(None)).json()["bundle"])
    other_on_b = consortium.b_client.post(
        "/v1/lookup",
        json={"tracking_number": "PP9900000001NL", "postcode": POSTCODE},
        headers={PEER_HEADER: "1"},
    ).json()["bundle"]
    lying = PeerAnswer("node-b", parse_bundle(other_on_b), ())
    merged, contributed = merge(own, [lying])
    assert merged.logs == own.logs and contributed == []  # B's log of another parcel: refused


def test_an_unreachable_or_garbled_peer_leaves_the_local_answer(consortium: Consortium) -> None:
    _journey(consortium)

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.test":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"bundle": {"format": "nonsense"}, "timeline": []})

    transport = httpx.MockTransport(broken)
    peers = PeerLookup(
        [
            ("down", httpx.Client(base_url="https://down.test", transport=transport)),
            ("garbled", httpx.Client(base_url="https://garbled.test", transport=transport)),
        ]
    )
    answers, failed = peers.ask({"tracking_number": PARCEL, "postcode": POSTCODE})
    assert answers == [] and [name for name, _ in failed] == ["down", "garbled"]
    r = _lookup(consortium.app_a(peers))
    assert r.status_code == 200 and len(r.json()["bundle"]["logs"]) == 1
    assert r.json()["verification"]["ok"] is True


def test_a_wrong_factor_is_still_404_and_peers_are_not_asked(consortium: Consortium) -> None:
    _journey(consortium)
    asked: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(404)

    peers = PeerLookup(
        [("spy", httpx.Client(base_url="https://spy.test", transport=httpx.MockTransport(record)))]
    )
    r = consortium.app_a(peers).post(
        "/v1/lookup", json={"tracking_number": PARCEL, "postcode": "0000 ZZ"}
    )
    assert r.status_code == 404 and asked == []


def test_peer_urls_must_be_https_origins() -> None:
    from parcelproof.settings import ConfigurationError, load_settings

    settings = load_settings(
        read_env_file=False, peers="https://node-b.example, http://localhost:8001"
    )
    assert settings.peer_urls() == ("https://node-b.example", "http://localhost:8001")
    with pytest.raises(ConfigurationError, match="PARCELPROOF_PEERS"):
        load_settings(read_env_file=False, peers="http://node-b.example")
