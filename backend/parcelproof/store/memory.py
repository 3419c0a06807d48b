"""In-memory store for the embedded demo and unit tests; same contract as the SQL store."""

from __future__ import annotations

from dataclasses import replace

from parcelproof.core.errors import FormatError
from parcelproof.core.merkle import MemoryLog
from parcelproof.service.ports import AnchoredCheckpoint, EventRecord, ShipmentRecord


class MemoryStore:
    """Keeps one courier's shipments, events, Merkle log and checkpoints in memory."""

    def __init__(self) -> None:
        self._shipments: dict[bytes, ShipmentRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._log = MemoryLog()
        self._checkpoints: list[AnchoredCheckpoint] = []

    def add_shipment(self, record: ShipmentRecord) -> None:
        if record.ref in self._shipments:
            raise FormatError("a shipment with this tracking number already exists")
        self._shipments[record.ref] = record
        self._events[record.shipment_id] = []

    def shipment_by_ref(self, ref: bytes) -> ShipmentRecord | None:
        return self._shipments.get(ref)

    def events(self, shipment_id: str) -> list[EventRecord]:
        return list(self._events.get(shipment_id, []))

    def replace_event(self, record: EventRecord) -> None:
        """Overwrite a stored event in place (only tamper drills use this)."""
        events = self._events[record.shipment_id]
        for i, e in enumerate(events):
            if e.event_id == record.event_id:
                events[i] = replace(record)
                return
        raise FormatError(f"no event {record.event_id}")

    def append_event(self, record: EventRecord, leaf_hash: bytes) -> None:
        if record.leaf_index != len(self._log):
            raise FormatError(f"leaf index {record.leaf_index} is not the log's next index")
        self._log.append_leaf_hash(leaf_hash)
        self._events[record.shipment_id].append(record)

    def log_size(self) -> int:
        return len(self._log)

    def node(self, level: int, index: int) -> bytes:
        return self._log.node(level, index)

    def add_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        self._checkpoints.append(checkpoint)

    def latest_checkpoint(self) -> AnchoredCheckpoint | None:
        return self._checkpoints[-1] if self._checkpoints else None
