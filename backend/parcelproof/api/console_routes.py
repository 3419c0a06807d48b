"""The staff console's read API: anchoring status, shipments, checkpoints (no personal data).

Every route needs a staff session holding ``console:read`` (the three staff roles; no API
client scope grants it). What the console shows, and to whom, is in docs/operations.md
("The courier console"). Tracking numbers are never shown: the node stores only their keyed
HMAC, so it cannot show them even masked. A shipment's latest status is the one event field
opened here, and only the status code (no place, no person).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from parcelproof.api.deps import CanReadConsole, NodeServices, Services
from parcelproof.core.bundle import hex32
from parcelproof.core.errors import Error
from parcelproof.service.anchoring import AnchorPolicy
from parcelproof.service.disputes import RESOLVED
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import CheckpointRecord, EventRecord, ShipmentRecord

console = APIRouter(prefix="/v1/console", tags=["console"])
log = logging.getLogger("parcelproof.console")

#: How many of the newest disputes the overview counts open ones among.
DISPUTES_COUNTED = 1000
#: The worker is "late" once the oldest waiting event is older than LATE_INTERVALS anchor
#: intervals plus LATE_GRACE seconds (a cycle, its transaction and its confirmation), and
#: "stalled" at STALLED_INTERVALS intervals plus STALLED_GRACE.
LATE_INTERVALS, LATE_GRACE = 2, 60
STALLED_INTERVALS, STALLED_GRACE = 10, 300

Anchoring = Literal["pending", "anchored", "confirmed"]
WorkerState = Literal["idle", "ok", "late", "stalled"]


class CheckpointOut(BaseModel):
    """A checkpoint of this node's log with the anchoring worker's bookkeeping."""

    size: int = Field(description="leaves the checkpoint covers")
    root: str
    status: str = Field(description="sent | anchored | confirmed")
    tx_hash: str | None
    block_number: int | None
    recorded_at: int = Field(description="when the node recorded it (Unix seconds)")
    updated_at: int


class WorkerOut(BaseModel):
    """The anchoring worker's health as the store shows it (the worker may run elsewhere)."""

    state: WorkerState
    detail: str


class OverviewOut(BaseModel):
    courier_id: str
    now: int
    log_size: int = Field(description="events in the log")
    anchored_size: int = Field(description="leaves covered by the latest anchored checkpoint")
    confirmed_size: int = Field(description="leaves covered by the latest confirmed checkpoint")
    waiting: int = Field(description="events waiting to be anchored")
    oldest_waiting_at: int | None = Field(description="when the oldest of them was recorded")
    oldest_waiting_age: int | None = Field(description="its age in seconds")
    sending: int = Field(description="checkpoints sent whose transaction is not mined yet")
    latest_checkpoint: CheckpointOut | None
    anchor_interval_seconds: float
    worker: WorkerOut
    shipments: int
    disputes_visible: bool = Field(description="whether this session may list disputes")
    open_disputes: int | None = Field(
        description=f"unresolved disputes among the newest {DISPUTES_COUNTED}; null when this "
        "session may not list disputes or the node has no dispute desk"
    )


class ShipmentOut(BaseModel):
    """A shipment without personal data: its id, times, status code and anchoring."""

    shipment_id: str
    created_at: int
    erased: bool
    status: str | None = Field(description="the latest status code; null: none or unreadable")
    status_time: int | None = Field(description="the latest event's time")
    recorded_at: int | None = Field(description="when the node accepted the latest event")
    events: int
    anchoring: Anchoring | None = Field(description="the latest event's; null without events")


class ShipmentPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ShipmentOut]


def _checkpoint(c: CheckpointRecord) -> CheckpointOut:
    return CheckpointOut(
        size=c.size,
        root=hex32(c.root),
        status=c.status,
        tx_hash=None if c.tx_hash is None else hex32(c.tx_hash),
        block_number=c.block_number,
        recorded_at=c.created_at,
        updated_at=c.updated_at,
    )


def _sizes(node: CourierNode) -> tuple[int, int, CheckpointRecord | None]:
    """Sizes of the latest landed and latest confirmed checkpoints, and the latest landed."""
    landed = node.store.landed_checkpoints([])
    latest = landed[-1] if landed else None
    confirmed = max((c.size for c in landed if c.status == "confirmed"), default=0)
    return (latest.size if latest else 0), confirmed, latest


def _interval(services: NodeServices) -> float:
    return services.anchor_interval_seconds or AnchorPolicy().interval_seconds


def worker_health(waiting: int, age: int | None, interval: float) -> WorkerOut:
    """Judge the anchoring worker by the age of the oldest event it has not anchored yet."""
    if waiting == 0 or age is None:
        return WorkerOut(state="idle", detail="every event is anchored")
    if age <= LATE_INTERVALS * interval + LATE_GRACE:
        return WorkerOut(state="ok", detail="waiting for the next anchoring cycle")
    if age <= STALLED_INTERVALS * interval + STALLED_GRACE:
        return WorkerOut(
            state="late",
            detail=f"the oldest waiting event is {age} s old; the interval is {interval:g} s",
        )
    return WorkerOut(
        state="stalled",
        detail=f"nothing anchored for {age} s (interval {interval:g} s): is the worker "
        "running, funded and able to reach the chain?",
    )


@console.get("/overview")
def overview(services: Services, principal: CanReadConsole) -> OverviewOut:
    """The log and its anchoring: sizes, the events still waiting and the oldest one's age,
    the latest checkpoint, the worker's health as the store shows it, and counts of shipments
    and (for roles that may list disputes) unresolved disputes."""
    node = services.node
    store = node.store
    now = node.clock.now()
    with store.snapshot():
        size = store.log_size()
        anchored, confirmed, latest = _sizes(node)
        oldest = store.event_at_leaf(anchored) if size > anchored else None
        sending = sum(1 for c in store.newest_checkpoints(10) if c.status == "sent")
        shipments = store.shipment_count()
    age = None if oldest is None else max(0, now - oldest.recorded_at)
    interval = _interval(services)
    visible = "disputes:resolve" in principal.permissions
    open_disputes = None
    if visible and services.disputes is not None:
        newest = services.disputes.newest(DISPUTES_COUNTED)
        open_disputes = sum(1 for d in newest if d.state != RESOLVED)
    return OverviewOut(
        courier_id=hex32(node.courier_id),
        now=now,
        log_size=size,
        anchored_size=anchored,
        confirmed_size=confirmed,
        waiting=size - anchored,
        oldest_waiting_at=None if oldest is None else oldest.recorded_at,
        oldest_waiting_age=age,
        sending=sending,
        latest_checkpoint=None if latest is None else _checkpoint(latest),
        anchor_interval_seconds=interval,
        worker=worker_health(size - anchored, age, interval),
        shipments=shipments,
        disputes_visible=visible,
        open_disputes=open_disputes,
    )


def _status(node: CourierNode, shipment: ShipmentRecord, last: EventRecord) -> str | None:
    """The shipment's current status code (a correction's corrected status), or None when
    its keys are destroyed or its fields cannot be opened."""
    if shipment.erased:
        return None
    try:
        # The node's own reads: unwrap the data key, open the status field(s) only.
        status = node.current_status(shipment, last)
    except (Error, ValueError, KeyError) as e:
        log.warning("a shipment's status could not be read: %s", type(e).__name__)
        return None
    return None if status is None else str(status)


def _anchoring(last: EventRecord, anchored: int, confirmed: int) -> Anchoring:
    if last.leaf_index < confirmed:
        return "confirmed"
    return "anchored" if last.leaf_index < anchored else "pending"


@console.get("/shipments")
def shipments(
    services: Services,
    _: CanReadConsole,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ShipmentPage:
    """A page of shipments, newest first: id, creation time, latest status and its time,
    number of events and whether the latest is anchored. No tracking numbers (the node keeps
    only their HMAC) and no other personal data."""
    node = services.node
    store = node.store
    with store.snapshot():
        total = store.shipment_count()
        page = store.newest_shipments(offset, limit)
        lasts = store.last_events([s.shipment_id for s in page])
        anchored, confirmed, _latest = _sizes(node)
    items = []
    for shipment in page:
        last = lasts.get(shipment.shipment_id)
        items.append(
            ShipmentOut(
                shipment_id=shipment.shipment_id,
                created_at=shipment.created_at,
                erased=shipment.erased,
                status=None if last is None else _status(node, shipment, last),
                status_time=None if last is None else last.event_time,
                recorded_at=None if last is None else last.recorded_at,
                events=0 if last is None else last.sequence + 1,
                anchoring=None if last is None else _anchoring(last, anchored, confirmed),
            )
        )
    return ShipmentPage(total=total, offset=offset, limit=limit, items=items)


@console.get("/checkpoints")
def checkpoints(
    services: Services,
    _: CanReadConsole,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[CheckpointOut]:
    """The latest checkpoints of this node's log, largest first, whatever their status."""
    return [_checkpoint(c) for c in services.node.store.newest_checkpoints(limit)]
