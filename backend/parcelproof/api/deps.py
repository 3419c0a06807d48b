"""Dependencies of the routers: the node's services and the caller's credential."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from parcelproof.api.ratelimit import PublicLimits
from parcelproof.core.bundle import LedgerView
from parcelproof.service import credentials
from parcelproof.service.credentials import ApiClients
from parcelproof.service.node import CourierNode
from parcelproof.service.ports import ApiClientRecord


@dataclass
class NodeServices:
    """Everything the routers reach: one courier node, its ledger view and credentials."""

    node: CourierNode
    ledger: LedgerView
    clients: ApiClients
    limits: PublicLimits = field(default_factory=PublicLimits)


def _services(request: Request) -> NodeServices:
    services: NodeServices = request.app.state.services
    return services


Services = Annotated[NodeServices, Depends(_services)]
_bearer = HTTPBearer(auto_error=False)


def require(scope: str) -> Callable[..., ApiClientRecord]:
    """A dependency that authenticates the bearer token and checks ``scope``."""

    def dependency(
        services: Services,
        auth: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiClientRecord:
        if auth is None:
            raise credentials.AuthenticationError("missing bearer credentials")
        return credentials.authenticate(services.clients, auth.credentials, scope)

    return dependency


CanWriteShipments = Annotated[ApiClientRecord, Depends(require("shipments:write"))]
CanWriteEvents = Annotated[ApiClientRecord, Depends(require("events:write"))]
CanAnchor = Annotated[ApiClientRecord, Depends(require("anchor:write"))]
CanRead = Annotated[ApiClientRecord, Depends(require("read"))]
