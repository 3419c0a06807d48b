"""The API's routes: courier (authenticated) and public (lookup, verify, health)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from parcelproof.api import schemas as s
from parcelproof.api.deps import (
    CanAnchor,
    CanRead,
    CanWriteEvents,
    CanWriteShipments,
    NodeServices,
    Services,
)
from parcelproof.api.problems import problem, problem_for
from parcelproof.core.bundle import hex32, verify_bundle
from parcelproof.core.commitment import FieldOpening
from parcelproof.core.errors import ConflictError, Error
from parcelproof.service.audit import AuditAction
from parcelproof.service.federation import PEER_HEADER, PeerLookup, federate
from parcelproof.service.lookup import LookupResult, dispute_bundle, lookup
from parcelproof.service.node import CourierNode, EventSubmission
from parcelproof.service.ports import EventRecord

courier = APIRouter(prefix="/v1", tags=["courier"])
#: The audit actor of a customer lookup: whoever held the tracking number and a second factor.
CUSTOMER_ACTOR = "customer:capability"
public = APIRouter(prefix="/v1", tags=["customer"])


@courier.post("/shipments", status_code=status.HTTP_201_CREATED)
def create_shipment(body: s.ShipmentIn, services: Services, _: CanWriteShipments) -> s.ShipmentOut:
    """Register a shipment; its details and second factor are stored encrypted."""
    created = services.node.create_shipment(body.tracking_number, body.details, body.postcode)
    return s.ShipmentOut(
        shipment_id=created.shipment_id,
        access_token=created.access_token,
        confirmation_code=created.confirmation_code,
    )


@courier.post("/shipments/context")
def event_context(body: s.ContextIn, services: Services, _: CanWriteEvents) -> s.ContextOut:
    """The sequence number and previous commitment the next event of a shipment must sign."""
    ctx = services.node.event_context(body.tracking_number)
    return s.ContextOut(
        log_id=hex32(ctx.log_id),
        shipment=hex32(ctx.shipment),
        sequence=ctx.sequence,
        previous=hex32(ctx.previous),
        chain_id=ctx.domain.chain_id,
        verifying_contract=ctx.domain.verifying_contract,
    )


def _record(node: CourierNode, body: s.EventIn) -> EventRecord:
    openings = [FieldOpening.from_json(f.model_dump()) for f in body.fields]
    return node.record_event(
        body.tracking_number,
        openings,
        event_time=body.event_time,
        agent=body.agent,
        signature=bytes.fromhex(body.signature[2:]),
        event_id=body.event_id,
    )


def _event_out(record: EventRecord) -> s.EventOut:
    return s.EventOut(
        event_id=record.event_id,
        sequence=record.sequence,
        commitment=hex32(record.commitment),
        leaf_index=record.leaf_index,
    )


@courier.post("/events", status_code=status.HTTP_201_CREATED)
def record_event(
    body: s.EventIn, services: Services, _: CanWriteEvents, response: Response
) -> s.EventOut:
    """Record one agent-signed event. Replaying the same event id and body returns 200."""
    before = services.node.store.event_by_id(body.event_id)
    record = _record(services.node, body)
    if before is not None:
        response.status_code = status.HTTP_200_OK
    return _event_out(record)


@courier.post("/events/bulk")
def record_events(body: s.BulkIn, services: Services, _: CanWriteEvents) -> s.BulkOut:
    """Record up to 1,000 events in order; each gets its own status.

    The accepted events are stored in one transaction: when the database stops answering,
    the whole request fails with 503 and none of them is stored; sending the batch again
    (same event ids) is safe. With ``atomic``, one refused event means none is stored: the
    refused ones carry their problem and the rest answer 424 (batch-aborted)."""
    outcomes = services.node.record_events(
        [
            EventSubmission(
                tracking_number=item.tracking_number,
                openings=[FieldOpening.from_json(f.model_dump()) for f in item.fields],
                event_time=item.event_time,
                agent=item.agent,
                signature=bytes.fromhex(item.signature[2:]),
                event_id=item.event_id,
            )
            for item in body.events
        ],
        atomic=body.atomic,
    )
    results: list[s.BulkItem] = []
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, Error):
            resp = problem_for(outcome)
            results.append(s.BulkItem(index=i, status=resp.status_code, problem=_body(resp)))
        else:
            results.append(
                s.BulkItem(
                    index=i,
                    status=200 if outcome.replayed else 201,
                    event=_event_out(outcome.record),
                )
            )
    return s.BulkOut(results=results)


@courier.post("/anchor")
def anchor_now(services: Services, _: CanAnchor) -> s.CheckpointOut | None:
    """Anchor a checkpoint of the log now (the worker also does this on its schedule)."""
    cp = services.node.anchor()
    if cp is None:
        return None
    return s.CheckpointOut(
        size=cp.size,
        root=hex32(cp.root),
        block_number=cp.block_number,
        tx_hash=None if cp.tx_hash is None else "0x" + bytes(cp.tx_hash).hex(),
    )


def _lookup(body: s.LookupIn, services: NodeServices, request: Request, route: str) -> LookupResult:
    """A customer lookup, rate-limited, and recorded in the audit log once it succeeded."""
    services.limits.client(_address(request))
    services.limits.parcel(body.tracking_number)
    result = lookup(
        [services.node],
        services.lookup_ledger or services.ledger,
        body.tracking_number,
        body.postcode,
        access_token=body.access_token,
    )
    _record_read(
        services,
        CUSTOMER_ACTOR,
        AuditAction.PERSONAL_DATA_READ,
        body.tracking_number,
        {"route": route, "events": len(result.timeline)},
    )
    if services.peers is None or result.bundle is None or request.headers.get(PEER_HEADER):
        return result  # a peer's own question is answered from this log only
    return _with_peers(result, result.bundle, body, services, services.peers)


def _with_peers(
    result: LookupResult,
    bundle: dict[str, Any],
    body: s.LookupIn,
    services: NodeServices,
    peers: PeerLookup,
) -> LookupResult:
    """The consortium's answer: this node's bundle plus the other couriers' logs that a
    countersigned handoff links to, verified again as one bundle against the chain."""
    merged = federate(bundle, body.model_dump(exclude_none=True), peers)
    if not merged.joined:
        return result
    timeline = list(result.timeline)
    for item in merged.timeline:
        try:
            t = s.TimelineItem.model_validate(item)
        except ValueError:
            continue
        timeline.append(t.entry())
    timeline.sort(key=lambda t: (t.event_time, t.log_id, t.sequence))
    return LookupResult(
        timeline=timeline,
        bundle=merged.bundle,
        report=verify_bundle(merged.bundle, services.ledger),
        erasures=result.erasures,
    )


def _record_read(
    services: NodeServices,
    actor: str,
    action: str,
    tracking_number: str,
    detail: dict[str, str | int | bool | None],
) -> None:
    """Append a read of decrypted data to the audit log before the answer leaves (a read that
    cannot be recorded is not served). The target is the shipment id, never the number."""
    if services.audit is not None:
        target = services.node.shipment_id(tracking_number)
        services.audit.record(actor, action, target, detail)


@public.post("/lookup")
def lookup_parcel(body: s.LookupIn, services: Services, request: Request) -> s.LookupOut:
    """Timeline and verified proof bundle for a tracking number plus a second factor."""
    return s.lookup_out(_lookup(body, services, request, "lookup"))


@courier.post("/evidence")
def evidence(body: s.ContextIn, services: Services, principal: CanRead) -> s.LookupOut:
    """A dispute bundle: every committed field revealed (address, agent identity, notes).
    For dispute resolvers and machine clients holding the `read` scope; customers never get
    it. Every call is recorded in the audit log."""
    result = dispute_bundle([services.node], services.ledger, body.tracking_number)
    _record_read(
        services,
        principal.actor,
        AuditAction.EVIDENCE_READ,
        body.tracking_number,
        {"events": len(result.timeline)},
    )
    return s.lookup_out(result)


@public.post("/lookup/bundle", response_model=None)
def download_bundle(body: s.LookupIn, services: Services, request: Request) -> Response:
    """The parcel's proof bundle as a file (verified here first; 409 if nothing anchored)."""
    result = _lookup(body, services, request, "lookup-bundle")
    if result.bundle is None or result.report is None:
        raise ConflictError("no event of this parcel is anchored yet: try again shortly")
    if not result.report.ok:
        return problem(500, "integrity", "Stored evidence failed server-side verification")
    return Response(
        json.dumps(result.bundle, indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="parcelproof-bundle.json"'},
    )


@public.post("/verify")
async def verify(bundle: dict[str, Any], services: Services, request: Request) -> dict[str, Any]:
    """Verify any proof bundle against this node's ledger; returns a per-check report."""
    services.limits.client(_address(request))
    report = await run_in_threadpool(verify_bundle, bundle, services.ledger)
    return report.to_json()


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _body(response: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(bytes(response.body))
    return parsed
