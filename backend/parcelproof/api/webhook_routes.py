"""Webhook routes: register, list, delete and test subscriptions; read their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from parcelproof.api.deps import CanManageWebhooks, NodeServices, Services
from parcelproof.core.errors import NotFoundError
from parcelproof.service.webhooks import (
    MAX_DESCRIPTION,
    MAX_URL_LENGTH,
    Delivery,
    Subscription,
    WebhookService,
)

webhooks = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

SubscriptionId = Annotated[str, Path(max_length=64)]


class WebhookIn(BaseModel):
    """A subscription to register: an absolute https URL (http only to loopback)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=4 * MAX_URL_LENGTH)  # over MAX_URL_LENGTH: a clear message
    event_types: list[str] = Field(min_length=1, max_length=16)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class WebhookOut(BaseModel):
    """A subscription (its secret is only ever shown by the 201 of its creation)."""

    id: str
    url: str
    event_types: list[str]
    description: str
    created_at: int
    created_by: str


class WebhookCreatedOut(WebhookOut):
    """The new subscription and its signing secret: store it now, it is never shown again."""

    secret: str


class AttemptOut(BaseModel):
    """One HTTP attempt of a delivery."""

    attempt: int
    at: int
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    """One event owed to the subscription: its state and every attempt."""

    id: str
    event_id: str
    event_type: str
    created_at: int
    state: str  # pending | retrying | delivered | failed | cancelled
    attempts: int
    next_attempt_at: int | None
    last_attempt_at: int | None
    history: list[AttemptOut]


def _service(services: NodeServices) -> WebhookService:
    if services.webhooks is None:
        raise NotFoundError("webhooks are not enabled on this node")
    return services.webhooks


def _out(sub: Subscription) -> WebhookOut:
    return WebhookOut(
        id=sub.subscription_id,
        url=sub.url,
        event_types=list(sub.event_types),
        description=sub.description,
        created_at=sub.created_at,
        created_by=sub.created_by,
    )


def _delivery(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.delivery_id,
        event_id=d.event_id,
        event_type=d.event_type,
        created_at=d.created_at,
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        history=[
            AttemptOut(
                attempt=a.attempt,
                at=a.at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in d.history
        ],
    )


@webhooks.post("", status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookIn, services: Services, principal: CanManageWebhooks
) -> WebhookCreatedOut:
    """Register an endpoint for some event types (``shipment.status_changed``,
    ``checkpoint.anchored``). The answer holds the signing secret, shown this once."""
    created = _service(services).create(
        principal.actor, body.url, body.event_types, body.description
    )
    return WebhookCreatedOut(**_out(created.subscription).model_dump(), secret=created.secret)


@webhooks.get("")
def list_webhooks(services: Services, _: CanManageWebhooks) -> list[WebhookOut]:
    """This node's active subscriptions (without secrets)."""
    return [_out(s) for s in _service(services).subscriptions()]


@webhooks.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(
    webhook_id: SubscriptionId, services: Services, principal: CanManageWebhooks
) -> Response:
    """Delete a subscription: nothing more is sent to it; queued deliveries are cancelled."""
    _service(services).delete(principal.actor, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@webhooks.post("/{webhook_id}/test")
def test_webhook(
    webhook_id: SubscriptionId, services: Services, _: CanManageWebhooks
) -> DeliveryOut:
    """Send a signed ``webhook.test`` event now and answer with the attempt's outcome (a
    failed test is retried like any other delivery)."""
    return _delivery(_service(services).send_test(webhook_id))


@webhooks.get("/{webhook_id}/deliveries")
def webhook_deliveries(
    webhook_id: SubscriptionId,
    services: Services,
    _: CanManageWebhooks,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The delivery log, newest first: each event's state, attempts (time, HTTP status or
    error, duration) and next retry."""
    return [_delivery(d) for d in _service(services).deliveries(webhook_id, limit)]
