"""Chain reads of customer lookups, remembered for a few seconds so lookups scale."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from parcelproof.service.keys import AgentKeyDirectory, KeyLedger

K = TypeVar("K")
V = TypeVar("V")


class _Checkpoint(Protocol):
    @property
    def size(self) -> int: ...


class LookupLedger(KeyLedger, Protocol):
    """The ledger reads a lookup makes (the LedgerClient has them all)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes: ...

    def latest_checkpoint(self, courier_id: bytes) -> _Checkpoint | None: ...


class _Ttl(Generic[K, V]):
    """Answers remembered for ``ttl`` seconds (errors are never remembered)."""

    def __init__(self, ttl: float, monotonic: Callable[[], float], limit: int = 65_536) -> None:
        self._ttl, self._monotonic, self._limit = ttl, monotonic, limit
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, fetch: Callable[[], V]) -> V:
        now = self._monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = fetch()
        with self._lock:
            if len(self._entries) >= self._limit:
                self._entries.clear()  # bounded memory; a cold start costs one read each
            self._entries[key] = (now, value)
        return value


class CachedLedgerView:
    """The ledger as customer lookups read it: the same answers as the contract, each at
    most ``ttl`` seconds old. Anchored roots and agent-key registrations change rarely, and
    every lookup of the same hour cites the same latest checkpoint, so a few seconds of
    memory remove nearly every ``eth_call`` from a busy node's lookups.

    The staleness is bounded and only on the server's own check: a key revoked or a
    checkpoint dropped by a reorganisation shows in these answers at most ``ttl`` seconds
    late, while a customer's verifier (``parcelproof verify``, the lookup page) always reads
    the chain itself. Writes (anchoring, key registration) never go through this view.
    """

    def __init__(
        self, ledger: LookupLedger, ttl: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0:
            raise ValueError("a cached view needs a positive ttl")
        self._ledger = ledger
        self.ttl = ttl
        self._roots: _Ttl[tuple[bytes, int], bytes] = _Ttl(ttl, monotonic)
        self._latest: _Ttl[bytes, _Checkpoint | None] = _Ttl(ttl, monotonic)
        self._keys = AgentKeyDirectory(
            ledger, ttl=ttl, negative_ttl=ttl, max_stale=0.0, monotonic=monotonic
        )

    @property
    def chain_id(self) -> int:
        return self._ledger.chain_id

    @property
    def address(self) -> str:
        return self._ledger.address

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        return self._roots.get(
            (courier_id, size), lambda: self._ledger.checkpoint_root(courier_id, size)
        )

    def latest_checkpoint(self, courier_id: bytes) -> _Checkpoint | None:
        return self._latest.get(courier_id, lambda: self._ledger.latest_checkpoint(courier_id))

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        return self._keys.is_agent_key_valid(courier_id, agent, at)
