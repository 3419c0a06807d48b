"""Agent-key checks for ingest, cached so bulk ingest and chain outages do not stall it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from parcelproof.core.errors import NetworkError, UnknownAgentKeyError, UnknownCourierError
from parcelproof.service.ports import ChainAgentKey

log = logging.getLogger("parcelproof.keys")


class _Courier(Protocol):
    @property
    def removed_at(self) -> int | None: ...


class _Suspension(Protocol):
    @property
    def suspended_at(self) -> int: ...

    @property
    def reinstated_at(self) -> int | None: ...


class KeyLedger(Protocol):
    """The ledger reads the directory needs."""

    def agent_key(self, agent: str) -> ChainAgentKey: ...

    def courier(self, courier_id: bytes) -> _Courier: ...

    def suspensions(self, courier_id: bytes) -> Sequence[_Suspension]: ...


@dataclass(frozen=True)
class _Entry:
    courier_id: bytes | None  # None: no such key on chain (negative entry)
    valid_from: int
    valid_until: int
    revoked_at: int | None
    removed_at: int | None
    fetched: float
    suspended: tuple[tuple[int, int | None], ...] = ()  # the courier's (start, end) periods


class AgentKeyDirectory:
    """Answers "could ``agent`` sign for ``courier`` at ``at``?" exactly as the contract's
    ``isAgentKeyValid`` does (window, revocation, the courier's removal and suspensions), from
    registrations cached for ``ttl`` seconds (negative answers for ``negative_ttl``). While
    the chain is unreachable, entries up to ``max_stale`` seconds old are used, so ingestion
    keeps working during an outage; a revocation or suspension made during the outage is then
    seen late (as within ``ttl`` anyway), but every bundle is still verified against the chain
    itself.
    """

    def __init__(
        self,
        ledger: KeyLedger,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        max_stale: float = 24 * 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._ttl, self._negative_ttl, self._max_stale = ttl, negative_ttl, max_stale
        self._monotonic = monotonic
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        e = self._entry(agent.lower())
        if e.courier_id is None or e.courier_id != courier_id:
            return False
        if not e.valid_from <= at < e.valid_until:
            return False
        if e.revoked_at is not None and e.revoked_at <= at:
            return False
        if e.removed_at is not None and e.removed_at <= at:
            return False
        return not any(start <= at and (end is None or at < end) for start, end in e.suspended)

    def forget(self, agent: str) -> None:
        """Drop a cached registration (after this node registers or revokes a key)."""
        with self._lock:
            self._entries.pop(agent.lower(), None)

    def _entry(self, agent: str) -> _Entry:
        now = self._monotonic()
        with self._lock:
            cached = self._entries.get(agent)
        if cached is not None:
            ttl = self._ttl if cached.courier_id is not None else self._negative_ttl
            if now - cached.fetched < ttl:
                return cached
        try:
            fresh = self._fetch(agent, now)
        except NetworkError:
            if cached is not None and now - cached.fetched < self._max_stale:
                log.warning("ledger unreachable: using a cached agent-key registration")
                return cached
            raise
        with self._lock:
            self._entries[agent] = fresh
        return fresh

    def _fetch(self, agent: str, now: float) -> _Entry:
        try:
            key = self._ledger.agent_key(agent)
        except UnknownAgentKeyError:
            return _Entry(None, 0, 0, None, None, now)
        try:
            removed_at = self._ledger.courier(key.courier_id).removed_at
            suspended = tuple(
                (s.suspended_at, s.reinstated_at) for s in self._ledger.suspensions(key.courier_id)
            )
        except UnknownCourierError:
            return _Entry(None, 0, 0, None, None, now)
        return _Entry(
            key.courier_id,
            key.valid_from,
            key.valid_until,
            key.revoked_at,
            removed_at,
            now,
            suspended,
        )
