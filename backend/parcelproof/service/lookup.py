"""Customer lookup across the courier logs a parcel touched: timeline plus verified bundle."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from parcelproof.core.bundle import Bundle, LedgerView, Report, bundle_to_json, verify_bundle
from parcelproof.core.errors import NotFoundError
from parcelproof.core.redact import CUSTOMER
from parcelproof.service.node import CourierNode, LogView, TimelineEntry
from parcelproof.service.ports import ShipmentErasedError
from parcelproof.service.privacy import ErasureNotice, utc

# What a sender or recipient sees; everything else is carried only as digests.
CUSTOMER_FIELDS = CUSTOMER


@dataclass(frozen=True)
class LookupResult:
    """The customer's answer: the timeline, the bundle and the server-side verification."""

    timeline: list[TimelineEntry]
    bundle: dict[str, Any] | None
    report: Report | None
    erasures: tuple[ErasureNotice, ...] = ()  # logs on which the parcel's keys were destroyed


class ParcelErasedError(ShipmentErasedError):
    """Every node that knew the parcel erased its details. ``result`` is what is left to show:
    the timeline without fields, the bundle of erased events (commitments, signatures and
    proofs still verify) and the erasure notices with their signed receipts."""

    def __init__(self, result: LookupResult) -> None:
        self.result = result
        when = min(e.erased_at for e in result.erasures)
        super().__init__(
            f"the details of this parcel were erased on {utc(when)}: what is left is its "
            "proof, which reveals nothing about it"
        )


def lookup(
    nodes: Sequence[CourierNode],
    ledger: LedgerView,
    tracking_number: str,
    postcode: str | None,
    reveal: Collection[str] = CUSTOMER_FIELDS,
    *,
    access_token: str | None = None,
) -> LookupResult:
    """Gather the parcel's events from every node that knows it and verify the bundle.

    A wrong tracking number and a wrong postcode give the same NotFoundError. A parcel that
    every node erased raises :class:`ParcelErasedError` whatever the second factor (it was
    sealed under the destroyed key, so nothing can check it; the answer holds no personal
    data). Logs erased by some nodes only come back as erased events in the bundle.
    """
    views = []
    for node in nodes:
        try:
            views.append(node.view(tracking_number, postcode, reveal, access_token=access_token))
        except NotFoundError:
            continue
    if not views:
        raise NotFoundError("no shipment matches this tracking number and second factor")
    result = _assemble(views, ledger)
    if all(v.erasure is not None for v in views):
        raise ParcelErasedError(result)
    return result


class _Everything(frozenset[str]):
    """The reveal set that contains every field name."""

    def __contains__(self, item: object) -> bool:
        return True


ALL_FIELDS: frozenset[str] = _Everything()


def dispute_bundle(
    nodes: Sequence[CourierNode], ledger: LedgerView, tracking_number: str
) -> LookupResult:
    """Evidence for a dispute: every committed field revealed (full address, agent identity,
    notes, codes), on every log that knows the parcel. For authorised staff only."""
    views = []
    for node in nodes:
        try:
            views.append(node.evidence(tracking_number, ALL_FIELDS))
        except NotFoundError:
            continue
    if not views:
        raise NotFoundError("no node knows this tracking number")
    return _assemble(views, ledger)


def _assemble(views: Sequence[LogView], ledger: LedgerView) -> LookupResult:
    timeline = sorted(
        (t for v in views for t in v.timeline), key=lambda t: (t.event_time, t.log_id, t.sequence)
    )
    logs = [v.bundle_log for v in views if v.bundle_log is not None]
    erasures = tuple(v.erasure for v in views if v.erasure is not None)
    if not logs:
        return LookupResult(timeline=timeline, bundle=None, report=None, erasures=erasures)
    bundle = Bundle(chain_id=ledger.chain_id, ledger=ledger.address, logs=tuple(logs))
    return LookupResult(
        timeline=timeline,
        bundle=bundle_to_json(bundle),
        report=verify_bundle(bundle, ledger),
        erasures=erasures,
    )
