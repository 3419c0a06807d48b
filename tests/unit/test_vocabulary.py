"""Milestone vocabulary: aliases map to canonical statuses, illegal transitions say why."""

from __future__ import annotations

import pytest

from parcelproof.core.errors import FormatError, TransitionError
from parcelproof.core.vocabulary import Status, check_transition, parse_status


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("picked_up", Status.PICKED_UP),
        ("Picked-Up", Status.PICKED_UP),
        ("pickup", Status.PICKED_UP),
        ("in_transit", Status.DEPARTED),
        ("OutForDelivery", Status.OUT_FOR_DELIVERY),
        ("failed_attempt", Status.DELIVERY_FAILED),
        (" delivered ", Status.DELIVERED),
    ],
)
def test_status_and_alias_parsing(given: str, expected: Status) -> None:
    assert parse_status(given) is expected


def test_unknown_status_is_refused_by_name() -> None:
    with pytest.raises(FormatError, match="unknown status 'teleported'"):
        parse_status("teleported")


def test_a_happy_journey_is_allowed() -> None:
    journey = [
        Status.PICKED_UP,
        Status.DEPARTED,
        Status.ARRIVED,
        Status.HANDOFF_OFFERED,
        Status.HANDOFF_ACCEPTED,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERED,
    ]
    previous: Status | None = None
    for status in journey:
        check_transition(previous, status)
        previous = status


def test_nothing_follows_delivery() -> None:
    with pytest.raises(TransitionError, match="already delivered"):
        check_transition(Status.DELIVERED, Status.OUT_FOR_DELIVERY)


def test_delivery_needs_the_parcel_first() -> None:
    with pytest.raises(TransitionError, match="delivered may not follow nothing"):
        check_transition(None, Status.DELIVERED)


def test_a_correction_needs_something_to_correct() -> None:
    with pytest.raises(TransitionError, match="correction needs an earlier event"):
        check_transition(None, Status.CORRECTED)
    check_transition(Status.DELIVERED, Status.CORRECTED)
