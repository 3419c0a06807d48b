"""The agent side of recording: build salted field openings, commit, sign with EIP-712."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Protocol

from eth_account import Account

from parcelproof.core import eip712
from parcelproof.core.commitment import FieldOpening, JsonValue, event_commitment, open_fields
from parcelproof.core.vocabulary import parse_status
from parcelproof.service.node import EventContext
from parcelproof.service.ports import EventRecord


class RecordingNode(Protocol):
    """The two calls an agent device makes to its courier's node."""

    def event_context(self, tracking_number: str) -> EventContext: ...

    def record_event(
        self,
        tracking_number: str,
        openings: list[FieldOpening],
        *,
        event_time: int,
        agent: str,
        signature: bytes,
    ) -> EventRecord: ...


class Agent:
    """A driver's or depot scanner's signing device."""

    def __init__(
        self, private_key: bytes, rng: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self._key = private_key
        self._rng = rng
        self.address: str = Account.from_key(private_key).address

    def sign(
        self, context: EventContext, fields: Mapping[str, JsonValue], event_time: int
    ) -> tuple[list[FieldOpening], bytes]:
        """Salt the fields (status normalised, time added), commit and sign the commitment."""
        values = dict(fields)
        values["status"] = parse_status(str(values["status"])).value
        values["time"] = event_time
        openings = open_fields(values, self._rng)
        commitment = event_commitment(
            context.log_id,
            context.shipment,
            context.sequence,
            context.previous,
            [o.digest() for o in openings],
        )
        signed = eip712.SignedEvent(
            log_id=context.log_id,
            shipment=context.shipment,
            sequence=context.sequence,
            commitment=commitment,
            event_time=event_time,
        )
        return openings, eip712.sign_event(self._key, context.domain, signed)

    def sign_handoff(self, domain: eip712.Domain, handoff: eip712.Handoff) -> bytes:
        """Countersign a custody handoff (both agents sign the same struct at the scan)."""
        return eip712.sign_handoff(self._key, domain, handoff)

    def record(
        self,
        node: RecordingNode,
        tracking_number: str,
        fields: Mapping[str, JsonValue],
        event_time: int,
    ) -> EventRecord:
        """Ask the node for the shipment's context, sign the event and submit it."""
        context = node.event_context(tracking_number)
        openings, signature = self.sign(context, fields, event_time)
        return node.record_event(
            tracking_number,
            openings,
            event_time=event_time,
            agent=self.address,
            signature=signature,
        )
