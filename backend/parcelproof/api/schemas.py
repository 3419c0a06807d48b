"""Request and response bodies of the courier API (pydantic, strict, no unknown keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from parcelproof.core.bundle import hex32
from parcelproof.service.lookup import LookupResult
from parcelproof.service.node import TimelineEntry

Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{130}$")]
TrackingNumber = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Postcode = Annotated[str, StringConstraints(min_length=1, max_length=16)]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
UInt64 = Annotated[int, Field(ge=0, lt=2**64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ShipmentIn(Strict):
    tracking_number: TrackingNumber
    postcode: Postcode = Field(description="destination postcode: the customer's second factor")
    details: dict[str, Any] = Field(default_factory=dict, max_length=64)


class ShipmentOut(Strict):
    shipment_id: str
    access_token: str = Field(description="per-parcel lookup token for the customer's link")
    confirmation_code: str = Field(description="the recipient tells it to the driver")


class ContextIn(Strict):
    tracking_number: TrackingNumber


class ContextOut(Strict):
    log_id: Hex32
    shipment: Hex32
    sequence: int
    previous: Hex32
    chain_id: int
    verifying_contract: Address


class FieldIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    value: Any
    salt: Annotated[str, StringConstraints(min_length=43, max_length=43)]


class EventIn(Strict):
    event_id: EventId = Field(description="client-chosen id; replays are idempotent")
    tracking_number: TrackingNumber
    event_time: UInt64
    agent: Address
    signature: Signature
    fields: list[FieldIn] = Field(min_length=1, max_length=64)


class EventOut(Strict):
    event_id: str
    sequence: int
    commitment: Hex32
    leaf_index: int


class BulkIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)
    atomic: bool = Field(
        default=False,
        description="all or nothing: when any event is refused none is stored, and the "
        "events that would have been answer 424 (batch-aborted)",
    )


class BulkItem(Strict):
    index: int
    status: int
    event: EventOut | None = None
    problem: dict[str, Any] | None = None


class BulkOut(Strict):
    results: list[BulkItem]


class LookupIn(Strict):
    tracking_number: TrackingNumber
    postcode: Postcode | None = None
    access_token: Annotated[str, StringConstraints(min_length=8, max_length=64)] | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> LookupIn:
        if (self.postcode is None) == (self.access_token is None):
            raise ValueError("give exactly one second factor: postcode or access_token")
        return self


class TimelineItem(Strict):
    log_id: Hex32
    sequence: int
    event_time: int
    fields: dict[str, Any]
    anchoring: str = Field(description="pending, anchored (in block_number) or confirmed")
    checkpoint_size: int | None
    block_number: int | None

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineItem:
        """The API form of one timeline entry."""
        return cls(
            log_id=hex32(entry.log_id),
            sequence=entry.sequence,
            event_time=entry.event_time,
            fields=entry.fields,
            anchoring=entry.anchoring,
            checkpoint_size=entry.checkpoint_size,
            block_number=entry.block_number,
        )

    def entry(self) -> TimelineEntry:
        """Back to the service's form (a peer's answer, merged into ours)."""
        return TimelineEntry(
            log_id=bytes.fromhex(self.log_id[2:]),
            sequence=self.sequence,
            event_time=self.event_time,
            fields=self.fields,
            anchoring=self.anchoring,
            checkpoint_size=self.checkpoint_size,
            block_number=self.block_number,
        )


class LookupOut(Strict):
    timeline: list[TimelineItem]
    bundle: dict[str, Any] | None
    verification: dict[str, Any] | None


def lookup_out(result: LookupResult) -> LookupOut:
    """The API form of a lookup's (or a dispute bundle's) result."""
    return LookupOut(
        timeline=[TimelineItem.of(t) for t in result.timeline],
        bundle=result.bundle,
        verification=result.report.to_json() if result.report else None,
    )


class CheckpointOut(Strict):
    size: int
    root: Hex32
    block_number: int | None
    tx_hash: str | None


class PrivacyRequestIn(Strict):
    tracking_number: TrackingNumber


class ErasureIn(Strict):
    tracking_number: TrackingNumber
    reason: Literal["request", "legal"] = Field(
        default="request",
        description="request: the data subject asked; legal: a legal obligation "
        "(retention is the retention job's own reason)",
    )


class ErasureOut(Strict):
    erased_at: int
    reason: str
    receipt: dict[str, Any] = Field(description="the signed erasure receipt (docs/privacy.md)")
