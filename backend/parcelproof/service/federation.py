"""Consortium lookups: ask the other couriers' nodes for their part of a parcel's journey and
merge only the logs a countersigned handoff links to, so one bundle proves the whole journey.

A peer is not trusted: its answer is another lookup's bundle, parsed strictly, and a log of
it joins ours only if a handoff event already in the bundle (verified signature and
countersignature) names that log *and* that shipment reference. The merged bundle is then
verified against the chain like any other; a peer can add nothing that would not verify, and
nothing about another parcel.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from parcelproof.core import handoff
from parcelproof.core.bundle import Bundle, BundleLog, bundle_to_json, parse_bundle
from parcelproof.core.errors import Error, FormatError

log = logging.getLogger("parcelproof.federation")

#: Header a node sets on the lookups it sends to peers: the peer answers from its own log only
#: (no fan-out again, so no loops).
PEER_HEADER = "X-ParcelProof-Peer"
PEER_TIMEOUT = 3.0
MAX_PEERS = 16


@dataclass(frozen=True)
class PeerAnswer:
    """What one peer returned for the parcel: its bundle and its timeline items (JSON)."""

    peer: str
    bundle: Bundle
    timeline: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Merged:
    """The merged bundle, the peers' timeline items for the logs that joined, and which peers
    contributed (or failed: name and reason, without personal data)."""

    bundle: dict[str, Any]
    timeline: tuple[Mapping[str, Any], ...]
    joined: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


def handoff_links(logs: Iterable[BundleLog]) -> set[tuple[bytes, bytes]]:
    """The (log id, shipment reference) pairs the revealed handoff events of ``logs`` point
    at: the other side of every offered or accepted handoff."""
    links: set[tuple[bytes, bytes]] = set()
    for lg in logs:
        for ev in lg.events:
            try:
                fields = ev.disclosure.fields()
                signed = handoff.parse(lg.log_id, lg.shipment, str(fields.get("status")), fields)
            except (Error, ValueError):
                continue  # not a well-formed handoff: links nothing (verification says why)
            if signed is None:
                continue
            h = signed.handoff
            other = (
                (h.to_log, h.to_shipment)
                if h.from_log == lg.log_id
                else (
                    h.from_log,
                    h.from_shipment,
                )
            )
            links.add(other)
    return links


def merge(local: Bundle, answers: Sequence[PeerAnswer]) -> tuple[Bundle, list[PeerAnswer]]:
    """Add to ``local`` every peer log that a handoff of the bundle so far links to (by log id
    and shipment reference), repeating until nothing more joins; logs of the same courier log
    are never replaced. Returns the merged bundle and the answers that contributed."""
    logs = list(local.logs)
    known = {lg.log_id for lg in logs}
    contributed: list[PeerAnswer] = []
    pending = [
        (a, lg)
        for a in answers
        for lg in a.bundle.logs
        if a.bundle.chain_id == local.chain_id and a.bundle.ledger.lower() == local.ledger.lower()
    ]
    while True:
        links = handoff_links(logs)
        joining = [
            (a, lg)
            for a, lg in pending
            if lg.log_id not in known and (lg.log_id, lg.shipment) in links
        ]
        if not joining:
            break
        for answer, lg in joining:
            if lg.log_id in known:
                continue
            logs.append(lg)
            known.add(lg.log_id)
            if answer not in contributed:
                contributed.append(answer)
        pending = [(a, lg) for a, lg in pending if lg.log_id not in known]
    return Bundle(local.chain_id, local.ledger, tuple(logs)), contributed


class PeerLookup:
    """Sends a customer's lookup to the consortium's other nodes (``POST /v1/lookup`` with the
    same tracking number and second factor, marked with :data:`PEER_HEADER`)."""

    def __init__(
        self,
        clients: Sequence[tuple[str, httpx.Client]],
    ) -> None:
        if len(clients) > MAX_PEERS:
            raise FormatError(f"at most {MAX_PEERS} peers")
        self._clients = list(clients)

    @classmethod
    def from_urls(cls, urls: Sequence[str], timeout: float = PEER_TIMEOUT) -> PeerLookup:
        """Peers by their base URLs (``https://node.other-courier.example``)."""
        return cls([(u, httpx.Client(base_url=u, timeout=timeout)) for u in urls])

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._clients)

    def ask(self, body: Mapping[str, Any]) -> tuple[list[PeerAnswer], list[tuple[str, str]]]:
        """Each peer's answer to the lookup ``body``; peers that do not know the parcel (404),
        fail or answer malformed JSON are listed with the reason, never raised."""
        answers: list[PeerAnswer] = []
        failed: list[tuple[str, str]] = []
        for name, client in self._clients:
            try:
                r = client.post("/v1/lookup", json=dict(body), headers={PEER_HEADER: "1"})
            except httpx.HTTPError as e:
                failed.append((name, f"unreachable ({type(e).__name__})"))
                continue
            if r.status_code == 404:
                continue  # the parcel never passed through that courier
            if r.status_code != 200:
                failed.append((name, f"answered {r.status_code}"))
                continue
            try:
                payload = r.json()
                if payload.get("bundle") is None:
                    continue  # nothing anchored there yet
                bundle = parse_bundle(payload["bundle"])
                timeline = tuple(t for t in payload.get("timeline", []) if isinstance(t, dict))
            except (ValueError, KeyError, AttributeError, Error) as e:
                failed.append((name, f"malformed answer ({type(e).__name__})"))
                continue
            answers.append(PeerAnswer(name, bundle, timeline))
        for name, reason in failed:
            log.warning("peer lookup failed", extra={"peer": name, "reason": reason})
        return answers, failed

    def close(self) -> None:
        for _, client in self._clients:
            client.close()


def federate(local_bundle: Mapping[str, Any], body: Mapping[str, Any], peers: PeerLookup) -> Merged:
    """Ask ``peers`` and merge their linked logs into ``local_bundle`` (JSON in, JSON out)."""
    local = parse_bundle(dict(local_bundle))
    answers, failed = peers.ask(body)
    merged, contributed = merge(local, answers)
    added = {lg.log_id for lg in merged.logs} - {lg.log_id for lg in local.logs}
    timeline = tuple(t for a in contributed for t in a.timeline if _log_of(t) in added)
    return Merged(
        bundle_to_json(merged),
        timeline,
        tuple(a.peer for a in contributed),
        tuple(failed),
    )


def _log_of(item: Mapping[str, Any]) -> bytes | None:
    value = item.get("log_id")
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        return None
