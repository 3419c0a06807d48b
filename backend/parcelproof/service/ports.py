"""Ports the services depend on: ledger, store and clock protocols plus the stored records."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parcelproof.core.envelope import WrappedKey


@dataclass(frozen=True)
class ShipmentRecord:
    """A shipment as stored: nothing in clear but the HMAC reference."""

    shipment_id: str
    ref: bytes
    wrapped_key: WrappedKey
    sealed_details: bytes
    sealed_factor: bytes
    created_at: int


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


class LedgerPort(Protocol):
    """What a courier node needs from the ParcelLedger client."""

    @property
    def chain_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes: ...

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool: ...

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: Any
    ) -> Any: ...


class Store(Protocol):
    """Shipments, events and the courier's Merkle log."""

    def add_shipment(self, record: ShipmentRecord) -> None: ...

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None: ...

    def events(self, shipment_id: str) -> list[EventRecord]:
        """The shipment's events ordered by sequence."""
        ...

    def event_by_id(self, event_id: str) -> EventRecord | None: ...

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        """Atomically append: the record's sequence must be the shipment's next and its
        previous the last commitment (else ConflictError); the store assigns the leaf index
        (the log's size), stores the leaf and every completed subtree hash, and returns the
        record with its leaf index. ``record.leaf_index`` is ignored on input."""
        ...

    def log_size(self) -> int: ...

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree at (level, index); level 0 are leaf hashes."""
        ...

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None: ...

    def latest_checkpoint(self) -> AnchoredCheckpoint | None: ...


class Clock(Protocol):
    """Source of the current Unix time in seconds."""

    def now(self) -> int: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> int:
        return int(time.time())
