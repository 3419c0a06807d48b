"""Data-subject rights on a node (in memory): export, erasure by crypto-shredding with a signed
receipt, the erased parcel's lookup and bundle, and retention."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from jsonschema import Draft202012Validator

from parcelproof.core import eip712, envelope
from parcelproof.core.bundle import (
    ERASED,
    bundle_to_json,
    parse_bundle,
    verify_bundle,
)
from parcelproof.core.errors import (
    ConflictError,
    Error,
    FormatError,
    KeyStateError,
    NotFoundError,
    SignatureError,
    StoreError,
    TrailingGarbageError,
    UnknownCourierError,
    VerificationError,
)
from parcelproof.service.agent import Agent
from parcelproof.service.anchoring import AnchorWorker
from parcelproof.service.keyrotation import rotate
from parcelproof.service.lookup import ParcelErasedError, dispute_bundle, lookup
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import ShipmentErasedError
from parcelproof.service.privacy import (
    DAY,
    RETRY_SECONDS,
    ErasureReceipt,
    RetentionJob,
    RetentionResult,
    parse_receipt,
    retention_seconds,
    verify_receipt,
)
from parcelproof.store.memory import MemoryStore
from tests.unit.conftest import NOW, FakeLedger, FixedClock

PARCEL, POSTCODE = "PP100200300FR", "69002"
SCHEMA = "docs/schemas/proof-bundle.v1.schema.json"


@dataclass(frozen=True)
class CourierEntry:
    account: str


class Ledger(FakeLedger):
    """The unit ledger double plus the courier records receipt verification reads."""

    def __init__(self) -> None:
        super().__init__()
        self.couriers: dict[bytes, str] = {}

    def courier(self, courier_id: bytes) -> CourierEntry:
        if courier_id not in self.couriers:
            raise UnknownCourierError("ParcelLedgerUnknownCourier", (courier_id,))
        return CourierEntry(self.couriers[courier_id])


@dataclass
class Couriers:
    ledger: Ledger
    clock: FixedClock
    a: CourierNode
    b: CourierNode
    driver_a: Agent
    driver_b: Agent
    key_a: bytes


def _node(ledger: Ledger, name: str, clock: FixedClock, signer: bytes | None) -> CourierNode:
    cid = hashlib.sha256(name.encode()).digest()
    account = f"account-{name}"
    ledger.accounts[account] = cid
    if signer is not None:
        ledger.couriers[cid] = Account.from_key(signer).address
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k1", secrets.token_bytes(32))], "k1")
    return CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=account,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=MemoryStore(clock),
        clock=clock,
        erasure_signer=signer,
    )


@pytest.fixture
def w() -> Couriers:
    ledger, clock = Ledger(), FixedClock()
    key_a = secrets.token_bytes(32)
    a = _node(ledger, "A", clock, key_a)
    b = _node(ledger, "B", clock, secrets.token_bytes(32))
    driver_a, driver_b = Agent(secrets.token_bytes(32)), Agent(secrets.token_bytes(32))
    ledger.register(a.courier_id, driver_a.address, NOW - 30 * DAY, NOW + 30 * DAY)
    ledger.register(b.courier_id, driver_b.address, NOW - 30 * DAY, NOW + 30 * DAY)
    return Couriers(ledger, clock, a, b, driver_a, driver_b, key_a)


def _journey(w: Couriers, parcel: str = PARCEL) -> str:
    """Three events on A, two of them anchored; returns the access token."""
    created = w.a.create_shipment(parcel, {"recipient": "Ada Lovelace"}, POSTCODE)
    w.driver_a.record(w.a, parcel, {"status": "picked_up", "place": "Paris"}, NOW - 600)
    w.driver_a.record(w.a, parcel, {"status": "departed", "place": "Paris hub"}, NOW - 500)
    w.a.anchor()
    w.driver_a.record(w.a, parcel, {"status": "arrived", "place": "Lyon"}, NOW - 400)
    w.a.anchor()
    return created.access_token


def _erased_lookup(w: Couriers, postcode: str = POSTCODE) -> ParcelErasedError:
    with pytest.raises(ParcelErasedError) as caught:
        lookup([w.a, w.b], w.ledger, PARCEL, postcode)
    return caught.value


# --- the receipt --------------------------------------------------------------------------------


def test_erasure_receipt_names_the_chain_state_and_verifies_against_the_ledger(
    w: Couriers,
) -> None:
    _journey(w)
    last = w.a.store.last_event(w.a.shipment_id(PARCEL))
    assert last is not None
    w.clock.t = NOW + 60
    receipt = w.a.erase(PARCEL, "request")
    e = receipt.erasure
    assert (e.log_id, e.event_count, e.last_commitment) == (w.a.courier_id, 3, last.commitment)
    assert (e.erased_at, e.reason) == (NOW + 60, "request")
    assert e.shipment == _ref(w.a)
    assert receipt.signer == Account.from_key(w.key_a).address
    assert receipt.domain == w.a.domain
    assert verify_receipt(receipt.to_json(), w.ledger) == receipt
    assert verify_receipt(json.dumps(receipt.to_json())) == receipt
    assert parse_receipt(receipt.canonical()) == receipt


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("erasure", "eventCount"), 2),
        (("erasure", "erasedAt"), NOW + 1),
        (("erasure", "reason"), "retention"),
        (("erasure", "lastCommitment"), "0x" + "11" * 32),
        (("erasure", "shipment"), "0x" + "22" * 32),
        (("erasure", "logId"), "0x" + "33" * 32),
        (("chain", "chainId"), 1),
    ],
    ids=["event count", "time", "reason", "last commitment", "shipment", "log", "chain"],
)
def test_a_tampered_receipt_fails_its_signature(
    w: Couriers, path: tuple[str, str], value: Any
) -> None:
    _journey(w)
    receipt = w.a.erase(PARCEL, "request").to_json()
    receipt[path[0]][path[1]] = value
    with pytest.raises(SignatureError, match="signature was made by"):
        verify_receipt(receipt)


def test_a_receipt_signed_by_another_key_fails_against_the_ledger(w: Couriers) -> None:
    _journey(w)
    honest = w.a.erase(PARCEL, "request")
    forged = ErasureReceipt(
        honest.domain,
        honest.erasure,
        Account.from_key(k := secrets.token_bytes(32)).address,
        eip712.sign_erasure(k, honest.domain, honest.erasure),
    )
    assert verify_receipt(forged) == forged  # offline: only the signature is checked
    with pytest.raises(SignatureError, match="anchoring account of courier"):
        verify_receipt(forged, w.ledger)
    claimed = forged.to_json() | {"signer": honest.signer}
    with pytest.raises(SignatureError, match="signature was made by"):
        verify_receipt(claimed, w.ledger)


def test_a_receipt_for_another_chain_or_an_unknown_courier_fails(w: Couriers) -> None:
    _journey(w)
    receipt = w.a.erase(PARCEL, "request")
    other = Ledger()
    other.chain_id = 1
    with pytest.raises(VerificationError, match="the receipt names chain 31337"):
        verify_receipt(receipt, other)
    del w.ledger.couriers[w.a.courier_id]
    with pytest.raises(VerificationError, match="does not know the receipt's courier"):
        verify_receipt(receipt, w.ledger)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda r: r.update(extra=1), TrailingGarbageError, "unknown keys extra"),
        (lambda r: r.update(version=2), FormatError, "unsupported receipt version"),
        (lambda r: r.update(format="x"), FormatError, "receipt.format"),
        (lambda r: r["erasure"].pop("reason"), FormatError, "lacks reason"),
        (lambda r: r["erasure"].update(reason="Customer A. Smith"), FormatError, "reason"),
        (lambda r: r["erasure"].update(eventCount=-1), FormatError, "eventCount"),
        (lambda r: r["erasure"].update(eventCount=True), FormatError, "eventCount"),
        (lambda r: r.update(signature="0x12"), FormatError, "signature has 1 bytes"),
        (lambda r: r["erasure"].update(lastCommitment="0x" + "00" * 32), FormatError, "zero"),
    ],
)
def test_malformed_receipts_are_refused(
    w: Couriers, mutate: Any, error: type[Exception], message: str
) -> None:
    _journey(w)
    receipt = w.a.erase(PARCEL, "request").to_json()
    mutate(receipt)
    with pytest.raises(error, match=message):
        verify_receipt(receipt)
    with pytest.raises(FormatError, match="must be JSON"):
        parse_receipt("{not json")


# --- erasure ------------------------------------------------------------------------------------


def test_erasing_twice_returns_the_first_receipt(w: Couriers) -> None:
    _journey(w)
    first = w.a.erase(PARCEL, "request")
    w.clock.t = NOW + DAY
    assert w.a.erase(PARCEL, "legal") == first
    assert w.a.erasure_receipt(PARCEL) == first


def test_unknown_parcel_and_reason_are_refused(w: Couriers) -> None:
    _journey(w)
    with pytest.raises(NotFoundError):
        w.a.erase("PP999999999FR", "request")
    with pytest.raises(FormatError, match="erasure reason must be one of"):
        w.a.erase(PARCEL, "because")
    assert w.a.erasure_receipt(PARCEL) is None


def test_a_node_without_the_account_key_erases_nothing(w: Couriers) -> None:
    node = _node(w.ledger, "C", w.clock, None)
    node.create_shipment(PARCEL, {"recipient": "Ada"}, POSTCODE)
    with pytest.raises(KeyStateError, match="no key to sign erasure receipts"):
        node.erase(PARCEL, "request")
    shipment = node.store.shipment_by_ref(node.event_context(PARCEL).shipment)
    assert shipment is not None and not shipment.erased


def test_nothing_can_be_recorded_after_erasure(w: Couriers) -> None:
    _journey(w)
    context = w.a.event_context(PARCEL)
    w.a.erase(PARCEL, "request")
    with pytest.raises(ShipmentErasedError, match="were erased on 2026") as caught:
        w.driver_a.record(w.a, PARCEL, {"status": "out_for_delivery"}, NOW - 300)
    assert isinstance(caught.value, ConflictError)  # 409 problem in the API
    with pytest.raises(ShipmentErasedError):
        w.a.event_context(PARCEL)
    # An agent that fetched the context before the erasure is refused all the same.
    openings, signature = w.driver_a.sign(context, {"status": "out_for_delivery"}, NOW - 300)
    with pytest.raises(ShipmentErasedError):
        w.a.record_event(
            PARCEL, openings, event_time=NOW - 300, agent=w.driver_a.address, signature=signature
        )
    assert len(w.a.store.events(w.a.shipment_id(PARCEL))) == 3


def test_the_store_refuses_an_append_racing_an_erasure(w: Couriers) -> None:
    _journey(w)
    shipment_id = w.a.shipment_id(PARCEL)
    last = w.a.store.last_event(shipment_id)
    assert last is not None
    w.a.erase(PARCEL, "request")
    from dataclasses import replace

    late = replace(last, event_id="late", sequence=last.sequence + 1, previous=last.commitment)
    with pytest.raises(ShipmentErasedError):
        w.a.store.append_event(late, bytes(32))


def test_an_erasure_whose_chain_moved_on_conflicts_and_retries(w: Couriers) -> None:
    _journey(w)
    store = w.a.store
    real = store.destroy_data_key
    calls: list[int] = []

    def moved_once(record: Any, *, event_count: int, last_commitment: bytes) -> Any:
        calls.append(event_count)
        if len(calls) == 1:
            raise ConflictError("the shipment got another event while it was being erased")
        return real(record, event_count=event_count, last_commitment=last_commitment)

    store.destroy_data_key = moved_once  # type: ignore[method-assign]
    receipt = w.a.erase(PARCEL, "request")
    assert calls == [3, 3] and receipt.erasure.event_count == 3
    w.b.create_shipment(PARCEL, {"r": "x"}, POSTCODE)
    w.driver_b.record(w.b, PARCEL, {"status": "picked_up"}, NOW)
    stale = _record(w.b.shipment_id(PARCEL))
    with pytest.raises(ConflictError, match="another event"):
        w.b.store.destroy_data_key(stale, event_count=0, last_commitment=bytes(32))
    with pytest.raises(NotFoundError):
        w.b.store.destroy_data_key(_record("nope"), event_count=0, last_commitment=bytes(32))


def _record(shipment_id: str) -> Any:
    from parcelproof.service.ports import ErasureRecord

    return ErasureRecord(shipment_id, NOW, "request", "{}")


def test_key_rotation_does_not_bring_an_erased_key_back(w: Couriers) -> None:
    _journey(w)
    ref = _ref(w.a)
    stale = w.a.store.wrapped_keys("k2")  # read before the erasure, as a racing rotation would
    assert len(stale) == 1
    w.a.erase(PARCEL, "request")
    ring = w.a.keyring.with_key(envelope.KeyEncryptionKey("k2", secrets.token_bytes(32)))
    for sid, _ in stale:
        w.a.store.set_wrapped_key(sid, envelope.wrap_data_key(ring, secrets.token_bytes(32), sid))
    assert rotate(w.a.store, ring).rewrapped == 0
    shipment = w.a.store.shipment_by_ref(ref)
    assert shipment is not None and shipment.erased
    with pytest.raises(NotFoundError):
        w.a.store.set_wrapped_key("no-such-shipment", stale[0][1])


def _ref(node: CourierNode) -> bytes:
    """The parcel's shipment reference (as the export states it)."""
    return bytes.fromhex(node.export(PARCEL)["shipment"]["reference"][2:])


# --- what is left after erasure -----------------------------------------------------------------


@pytest.mark.parametrize("postcode", [POSTCODE, "00000"], ids=["right factor", "wrong factor"])
def test_the_lookup_of_an_erased_parcel_says_so_whatever_the_factor(
    w: Couriers, postcode: str
) -> None:
    _journey(w)
    receipt = w.a.erase(PARCEL, "request")
    error = _erased_lookup(w, postcode)
    result = error.result
    assert "were erased on" in str(error)
    assert [n.to_json() for n in result.erasures] == [
        {
            "logId": "0x" + w.a.courier_id.hex(),
            "erasedAt": NOW,
            "reason": "request",
            "receipt": receipt.to_json(),
        }
    ]
    assert [t.fields for t in result.timeline] == [{}, {}, {}]
    assert [t.anchoring for t in result.timeline] == ["anchored"] * 3
    assert result.report is not None and result.report.ok
    text = json.dumps(result.bundle)
    for secret in ("Ada", "Paris", "Lyon", "picked_up", POSTCODE):
        assert secret not in text
    with pytest.raises(NotFoundError):  # unknown numbers stay indistinguishable from before
        lookup([w.a, w.b], w.ledger, "PP999999999FR", postcode)


def test_the_access_token_gets_the_same_erased_answer(w: Couriers) -> None:
    token = _journey(w)
    w.a.erase(PARCEL, "request")
    with pytest.raises(ParcelErasedError):
        lookup([w.a], w.ledger, PARCEL, None, access_token=token)


def test_the_erased_bundle_keeps_every_public_check(w: Couriers) -> None:
    _journey(w)
    w.a.erase(PARCEL, "request")
    bundle = _erased_lookup(w).result.bundle
    assert bundle is not None
    events = bundle["logs"][0]["events"]
    assert all(e["erased"] is True and e["revealed"] == e["withheld"] == [] for e in events)
    assert all(e["inclusionProof"] is not None for e in events)
    report = verify_bundle(bundle, w.ledger)
    assert report.ok
    skipped = [(c.name, c.detail) for c in report.checks if c.skipped]
    assert skipped == [("commitment", ERASED)] * 3
    ran = [c.name for c in report.checks if not c.skipped]
    for name in ("hash-chain", "signature", "agent-key", "inclusion"):
        assert ran.count(name) == 3, name
    assert bundle_to_json(parse_bundle(copy.deepcopy(bundle))) == bundle


def test_tampering_an_erased_event_is_still_caught(w: Couriers) -> None:
    _journey(w)
    w.a.erase(PARCEL, "request")
    bundle = _erased_lookup(w).result.bundle
    assert bundle is not None

    def failed(b: dict[str, Any]) -> set[str]:
        return {c.name for c in verify_bundle(b, w.ledger).failures}

    changed = copy.deepcopy(bundle)
    first = changed["logs"][0]["events"][0]
    first["commitment"] = "0x" + bytes(32).hex()[:-2] + "01"
    assert failed(changed) == {"hash-chain", "signature", "inclusion"}
    moved = copy.deepcopy(bundle)
    moved["logs"][0]["events"][1]["eventTime"] += 1
    assert failed(moved) == {"signature"}
    dropped = copy.deepcopy(bundle)
    del dropped["logs"][0]["events"][1]
    assert "hash-chain" in failed(dropped)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(erased=False), "erased must be true when present"),
        (lambda e: e.update(erased=1), "erased must be true when present"),
        (lambda e: e["withheld"].append("0x" + "ab" * 32), "reveals no field"),
        (
            lambda e: e["revealed"].append({"name": "status", "value": "x", "salt": "A" * 43}),
            "reveals no field",
        ),
    ],
)
def test_malformed_erased_events_are_unusable(w: Couriers, mutate: Any, message: str) -> None:
    _journey(w)
    w.a.erase(PARCEL, "request")
    bundle = _erased_lookup(w).result.bundle
    assert bundle is not None
    mutate(bundle["logs"][0]["events"][0])
    with pytest.raises(FormatError, match=message):
        verify_bundle(bundle, w.ledger)


def test_the_schema_describes_erased_events(w: Couriers) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    validator = Draft202012Validator(json.loads((root / SCHEMA).read_text()))
    _journey(w)
    w.a.erase(PARCEL, "request")
    bundle = _erased_lookup(w).result.bundle
    assert list(validator.iter_errors(bundle)) == []
    bad = copy.deepcopy(bundle)
    bad["logs"][0]["events"][0]["withheld"] = ["0x" + "ab" * 32]
    assert list(validator.iter_errors(bad)) != []
    bad["logs"][0]["events"][0] |= {"withheld": [], "erased": False}
    assert list(validator.iter_errors(bad)) != []


def test_a_handoff_parcel_erased_by_one_courier_still_verifies(w: Couriers) -> None:
    """A erases, B keeps its data: the lookup answers normally, A's events come erased, and
    B's handoff still names A's (erased) offered event."""
    w.a.create_shipment(PARCEL, {"recipient": "Ada"}, POSTCODE)
    w.b.create_shipment(PARCEL, {"recipient": "Ada"}, POSTCODE)
    w.driver_a.record(w.a, PARCEL, {"status": "picked_up", "place": "Paris"}, NOW - 900)
    ref_a, ref_b = w.a.event_context(PARCEL).shipment, w.b.event_context(PARCEL).shipment
    h = eip712.Handoff(secrets.token_bytes(32), w.a.courier_id, ref_a, w.b.courier_id, ref_b, NOW)
    common = {"handoff_id": "0x" + h.handoff_id.hex(), "handoff_time": NOW}
    offer = w.driver_a.record(
        w.a,
        PARCEL,
        {
            "status": "handoff_offered",
            "handoff_to": "0x" + w.b.courier_id.hex(),
            "counterparty_shipment": "0x" + ref_b.hex(),
            "counterparty_agent": w.driver_b.address,
            "counterparty_signature": "0x" + w.driver_b.sign_handoff(w.b.domain, h).hex(),
            **common,
        },
        NOW,
    )
    w.driver_b.record(
        w.b,
        PARCEL,
        {
            "status": "handoff_accepted",
            "handoff_from": "0x" + w.a.courier_id.hex(),
            "counterparty_shipment": "0x" + ref_a.hex(),
            "handoff_of": "0x" + offer.commitment.hex(),
            "counterparty_agent": w.driver_a.address,
            "counterparty_signature": "0x" + w.driver_a.sign_handoff(w.a.domain, h).hex(),
            **common,
        },
        NOW,
    )
    w.a.anchor()
    w.b.anchor()
    w.a.erase(PARCEL, "request")
    result = lookup([w.a, w.b], w.ledger, PARCEL, POSTCODE)
    assert [n.log_id for n in result.erasures] == [w.a.courier_id]
    assert result.report is not None and result.report.ok
    names = {c.name for c in result.report.checks if not c.skipped}
    assert {"handoff", "handoff-countersignature"} <= names
    assert [t.fields.get("status") for t in result.timeline] == [
        None,
        None,
        "handoff_accepted",
    ]
    evidence = dispute_bundle([w.a, w.b], w.ledger, PARCEL)
    assert evidence.report is not None and evidence.report.ok
    assert [n.log_id for n in evidence.erasures] == [w.a.courier_id]
    w.b.erase(PARCEL, "request")  # once every courier erased it, the lookup says so
    with pytest.raises(ParcelErasedError) as caught:
        lookup([w.a, w.b], w.ledger, PARCEL, "wrong")
    assert len(caught.value.result.erasures) == 2


# --- export -------------------------------------------------------------------------------------


def test_export_holds_everything_decrypted(w: Couriers) -> None:
    token = _journey(w)
    document = w.a.export(PARCEL)
    shipment = document["shipment"]
    assert document["format"] == "parcelproof-export" and document["version"] == 1
    assert document["courier"] == {
        "logId": "0x" + w.a.courier_id.hex(),
        "chainId": w.ledger.chain_id,
        "ledger": w.ledger.address,
    }
    assert shipment["state"] == "active"
    assert shipment["details"] == {"recipient": "Ada Lovelace"}
    assert shipment["secondFactors"]["postcode"] == POSTCODE
    assert (
        shipment["secondFactors"]["accessTokenSha256"] == hashlib.sha256(token.encode()).hexdigest()
    )
    assert shipment["reference"] == "0x" + _ref(w.a).hex()
    assert document["erasure"] is None
    events = document["events"]
    assert [e["sequence"] for e in events] == [0, 1, 2]
    fields = [{f["name"]: f["value"] for f in e["fields"]} for e in events]
    assert [f["place"] for f in fields] == ["Paris", "Paris hub", "Lyon"]
    assert all(len(f["salt"]) == 43 for e in events for f in e["fields"])
    assert [e["anchoring"]["state"] for e in events] == ["anchored"] * 3
    assert [e["anchoring"]["checkpointSize"] for e in events] == [2, 2, 3]
    stored = w.a.store.events(w.a.shipment_id(PARCEL))
    assert [e["commitment"] for e in events] == ["0x" + s.commitment.hex() for s in stored]
    json.dumps(document)  # plain JSON


def test_export_after_erasure_marks_the_details_erased(w: Couriers) -> None:
    _journey(w)
    receipt = w.a.erase(PARCEL, "request")
    document = w.a.export(PARCEL)
    shipment = document["shipment"]
    assert shipment["state"] == "erased"
    assert shipment["details"] is None and shipment["secondFactors"] is None
    assert [e["fields"] for e in document["events"]] == [None, None, None]
    assert document["erasure"] == {
        "erasedAt": NOW,
        "reason": "request",
        "receipt": receipt.to_json(),
    }
    assert "Ada" not in json.dumps(document)
    with pytest.raises(NotFoundError):
        w.a.export("PP999999999FR")


# --- retention ----------------------------------------------------------------------------------


def test_retention_erases_what_was_idle_longer_than_the_period(w: Couriers) -> None:
    period = retention_seconds(30)
    w.clock.t = NOW - 40 * DAY
    w.a.create_shipment("PPOLDNOEVENTS", {"r": "x"}, POSTCODE)  # idle since its creation
    w.a.create_shipment("PPOLDWITHEVENT", {"r": "x"}, POSTCODE)
    w.clock.t = NOW - 20 * DAY  # ... but it got an event recently
    w.driver_a.record(w.a, "PPOLDWITHEVENT", {"status": "picked_up"}, w.clock.t)
    w.clock.t = NOW - 31 * DAY
    w.a.create_shipment("PPJUSTEXPIRED", {"r": "x"}, POSTCODE)
    w.clock.t = NOW - 30 * DAY
    w.a.create_shipment("PPEXACTLYAPERIOD", {"r": "x"}, POSTCODE)
    w.clock.t = NOW
    dry = w.a.erase_expired(NOW, period, dry_run=True)
    expired = (w.a.shipment_id("PPOLDNOEVENTS"), w.a.shipment_id("PPJUSTEXPIRED"))
    assert dry == RetentionResult(NOW - period, expired, dry_run=True)
    assert w.a.erasure_receipt("PPOLDNOEVENTS") is None  # a dry run erases nothing
    done = w.a.erase_expired(NOW, period)
    assert done.erased == expired
    receipt = w.a.erasure_receipt("PPJUSTEXPIRED")
    assert receipt is not None and receipt.erasure.reason == "retention"
    assert receipt.erasure.event_count == 0 and receipt.erasure.last_commitment == bytes(32)
    verify_receipt(receipt, w.ledger)
    assert w.a.erasure_receipt("PPOLDWITHEVENT") is None
    assert w.a.erasure_receipt("PPEXACTLYAPERIOD") is None
    assert w.a.erase_expired(NOW, period).erased == ()  # nothing twice
    assert w.a.erase_expired(NOW + 11 * DAY, period).erased == (
        w.a.shipment_id("PPEXACTLYAPERIOD"),
        w.a.shipment_id("PPOLDWITHEVENT"),
    )


def test_retention_zero_is_off(w: Couriers) -> None:
    w.clock.t = NOW - 400 * DAY
    w.a.create_shipment(PARCEL, {"r": "x"}, POSTCODE)
    assert w.a.erase_expired(NOW, 0) == RetentionResult(0, ())
    assert retention_seconds(0) == 0 and retention_seconds(90) == 90 * DAY
    with pytest.raises(FormatError):
        retention_seconds(-1)


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None, Any]] = []

    def record(
        self, actor: str, action: str, target: str | None = None, detail: Any = None
    ) -> None:
        self.entries.append((actor, action, target, detail))


def test_the_retention_job_runs_at_most_once_a_day(w: Couriers) -> None:
    t = [0.0]
    audit = Audit()
    job = RetentionJob(w.a, retention_seconds(30), audit=audit, monotonic=lambda: t[0])
    w.clock.t = NOW - 31 * DAY
    w.a.create_shipment(PARCEL, {"r": "x"}, POSTCODE)
    w.clock.t = NOW
    first = job.run_if_due()
    assert first is not None and first.erased == (w.a.shipment_id(PARCEL),)
    assert audit.entries == [
        ("worker:retention", "privacy.erase", w.a.shipment_id(PARCEL), {"reason": "retention"})
    ]
    w.clock.t = NOW - 31 * DAY
    w.a.create_shipment("PPSECOND", {"r": "x"}, POSTCODE)
    w.clock.t = NOW
    t[0] = DAY - 1
    assert job.run_if_due() is None  # not yet a day
    t[0] = DAY
    again = job.run_if_due()
    assert again is not None and again.erased == (w.a.shipment_id("PPSECOND"),)
    assert RetentionJob(w.a, 0).run_if_due() is None


def test_a_failed_retention_run_is_retried_later(w: Couriers) -> None:
    t = [0.0]
    job = RetentionJob(w.a, retention_seconds(30), monotonic=lambda: t[0])
    store = w.a.store

    def broken(before: int, limit: int) -> Any:
        raise StoreError("database operation failed: OperationalError")

    real = store.idle_shipments
    store.idle_shipments = broken  # type: ignore[method-assign]
    assert job.run_if_due() is None  # logged, never raised
    store.idle_shipments = real  # type: ignore[method-assign]
    t[0] = RETRY_SECONDS - 1
    assert job.run_if_due() is None
    t[0] = RETRY_SECONDS
    assert job.run_if_due() == RetentionResult(NOW - retention_seconds(30), ())


def test_the_anchor_worker_runs_retention(w: Couriers) -> None:
    w.clock.t = NOW - 100 * DAY
    w.a.create_shipment(PARCEL, {"r": "x"}, POSTCODE)
    w.clock.t = NOW
    job = RetentionJob(w.a, retention_seconds(90))
    AnchorWorker(w.a, retention=job).step()
    assert w.a.erasure_receipt(PARCEL) is not None


def test_errors_are_ours() -> None:
    assert issubclass(ParcelErasedError, ShipmentErasedError)
    assert issubclass(ShipmentErasedError, Error)


def test_the_published_receipt_vector_verifies_in_python_too() -> None:
    """tests/js/erasure.test.mjs checks the same file: both encode ParcelErasure alike."""
    from pathlib import Path

    vector = json.loads(
        (
            Path(__file__).resolve().parents[1] / "vectors" / "receipts" / "erasure-receipt.json"
        ).read_text()
    )
    receipt = verify_receipt(vector["receipt"])
    assert receipt.signer == vector["courierAccount"]
    tampered = copy.deepcopy(vector["receipt"])
    tampered["erasure"]["eventCount"] += 1
    with pytest.raises(SignatureError):
        verify_receipt(tampered)
