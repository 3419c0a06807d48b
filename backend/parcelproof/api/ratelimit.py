"""Rate limits on the public routes (moving windows from the `limits` library, in memory)."""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from parcelproof.core.errors import Error


class RateLimitedError(Error):
    """Too many requests; ``retry_after`` seconds until the window lets one through."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(f"too many requests: retry in {self.retry_after} s")


class PublicLimits:
    """Per client address on every public route, and per parcel on lookups, so neither a
    tracking number's second factor nor the node's chain endpoint can be hammered.

    Process-local: each API replica counts on its own (a shared storage such as Redis is a
    configuration change of the `limits` library, not new code).
    """

    def __init__(self, per_client: str = "60/minute", per_parcel: str = "10/minute") -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_client: RateLimitItem = parse(per_client)
        self._per_parcel: RateLimitItem = parse(per_parcel)

    def client(self, address: str) -> None:
        self._hit(self._per_client, "client", address)

    def parcel(self, tracking_number: str) -> None:
        # Keyed by a hash: the limiter's memory holds no tracking numbers in clear.
        key = hashlib.sha256("".join(tracking_number.split()).upper().encode()).hexdigest()
        self._hit(self._per_parcel, "parcel", key)

    def _hit(self, item: RateLimitItem, *keys: str) -> None:
        if not self._limiter.hit(item, *keys):
            reset = self._limiter.get_window_stats(item, *keys).reset_time
            raise RateLimitedError(math.ceil(reset - time.time()))
