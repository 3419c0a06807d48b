"""Shipment milestone vocabulary (CBV-aligned), carrier aliases and allowed transitions."""

from __future__ import annotations

from enum import StrEnum

from parcelproof.core.errors import FormatError, TransitionError


class Status(StrEnum):
    """Milestones a courier can record; values are what commitments and bundles carry."""

    CREATED = "created"
    PICKED_UP = "picked_up"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    RETURNED = "returned"
    EXCEPTION = "exception"
    HANDOFF_OFFERED = "handoff_offered"
    HANDOFF_ACCEPTED = "handoff_accepted"
    CORRECTED = "corrected"


# Names other systems use for the same milestones (Karrio / AfterShip style).
ALIASES: dict[str, Status] = {
    "pickup": Status.PICKED_UP,
    "collected": Status.PICKED_UP,
    "in_transit": Status.DEPARTED,
    "intransit": Status.DEPARTED,
    "arrived_at_facility": Status.ARRIVED,
    "outfordelivery": Status.OUT_FOR_DELIVERY,
    "attemptfail": Status.DELIVERY_FAILED,
    "failed_attempt": Status.DELIVERY_FAILED,
    "return_to_sender": Status.RETURNED,
    "on_hold": Status.EXCEPTION,
}

_S = Status
_MOVING = {_S.DEPARTED, _S.ARRIVED, _S.OUT_FOR_DELIVERY, _S.EXCEPTION, _S.HANDOFF_OFFERED}
TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({_S.CREATED, _S.PICKED_UP, _S.HANDOFF_ACCEPTED}),
    _S.CREATED: frozenset({_S.PICKED_UP, _S.EXCEPTION}),
    _S.PICKED_UP: frozenset(_MOVING),
    _S.DEPARTED: frozenset(_MOVING | {_S.DELIVERED}),
    _S.ARRIVED: frozenset(_MOVING | {_S.RETURNED}),
    _S.OUT_FOR_DELIVERY: frozenset({_S.DELIVERED, _S.DELIVERY_FAILED, _S.EXCEPTION}),
    _S.DELIVERY_FAILED: frozenset(_MOVING | {_S.RETURNED}),
    _S.EXCEPTION: frozenset(_MOVING | {_S.RETURNED, _S.DELIVERED}),
    _S.HANDOFF_OFFERED: frozenset({_S.HANDOFF_ACCEPTED, _S.EXCEPTION, _S.ARRIVED}),
    _S.HANDOFF_ACCEPTED: frozenset(_MOVING),
    _S.DELIVERED: frozenset(),
    _S.RETURNED: frozenset(),
}
TERMINAL = frozenset({_S.DELIVERED, _S.RETURNED})


def parse_status(value: str) -> Status:
    """Map a status or a known alias to :class:`Status`; FormatError otherwise."""
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Status(key)
    except ValueError:
        pass
    if key in ALIASES:
        return ALIASES[key]
    raise FormatError(f"unknown status {value!r}")


def check_transition(previous: Status | None, new: Status) -> None:
    """Raise TransitionError with the reason when ``new`` may not follow ``previous``.

    A correction may follow any event (it references the corrected one and changes nothing
    in place); the status it corrects to is checked by the caller.
    """
    if new is Status.CORRECTED:
        if previous is None:
            raise TransitionError("a correction needs an earlier event to correct")
        return
    allowed = TRANSITIONS.get(previous, frozenset())
    if new not in allowed:
        was = previous.value if previous else "nothing"
        if previous in TERMINAL:
            raise TransitionError(f"{new.value} after {was}: the shipment is already {was}")
        raise TransitionError(f"{new.value} may not follow {was}")
