"""Ports the services depend on: ledger, store and clock protocols plus the stored records."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from parcelproof.core.bundle import LedgerView
from parcelproof.core.envelope import WrappedKey
from parcelproof.core.errors import ConflictError


class ShipmentErasedError(ConflictError):
    """The shipment's data key was destroyed (crypto-shredding): its details, second factors
    and event fields are gone for good, and nothing more can be recorded for it."""


@dataclass(frozen=True)
class ShipmentRecord:
    """A shipment as stored: nothing in clear but the HMAC reference."""

    shipment_id: str
    ref: bytes
    wrapped_key: WrappedKey
    sealed_details: bytes
    sealed_factor: bytes
    created_at: int

    @property
    def erased(self) -> bool:
        """Whether the data key was destroyed (a store reads it back as an empty blob)."""
        return not self.wrapped_key.blob


@dataclass(frozen=True)
class ErasureRecord:
    """A crypto-shredded shipment: when, why, and the signed receipt (canonical JSON)."""

    shipment_id: str
    erased_at: int
    reason: str
    receipt: str


@dataclass(frozen=True)
class EventRecord:
    """One recorded event: its commitment and signature, fields and salts sealed."""

    event_id: str
    shipment_id: str
    sequence: int
    previous: bytes
    commitment: bytes
    leaf_index: int
    event_time: int
    agent: str
    signature: bytes
    sealed_openings: bytes
    recorded_at: int
    request_digest: bytes = b""  # SHA-256 of the canonical request, for idempotent replays


@dataclass(frozen=True)
class AnchoredCheckpoint:
    """A checkpoint of this node's log as the ledger accepted it."""

    size: int
    root: bytes
    block_number: int | None
    tx_hash: bytes | None


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint with the anchoring worker's bookkeeping.

    ``status`` moves ``sent`` (transaction broadcast) → ``anchored`` (mined) → ``confirmed``
    (deep enough); a reorg may move it back to ``sent``.
    """

    size: int
    root: bytes
    status: str
    tx_hash: bytes | None
    block_number: int | None
    nonce: int | None
    created_at: int
    updated_at: int

    def anchored(self) -> AnchoredCheckpoint:
        """The port's view of this checkpoint."""
        return AnchoredCheckpoint(
            size=self.size, root=self.root, block_number=self.block_number, tx_hash=self.tx_hash
        )


@dataclass(frozen=True)
class ApiClientRecord:
    """A machine client of the node's API: its secret only as a hash."""

    client_id: str
    name: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ChainCheckpoint(Protocol):
    """A checkpoint as the ledger reports it."""

    @property
    def size(self) -> int: ...

    @property
    def root(self) -> bytes: ...

    @property
    def block_number(self) -> int | None: ...

    @property
    def tx_hash(self) -> bytes | None: ...


class LedgerPort(LedgerView, Protocol):
    """What a courier node needs from the ParcelLedger client: the bundle verifier's reads
    plus anchoring."""

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: Any
    ) -> ChainCheckpoint: ...

    def latest_checkpoint(self, courier_id: bytes) -> ChainCheckpoint | None: ...

    def checkpoints(self, courier_id: bytes, from_block: int = 0) -> Sequence[ChainCheckpoint]: ...

    def block_number(self) -> int: ...


class Store(Protocol):
    """Shipments, events and the courier's Merkle log."""

    def add_shipment(self, record: ShipmentRecord) -> None: ...

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None: ...

    def events(self, shipment_id: str) -> list[EventRecord]:
        """The shipment's events ordered by sequence."""
        ...

    def last_event(self, shipment_id: str) -> EventRecord | None:
        """The shipment's latest event, without loading the others."""
        ...

    def event_by_id(self, event_id: str) -> EventRecord | None: ...

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        """Atomically append: the record's sequence must be the shipment's next and its
        previous the last commitment (else ConflictError; NotFoundError for a shipment not
        in this log; ShipmentErasedError for an erased one); the store assigns the leaf index
        (the log's size), stores the leaf and every completed subtree hash, and returns the
        record with its leaf index. ``record.leaf_index`` is ignored on input."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """A block whose reads share one read transaction (a lookup's dozen reads: one
        connection, one consistent view)."""
        ...

    def shipments_by_refs(self, refs: Sequence[bytes]) -> dict[bytes, ShipmentRecord]:
        """The shipments of these references that exist in this log, by reference."""
        ...

    def events_by_ids(self, event_ids: Sequence[str]) -> dict[str, EventRecord]:
        """The events of these ids that exist in this log, by id."""
        ...

    def last_events(self, shipment_ids: Sequence[str]) -> dict[str, EventRecord]:
        """The latest event of each of these shipments that has one, by shipment id."""
        ...

    def landed_checkpoints(
        self, leaf_indices: Sequence[int], at_most: int | None = None
    ) -> list[CheckpointRecord]:
        """What a view of these leaves cites, by increasing size, among the landed (anchored
        or confirmed) checkpoints of size at most ``at_most``: the latest, the latest
        confirmed, and for each leaf the first that includes it. A few indexed reads,
        however many checkpoints the log has."""
        ...

    def append_events(self, items: Sequence[tuple[EventRecord, bytes]]) -> list[EventRecord]:
        """Append many ``(record, leaf hash)`` in order, all or none, with the checks of
        :meth:`append_event` (each record seeing the ones before it); returns the records
        with their leaf indices."""
        ...

    def destroy_data_key(
        self, erasure: ErasureRecord, *, event_count: int, last_commitment: bytes
    ) -> ErasureRecord:
        """Crypto-shred a shipment: in one transaction, destroy its wrapped data key and
        record ``erasure``; return what is stored. Idempotent: a shipment already erased keeps
        its first record, which is returned. ConflictError if the shipment's hash chain is no
        longer at ``event_count`` events ending in ``last_commitment`` (the receipt would be
        stale); NotFoundError for a shipment not in this log. Appends serialise with it: no
        event is appended to an erased shipment (ShipmentErasedError)."""
        ...

    def erasure(self, shipment_id: str) -> ErasureRecord | None:
        """The shipment's erasure record, if its keys were destroyed."""
        ...

    def idle_shipments(self, before: int, limit: int) -> list[ShipmentRecord]:
        """Up to ``limit`` shipments not erased whose last activity (the latest event
        recorded, or the creation when there is none) lies before ``before``, oldest first."""
        ...

    def log_size(self) -> int: ...

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree at (level, index); level 0 are leaf hashes."""
        ...

    def nodes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        """Many subtree hashes in one read."""
        ...

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        """Record a checkpoint the ledger accepted (status anchored); idempotent per size."""
        ...

    def latest_checkpoint(self) -> AnchoredCheckpoint | None:
        """The anchored or confirmed checkpoint of greatest size."""
        ...

    def mark_checkpoint(self, size: int, status: str, block_number: int | None = None) -> None: ...

    def checkpoints(self, status: str | None = None) -> list[CheckpointRecord]:
        """Checkpoints by increasing size, all or those with ``status``."""
        ...

    # --- the staff console's reads (api/console_routes.py) ---

    def shipment_count(self) -> int:
        """How many shipments this log holds (erased ones included)."""
        ...

    def newest_shipments(self, offset: int, limit: int) -> list[ShipmentRecord]:
        """A page of shipments, newest first (by creation time, then shipment id)."""
        ...

    def event_at_leaf(self, leaf_index: int) -> EventRecord | None:
        """The event stored at this leaf of the log, if any."""
        ...

    def newest_checkpoints(self, limit: int) -> list[CheckpointRecord]:
        """Up to ``limit`` checkpoints of any status, largest first."""
        ...


class Clock(Protocol):
    """Source of the current Unix time in seconds."""

    def now(self) -> int: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> int:
        return int(time.time())


class AuditSink(Protocol):
    """Where privileged actions and reads of personal data are recorded (the node's
    hash-chained audit log, :class:`parcelproof.service.audit.AuditLog`)."""

    def record(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: Mapping[str, str | int | bool | None] | None = None,
    ) -> object: ...


class ChainAgentKey(Protocol):
    """An agent key registration as the ParcelLedger contract stores it."""

    @property
    def courier_id(self) -> bytes: ...

    @property
    def valid_from(self) -> int: ...

    @property
    def valid_until(self) -> int: ...

    @property
    def revoked_at(self) -> int | None: ...
