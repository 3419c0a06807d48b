"""Custody handoffs between couriers: the fields a handoff event carries, and their check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from parcelproof.core import eip712
from parcelproof.core.commitment import JsonValue
from parcelproof.core.encoding import parse_hex
from parcelproof.core.errors import FormatError

OFFERED = "handoff_offered"
ACCEPTED = "handoff_accepted"
FIELDS = (
    "handoff_id", "handoff_time", "counterparty_shipment", "counterparty_agent",
    "counterparty_signature",
)  # fmt: skip


@dataclass(frozen=True)
class Countersigned:
    """A handoff as one side's event records it, with the other side's signature."""

    handoff: eip712.Handoff
    counterparty_log: bytes
    counterparty_agent: str
    counterparty_signature: bytes

    def verify(self, domain: eip712.Domain) -> None:
        """Raise SignatureError unless the counterparty's agent signed this handoff."""
        eip712.verify_handoff_signature(
            domain, self.handoff, self.counterparty_signature, self.counterparty_agent
        )


def _hex(fields: Mapping[str, JsonValue], name: str, size: int) -> bytes:
    return parse_hex(fields.get(name), f"handoff field {name!r}", size)


def parse(
    log_id: bytes, shipment: bytes, status: str, fields: Mapping[str, JsonValue]
) -> Countersigned | None:
    """The countersigned handoff an event's fields describe; None for other events.

    On ``log_id``'s ``handoff_offered`` the counterparty is ``handoff_to``; on its
    ``handoff_accepted`` it is ``handoff_from``. The signed struct binds both logs and the
    parcel's shipment reference on each (``shipment`` here, ``counterparty_shipment`` there),
    so a countersignature cannot be reused for another parcel. FormatError if a field is bad.
    """
    if status not in (OFFERED, ACCEPTED):
        return None
    other = _hex(fields, "handoff_to" if status == OFFERED else "handoff_from", 32)
    when = fields.get("handoff_time")
    if isinstance(when, bool) or not isinstance(when, int):
        raise FormatError("handoff field 'handoff_time' must be an integer")
    theirs = _hex(fields, "counterparty_shipment", 32)
    handoff = eip712.Handoff(
        handoff_id=_hex(fields, "handoff_id", 32),
        from_log=log_id if status == OFFERED else other,
        from_shipment=shipment if status == OFFERED else theirs,
        to_log=other if status == OFFERED else log_id,
        to_shipment=theirs if status == OFFERED else shipment,
        handoff_time=when,
    )
    agent = _hex(fields, "counterparty_agent", 20)
    return Countersigned(
        handoff=handoff,
        counterparty_log=other,
        counterparty_agent=str(to_checksum_address(agent)),
        counterparty_signature=_hex(fields, "counterparty_signature", 65),
    )
