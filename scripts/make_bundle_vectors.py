"""Write the proof-bundle test vectors (tests/vectors/bundles/): one valid bundle and one per
kind of mutation, each with the ledger facts it is checked against and the expected outcome;
the same for the bundle left after the first courier erased the parcel (crypto-shredding).

Run `python scripts/make_bundle_vectors.py` to regenerate (keys and salts are fresh each time;
the expectations are not). Every verifier (Python, JavaScript) must reproduce the outcomes.
"""

from __future__ import annotations

import copy
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parcelproof.core import eip712, envelope, merkle
from parcelproof.core.bundle import LedgerSnapshot, hex32, verify_bundle
from parcelproof.core.errors import FormatError, NonGrowingCheckpointError
from parcelproof.demo import courier_id
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import lookup
from parcelproof.service.node import CourierNode
from parcelproof.service.privacy import verify_receipt
from parcelproof.store.memory import MemoryStore

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "bundles"
RECEIPTS = OUT.parent / "receipts"
CHAIN_ID, LEDGER = 31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = 1_790_000_000
DAY = 86400


@dataclass(frozen=True)
class _Anchored:
    size: int
    root: bytes
    block_number: int | None
    tx_hash: bytes | None


class _RecordingLedger:
    """Records what a real ledger would hold, checking consistency like the contract."""

    chain_id, address = CHAIN_ID, LEDGER

    def __init__(self) -> None:
        self.roots: dict[tuple[bytes, int], bytes] = {}
        self.latest: dict[bytes, tuple[int, bytes]] = {}
        self.keys: dict[str, tuple[bytes, int, int, int | None]] = {}
        self.accounts: dict[str, bytes] = {}

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        return self.roots[(courier_id, size)]

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        return self.snapshot().is_agent_key_valid(courier_id, agent, at)

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: str
    ) -> _Anchored:
        log = self.accounts[sender]
        if log in self.latest:
            old = self.latest[log]
            if size <= old[0]:
                raise NonGrowingCheckpointError("ParcelLedgerNonGrowingCheckpoint")
            merkle.verify_consistency(old[0], size, old[1], root, proof)
        self.latest[log] = (size, root)
        self.roots[(log, size)] = root
        return _Anchored(size, root, None, None)

    def latest_checkpoint(self, courier_id: bytes) -> _Anchored | None:
        got = self.latest.get(courier_id)
        return None if got is None else _Anchored(got[0], got[1], None, None)

    def checkpoints(self, courier_id: bytes, from_block: int = 0) -> list[_Anchored]:
        return []

    def block_number(self) -> int:
        return 0

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(CHAIN_ID, LEDGER, dict(self.roots), dict(self.keys))


class _Clock:
    def now(self) -> int:
        return NOW


def _node(ledger: _RecordingLedger, name: str) -> CourierNode:
    cid = courier_id(name)
    ledger.accounts[name] = cid
    keyring = envelope.Keyring([envelope.KeyEncryptionKey("k", secrets.token_bytes(32))], "k")
    return CourierNode(
        courier_id=cid,
        ledger=ledger,
        account=name,
        keyring=keyring,
        shipment_key=secrets.token_bytes(32),
        store=MemoryStore(),
        clock=_Clock(),
        erasure_signer=secrets.token_bytes(32),
    )


def build() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A parcel picked up by A, handed to B (countersigned), delivered by B; then the bundle
    again after A erased its details (B still holds them)."""
    ledger = _RecordingLedger()
    a, b = _node(ledger, "Vector Courier A"), _node(ledger, "Vector Courier B")
    agent_a, agent_b = Agent(secrets.token_bytes(32)), Agent(secrets.token_bytes(32))
    ledger.keys[agent_a.address] = (a.courier_id, NOW - 30 * DAY, NOW + 365 * DAY, None)
    ledger.keys[agent_b.address] = (b.courier_id, NOW - 30 * DAY, NOW + 365 * DAY, None)
    parcel, postcode = "PPVECTOR0001", "1000"
    a.create_shipment(parcel, {"recipient": "withheld"}, postcode)
    b.create_shipment(parcel, {"recipient": "withheld"}, postcode)
    agent_a.record(a, parcel, {"status": "picked_up", "place": "Brussels"}, NOW - 7200)
    agent_a.record(a, parcel, {"status": "departed", "place": "Brussels hub"}, NOW - 6000)
    a.anchor()
    ref_a, ref_b = a.event_context(parcel).shipment, b.event_context(parcel).shipment
    h = eip712.Handoff(
        secrets.token_bytes(32), a.courier_id, ref_a, b.courier_id, ref_b, NOW - 5000
    )
    common = {"handoff_id": hex32(h.handoff_id), "handoff_time": h.handoff_time}
    offer = agent_a.record(
        a,
        parcel,
        {
            "status": "handoff_offered",
            "place": "Antwerp",
            "handoff_to": hex32(b.courier_id),
            "counterparty_shipment": hex32(ref_b),
            "counterparty_agent": agent_b.address,
            "counterparty_signature": "0x" + agent_b.sign_handoff(b.domain, h).hex(),
            **common,
        },
        NOW - 5000,
    )
    agent_b.record(
        b,
        parcel,
        {
            "status": "handoff_accepted",
            "place": "Antwerp",
            "handoff_from": hex32(a.courier_id),
            "counterparty_shipment": hex32(ref_a),
            "handoff_of": hex32(offer.commitment),
            "counterparty_agent": agent_a.address,
            "counterparty_signature": "0x" + agent_a.sign_handoff(a.domain, h).hex(),
            **common,
        },
        NOW - 4900,
    )
    agent_b.record(b, parcel, {"status": "out_for_delivery", "place": "Antwerp"}, NOW - 3000)
    agent_b.record(
        b,
        parcel,
        {"status": "delivered", "place": "Antwerp", "pod_photo_sha256": "ab" * 32},
        NOW - 2000,
    )
    a.anchor()
    b.anchor()
    result = lookup([a, b], ledger, parcel, postcode)
    if result.bundle is None or result.report is None or not result.report.ok:
        raise RuntimeError("the generated bundle does not verify")
    receipt = a.erase(parcel, "request")
    erased = lookup([a, b], ledger, parcel, postcode)
    if erased.bundle is None or erased.report is None or not erased.report.ok:
        raise RuntimeError("the bundle of the erased parcel does not verify")
    return result.bundle, erased.bundle, ledger.snapshot().to_json(), receipt.to_json()


def _flip_hex(value: str, at: int = 10) -> str:
    raw = bytearray.fromhex(value[2:])
    raw[at % len(raw)] ^= 0x01
    return "0x" + raw.hex()


Mutation = Callable[[dict[str, Any], dict[str, Any]], None]


def _set_revealed(bundle: dict[str, Any], name: str, key: str, value: Any) -> None:
    event = bundle["logs"][1]["events"][-1]
    next(f for f in event["revealed"] if f["name"] == name)[key] = value


def _expire(bundle: dict[str, Any], ledger: dict[str, Any]) -> None:
    agent = bundle["logs"][1]["events"][-1]["agent"]
    for k in ledger["agentKeys"]:
        if k["agent"] == agent:
            k["validUntil"] = NOW - 2500  # before the delivery, after the other B events


MUTATIONS: dict[str, tuple[str, Mutation, list[str] | None]] = {
    "changed-value": (
        "the delivered event's status was changed to delivery_failed",
        lambda b, lg: _set_revealed(b, "status", "value", "delivery_failed"),
        ["commitment"],
    ),
    "wrong-salt": (
        "the salt of a revealed field was altered",
        lambda b, lg: _set_revealed(b, "place", "salt", "A" * 43),
        ["commitment"],
    ),
    "dropped-event": (
        "an event was removed from the middle of a shipment's chain",
        lambda b, lg: b["logs"][1]["events"].pop(1),
        ["hash-chain"],
    ),
    "swapped-order": (
        "two events of a shipment were swapped",
        lambda b, lg: b["logs"][0]["events"].insert(0, b["logs"][0]["events"].pop(1)),
        ["hash-chain"],
    ),
    "bad-signature": (
        "an event carries the signature of another event",
        lambda b, lg: b["logs"][0]["events"][1].update(
            signature=b["logs"][0]["events"][0]["signature"]
        ),
        ["signature"],
    ),
    "expired-key": (
        "the agent key had expired on the ledger before the delivery",
        _expire,
        ["agent-key"],
    ),
    "wrong-root": (
        "a checkpoint root that the ledger never anchored for that size",
        lambda b, lg: b["logs"][0]["checkpoint"].update(
            root=_flip_hex(b["logs"][0]["checkpoint"]["root"])
        ),
        ["checkpoint", "consistency", "inclusion"],
    ),
    "proof-byte-flipped": (
        "one byte of an inclusion proof was flipped",
        lambda b, lg: b["logs"][1]["events"][0]["inclusionProof"].__setitem__(
            0, _flip_hex(b["logs"][1]["events"][0]["inclusionProof"][0])
        ),
        ["inclusion"],
    ),
    "proof-trailing-garbage": (
        "an inclusion proof carries one hash too many",
        lambda b, lg: b["logs"][1]["events"][0]["inclusionProof"].append("0x" + "00" * 32),
        ["inclusion"],
    ),
    "earlier-inconsistent": (
        "an earlier checkpoint's consistency proof was altered",
        lambda b, lg: b["logs"][0]["earlier"][0]["consistencyProof"].__setitem__(
            0, _flip_hex(b["logs"][0]["earlier"][0]["consistencyProof"][0])
        ),
        ["consistency"],
    ),
    "earlier-unknown-root": (
        "an earlier checkpoint root that the ledger never anchored (a forked history)",
        lambda b, lg: b["logs"][0]["earlier"][0].update(
            root=_flip_hex(b["logs"][0]["earlier"][0]["root"])
        ),
        ["checkpoint", "consistency"],
    ),
    "unknown-key": (
        "the bundle has a key the format does not define (trailing garbage): unusable input",
        lambda b, lg: b.update(comment="trust me"),
        None,
    ),
}


def _erased_event(b: dict[str, Any], at: int = 0) -> dict[str, Any]:
    event: dict[str, Any] = b["logs"][0]["events"][at]
    if event.get("erased") is not True:
        raise RuntimeError("courier A's events should be erased in this bundle")
    return event


#: Mutations of the bundle left after courier A erased the parcel (B still holds it).
ERASED_MUTATIONS: dict[str, tuple[str, Mutation, list[str] | None]] = {
    "erased-commitment-changed": (
        "one byte of an erased event's commitment was flipped: its signature, its inclusion "
        "and the next event's hash-chain link no longer hold",
        lambda b, lg: _erased_event(b).update(commitment=_flip_hex(_erased_event(b)["commitment"])),
        ["hash-chain", "inclusion", "signature"],
    ),
    "erased-signature-swapped": (
        "an erased event carries the signature of another erased event",
        lambda b, lg: _erased_event(b, 1).update(signature=_erased_event(b, 0)["signature"]),
        ["signature"],
    ),
    "erased-with-fields": (
        "an event marked erased still reveals a field: unusable input",
        lambda b, lg: _erased_event(b)["revealed"].append(
            {"name": "status", "value": "picked_up", "salt": "A" * 43}
        ),
        None,
    ),
    "erased-false": (
        'an event says "erased": false (the key is present only as true): unusable input',
        lambda b, lg: _erased_event(b).update(erased=False),
        None,
    ),
}


def main() -> int:
    bundle, erased, ledger, receipt = build()
    RECEIPTS.mkdir(parents=True, exist_ok=True)
    verify_receipt(receipt)
    (RECEIPTS / "erasure-receipt.json").write_text(
        json.dumps(
            {
                "description": "courier A's receipt for erasing the parcel of "
                "valid-erased-sender-log; courierAccount is A's anchoring account on the ledger",
                "courierAccount": receipt["signer"],
                "receipt": receipt,
            },
            indent=2,
        )
        + "\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    cases = {
        "valid-handoff-delivery": (
            "a parcel picked up by A, handed to B "
            "(countersigned) and delivered: every check passes",
            None,
            [],
        )
    }
    erased_cases = {
        "valid-erased-sender-log": (
            "the same parcel after courier A erased its details: A's events keep their "
            "commitments, signatures, hash chain and inclusion proofs but no field; every check "
            "passes and A's commitment checks are skipped as erased",
            None,
            [],
        )
    }
    runs = [(bundle, name, case) for name, case in {**MUTATIONS, **cases}.items()]
    runs += [(erased, name, case) for name, case in {**ERASED_MUTATIONS, **erased_cases}.items()]
    for source, name, (desc, mutate, failed) in runs:
        b, lg = copy.deepcopy(source), copy.deepcopy(ledger)
        if mutate is not None:
            mutate(b, lg)
        complete = False
        try:
            report = verify_bundle(b, LedgerSnapshot.from_json(lg))
            got: list[str] | None = sorted({c.name for c in report.failures})
            complete = not report.skipped
        except FormatError:
            got = None
        if got != (sorted(failed) if failed is not None else None):
            print(f"{name}: expected {failed}, verifier says {got}", file=sys.stderr)
            return 1
        expect = {
            "valid": failed == [],
            "usable": failed is not None,
            "failedChecks": sorted(failed) if failed is not None else [],
            "complete": complete,  # false when a check was skipped (an erased event's)
        }
        prefix = "valid" if failed == [] else ("malformed" if failed is None else "invalid")
        path = OUT / f"{name if prefix == 'valid' else prefix + '-' + name}.json"
        body = {"description": desc, "expect": expect, "ledger": lg, "bundle": b}
        path.write_text(json.dumps(body, indent=2) + "\n")
        print(f"wrote {path.relative_to(OUT.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
