"""AES-256-GCM envelope encryption: per-shipment data keys wrapped by a rotating keyring.

Every shipment gets a random 256-bit data key; its details, second factor and event
openings (fields and salts) are sealed under it. The data key is stored only wrapped by a
key-encryption key (KEK) of a :class:`Keyring`, named by its key id, so KEKs rotate by
re-wrapping data keys (:func:`rewrap`) without touching any data ciphertext, and destroying a
shipment's wrapped key shreds everything sealed under it.

Blob layout (sealed data and wrapped keys alike)::

    version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext || GCM tag (16 bytes)

Associated data is the RFC 8785 (JCS) canonical JSON of an object, so every boundary between
identifiers is unambiguous:

- sealed data: ``{"event": event_id, "purpose": purpose, "shipment": shipment_id, "v": 1}``
  (``event_id`` is ``""`` for shipment-level data such as details or the second factor);
- wrapped data key: ``{"kid": kid, "purpose": "dek", "shipment": shipment_id, "v": 1}``.

The two shapes have different key sets, and ``"dek"`` is refused as a data purpose, so neither
can stand in for the other. Nonces are random; with one data key per shipment and a handful of
messages under each, the 96-bit birthday bound is out of reach.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parcelproof.core import jcs
from parcelproof.core.errors import (
    DecryptionError,
    FormatError,
    KeyStateError,
    TrailingGarbageError,
    TruncationError,
    UnknownKeyError,
)

VERSION = 0x01
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
MIN_BLOB_SIZE = 1 + NONCE_SIZE + TAG_SIZE
WRAPPED_KEY_SIZE = MIN_BLOB_SIZE + KEY_SIZE
DEK_PURPOSE = "dek"
MAX_ID_LENGTH = 128

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PURPOSE = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_WRAPPED_KEYS = frozenset({"kid", "blob"})


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyEncryptionKey:
    """A 256-bit key-encryption key and its id. The key never appears in ``repr``."""

    kid: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_kid(self.kid)
        _check_key(self.key, f"key-encryption key {self.kid!r}")
        object.__setattr__(self, "key", bytes(self.key))


class Keyring:
    """An immutable set of KEKs by id, one of which is active for wrapping.

    Pure and in memory; adapters (environment, file, KMS) build it. Rotation builds a new
    keyring with :meth:`with_key`; keys that are no longer active still unwrap.
    """

    __slots__ = ("_active", "_keys")

    def __init__(self, keys: Iterable[KeyEncryptionKey], active_kid: str) -> None:
        table: dict[str, KeyEncryptionKey] = {}
        for kek in keys:
            if not isinstance(kek, KeyEncryptionKey):
                raise FormatError("a keyring holds KeyEncryptionKey objects only")
            if kek.kid in table:
                raise FormatError(f"key id {kek.kid!r} appears twice in the keyring")
            table[kek.kid] = kek
        if active_kid not in table:
            raise FormatError(f"active key id {active_kid!r} is not in the keyring")
        self._keys = table
        self._active = active_kid

    @property
    def active_kid(self) -> str:
        """Id of the key new data keys are wrapped with."""
        return self._active

    @property
    def kids(self) -> tuple[str, ...]:
        """Ids of every key in the keyring, sorted."""
        return tuple(sorted(self._keys))

    def get(self, kid: str) -> KeyEncryptionKey:
        """Return the key with id ``kid``; :class:`UnknownKeyError` if there is none."""
        try:
            return self._keys[kid]
        except (KeyError, TypeError):
            raise UnknownKeyError(f"no key-encryption key with id {kid!r}") from None

    def with_key(self, kek: KeyEncryptionKey, *, activate: bool = True) -> Keyring:
        """Return a new keyring that also holds ``kek`` (active unless ``activate=False``)."""
        if not isinstance(kek, KeyEncryptionKey):
            raise FormatError("a keyring holds KeyEncryptionKey objects only")
        if kek.kid in self._keys:
            raise FormatError(f"key id {kek.kid!r} is already in the keyring")
        return Keyring([*self._keys.values(), kek], kek.kid if activate else self._active)

    def without(self, kid: str) -> Keyring:
        """Return a new keyring without ``kid`` (retire a key once everything is re-wrapped)."""
        self.get(kid)
        if kid == self._active:
            raise KeyStateError(f"cannot remove the active key-encryption key {kid!r}")
        return Keyring([k for k in self._keys.values() if k.kid != kid], self._active)

    def __repr__(self) -> str:
        return f"Keyring(kids={list(self.kids)!r}, active_kid={self._active!r})"


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under the KEK ``kid``: ``0x01 || nonce (12) || ciphertext + tag``."""

    kid: str
    blob: bytes

    def __post_init__(self) -> None:
        _check_kid(self.kid)
        if not isinstance(self.blob, bytes | bytearray):
            raise FormatError("wrapped key blob must be bytes")
        object.__setattr__(self, "blob", bytes(self.blob))

    def to_json(self) -> dict[str, str]:
        """Return ``{"kid": ..., "blob": standard base64 with padding}``."""
        return {"kid": self.kid, "blob": base64.b64encode(self.blob).decode("ascii")}

    @classmethod
    def from_json(cls, obj: object) -> WrappedKey:
        """Parse the form :meth:`to_json` produces; refuse anything else."""
        if not isinstance(obj, dict):
            raise FormatError("wrapped key must be an object")
        missing = _WRAPPED_KEYS - obj.keys()
        if missing:
            raise FormatError(f"wrapped key lacks {', '.join(sorted(missing))}")
        extra = obj.keys() - _WRAPPED_KEYS
        if extra:
            shown = ", ".join(sorted(repr(k) for k in extra))
            raise TrailingGarbageError(f"wrapped key has unknown keys {shown}")
        kid, blob = obj["kid"], obj["blob"]
        if not isinstance(kid, str):
            raise FormatError("wrapped key kid must be a string")
        return cls(kid=kid, blob=_b64decode(blob, "wrapped key blob"))


# --- data keys ------------------------------------------------------------------------------


def new_data_key(rng: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """Return a fresh random 256-bit data key."""
    key = rng(KEY_SIZE)
    _check_key(key, "random data key")
    return bytes(key)


def wrap_data_key(
    keyring: Keyring,
    data_key: bytes,
    shipment_id: str,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> WrappedKey:
    """Seal ``data_key`` under the keyring's active KEK, bound to the shipment and the kid."""
    _check_key(data_key, "data key")
    _check_id(shipment_id, "shipment id", allow_empty=False)
    kek = keyring.get(keyring.active_kid)
    blob = _encrypt(kek.key, bytes(data_key), _dek_aad(shipment_id, kek.kid), rng)
    return WrappedKey(kid=kek.kid, blob=blob)


def unwrap_data_key(keyring: Keyring, wrapped: WrappedKey, shipment_id: str) -> bytes:
    """Return the data key; :class:`UnknownKeyError` if its KEK is not in the keyring,
    :class:`DecryptionError` if it does not authenticate for this shipment and kid."""
    _check_id(shipment_id, "shipment id", allow_empty=False)
    kek = keyring.get(wrapped.kid)
    _check_size(wrapped.blob, "wrapped data key", WRAPPED_KEY_SIZE, exact=True)
    return _decrypt(
        kek.key,
        wrapped.blob,
        _dek_aad(shipment_id, kek.kid),
        f"wrapped data key under {kek.kid!r} does not authenticate: wrong key, "
        "another shipment or tampering",
    )


def rewrap(
    keyring: Keyring,
    wrapped: WrappedKey,
    shipment_id: str,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> WrappedKey:
    """Re-wrap a data key under the active KEK (fresh nonce); data ciphertexts stay as they are."""
    return wrap_data_key(keyring, unwrap_data_key(keyring, wrapped, shipment_id), shipment_id, rng)


# --- sealing data ---------------------------------------------------------------------------


def seal(
    data_key: bytes,
    plaintext: bytes,
    *,
    shipment_id: str,
    event_id: str,
    purpose: str,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> bytes:
    """Encrypt ``plaintext`` under ``data_key``, bound to shipment, event and purpose."""
    _check_key(data_key, "data key")
    if not isinstance(plaintext, bytes | bytearray):
        raise FormatError("plaintext must be bytes")
    aad = _data_aad(shipment_id, event_id, purpose)
    return _encrypt(bytes(data_key), bytes(plaintext), aad, rng)


def open_sealed(
    data_key: bytes, blob: bytes, *, shipment_id: str, event_id: str, purpose: str
) -> bytes:
    """Decrypt a :func:`seal` blob.

    :class:`TruncationError` if shorter than 29 bytes, :class:`FormatError` on an unknown
    version byte, :class:`DecryptionError` on a wrong key, another shipment, event or purpose,
    or any tampering.
    """
    _check_key(data_key, "data key")
    aad = _data_aad(shipment_id, event_id, purpose)
    _check_size(blob, "sealed blob", MIN_BLOB_SIZE, exact=False)
    return _decrypt(
        bytes(data_key),
        blob,
        aad,
        "sealed blob does not authenticate: wrong key, another shipment, event or purpose, "
        "or tampering",
    )


def seal_secret(keyring: Keyring, owner: str, secret: str, *, purpose: str) -> bytes:
    """A small secret (a TOTP seed, a webhook signing secret) sealed under a fresh data key
    wrapped by the keyring, bound to ``owner`` and ``purpose``: a JSON blob of the wrapped
    key and the ciphertext, so ``keys rotate`` can re-wrap it without knowing what it is."""
    data_key = new_data_key()
    wrapped = wrap_data_key(keyring, data_key, owner)
    sealed = seal(data_key, secret.encode(), shipment_id=owner, event_id="", purpose=purpose)
    blob = {"key": wrapped.to_json(), "secret": base64.b64encode(sealed).decode()}
    return jcs.dumps(blob)


def open_secret(keyring: Keyring, owner: str, blob: bytes, *, purpose: str) -> str:
    """The secret of a :func:`seal_secret` blob (DecryptionError when it was sealed for
    another owner or purpose, or tampered with; UnknownKeyError without its key)."""
    try:
        parsed = json.loads(blob)
        wrapped = WrappedKey.from_json(parsed["key"])
        sealed = base64.b64decode(parsed["secret"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"sealed secret is malformed ({type(e).__name__})") from None
    data_key = unwrap_data_key(keyring, wrapped, owner)
    plain = open_sealed(data_key, sealed, shipment_id=owner, event_id="", purpose=purpose)
    return plain.decode()


# --- internals ------------------------------------------------------------------------------


def _encrypt(key: bytes, plaintext: bytes, aad: bytes, rng: Callable[[int], bytes]) -> bytes:
    nonce = rng(NONCE_SIZE)
    if not isinstance(nonce, bytes | bytearray) or len(nonce) != NONCE_SIZE:
        raise FormatError(f"random source must return {NONCE_SIZE} bytes for a nonce")
    nonce = bytes(nonce)
    return bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes, failure: str) -> bytes:
    nonce, body = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag as e:
        raise DecryptionError(failure) from e


def _check_size(blob: object, what: str, size: int, *, exact: bool) -> None:
    if not isinstance(blob, bytes | bytearray):
        raise FormatError(f"{what} must be bytes")
    if len(blob) < size:
        raise TruncationError(f"{what} has {len(blob)} bytes, at least {size} expected")
    if blob[0] != VERSION:
        raise FormatError(f"unknown {what} version 0x{blob[0]:02x}, this reader knows 0x01")
    if exact and len(blob) > size:
        raise TrailingGarbageError(f"{what} has {len(blob)} bytes, {size} expected")


def _data_aad(shipment_id: str, event_id: str, purpose: str) -> bytes:
    _check_id(shipment_id, "shipment id", allow_empty=False)
    _check_id(event_id, "event id", allow_empty=True)
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise FormatError(f"purpose {purpose!r} must match {_PURPOSE.pattern}")
    if purpose == DEK_PURPOSE:
        raise FormatError(f"purpose {DEK_PURPOSE!r} is reserved for wrapped data keys")
    return bytes(
        jcs.dumps({"v": 1, "purpose": purpose, "shipment": shipment_id, "event": event_id})
    )


def _dek_aad(shipment_id: str, kid: str) -> bytes:
    return bytes(jcs.dumps({"v": 1, "purpose": DEK_PURPOSE, "shipment": shipment_id, "kid": kid}))


def _check_kid(kid: object) -> None:
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise FormatError(f"key id {kid!r} must match {_KID.pattern}")


def _check_key(key: object, what: str) -> None:
    if not isinstance(key, bytes | bytearray):
        raise FormatError(f"{what} must be bytes")
    if len(key) != KEY_SIZE:
        raise FormatError(f"{what} has {len(key)} bytes, want {KEY_SIZE}")


def _check_id(value: object, what: str, *, allow_empty: bool) -> None:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a string")
    if not value and not allow_empty:
        raise FormatError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise FormatError(f"{what} has {len(value)} characters, at most {MAX_ID_LENGTH}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{what} is not valid Unicode (lone surrogate)") from None


def _b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise FormatError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical base64")
    return raw
