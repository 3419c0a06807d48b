"""Version-1 proof bundles: strict parsing, serialisation and verification against a ledger view.

A bundle is portable evidence for one parcel: for every courier log the parcel touched it
carries the anchored checkpoint, each event's commitment with the fields revealed to this
reader (the others only as digests), the agent's EIP-712 signature and the RFC 9162 audit path.
An event whose courier erased the parcel (``"erased": true``) carries no field and no digest:
everything but its commitment check still runs.
Verification needs nothing but the bundle and read access to the ParcelLedger contract
(:class:`LedgerView`). See docs/proof-bundle.md for the normative description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from parcelproof.core import eip712, handoff, merkle
from parcelproof.core.commitment import ZERO32, Disclosure, FieldOpening
from parcelproof.core.encoding import parse_address, parse_hex
from parcelproof.core.errors import (
    ContractRevertError,
    FormatError,
    TrailingGarbageError,
    UnknownCheckpointError,
    VerificationError,
)

FORMAT = "parcelproof-bundle"
VERSION = 1
MAX_LOGS = 16
MAX_EVENTS_PER_LOG = 1024
MAX_PROOF = 64


class LedgerView(Protocol):
    """Read-only view of the ParcelLedger contract a bundle is verified against."""

    @property
    def chain_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes: ...

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool: ...


class LedgerSnapshot:
    """A :class:`LedgerView` made of recorded ledger facts (for test vectors and archives):
    the anchored roots by (log, size) and the agent-key registrations, answered with the
    contract's rules. It proves nothing by itself: whoever recorded it must be trusted."""

    def __init__(
        self,
        chain_id: int,
        address: str,
        roots: dict[tuple[bytes, int], bytes],
        agent_keys: dict[str, tuple[bytes, int, int, int | None]],
    ) -> None:
        self._chain_id, self._address = chain_id, address
        self._roots = roots
        self._keys = {a.lower(): v for a, v in agent_keys.items()}

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def address(self) -> str:
        return self._address

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        try:
            return self._roots[(courier_id, size)]
        except KeyError:
            raise UnknownCheckpointError(
                "ParcelLedgerUnknownCheckpoint", (courier_id, size)
            ) from None

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        key = self._keys.get(agent.lower())
        if key is None or key[0] != courier_id or not key[1] <= at < key[2]:
            return False
        return key[3] is None or at < key[3]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LedgerSnapshot:
        """Parse ``{"chainId", "ledger", "checkpoints": [{logId, size, root}],
        "agentKeys": [{agent, courierId, validFrom, validUntil, revokedAt}]}``."""
        roots = {
            (parse_hex(c["logId"], "logId", 32), int(c["size"])): parse_hex(c["root"], "root", 32)
            for c in obj["checkpoints"]
        }
        keys = {
            parse_address(k["agent"], "agent"): (
                parse_hex(k["courierId"], "courierId", 32),
                int(k["validFrom"]),
                int(k["validUntil"]),
                None if k["revokedAt"] is None else int(k["revokedAt"]),
            )
            for k in obj["agentKeys"]
        }
        return cls(int(obj["chainId"]), parse_address(obj["ledger"], "ledger"), roots, keys)

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self._chain_id,
            "ledger": self._address,
            "checkpoints": [
                {"logId": hex32(log), "size": size, "root": hex32(root)}
                for (log, size), root in sorted(self._roots.items())
            ],
            "agentKeys": [
                {
                    "agent": str(to_checksum_address(a)),
                    "courierId": hex32(k[0]),
                    "validFrom": k[1],
                    "validUntil": k[2],
                    "revokedAt": k[3],
                }
                for a, k in sorted(self._keys.items())
            ],
        }


@dataclass(frozen=True)
class BundleEvent:
    """One event of one log as a bundle carries it."""

    disclosure: Disclosure
    commitment: bytes
    event_time: int
    agent: str
    signature: bytes
    leaf_index: int | None
    inclusion_proof: tuple[bytes, ...] | None
    erased: bool = False  # the courier destroyed the fields and salts: nothing to reveal

    @property
    def anchored(self) -> bool:
        return self.inclusion_proof is not None


@dataclass(frozen=True)
class EarlierCheckpoint:
    """An earlier anchored checkpoint of the same log, with the RFC 9162 consistency proof
    from it to the bundle's checkpoint: evidence that the events below its size were anchored
    no later than it was."""

    size: int
    root: bytes
    consistency_proof: tuple[bytes, ...]


@dataclass(frozen=True)
class BundleLog:
    """The part of a bundle that concerns one courier log."""

    log_id: bytes
    shipment: bytes
    checkpoint_size: int
    checkpoint_root: bytes
    events: tuple[BundleEvent, ...]
    earlier: tuple[EarlierCheckpoint, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A parsed, well-formed version-1 proof bundle."""

    chain_id: int
    ledger: str
    logs: tuple[BundleLog, ...]


@dataclass(frozen=True)
class Check:
    """The outcome of one verification step; ``skipped`` when it needed the chain offline."""

    name: str
    subject: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass
class Report:
    """Every check a verification ran, in order."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def skipped(self) -> list[Check]:
        """Checks that could not run (offline: nothing read from the chain)."""
        return [c for c in self.checks if c.skipped]

    def add(self, name: str, subject: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, subject, ok, detail))

    def skip(self, name: str, subject: str, detail: str) -> None:
        self.checks.append(Check(name, subject, True, detail, skipped=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "complete": not self.skipped,
            "checks": [
                {"name": c.name, "subject": c.subject, "ok": c.ok, "detail": c.detail}
                | ({"skipped": True} if c.skipped else {})
                for c in self.checks
            ],
        }


# --- encoding helpers -----------------------------------------------------------------------


def hex32(value: bytes) -> str:
    """Encode 32 bytes as 0x-prefixed lower-case hex."""
    return "0x" + value.hex()


def _expect_keys(
    obj: object, where: str, required: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be an object")
    missing = required - obj.keys()
    if missing:
        raise FormatError(f"{where} lacks {', '.join(sorted(missing))}")
    extra = obj.keys() - required - optional
    if extra:
        raise TrailingGarbageError(f"{where} has unknown keys {', '.join(sorted(extra))}")
    return obj


def _int(value: object, where: str, *, bits: int = 64) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise FormatError(f"{where} must be an integer in [0, 2^{bits})")
    return value


def _list(value: object, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{where} must be a list")
    if len(value) > limit:
        raise FormatError(f"{where} has {len(value)} entries, at most {limit} allowed")
    return value


# --- parsing --------------------------------------------------------------------------------

_EVENT_KEYS = {
    "sequence",
    "previous",
    "commitment",
    "revealed",
    "withheld",
    "eventTime",
    "agent",
    "signature",
    "leafIndex",
    "inclusionProof",
}


def _parse_event(obj: object, where: str, log_id: bytes, shipment: bytes) -> BundleEvent:
    o = _expect_keys(obj, where, _EVENT_KEYS, frozenset({"erased"}))
    erased = "erased" in o
    if erased and o["erased"] is not True:
        raise FormatError(f"{where}.erased must be true when present")
    revealed = tuple(
        FieldOpening.from_json(f) for f in _list(o["revealed"], f"{where}.revealed", 64)
    )
    withheld = tuple(
        parse_hex(d, f"{where}.withheld[{i}]", 32)
        for i, d in enumerate(_list(o["withheld"], f"{where}.withheld", 64))
    )
    if erased and (revealed or withheld):
        raise FormatError(f"{where}: an erased event reveals no field and withholds no digest")
    disclosure = Disclosure(
        log_id=log_id,
        shipment=shipment,
        sequence=_int(o["sequence"], f"{where}.sequence"),
        previous=parse_hex(o["previous"], f"{where}.previous", 32),
        revealed=revealed,
        withheld=withheld,
    )
    proof_obj = o["inclusionProof"]
    if proof_obj is None:
        if o["leafIndex"] is not None:
            raise FormatError(f"{where}: leafIndex without inclusionProof")
        leaf_index, proof = None, None
    else:
        leaf_index = _int(o["leafIndex"], f"{where}.leafIndex")
        proof = tuple(
            parse_hex(h, f"{where}.inclusionProof[{i}]", 32)
            for i, h in enumerate(_list(proof_obj, f"{where}.inclusionProof", MAX_PROOF))
        )
    return BundleEvent(
        disclosure=disclosure,
        commitment=parse_hex(o["commitment"], f"{where}.commitment", 32),
        event_time=_int(o["eventTime"], f"{where}.eventTime"),
        agent=parse_address(o["agent"], f"{where}.agent"),
        signature=parse_hex(o["signature"], f"{where}.signature", 65),
        leaf_index=leaf_index,
        inclusion_proof=proof,
        erased=erased,
    )


def parse_bundle(obj: object) -> Bundle:
    """Parse a decoded JSON bundle strictly; raise :class:`FormatError` on anything off."""
    o = _expect_keys(obj, "bundle", {"format", "version", "chain", "logs"})
    if o["format"] != FORMAT:
        raise FormatError(f"bundle.format must be {FORMAT!r}")
    if type(o["version"]) is not int or o["version"] != VERSION:
        raise FormatError(f"unsupported bundle version {o['version']!r}, this verifier reads 1")
    chain = _expect_keys(o["chain"], "bundle.chain", {"chainId", "ledger"})
    logs = []
    seen: set[bytes] = set()
    for i, lo in enumerate(_list(o["logs"], "bundle.logs", MAX_LOGS)):
        where = f"bundle.logs[{i}]"
        lg = _expect_keys(
            lo, where, {"logId", "shipment", "checkpoint", "events"}, frozenset({"earlier"})
        )
        log_id = parse_hex(lg["logId"], f"{where}.logId", 32)
        if log_id in seen:
            raise FormatError(f"{where}: log {hex32(log_id)} appears twice")
        seen.add(log_id)
        shipment = parse_hex(lg["shipment"], f"{where}.shipment", 32)
        cp = _expect_keys(lg["checkpoint"], f"{where}.checkpoint", {"size", "root"})
        events = tuple(
            _parse_event(e, f"{where}.events[{j}]", log_id, shipment)
            for j, e in enumerate(_list(lg["events"], f"{where}.events", MAX_EVENTS_PER_LOG))
        )
        if not events:
            raise FormatError(f"{where} has no events")
        size = _int(cp["size"], f"{where}.checkpoint.size")
        logs.append(
            BundleLog(
                log_id=log_id,
                shipment=shipment,
                checkpoint_size=size,
                checkpoint_root=parse_hex(cp["root"], f"{where}.checkpoint.root", 32),
                events=events,
                earlier=_parse_earlier(lg.get("earlier", []), f"{where}.earlier", size),
            )
        )
    if not logs:
        raise FormatError("bundle.logs is empty")
    return Bundle(
        chain_id=_int(chain["chainId"], "bundle.chain.chainId"),
        ledger=parse_address(chain["ledger"], "bundle.chain.ledger"),
        logs=tuple(logs),
    )


def _parse_earlier(obj: object, where: str, size: int) -> tuple[EarlierCheckpoint, ...]:
    found: list[EarlierCheckpoint] = []
    for i, item in enumerate(_list(obj, where, MAX_LOGS)):
        e = _expect_keys(item, f"{where}[{i}]", {"size", "root", "consistencyProof"})
        earlier = EarlierCheckpoint(
            size=_int(e["size"], f"{where}[{i}].size"),
            root=parse_hex(e["root"], f"{where}[{i}].root", 32),
            consistency_proof=tuple(
                parse_hex(h, f"{where}[{i}].consistencyProof[{j}]", 32)
                for j, h in enumerate(_list(e["consistencyProof"], f"{where}[{i}]", MAX_PROOF))
            ),
        )
        if not 0 < earlier.size < size or (found and earlier.size <= found[-1].size):
            raise FormatError(f"{where}[{i}].size must grow and stay below the checkpoint's")
        found.append(earlier)
    return tuple(found)


def bundle_to_json(bundle: Bundle) -> dict[str, Any]:
    """Serialise a bundle to its JSON object form (inverse of :func:`parse_bundle`)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "chain": {"chainId": bundle.chain_id, "ledger": bundle.ledger},
        "logs": [
            {
                "logId": hex32(lg.log_id),
                "shipment": hex32(lg.shipment),
                "checkpoint": {"size": lg.checkpoint_size, "root": hex32(lg.checkpoint_root)},
                "events": [_event_to_json(e) for e in lg.events],
            }
            | (
                {
                    "earlier": [
                        {
                            "size": e.size,
                            "root": hex32(e.root),
                            "consistencyProof": [hex32(h) for h in e.consistency_proof],
                        }
                        for e in lg.earlier
                    ]
                }
                if lg.earlier
                else {}
            )
            for lg in bundle.logs
        ],
    }


def _event_to_json(e: BundleEvent) -> dict[str, Any]:
    d = e.disclosure
    if e.erased and (d.revealed or d.withheld):
        raise FormatError(f"erased event #{d.sequence} must reveal and withhold nothing")
    erased: dict[str, Any] = {"erased": True} if e.erased else {}
    return {
        "sequence": d.sequence,
        "previous": hex32(d.previous),
        "commitment": hex32(e.commitment),
        "revealed": [f.to_json() for f in d.revealed],
        "withheld": [hex32(w) for w in d.withheld],
        "eventTime": e.event_time,
        "agent": e.agent,
        "signature": "0x" + e.signature.hex(),
        "leafIndex": e.leaf_index,
        "inclusionProof": None
        if e.inclusion_proof is None
        else [hex32(h) for h in e.inclusion_proof],
    } | erased


# --- verification ---------------------------------------------------------------------------


OFFLINE = "offline: not read from the chain"
PENDING = "pending: not yet in an anchored checkpoint, so nothing on chain vouches for it yet"
ERASED = (
    "erased: the courier destroyed this event's fields and salts (crypto-shredding), so what "
    "it committed to can no longer be shown"
)


class _Remembered:
    """A :class:`LedgerView` that asks ``ledger`` each distinct question once, for the span of
    one verification (events often share an agent, a time or a checkpoint)."""

    def __init__(self, ledger: LedgerView) -> None:
        self._ledger = ledger
        self._roots: dict[tuple[bytes, int], bytes] = {}
        self._valid: dict[tuple[bytes, str, int], bool] = {}

    @property
    def chain_id(self) -> int:
        return self._ledger.chain_id

    @property
    def address(self) -> str:
        return self._ledger.address

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        key = (courier_id, size)
        if key not in self._roots:
            self._roots[key] = self._ledger.checkpoint_root(courier_id, size)
        return self._roots[key]

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        key = (courier_id, agent.lower(), at)
        if key not in self._valid:
            self._valid[key] = self._ledger.is_agent_key_valid(courier_id, agent, at)
        return self._valid[key]


def verify_bundle(bundle: Bundle | Mapping[str, Any], ledger: LedgerView | None) -> Report:
    """Run every check of a bundle against ``ledger``; never raises on a failed check.

    With ``ledger=None`` (offline) every check that needs the chain is reported as skipped.
    Malformed input raises :class:`FormatError`; an unreachable ledger propagates its
    :class:`~parcelproof.core.errors.ChainError` (nothing can be concluded then).
    """
    b = bundle if isinstance(bundle, Bundle) else parse_bundle(bundle)
    ledger = None if ledger is None else _Remembered(ledger)
    report = Report()
    subject = f"chain {b.chain_id} contract {b.ledger}"
    if ledger is None:
        report.skip("ledger", subject, OFFLINE)
    else:
        same = b.chain_id == ledger.chain_id and b.ledger.lower() == ledger.address.lower()
        detail = "" if same else f"verifier reads chain {ledger.chain_id} at {ledger.address}"
        report.add("ledger", subject, same, detail)
    domain = eip712.Domain(chain_id=b.chain_id, verifying_contract=b.ledger)
    commitments: set[bytes] = set()
    for lg in b.logs:
        _verify_log(lg, domain, ledger, report)
        commitments.update(e.commitment for e in lg.events)
    _verify_handoffs(b, commitments, domain, ledger, report)
    return report


def _verify_log(
    lg: BundleLog, domain: eip712.Domain, ledger: LedgerView | None, report: Report
) -> None:
    log = hex32(lg.log_id)[:18] + "…"
    if ledger is None:
        report.skip("checkpoint", f"log {log} size {lg.checkpoint_size}", OFFLINE)
    else:
        try:
            anchored_root = ledger.checkpoint_root(lg.log_id, lg.checkpoint_size)
            ok = anchored_root == lg.checkpoint_root
            detail = "" if ok else f"ledger holds {hex32(anchored_root)} for that size"
        except ContractRevertError as e:
            ok, detail = False, str(e)
        report.add("checkpoint", f"log {log} size {lg.checkpoint_size}", ok, detail)
    for earlier in lg.earlier:
        _verify_earlier(lg, earlier, log, ledger, report)

    previous = ZERO32
    expected_seq = 0
    for ev in lg.events:
        d = ev.disclosure
        subject = f"log {log} event #{d.sequence}"
        linked = d.sequence == expected_seq and d.previous == previous
        report.add(
            "hash-chain",
            subject,
            linked,
            "" if linked else f"expected sequence {expected_seq} after {hex32(previous)[:18]}…",
        )
        previous, expected_seq = ev.commitment, d.sequence + 1
        if ev.erased:
            report.skip("commitment", subject, ERASED)
        else:
            _verify_commitment(ev, subject, report)
        signed = eip712.SignedEvent(
            log_id=lg.log_id,
            shipment=lg.shipment,
            sequence=d.sequence,
            commitment=ev.commitment,
            event_time=ev.event_time,
        )
        try:
            eip712.verify_event_signature(domain, signed, ev.signature, ev.agent)
            report.add("signature", subject, True)
        except (VerificationError, FormatError) as e:
            report.add("signature", subject, False, str(e))
        if ledger is None:
            report.skip("agent-key", subject, OFFLINE)
        else:
            valid = ledger.is_agent_key_valid(lg.log_id, ev.agent, ev.event_time)
            report.add(
                "agent-key",
                subject,
                valid,
                "" if valid else f"{ev.agent} was not a valid key of this courier then",
            )
        if ev.inclusion_proof is None or ev.leaf_index is None:
            report.skip("inclusion", subject, PENDING)
            continue
        try:
            merkle.verify_inclusion(
                ev.leaf_index,
                lg.checkpoint_size,
                merkle.leaf_hash(ev.commitment),
                ev.inclusion_proof,
                lg.checkpoint_root,
            )
            report.add("inclusion", subject, True, f"leaf {ev.leaf_index}")
        except (VerificationError, FormatError) as e:
            report.add("inclusion", subject, False, str(e))


def _verify_commitment(ev: BundleEvent, subject: str, report: Report) -> None:
    try:
        ev.disclosure.verify(ev.commitment)
        shown_time = ev.disclosure.fields().get("time", ev.event_time)
        if shown_time != ev.event_time:
            raise VerificationError(
                f"the revealed time {shown_time!r} differs from the signed eventTime"
            )
        report.add("commitment", subject, True)
    except (VerificationError, FormatError) as e:
        report.add("commitment", subject, False, str(e))


def _verify_earlier(
    lg: BundleLog, earlier: EarlierCheckpoint, log: str, ledger: LedgerView | None, report: Report
) -> None:
    subject = f"log {log} size {earlier.size} → {lg.checkpoint_size}"
    if ledger is None:
        report.skip("checkpoint", f"log {log} size {earlier.size}", OFFLINE)
    else:
        try:
            ok = ledger.checkpoint_root(lg.log_id, earlier.size) == earlier.root
            detail = "" if ok else "the ledger holds another root for that size"
        except ContractRevertError as e:
            ok, detail = False, str(e)
        report.add("checkpoint", f"log {log} size {earlier.size}", ok, detail)
    try:
        merkle.verify_consistency(
            earlier.size,
            lg.checkpoint_size,
            earlier.root,
            lg.checkpoint_root,
            earlier.consistency_proof,
        )
        report.add("consistency", subject, True, "the later checkpoint extends the earlier one")
    except (VerificationError, FormatError) as e:
        report.add("consistency", subject, False, str(e))


def _verify_handoffs(
    b: Bundle,
    commitments: set[bytes],
    domain: eip712.Domain,
    ledger: LedgerView | None,
    report: Report,
) -> None:
    for lg in b.logs:
        for ev in lg.events:
            try:
                fields = ev.disclosure.fields()
            except FormatError:
                continue  # already reported by the commitment check
            subject = f"log {hex32(lg.log_id)[:18]}… event #{ev.disclosure.sequence}"
            ref = fields.get("handoff_of")
            if isinstance(ref, str):
                ok = _maybe_hex32(ref) in commitments
                report.add(
                    "handoff", subject, ok, "" if ok else "the offered event is not in the bundle"
                )
            if "counterparty_signature" in fields:
                _verify_countersignature(
                    lg.log_id, lg.shipment, fields, subject, domain, ledger, report
                )


def _verify_countersignature(
    log_id: bytes,
    shipment: bytes,
    fields: Mapping[str, Any],
    subject: str,
    domain: eip712.Domain,
    ledger: LedgerView | None,
    report: Report,
) -> None:
    try:
        signed = handoff.parse(log_id, shipment, str(fields.get("status")), fields)
        if signed is None:
            raise FormatError("a countersignature on an event that is not a handoff")
        signed.verify(domain)
    except (VerificationError, FormatError) as e:
        report.add("handoff-countersignature", subject, False, str(e))
        return
    if ledger is None:
        report.skip("handoff-countersignature", subject, "signature valid; key window " + OFFLINE)
        return
    valid = ledger.is_agent_key_valid(
        signed.counterparty_log, signed.counterparty_agent, signed.handoff.handoff_time
    )
    detail = f"signed by {signed.counterparty_agent} for {hex32(signed.counterparty_log)[:18]}…"
    if not valid:
        detail = f"{signed.counterparty_agent} was not a valid key of the counterparty then"
    report.add("handoff-countersignature", subject, valid, detail)


def _maybe_hex32(value: str) -> bytes | None:
    try:
        return parse_hex(value, "reference", 32)
    except FormatError:
        return None
