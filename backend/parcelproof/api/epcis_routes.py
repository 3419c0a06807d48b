"""GS1 EPCIS 2.0 export of a shipment's events (courier-authenticated, `read` scope)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response

from parcelproof.api import schemas as s
from parcelproof.api.deps import CanRead, Services
from parcelproof.core.epcis import MEDIA_TYPE
from parcelproof.service.audit import AuditAction
from parcelproof.service.epcis import export_shipment

epcis = APIRouter(prefix="/v1/epcis", tags=["epcis"])

_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCIS 2.0 EPCISDocument of the shipment's ObjectEvents (JSON-LD)",
        "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
    }
}


@epcis.post("/export", response_class=Response, responses=_DOCUMENT)
def export(body: s.ContextIn, services: Services, principal: CanRead) -> Response:
    """The shipment's events as a GS1 EPCIS 2.0 document: one ObjectEvent per event with
    CBV bizStep and disposition, readPoint from the place, handoff parties, and the
    commitment, sequence and leaf index for verification. It reveals decrypted fields, so
    it needs the dispute-evidence `read` permission and is recorded in the audit log."""
    node = services.node
    document = export_shipment(node, body.tracking_number, now=node.clock.now())
    if services.audit is not None:
        services.audit.record(
            principal.actor,
            AuditAction.EVIDENCE_READ,
            node.shipment_id(body.tracking_number),  # the shipment id, never the number
            {"events": len(document["epcisBody"]["eventList"]), "format": "epcis"},
        )
    return Response(json.dumps(document, indent=2) + "\n", media_type=MEDIA_TYPE)
