"""In-memory store for unit tests; behaves exactly like the SQL store (a shared test checks)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from parcelproof.core.envelope import WrappedKey
from parcelproof.core.errors import ConflictError, FormatError, IndexOutOfRangeError, NotFoundError
from parcelproof.core.merkle import MemoryLog
from parcelproof.service.ports import (
    AnchoredCheckpoint,
    ApiClientRecord,
    CheckpointRecord,
    Clock,
    ErasureRecord,
    EventRecord,
    ShipmentErasedError,
    ShipmentRecord,
    SystemClock,
)

CHECKPOINT_STATUSES = ("sent", "anchored", "confirmed")


class MemoryStore:
    """Keeps one courier's shipments, events, Merkle log and checkpoints in memory."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._shipments: dict[bytes, ShipmentRecord] = {}
        self._refs: dict[str, bytes] = {}  # shipment id -> reference
        self._erasures: dict[str, ErasureRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._by_id: dict[str, EventRecord] = {}
        self._log = MemoryLog()
        self._checkpoints: dict[int, CheckpointRecord] = {}
        self._clients: dict[str, ApiClientRecord] = {}

    # --- shipments and events ---------------------------------------------------------------

    def add_shipment(self, record: ShipmentRecord) -> None:
        with self._lock:
            if record.ref in self._shipments:
                raise ConflictError("a shipment with this tracking number already exists")
            if record.shipment_id in self._refs:
                raise ConflictError(f"shipment id {record.shipment_id} already exists")
            self._shipments[record.ref] = record
            self._refs[record.shipment_id] = record.ref
            self._events[record.shipment_id] = []

    def wrapped_keys(self, not_kid: str) -> list[tuple[str, WrappedKey]]:
        return sorted(
            (r.shipment_id, r.wrapped_key)
            for r in self._shipments.values()
            if r.wrapped_key.kid != not_kid and r.wrapped_key.blob
        )

    def set_wrapped_key(self, shipment_id: str, wrapped: WrappedKey) -> None:
        """Replace a shipment's wrapped data key; an erased shipment keeps no key (no-op)."""
        with self._lock:
            ref = self._refs.get(shipment_id)
            if ref is None:
                raise NotFoundError(f"no shipment {shipment_id} in this log")
            r = self._shipments[ref]
            if not r.erased:
                self._shipments[ref] = replace(r, wrapped_key=wrapped)

    def destroy_data_key(
        self, erasure: ErasureRecord, *, event_count: int, last_commitment: bytes
    ) -> ErasureRecord:
        with self._lock:
            ref = self._refs.get(erasure.shipment_id)
            if ref is None:
                raise NotFoundError(f"no shipment {erasure.shipment_id} in this log")
            existing = self._erasures.get(erasure.shipment_id)
            if existing is not None:
                return existing
            events = self._events[erasure.shipment_id]
            last = events[-1].commitment if events else bytes(32)
            if len(events) != event_count or last != last_commitment:
                raise ConflictError("the shipment got another event while it was being erased")
            r = self._shipments[ref]
            self._shipments[ref] = replace(r, wrapped_key=WrappedKey(r.wrapped_key.kid, b""))
            self._erasures[erasure.shipment_id] = erasure
            return erasure

    def erasure(self, shipment_id: str) -> ErasureRecord | None:
        return self._erasures.get(shipment_id)

    def idle_shipments(self, before: int, limit: int) -> list[ShipmentRecord]:
        with self._lock:
            idle = []
            for r in self._shipments.values():
                events = self._events[r.shipment_id]
                last = max((e.recorded_at for e in events), default=r.created_at)
                if not r.erased and r.shipment_id not in self._erasures and last < before:
                    idle.append((last, r.shipment_id, r))
        return [r for _, _, r in sorted(idle, key=lambda t: (t[0], t[1]))[: max(limit, 0)]]

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None:
        return self._shipments.get(ref)

    def events(self, shipment_id: str) -> list[EventRecord]:
        return list(self._events.get(shipment_id, []))

    def last_event(self, shipment_id: str) -> EventRecord | None:
        events = self._events.get(shipment_id)
        return events[-1] if events else None

    def event_by_id(self, event_id: str) -> EventRecord | None:
        return self._by_id.get(event_id)

    def snapshot(self) -> AbstractContextManager[None]:
        return nullcontext()

    def shipments_by_refs(self, refs: Sequence[bytes]) -> dict[bytes, ShipmentRecord]:
        return {r: self._shipments[r] for r in refs if r in self._shipments}

    def events_by_ids(self, event_ids: Sequence[str]) -> dict[str, EventRecord]:
        return {i: self._by_id[i] for i in event_ids if i in self._by_id}

    def last_events(self, shipment_ids: Sequence[str]) -> dict[str, EventRecord]:
        return {s: self._events[s][-1] for s in shipment_ids if self._events.get(s)}

    def append_events(self, items: Sequence[tuple[EventRecord, bytes]]) -> list[EventRecord]:
        return self._append_all(items)

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        return self._append_all([(record, leaf_hash)])[0]

    def _append_all(self, items: Sequence[tuple[EventRecord, bytes]]) -> list[EventRecord]:
        with self._lock:
            # Check everything first, so that a refusal leaves nothing appended.
            tips: dict[str, tuple[int, bytes]] = {}
            ids: set[str] = set()
            for record, leaf_hash in items:
                if len(leaf_hash) != 32:
                    raise FormatError("leaf hash must be 32 bytes")
                events = self._events.get(record.shipment_id)
                if events is None:
                    raise NotFoundError(f"no shipment {record.shipment_id} in this log")
                if record.shipment_id in self._erasures:
                    raise ShipmentErasedError(
                        "the shipment's details were erased: no event can be recorded for it"
                    )
                count, previous = tips.get(
                    record.shipment_id,
                    (len(events), events[-1].commitment if events else bytes(32)),
                )
                if record.sequence != count or record.previous != previous:
                    raise ConflictError(
                        f"sequence {record.sequence} of this shipment is already taken"
                    )
                if record.event_id in self._by_id or record.event_id in ids:
                    raise ConflictError(f"event {record.event_id} already exists")
                ids.add(record.event_id)
                tips[record.shipment_id] = (count + 1, record.commitment)
            return [self._append(r, h) for r, h in items]

    def _append(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        stored = replace(record, leaf_index=self._log.append_leaf_hash(leaf_hash))
        self._events[record.shipment_id].append(stored)
        self._by_id[stored.event_id] = stored
        return stored

    # --- log --------------------------------------------------------------------------------

    def log_size(self) -> int:
        return len(self._log)

    def node(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0:
            raise IndexOutOfRangeError(f"no subtree at level {level} index {index}")
        return self._log.node(level, index)

    def nodes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.node(level, index) for level, index in coords]

    # --- checkpoints ------------------------------------------------------------------------

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        with self._lock:
            now = self._clock.now()
            row = self._checkpoints.get(checkpoint.size)
            if row is None:
                self._checkpoints[checkpoint.size] = CheckpointRecord(
                    size=checkpoint.size,
                    root=checkpoint.root,
                    status="anchored",
                    tx_hash=checkpoint.tx_hash,
                    block_number=checkpoint.block_number,
                    nonce=None,
                    created_at=now,
                    updated_at=now,
                )
                return
            if row.root != checkpoint.root:
                raise ConflictError(f"checkpoint of size {row.size} has another root")
            self._checkpoints[row.size] = replace(
                row,
                status="anchored" if row.status == "sent" else row.status,
                tx_hash=checkpoint.tx_hash or row.tx_hash,
                block_number=checkpoint.block_number or row.block_number,
                updated_at=now,
            )

    def latest_checkpoint(self) -> AnchoredCheckpoint | None:
        anchored = [c for c in self._checkpoints.values() if c.status != "sent"]
        return max(anchored, key=lambda c: c.size).anchored() if anchored else None

    def mark_checkpoint(self, size: int, status: str, block_number: int | None = None) -> None:
        if status not in CHECKPOINT_STATUSES:
            raise FormatError(f"checkpoint status {status!r} is not one of {CHECKPOINT_STATUSES}")
        with self._lock:
            row = self._checkpoints.get(size)
            if row is None:
                raise NotFoundError(f"no checkpoint of size {size}")
            block = None if status == "sent" else (block_number or row.block_number)
            self._checkpoints[size] = replace(
                row, status=status, block_number=block, updated_at=self._clock.now()
            )

    def landed_checkpoints(
        self, leaf_indices: Sequence[int], at_most: int | None = None
    ) -> list[CheckpointRecord]:
        landed = [
            c
            for c in self.checkpoints()
            if c.status != "sent" and (at_most is None or c.size <= at_most)
        ]
        confirmed = [c for c in landed if c.status == "confirmed"]
        cited = {c.size: c for c in (landed[-1:] + confirmed[-1:])}
        for leaf in leaf_indices:
            first = next((c for c in landed if c.size > leaf), None)
            if first is not None:
                cited[first.size] = first
        return [cited[size] for size in sorted(cited)]

    def checkpoints(self, status: str | None = None) -> list[CheckpointRecord]:
        if status is not None and status not in CHECKPOINT_STATUSES:
            raise FormatError(f"checkpoint status {status!r} is not one of {CHECKPOINT_STATUSES}")
        rows = sorted(self._checkpoints.values(), key=lambda c: c.size)
        return [c for c in rows if status is None or c.status == status]

    # --- the staff console's reads ----------------------------------------------------------

    def shipment_count(self) -> int:
        return len(self._shipments)

    def newest_shipments(self, offset: int, limit: int) -> list[ShipmentRecord]:
        rows = sorted(self._shipments.values(), key=lambda r: (r.created_at, r.shipment_id))
        rows.reverse()
        return rows[max(offset, 0) :][: max(limit, 0)]

    def event_at_leaf(self, leaf_index: int) -> EventRecord | None:
        return next((e for e in self._by_id.values() if e.leaf_index == leaf_index), None)

    def newest_checkpoints(self, limit: int) -> list[CheckpointRecord]:
        return self.checkpoints()[::-1][: max(limit, 0)]

    # --- API clients ------------------------------------------------------------------------

    def add_api_client(
        self, client_id: str, name: str, secret_hash: bytes, scopes: Sequence[str]
    ) -> ApiClientRecord:
        with self._lock:
            if client_id in self._clients:
                raise ConflictError(f"API client {client_id} already exists")
            record = ApiClientRecord(
                client_id=client_id,
                name=name,
                secret_hash=secret_hash,
                scopes=tuple(sorted(set(scopes))),
                created_at=self._clock.now(),
                revoked_at=None,
            )
            self._clients[client_id] = record
            return record

    def api_client(self, client_id: str) -> ApiClientRecord | None:
        return self._clients.get(client_id)

    def revoke_api_client(self, client_id: str) -> None:
        with self._lock:
            record = self._clients.get(client_id)
            if record is None:
                raise NotFoundError(f"no API client {client_id}")
            if record.revoked_at is None:
                self._clients[client_id] = replace(record, revoked_at=self._clock.now())
