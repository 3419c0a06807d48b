"""Disputes: a customer (with their parcel's capability) or a courier principal disputes events
of a parcel; the ledger records the dispute as hashes; a dispute resolver assigns, comments and
resolves it with an outcome whose hash goes on chain. Every step is audited.

On chain (``openDispute(disputeId, courierId, subjectHash, evidenceHash)`` and
``resolveDispute(disputeId, outcomeHash)``), with ``JCS`` the RFC 8785 canonical JSON, hashes
as ``0x``-prefixed lower-case hex and ``SHA-256`` of UTF-8 bytes::

    disputeId    = 32 random bytes
    subjectHash  = SHA-256(JCS({"disputeId", "courierId", "events": [{"logId", "sequence",
                                "commitment"}, …], "reason", "noteHash", "salt"}))
    evidenceHash = SHA-256(JCS({"disputeId", "timeline", "bundle"}))
    outcomeHash  = SHA-256(JCS({"disputeId", "outcome", "summaryHash"}))

``events`` are the disputed events in (logId, sequence) order with their commitments (the
leaves of the courier's log); ``noteHash`` is SHA-256 of the opener's free-text note or
``null``; ``salt`` 32 random bytes kept off chain, so the low-entropy reason code cannot be
guessed from the hash. The evidence document is the dispute bundle (every field revealed, with
its proofs) at opening, kept sealed so it can be checked against ``evidenceHash``.
``summaryHash`` is SHA-256 of the resolver's summary. Anyone holding the outcome report
(dispute id, outcome, summary) recomputes ``outcomeHash`` and compares it with
``dispute(disputeId).outcomeHash`` on the ledger (:func:`outcome_hash`).

The tracking number (needed to assemble the bundle again), the evidence snapshot, notes and the
summary are sealed under the node's key-encryption keyring (AES-256-GCM, a data key per value,
bound to the dispute id and purpose), like staff TOTP secrets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import rfc8785
from eth_account.signers.local import LocalAccount

from parcelproof.core import envelope
from parcelproof.core.bundle import LedgerView, hex32
from parcelproof.core.errors import ConflictError, FormatError, NotFoundError
from parcelproof.service.audit import AuditAction
from parcelproof.service.lookup import LookupResult, dispute_bundle, lookup
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import AuditSink, Clock, SystemClock

__all__ = [
    "CUSTOMER_ACTOR",
    "OUTCOMES",
    "REASONS",
    "DisputeDesk",
    "DisputeLedger",
    "DisputeNote",
    "DisputeRecord",
    "DisputeStore",
    "DisputeView",
    "DisputedEvent",
    "claim_document",
    "evidence_document",
    "outcome_hash",
    "parse_dispute_id",
    "sha256_text",
]

#: Why a dispute is opened (a fixed list: free text goes in the sealed note).
REASONS: Final = ("not-delivered", "damaged", "wrong-place", "late", "other")
#: How a resolver ends a dispute.
OUTCOMES: Final = ("upheld", "rejected", "settled")
OPEN, ASSIGNED, RESOLVED = "open", "assigned", "resolved"
#: The audit actor of a customer who opened a dispute with their parcel's capability.
CUSTOMER_ACTOR: Final = "customer"
#: At most this many events per dispute; notes and summaries at most this many characters.
MAX_EVENTS: Final = 64
MAX_TEXT: Final = 4000
NO_RESOLVER_MESSAGE: Final = (
    "this node has no resolver account: set PARCELPROOF_RESOLVER_KEY to an account the "
    "consortium granted the resolver role (`parcelproof consortium grant-resolver`)"
)


@dataclass(frozen=True)
class DisputedEvent:
    """One disputed event: its log, sequence within the shipment, and commitment (leaf)."""

    log_id: bytes
    sequence: int
    commitment: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "logId": hex32(self.log_id),
            "sequence": self.sequence,
            "commitment": hex32(self.commitment),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DisputedEvent:
        return cls(
            bytes.fromhex(str(obj["logId"])[2:]),
            int(obj["sequence"]),
            bytes.fromhex(str(obj["commitment"])[2:]),
        )


@dataclass(frozen=True)
class DisputeRecord:
    """A dispute as this node keeps it (sealed values stay sealed here)."""

    dispute_id: bytes
    log_id: bytes
    shipment_id: str
    tracking_sealed: bytes
    events: tuple[DisputedEvent, ...]
    reason: str
    claim_salt: bytes
    note_hash: bytes | None
    subject_hash: bytes
    evidence_hash: bytes
    evidence_sealed: bytes
    state: str
    opened_by: str
    opened_at: int
    open_tx_hash: bytes
    open_block: int
    assignee: str | None = None
    outcome: str | None = None
    summary_sealed: bytes | None = None
    summary_hash: bytes | None = None
    outcome_hash: bytes | None = None
    resolved_by: str | None = None
    resolved_at: int | None = None
    resolve_tx_hash: bytes | None = None
    resolve_block: int | None = None

    def claim(self) -> dict[str, Any]:
        """The claim document whose hash is the on-chain ``subjectHash``."""
        return claim_document(
            self.dispute_id, self.log_id, self.events, self.reason, self.note_hash, self.claim_salt
        )


@dataclass(frozen=True)
class DisputeNote:
    """A sealed note: the opener's statement (``claim``) or a resolver's ``comment``."""

    note_id: str
    dispute_id: bytes
    kind: str
    author: str
    created_at: int
    sealed: bytes


class DisputeStore(Protocol):
    """Storage of one courier log's disputes (SQL: :class:`~parcelproof.store.disputes_sql.
    SqlDisputeStore`). Each method is one transaction."""

    def add(self, record: DisputeRecord, note: DisputeNote | None) -> None: ...

    def get(self, dispute_id: bytes) -> DisputeRecord | None: ...

    def newest(self, limit: int) -> list[DisputeRecord]:
        """The newest ``limit`` disputes, newest first."""
        ...

    def transition(
        self, dispute_id: bytes, states: Sequence[str], changes: Mapping[str, Any]
    ) -> DisputeRecord:
        """Apply ``changes`` if the dispute's state is one of ``states`` (atomically);
        NotFoundError for an unknown dispute, ConflictError naming the state otherwise."""
        ...

    def add_note(self, note: DisputeNote, states: Sequence[str]) -> None:
        """Add ``note`` if the dispute's state is one of ``states`` (as :meth:`transition`)."""
        ...

    def notes(self, dispute_id: bytes) -> list[DisputeNote]:
        """The dispute's notes, oldest first."""
        ...


class DisputeLedger(LedgerView, Protocol):
    """What the desk needs from the ledger client: the view bundles are verified against,
    and the two dispute transactions."""

    def open_dispute(
        self,
        dispute_id: bytes,
        courier_id: bytes,
        subject_hash: bytes,
        evidence_hash: bytes,
        *,
        sender: LocalAccount,
    ) -> Any: ...

    def resolve_dispute(
        self, dispute_id: bytes, outcome_hash: bytes, *, sender: LocalAccount
    ) -> Any: ...


# --- the documented formulas ----------------------------------------------------------------


def sha256_text(text: str) -> bytes:
    """SHA-256 of ``text`` as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _jcs_sha256(document: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(document)).digest()


def claim_document(
    dispute_id: bytes,
    courier_id: bytes,
    events: Sequence[DisputedEvent],
    reason: str,
    note_hash: bytes | None,
    salt: bytes,
) -> dict[str, Any]:
    """``{"disputeId", "courierId", "events", "reason", "noteHash", "salt"}``; its JCS
    SHA-256 is the on-chain ``subjectHash``."""
    return {
        "disputeId": hex32(dispute_id),
        "courierId": hex32(courier_id),
        "events": [e.to_json() for e in sorted(events, key=lambda e: (e.log_id, e.sequence))],
        "reason": reason,
        "noteHash": None if note_hash is None else hex32(note_hash),
        "salt": hex32(salt),
    }


def evidence_document(dispute_id: bytes, result: LookupResult) -> dict[str, Any]:
    """``{"disputeId", "timeline", "bundle"}``: the dispute bundle with every field revealed;
    its JCS SHA-256 is the on-chain ``evidenceHash``."""
    return {
        "disputeId": hex32(dispute_id),
        "timeline": [
            {
                "logId": hex32(t.log_id),
                "sequence": t.sequence,
                "eventTime": t.event_time,
                "fields": t.fields,
                "anchoring": t.anchoring,
                "checkpointSize": t.checkpoint_size,
            }
            for t in result.timeline
        ],
        "bundle": result.bundle,
    }


def outcome_hash(dispute_id: bytes, outcome: str, summary: str) -> bytes:
    """``SHA-256(JCS({"disputeId", "outcome", "summaryHash"}))`` with ``summaryHash`` the
    SHA-256 of the summary: the on-chain ``outcomeHash``."""
    return _jcs_sha256(
        {
            "disputeId": hex32(dispute_id),
            "outcome": outcome,
            "summaryHash": hex32(sha256_text(summary)),
        }
    )


# --- the desk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisputeView:
    """A dispute opened for a resolver: the record, its unsealed notes and summary, the
    evidence as committed at opening, and the dispute bundle as it stands now."""

    record: DisputeRecord
    notes: list[tuple[DisputeNote, str]]
    summary: str | None
    evidence: dict[str, Any]
    current: LookupResult


@dataclass
class DisputeDesk:
    """Opens disputes about one courier node's records and runs their workflow.

    ``resolver`` is the account holding the ledger's RESOLVER_ROLE (PARCELPROOF_RESOLVER_KEY);
    without it disputes can be opened, assigned and commented, not resolved.
    """

    node: CourierNode
    ledger: DisputeLedger
    store: DisputeStore
    resolver: LocalAccount | None = None
    audit: AuditSink | None = None
    clock: Clock = field(default_factory=SystemClock)
    rng: Callable[[int], bytes] = secrets.token_bytes

    # --- opening ------------------------------------------------------------------------------

    def open_as_customer(
        self,
        tracking_number: str,
        postcode: str | None,
        access_token: str | None,
        events: Sequence[tuple[bytes, int]],
        reason: str,
        note: str | None,
    ) -> DisputeRecord:
        """Open a dispute with the parcel's capability: tracking number plus a second factor
        (the same NotFoundError as a lookup for a wrong number or factor)."""
        lookup([self.node], self.ledger, tracking_number, postcode, access_token=access_token)
        return self._open(CUSTOMER_ACTOR, tracking_number, events, reason, note)

    def open_as_courier(
        self,
        actor: str,
        tracking_number: str,
        events: Sequence[tuple[bytes, int]],
        reason: str,
        note: str | None,
    ) -> DisputeRecord:
        """Open a dispute for an authorised courier principal (the caller checked it)."""
        return self._open(actor, tracking_number, events, reason, note)

    def _open(
        self,
        actor: str,
        tracking_number: str,
        refs: Sequence[tuple[bytes, int]],
        reason: str,
        note: str | None,
    ) -> DisputeRecord:
        if reason not in REASONS:
            raise FormatError(f"unknown reason {reason!r}: one of {', '.join(REASONS)}")
        if not refs or len(refs) > MAX_EVENTS:
            raise FormatError(f"name between 1 and {MAX_EVENTS} disputed events")
        if note is not None and len(note) > MAX_TEXT:
            raise FormatError(f"the note has more than {MAX_TEXT} characters")
        node = self.node
        shipment_id = node.shipment_id(tracking_number)
        recorded = {(node.courier_id, e.sequence): e for e in node.store.events(shipment_id)}
        events: list[DisputedEvent] = []
        for log_id, sequence in sorted(set(refs)):
            event = recorded.get((log_id, sequence))
            if event is None:
                raise FormatError(
                    f"event {sequence} of log {hex32(log_id)} is not an event of this parcel "
                    "on this courier's log"
                )
            events.append(DisputedEvent(log_id, sequence, event.commitment))
        dispute_id = self.rng(32)
        salt = self.rng(32)
        note_hash = None if note is None else sha256_text(note)
        claim = claim_document(dispute_id, node.courier_id, events, reason, note_hash, salt)
        subject = _jcs_sha256(claim)
        evidence = evidence_document(
            dispute_id, dispute_bundle([node], self.ledger, tracking_number)
        )
        evidence_bytes = bytes(rfc8785.dumps(evidence))
        evidence_hash = hashlib.sha256(evidence_bytes).digest()
        tx = self.ledger.open_dispute(
            dispute_id, node.courier_id, subject, evidence_hash, sender=node.account
        )
        now = self.clock.now()
        record = DisputeRecord(
            dispute_id=dispute_id,
            log_id=node.courier_id,
            shipment_id=shipment_id,
            tracking_sealed=self._seal(dispute_id, "tracking", tracking_number.encode()),
            events=tuple(events),
            reason=reason,
            claim_salt=salt,
            note_hash=note_hash,
            subject_hash=subject,
            evidence_hash=evidence_hash,
            evidence_sealed=self._seal(dispute_id, "evidence", evidence_bytes),
            state=OPEN,
            opened_by=actor,
            opened_at=now,
            open_tx_hash=bytes(tx.tx_hash),
            open_block=int(tx.block_number),
        )
        claim_note = None
        if note is not None:
            claim_note = self._note(dispute_id, "claim", actor, note)
        self.store.add(record, claim_note)
        self._record(
            actor,
            AuditAction.DISPUTE_OPEN,
            shipment_id,
            {
                "dispute_id": hex32(dispute_id),
                "reason": reason,
                "events": len(events),
                "tx_hash": hex32(record.open_tx_hash),
            },
        )
        return record

    # --- reading ------------------------------------------------------------------------------

    def newest(self, limit: int = 100) -> list[DisputeRecord]:
        """The newest disputes (no personal data: ids, codes, states and hashes)."""
        return self.store.newest(limit)

    def get(self, dispute_id: bytes) -> DisputeRecord:
        record = self.store.get(dispute_id)
        if record is None:
            raise NotFoundError("no dispute with this id")
        return record

    def read(self, actor: str, dispute_id: bytes) -> DisputeView:
        """Everything about a dispute for its resolver: notes and summary unsealed, the
        evidence committed at opening, and the full-disclosure bundle as it stands now. The
        read is recorded (``evidence.read``) before anything is handed out."""
        record = self.get(dispute_id)
        tracking = self._open_sealed(dispute_id, "tracking", record.tracking_sealed).decode()
        current = dispute_bundle([self.node], self.ledger, tracking)
        self._record(
            actor,
            AuditAction.EVIDENCE_READ,
            record.shipment_id,
            {"dispute_id": hex32(dispute_id), "events": len(current.timeline)},
        )
        notes = [
            (n, self._open_sealed(dispute_id, f"note.{n.note_id}", n.sealed).decode())
            for n in self.store.notes(dispute_id)
        ]
        summary = None
        if record.summary_sealed is not None:
            summary = self._open_sealed(dispute_id, "summary", record.summary_sealed).decode()
        evidence = json.loads(self._open_sealed(dispute_id, "evidence", record.evidence_sealed))
        return DisputeView(record, notes, summary, evidence, current)

    # --- workflow -----------------------------------------------------------------------------

    def assign(self, actor: str, dispute_id: bytes, assignee: str) -> DisputeRecord:
        """Assign (or re-assign) an open or assigned dispute to a resolver's user id."""
        record = self.store.transition(
            dispute_id, (OPEN, ASSIGNED), {"state": ASSIGNED, "assignee": assignee}
        )
        self._record(
            actor,
            AuditAction.DISPUTE_ASSIGN,
            record.shipment_id,
            {"dispute_id": hex32(dispute_id), "assignee": assignee},
        )
        return record

    def comment(self, actor: str, dispute_id: bytes, text: str) -> DisputeNote:
        """Add a sealed comment to an unresolved dispute."""
        if not text.strip() or len(text) > MAX_TEXT:
            raise FormatError(f"a comment has 1 to {MAX_TEXT} characters")
        record = self.get(dispute_id)
        note = self._note(dispute_id, "comment", actor, text)
        self.store.add_note(note, (OPEN, ASSIGNED))
        self._record(
            actor,
            AuditAction.DISPUTE_COMMENT,
            record.shipment_id,
            {"dispute_id": hex32(dispute_id), "note_id": note.note_id},
        )
        return note

    def resolve(self, actor: str, dispute_id: bytes, outcome: str, summary: str) -> DisputeRecord:
        """Record the outcome of an assigned dispute on the ledger, then here."""
        if outcome not in OUTCOMES:
            raise FormatError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
        if not summary.strip() or len(summary) > MAX_TEXT:
            raise FormatError(f"a summary has 1 to {MAX_TEXT} characters")
        record = self.get(dispute_id)
        if record.state != ASSIGNED:
            raise ConflictError(_state_message(record.state, "resolved"))
        if self.resolver is None:
            raise ConflictError(NO_RESOLVER_MESSAGE)
        digest = outcome_hash(dispute_id, outcome, summary)
        tx = self.ledger.resolve_dispute(dispute_id, digest, sender=self.resolver)
        resolved = self.store.transition(
            dispute_id,
            (ASSIGNED,),
            {
                "state": RESOLVED,
                "outcome": outcome,
                "summary_sealed": self._seal(dispute_id, "summary", summary.encode()),
                "summary_hash": sha256_text(summary),
                "outcome_hash": digest,
                "resolved_by": actor,
                "resolved_at": self.clock.now(),
                "resolve_tx_hash": bytes(tx.tx_hash),
                "resolve_block": int(tx.block_number),
            },
        )
        self._record(
            actor,
            AuditAction.DISPUTE_RESOLVE,
            record.shipment_id,
            {
                "dispute_id": hex32(dispute_id),
                "outcome": outcome,
                "outcome_hash": hex32(digest),
                "tx_hash": hex32(bytes(tx.tx_hash)),
            },
        )
        return resolved

    # --- internals ----------------------------------------------------------------------------

    def _note(self, dispute_id: bytes, kind: str, author: str, text: str) -> DisputeNote:
        # Nanosecond time first, so notes of one second sort in the order they were written.
        note_id = f"{time.time_ns():016x}{self.rng(8).hex()}"
        return DisputeNote(
            note_id=note_id,
            dispute_id=dispute_id,
            kind=kind,
            author=author,
            created_at=self.clock.now(),
            sealed=self._seal(dispute_id, f"note.{note_id}", text.encode()),
        )

    def _record(
        self, actor: str, action: str, target: str, detail: Mapping[str, str | int | None]
    ) -> None:
        if self.audit is not None:  # raises when it cannot record: the step is then refused
            self.audit.record(actor, action, target, dict(detail))

    def _seal(self, dispute_id: bytes, item: str, plaintext: bytes) -> bytes:
        owner = _owner(dispute_id)
        data_key = envelope.new_data_key()
        wrapped = envelope.wrap_data_key(self.node.keyring, data_key, owner)
        sealed = envelope.seal(
            data_key, plaintext, shipment_id=owner, event_id=item, purpose=_PURPOSE
        )
        blob = {"key": wrapped.to_json(), "sealed": base64.b64encode(sealed).decode()}
        return json.dumps(blob, sort_keys=True).encode()

    def _open_sealed(self, dispute_id: bytes, item: str, blob: bytes) -> bytes:
        owner = _owner(dispute_id)
        parsed = json.loads(blob)
        wrapped = envelope.WrappedKey.from_json(parsed["key"])
        data_key = envelope.unwrap_data_key(self.node.keyring, wrapped, owner)
        return envelope.open_sealed(
            data_key,
            base64.b64decode(parsed["sealed"]),
            shipment_id=owner,
            event_id=item,
            purpose=_PURPOSE,
        )


_PURPOSE: Final = "dispute"


def _owner(dispute_id: bytes) -> str:
    return f"dispute-{dispute_id.hex()}"


def _state_message(state: str, wanted: str) -> str:
    if state == RESOLVED:
        return "the dispute is already resolved"
    return f"the dispute is {state}: it can be {wanted} only once assigned to a resolver"


def parse_dispute_id(text: str) -> bytes:
    """A dispute id from its 0x-prefixed hex; NotFoundError for anything else (no oracle)."""
    raw = text.removeprefix("0x")
    if len(raw) != 64:
        raise NotFoundError("no dispute with this id")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise NotFoundError("no dispute with this id") from None
