"""In-memory store for the embedded demo and unit tests; same contract as the SQL store."""

from __future__ import annotations

from dataclasses import replace

from parcelproof.core.errors import ConflictError, FormatError
from parcelproof.core.merkle import MemoryLog
from parcelproof.service.credentials import ApiClient
from parcelproof.service.ports import AnchoredCheckpoint, EventRecord, ShipmentRecord


class MemoryStore:
    """Keeps one courier's shipments, events, Merkle log and checkpoints in memory."""

    def __init__(self) -> None:
        self._shipments: dict[bytes, ShipmentRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._log = MemoryLog()
        self._checkpoints: list[AnchoredCheckpoint] = []
        self._by_id: dict[str, EventRecord] = {}
        self._clients: dict[str, ApiClient] = {}

    def add_shipment(self, record: ShipmentRecord) -> None:
        if record.ref in self._shipments:
            raise ConflictError("a shipment with this tracking number already exists")
        self._shipments[record.ref] = record
        self._events[record.shipment_id] = []

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None:
        return self._shipments.get(ref)

    def events(self, shipment_id: str) -> list[EventRecord]:
        return list(self._events.get(shipment_id, []))

    def event_by_id(self, event_id: str) -> EventRecord | None:
        return self._by_id.get(event_id)

    def replace_event(self, record: EventRecord) -> None:
        """Overwrite a stored event in place (only tamper drills use this)."""
        events = self._events[record.shipment_id]
        for i, e in enumerate(events):
            if e.event_id == record.event_id:
                events[i] = self._by_id[e.event_id] = replace(record)
                return
        raise FormatError(f"no event {record.event_id}")

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> EventRecord:
        events = self._events[record.shipment_id]
        previous = events[-1].commitment if events else bytes(32)
        if record.sequence != len(events) or record.previous != previous:
            raise ConflictError(f"sequence {record.sequence} of this shipment is already taken")
        if record.event_id in self._by_id:
            raise ConflictError(f"event {record.event_id} already exists")
        stored = replace(record, leaf_index=self._log.append_leaf_hash(leaf_hash))
        events.append(stored)
        self._by_id[stored.event_id] = stored
        return stored

    def log_size(self) -> int:
        return len(self._log)

    def node(self, level: int, index: int) -> bytes:
        return self._log.node(level, index)

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        self._checkpoints.append(checkpoint)

    def latest_checkpoint(self) -> AnchoredCheckpoint | None:
        return self._checkpoints[-1] if self._checkpoints else None

    def add_api_client(self, client: ApiClient) -> None:
        if client.client_id in self._clients:
            raise ConflictError("client id already exists")
        self._clients[client.client_id] = client

    def api_client(self, client_id: str) -> ApiClient | None:
        return self._clients.get(client_id)
