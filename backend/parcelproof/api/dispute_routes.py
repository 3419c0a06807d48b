"""Disputes: a customer (tracking number plus second factor) or a courier principal opens one
about events of a parcel; dispute resolvers list, read (full disclosure), assign, comment and
resolve them. The hashes and formulas are in :mod:`parcelproof.service.disputes`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import Field, StringConstraints, model_validator

from parcelproof.api import schemas as s
from parcelproof.api.deps import CanOpenDisputes, CanResolve, NodeServices, Services
from parcelproof.core.bundle import hex32
from parcelproof.core.errors import ConflictError, FormatError, NotFoundError
from parcelproof.service.authz import RESOLVER
from parcelproof.service.disputes import (
    MAX_EVENTS,
    MAX_TEXT,
    DisputeDesk,
    DisputeRecord,
    parse_dispute_id,
)
from parcelproof.service.report import LATE_AFTER, build_report, render_html

disputes = APIRouter(prefix="/v1/disputes", tags=["disputes"])

Reason = Literal["not-delivered", "damaged", "wrong-place", "late", "other"]
Outcome = Literal["upheld", "rejected", "settled"]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


class EventRef(s.Strict):
    log_id: s.Hex32
    sequence: Annotated[int, Field(ge=0, lt=2**32)]


class CourierDisputeIn(s.Strict):
    tracking_number: s.TrackingNumber
    events: list[EventRef] = Field(min_length=1, max_length=MAX_EVENTS)
    reason: Reason
    note: Text | None = Field(default=None, description="free text, stored sealed")


class CustomerDisputeIn(CourierDisputeIn):
    postcode: s.Postcode | None = None
    access_token: Annotated[str, StringConstraints(min_length=8, max_length=64)] | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> CustomerDisputeIn:
        if (self.postcode is None) == (self.access_token is None):
            raise ValueError("give exactly one second factor: postcode or access_token")
        return self


class DisputeOut(s.Strict):
    """A dispute without personal data: ids, codes, states, hashes and transactions."""

    dispute_id: s.Hex32
    courier_id: s.Hex32
    state: str
    reason: str
    events: list[dict[str, Any]]
    opened_by: str
    opened_at: int
    subject_hash: s.Hex32
    evidence_hash: s.Hex32
    open_tx_hash: s.Hex32
    open_block: int
    assignee: str | None
    outcome: str | None
    summary_hash: s.Hex32 | None
    outcome_hash: s.Hex32 | None
    resolved_by: str | None
    resolved_at: int | None
    resolve_tx_hash: s.Hex32 | None
    resolve_block: int | None


class OpenedOut(DisputeOut):
    claim: dict[str, Any] = Field(description="the document whose JCS SHA-256 is subjectHash")


class NoteOut(s.Strict):
    note_id: str
    kind: str
    author: str
    created_at: int
    text: str


class DisputeDetailOut(DisputeOut):
    claim: dict[str, Any]
    notes: list[NoteOut]
    summary: str | None
    evidence: dict[str, Any] = Field(description="committed at opening: JCS SHA-256 = evidenceHash")
    current: s.LookupOut = Field(description="the dispute bundle now, every field revealed")


class AssignIn(s.Strict):
    assignee: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class CommentIn(s.Strict):
    text: Text


class CommentOut(s.Strict):
    note_id: str
    created_at: int


class ResolveIn(s.Strict):
    outcome: Outcome
    summary: Text


def _desk(services: NodeServices) -> DisputeDesk:
    if services.disputes is None:
        raise NotFoundError("disputes are not enabled on this node")
    return services.disputes


def _h(value: bytes | None) -> str | None:
    return None if value is None else hex32(value)


def _out(record: DisputeRecord) -> dict[str, Any]:
    return {
        "dispute_id": hex32(record.dispute_id),
        "courier_id": hex32(record.log_id),
        "state": record.state,
        "reason": record.reason,
        "events": [e.to_json() for e in record.events],
        "opened_by": record.opened_by,
        "opened_at": record.opened_at,
        "subject_hash": hex32(record.subject_hash),
        "evidence_hash": hex32(record.evidence_hash),
        "open_tx_hash": hex32(record.open_tx_hash),
        "open_block": record.open_block,
        "assignee": record.assignee,
        "outcome": record.outcome,
        "summary_hash": _h(record.summary_hash),
        "outcome_hash": _h(record.outcome_hash),
        "resolved_by": record.resolved_by,
        "resolved_at": record.resolved_at,
        "resolve_tx_hash": _h(record.resolve_tx_hash),
        "resolve_block": record.resolve_block,
    }


def _refs(events: list[EventRef]) -> list[tuple[bytes, int]]:
    return [(bytes.fromhex(e.log_id[2:]), e.sequence) for e in events]


@disputes.post("", status_code=status.HTTP_201_CREATED)
def open_by_customer(body: CustomerDisputeIn, services: Services, request: Request) -> OpenedOut:
    """Open a dispute with the parcel's capability (tracking number plus postcode or access
    token; the same 404 as a lookup for a wrong number or factor, and the same rate limits).
    The dispute is recorded on the ledger as hashes; the answer carries the claim document
    whose hash is on chain."""
    desk = _desk(services)
    services.limits.client(request.client.host if request.client else "unknown")
    services.limits.parcel(body.tracking_number)
    record = desk.open_as_customer(
        body.tracking_number,
        body.postcode,
        body.access_token,
        _refs(body.events),
        body.reason,
        body.note,
    )
    return OpenedOut(**_out(record), claim=record.claim())


@disputes.post("/courier", status_code=status.HTTP_201_CREATED)
def open_by_courier(
    body: CourierDisputeIn, services: Services, principal: CanOpenDisputes
) -> OpenedOut:
    """Open a dispute for a customer who called in, or on the courier's own account
    (operators and resolvers)."""
    record = _desk(services).open_as_courier(
        principal.actor, body.tracking_number, _refs(body.events), body.reason, body.note
    )
    return OpenedOut(**_out(record), claim=record.claim())


@disputes.get("")
def list_disputes(
    services: Services,
    principal: CanResolve,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DisputeOut]:
    """The newest disputes (no personal data)."""
    return [DisputeOut(**_out(r)) for r in _desk(services).newest(limit)]


@disputes.get("/{dispute_id}")
def read_dispute(dispute_id: str, services: Services, principal: CanResolve) -> DisputeDetailOut:
    """A dispute with its unsealed notes and summary, the evidence committed at opening and
    the dispute bundle as it stands now (every field revealed). Recorded as ``evidence.read``."""
    view = _desk(services).read(principal.actor, parse_dispute_id(dispute_id))
    current = view.current
    return DisputeDetailOut(
        **_out(view.record),
        claim=view.record.claim(),
        notes=[
            NoteOut(
                note_id=n.note_id,
                kind=n.kind,
                author=n.author,
                created_at=n.created_at,
                text=text,
            )
            for n, text in view.notes
        ],
        summary=view.summary,
        evidence=view.evidence,
        current=s.lookup_out(current),
    )


@disputes.get("/{dispute_id}/report", response_class=HTMLResponse)
def dispute_report(
    dispute_id: str,
    services: Services,
    principal: CanResolve,
    late_after: Annotated[int, Query(ge=1, le=30 * 86400)] = LATE_AFTER,
) -> HTMLResponse:
    """The print-ready evidence report of the dispute's parcel (docs/dispute-report.md),
    built from its current dispute bundle and chain reads only. Recorded as ``evidence.read``."""
    view = _desk(services).read(principal.actor, parse_dispute_id(dispute_id))
    if view.current.bundle is None:
        raise ConflictError("no event of this parcel is anchored yet: no report to build")
    report = build_report(view.current.bundle, services.ledger, late_after=late_after)  # type: ignore[arg-type]
    return HTMLResponse(
        render_html(report),
        headers={
            # A standalone document with its own inline styles and no script at all.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:; frame-ancestors 'none'",
            "Content-Disposition": f'inline; filename="dispute-{dispute_id[2:18]}.html"',
        },
    )


@disputes.post("/{dispute_id}/assign")
def assign(
    dispute_id: str, body: AssignIn, services: Services, principal: CanResolve
) -> DisputeOut:
    """Assign an open (or re-assign an assigned) dispute to a dispute resolver's user id."""
    desk = _desk(services)
    key = parse_dispute_id(dispute_id)
    staff = services.staff
    user = staff.store.user(body.assignee) if staff is not None else None
    if user is None or user.role != RESOLVER or user.disabled_at is not None:
        raise FormatError("the assignee is not an active dispute resolver of this node")
    return DisputeOut(**_out(desk.assign(principal.actor, key, body.assignee)))


@disputes.post("/{dispute_id}/comments", status_code=status.HTTP_201_CREATED)
def comment(
    dispute_id: str, body: CommentIn, services: Services, principal: CanResolve
) -> CommentOut:
    """Add a comment (stored sealed) to an unresolved dispute."""
    note = _desk(services).comment(principal.actor, parse_dispute_id(dispute_id), body.text)
    return CommentOut(note_id=note.note_id, created_at=note.created_at)


@disputes.post("/{dispute_id}/resolve")
def resolve(
    dispute_id: str, body: ResolveIn, services: Services, principal: CanResolve
) -> DisputeOut:
    """Resolve an assigned dispute: ``outcomeHash = SHA-256(JCS({disputeId, outcome,
    summaryHash}))`` goes on the ledger with the node's resolver account (409 without one)."""
    record = _desk(services).resolve(
        principal.actor, parse_dispute_id(dispute_id), body.outcome, body.summary
    )
    return DisputeOut(**_out(record))
