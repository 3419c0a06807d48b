"""Key rotation: re-wrap every shipment's data key under the active key-encryption key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from parcelproof.core import envelope
from parcelproof.core.envelope import WrappedKey


class WrappedKeyStore(Protocol):
    """The two store calls rotation needs."""

    def wrapped_keys(self, not_kid: str) -> list[tuple[str, WrappedKey]]: ...

    def set_wrapped_key(self, shipment_id: str, wrapped: WrappedKey) -> None: ...


@dataclass(frozen=True)
class RotationResult:
    """How many data keys moved to the active key, and from which old key ids."""

    rewrapped: int
    from_kids: tuple[str, ...]


def rotate(
    store: WrappedKeyStore,
    keyring: envelope.Keyring,
    on_key: Callable[[], None] = lambda: None,
) -> RotationResult:
    """Re-wrap every data key not yet under ``keyring.active_kid``; ciphertexts are untouched.

    Idempotent: a second run finds nothing to do. Afterwards the old key-encryption keys can
    be removed from the keyring. Fails (UnknownKeyError) if an old key id is not in the ring.
    """
    done, kids = 0, set()
    for shipment_id, wrapped in store.wrapped_keys(keyring.active_kid):
        store.set_wrapped_key(shipment_id, envelope.rewrap(keyring, wrapped, shipment_id))
        kids.add(wrapped.kid)
        done += 1
        on_key()
    return RotationResult(done, tuple(sorted(kids)))
