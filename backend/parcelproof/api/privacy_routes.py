"""Data-subject requests (staff only): export everything held about a parcel, erase it.

Also the API's answer for a parcel whose details were erased: ``410 Gone`` with the erasure
notice and the proof that is left (docs/privacy.md, "Lookup of an erased parcel").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from parcelproof.api import schemas as s
from parcelproof.api.deps import CanErase, CanExport, NodeServices, Services
from parcelproof.api.problems import problem
from parcelproof.service.authz import Principal
from parcelproof.service.lookup import ParcelErasedError

privacy = APIRouter(prefix="/v1/privacy", tags=["privacy"])

#: The problem type of the erased-parcel answer (stable: clients may rely on it).
ERASED_PROBLEM = "erased"


def _audit(
    services: NodeServices,
    principal: Principal,
    action: str,
    target: str,
    detail: dict[str, str | int | bool | None],
) -> None:
    """Record the request in the node's audit log, when the node has one (before any
    personal data is handed out: an access that cannot be recorded does not happen)."""
    audit = getattr(services, "audit", None)
    if audit is not None:
        audit.record(principal.actor, action, target, detail)


@privacy.post("/export")
def export(body: s.PrivacyRequestIn, services: Services, principal: CanExport) -> dict[str, Any]:
    """Everything this node holds about a parcel, decrypted (the ``parcelproof-export`` JSON
    document of docs/privacy.md): shipment details, second factors as stored, every event
    with all its fields and salts, anchoring, and the erasure with its receipt if erased."""
    document = services.node.export(body.tracking_number)
    _audit(
        services,
        principal,
        "privacy.export",
        document["shipment"]["shipmentId"],
        {"state": document["shipment"]["state"], "events": len(document["events"])},
    )
    return document


@privacy.post("/erase", status_code=status.HTTP_201_CREATED)
def erase(
    body: s.ErasureIn, services: Services, principal: CanErase, response: Response
) -> s.ErasureOut:
    """Crypto-shred a parcel: its data key is destroyed, so its details, second factors and
    event fields are unreadable for anyone from now on; its proofs still verify. Returns the
    signed erasure receipt (201; erasing again returns the same receipt with 200)."""
    node = services.node
    before = node.erasure_receipt(body.tracking_number)
    receipt = before or node.erase(body.tracking_number, body.reason)
    if before is not None:
        response.status_code = status.HTTP_200_OK
    else:
        _audit(
            services,
            principal,
            "privacy.erase",
            node.shipment_id(body.tracking_number),
            {"reason": body.reason, "events": receipt.erasure.event_count},
        )
    return s.ErasureOut(
        erased_at=receipt.erasure.erased_at,
        reason=receipt.erasure.reason,
        receipt=receipt.to_json(),
    )


def erased_response(error: ParcelErasedError) -> JSONResponse:
    """``410 Gone`` for a parcel every node erased: when and why (with the signed receipts),
    the timeline without fields, and the bundle of erased events with its verification."""
    result = error.result
    return problem(
        status.HTTP_410_GONE,
        ERASED_PROBLEM,
        "Details erased",
        str(error),
        erasures=[e.to_json() for e in result.erasures],
        **s.lookup_out(result).model_dump(),
    )


def install(app: FastAPI) -> None:
    """Answer an erased parcel's lookup with :func:`erased_response` (``410``)."""

    @app.exception_handler(ParcelErasedError)
    async def _erased(request: Request, exc: ParcelErasedError) -> JSONResponse:
        return erased_response(exc)
