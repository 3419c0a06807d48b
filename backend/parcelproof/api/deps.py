"""Dependencies of the routers: the node's services and the caller's principal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from parcelproof.api.ratelimit import PublicLimits
from parcelproof.core.bundle import LedgerView
from parcelproof.service import credentials
from parcelproof.service.authz import AuthenticationError, Principal
from parcelproof.service.credentials import ApiClients
from parcelproof.service.disputes import DisputeDesk
from parcelproof.service.federation import PeerLookup
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import AuditSink
from parcelproof.service.staff import SESSION_PREFIX, StaffService
from parcelproof.service.webhooks import WebhookService


@dataclass
class NodeServices:
    """Everything the routers reach: one courier node, its ledger view and credentials."""

    node: CourierNode
    ledger: LedgerView
    clients: ApiClients
    limits: PublicLimits = field(default_factory=PublicLimits)
    staff: StaffService | None = None
    audit: AuditSink | None = None  # the node's audit log: personal-data reads, privileged acts
    peers: PeerLookup | None = None  # the consortium's other nodes, asked on customer lookups
    disputes: DisputeDesk | None = None  # the dispute desk; None: dispute routes answer 404
    #: What customer lookups verify against: a view whose chain reads are a few seconds old
    #: at most (service.chainview); None: ``ledger`` itself.
    lookup_ledger: LedgerView | None = None
    webhooks: WebhookService | None = None  # signed webhooks; None: webhook routes answer 404
    #: The anchoring worker's interval (PARCELPROOF_ANCHOR_INTERVAL_SECONDS), which the staff
    #: console judges the worker's health by; None: the worker's default.
    anchor_interval_seconds: float | None = None


def _services(request: Request) -> NodeServices:
    services: NodeServices = request.app.state.services
    return services


Services = Annotated[NodeServices, Depends(_services)]
_bearer = HTTPBearer(auto_error=False)


def authenticate(services: NodeServices, token: str) -> Principal:
    """The principal a bearer token stands for: a machine client (``ppk_``) or a staff
    session (``pps_``). Anything else is the same 401."""
    if token.startswith(credentials.PREFIX + "_"):
        return credentials.principal(credentials.authenticate_client(services.clients, token))
    if token.startswith(SESSION_PREFIX + "_") and services.staff is not None:
        return services.staff.principal(token)
    raise AuthenticationError("invalid credentials")


def require(permission: str) -> Callable[..., Principal]:
    """A dependency that authenticates the bearer token and checks ``permission``."""

    def dependency(
        services: Services,
        auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if auth is None:
            raise AuthenticationError("missing bearer credentials")
        principal = authenticate(services, auth.credentials)
        principal.check(permission)
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


CanWriteShipments = Annotated[Principal, Depends(require("shipments:write"))]
CanWriteEvents = Annotated[Principal, Depends(require("events:write"))]
CanAnchor = Annotated[Principal, Depends(require("anchor:write"))]
CanRead = Annotated[Principal, Depends(require("read"))]
CanExport = Annotated[Principal, Depends(require("privacy:export"))]
CanErase = Annotated[Principal, Depends(require("privacy:erase"))]
CanReadAudit = Annotated[Principal, Depends(require("audit:read"))]
CanManageStaff = Annotated[Principal, Depends(require("staff:manage"))]
CanEnrol = Annotated[Principal, Depends(require("mfa:enrol"))]
CanOpenDisputes = Annotated[Principal, Depends(require("disputes:open"))]
CanResolve = Annotated[Principal, Depends(require("disputes:resolve"))]
CanManageWebhooks = Annotated[Principal, Depends(require("webhooks:manage"))]
CanReadConsole = Annotated[Principal, Depends(require("console:read"))]
