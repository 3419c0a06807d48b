"""Envelope encryption: pinned layout and AAD, tampering, misplaced ciphertexts, key rotation."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypedDict

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core import envelope
from parcelproof.core.envelope import KeyEncryptionKey, Keyring, WrappedKey
from parcelproof.core.errors import (
    DecryptionError,
    FormatError,
    KeyStateError,
    TrailingGarbageError,
    TruncationError,
    UnknownKeyError,
)

DATA_KEY = bytes(range(32))
KEK_A = KeyEncryptionKey("kek-a", b"\xaa" * 32)
KEK_B = KeyEncryptionKey("kek-b", b"\xbb" * 32)


class Where(TypedDict):
    shipment_id: str
    event_id: str
    purpose: str


WHERE: Where = {"shipment_id": "s1", "event_id": "e1", "purpose": "event"}


def _fixed(byte: int) -> Callable[[int], bytes]:
    return lambda n: bytes([byte]) * n


def _counter() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: bytes([next(counter)]) * n


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- layout and associated data, pinned against a direct AESGCM call ---------------------------


def test_sealed_blob_layout_and_associated_data_are_pinned() -> None:
    blob = envelope.seal(DATA_KEY, b"hello", rng=_fixed(7), **WHERE)
    nonce = b"\x07" * 12
    aad = b'{"event":"e1","purpose":"event","shipment":"s1","v":1}'
    assert blob == b"\x01" + nonce + AESGCM(DATA_KEY).encrypt(nonce, b"hello", aad)
    assert len(blob) == 1 + 12 + 5 + 16


def test_shipment_level_data_uses_an_empty_event_id() -> None:
    blob = envelope.seal(
        DATA_KEY, b"x", shipment_id="s1", event_id="", purpose="details", rng=_fixed(1)
    )
    aad = b'{"event":"","purpose":"details","shipment":"s1","v":1}'
    assert AESGCM(DATA_KEY).decrypt(blob[1:13], blob[13:], aad) == b"x"


def test_wrapped_key_layout_and_associated_data_are_pinned() -> None:
    wrapped = envelope.wrap_data_key(Keyring([KEK_A], "kek-a"), DATA_KEY, "s1", rng=_fixed(9))
    nonce = b"\x09" * 12
    aad = b'{"kid":"kek-a","purpose":"dek","shipment":"s1","v":1}'
    assert wrapped.kid == "kek-a"
    assert wrapped.blob == b"\x01" + nonce + AESGCM(KEK_A.key).encrypt(nonce, DATA_KEY, aad)
    assert len(wrapped.blob) == envelope.WRAPPED_KEY_SIZE == 61


# --- sealing ----------------------------------------------------------------------------------


def test_round_trip() -> None:
    blob = envelope.seal(DATA_KEY, b"Lyon 3e", **WHERE)
    assert envelope.open_sealed(DATA_KEY, blob, **WHERE) == b"Lyon 3e"
    assert envelope.open_sealed(DATA_KEY, envelope.seal(DATA_KEY, b"", **WHERE), **WHERE) == b""


def test_two_seals_of_the_same_plaintext_use_different_nonces() -> None:
    a = envelope.seal(DATA_KEY, b"delivered", **WHERE)
    b = envelope.seal(DATA_KEY, b"delivered", **WHERE)
    assert a[1:13] != b[1:13]
    assert a != b


@given(
    plaintext=st.binary(max_size=2048),
    shipment=st.text(min_size=1, max_size=40),
    event=st.text(max_size=40),
    purpose=st.from_regex(r"[a-z][a-z0-9._-]{0,31}", fullmatch=True).filter(lambda p: p != "dek"),
    key=st.binary(min_size=32, max_size=32),
)
@settings(max_examples=200, deadline=None)
def test_open_after_seal_is_identity(
    plaintext: bytes, shipment: str, event: str, purpose: str, key: bytes
) -> None:
    where: Where = {"shipment_id": shipment, "event_id": event, "purpose": purpose}
    assert envelope.open_sealed(key, envelope.seal(key, plaintext, **where), **where) == plaintext


@given(plaintext=st.binary(max_size=64), data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_flipped_bit_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = envelope.seal(DATA_KEY, plaintext, **WHERE)
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    tampered = _flip(blob, bit)
    if bit < 8:  # the version byte: refused before any decryption is attempted
        with pytest.raises(FormatError, match="unknown sealed blob version"):
            envelope.open_sealed(DATA_KEY, tampered, **WHERE)
    else:
        with pytest.raises(DecryptionError, match="sealed blob does not authenticate"):
            envelope.open_sealed(DATA_KEY, tampered, **WHERE)


@pytest.mark.parametrize(
    ("desc", "where"),
    [
        ("moved to another shipment", {"shipment_id": "s2", "event_id": "e1", "purpose": "event"}),
        ("moved to another event", {"shipment_id": "s1", "event_id": "e2", "purpose": "event"}),
        (
            "event data replayed as shipment data",
            {"shipment_id": "s1", "event_id": "", "purpose": "event"},
        ),
        ("relabelled purpose", {"shipment_id": "s1", "event_id": "e1", "purpose": "factor"}),
        (
            "boundary shifted between ids",
            {"shipment_id": "s1e", "event_id": "1", "purpose": "event"},
        ),
    ],
)
def test_ciphertext_moved_elsewhere_fails(desc: str, where: Where) -> None:
    blob = envelope.seal(DATA_KEY, b"secret", **WHERE)
    with pytest.raises(DecryptionError, match="does not authenticate") as info:
        envelope.open_sealed(DATA_KEY, blob, **where)
    assert isinstance(info.value.__cause__, InvalidTag)


def test_wrong_data_key_fails() -> None:
    blob = envelope.seal(DATA_KEY, b"secret", **WHERE)
    with pytest.raises(DecryptionError, match="wrong key"):
        envelope.open_sealed(b"\x00" * 32, blob, **WHERE)


@pytest.mark.parametrize("size", [0, 1, 13, 28])
def test_truncated_blob_is_refused(size: int) -> None:
    blob = envelope.seal(DATA_KEY, b"secret", **WHERE)[:size]
    with pytest.raises(TruncationError, match=f"sealed blob has {size} bytes, at least 29"):
        envelope.open_sealed(DATA_KEY, blob, **WHERE)


def test_blob_cut_to_its_tag_fails_authentication() -> None:
    blob = envelope.seal(DATA_KEY, b"secret", **WHERE)
    with pytest.raises(DecryptionError):
        envelope.open_sealed(DATA_KEY, blob[:-6], **WHERE)


@pytest.mark.parametrize("version", [0x00, 0x02, 0xFF])
def test_unknown_version_is_refused(version: int) -> None:
    blob = envelope.seal(DATA_KEY, b"secret", **WHERE)
    with pytest.raises(FormatError, match=f"unknown sealed blob version 0x{version:02x}"):
        envelope.open_sealed(DATA_KEY, bytes([version]) + blob[1:], **WHERE)


@pytest.mark.parametrize(
    ("desc", "kwargs", "message"),
    [
        ("short key", {"data_key": bytes(16)}, "data key has 16 bytes, want 32"),
        ("empty shipment", {"shipment_id": ""}, "shipment id must not be empty"),
        ("long event id", {"event_id": "e" * 129}, "event id has 129 characters"),
        ("purpose with spaces", {"purpose": "my data"}, "purpose 'my data' must match"),
        ("empty purpose", {"purpose": ""}, "purpose '' must match"),
        ("key-wrap purpose", {"purpose": "dek"}, "reserved for wrapped data keys"),
        ("lone surrogate", {"shipment_id": "\ud800"}, "not valid Unicode"),
    ],
)
def test_seal_refuses_malformed_parameters(
    desc: str, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"data_key": DATA_KEY, "plaintext": b"x", **WHERE, **kwargs}
    with pytest.raises(FormatError, match=message):
        envelope.seal(**args)  # type: ignore[arg-type]


def test_random_source_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(FormatError, match="must return 12 bytes"):
        envelope.seal(DATA_KEY, b"x", rng=lambda n: bytes(n - 1), **WHERE)
    with pytest.raises(FormatError, match="random data key has 31 bytes"):
        envelope.new_data_key(lambda n: bytes(n - 1))


def test_new_data_keys_are_random_32_bytes() -> None:
    a, b = envelope.new_data_key(), envelope.new_data_key()
    assert len(a) == len(b) == 32
    assert a != b


# --- keys and keyrings ------------------------------------------------------------------------


def test_key_material_never_appears_in_repr() -> None:
    assert repr(KEK_A) == "KeyEncryptionKey(kid='kek-a')"
    ring = Keyring([KEK_A, KEK_B], "kek-b")
    assert repr(ring) == "Keyring(kids=['kek-a', 'kek-b'], active_kid='kek-b')"


@pytest.mark.parametrize(
    ("desc", "kid", "key", "message"),
    [
        ("empty kid", "", b"\x00" * 32, "key id '' must match"),
        ("kid with a slash", "a/b", b"\x00" * 32, "key id 'a/b' must match"),
        ("kid too long", "k" * 65, b"\x00" * 32, "must match"),
        ("short key", "k", b"\x00" * 16, "key-encryption key 'k' has 16 bytes, want 32"),
    ],
)
def test_key_encryption_key_is_validated(desc: str, kid: str, key: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        KeyEncryptionKey(kid, key)


def test_keyring_refuses_duplicates_and_an_unknown_active_key() -> None:
    with pytest.raises(FormatError, match="key id 'kek-a' appears twice"):
        Keyring([KEK_A, KeyEncryptionKey("kek-a", b"\x01" * 32)], "kek-a")
    with pytest.raises(FormatError, match="active key id 'kek-c' is not in the keyring"):
        Keyring([KEK_A, KEK_B], "kek-c")
    with pytest.raises(FormatError, match="'kek-a' is already in the keyring"):
        Keyring([KEK_A], "kek-a").with_key(KeyEncryptionKey("kek-a", b"\x01" * 32))


def test_unknown_kid_raises_unknown_key_error() -> None:
    ring = Keyring([KEK_A], "kek-a")
    with pytest.raises(UnknownKeyError, match="no key-encryption key with id 'kek-z'"):
        ring.get("kek-z")
    wrapped = envelope.wrap_data_key(Keyring([KEK_B], "kek-b"), DATA_KEY, "s1")
    with pytest.raises(UnknownKeyError, match="'kek-b'"):
        envelope.unwrap_data_key(ring, wrapped, "s1")


def test_wrap_unwrap_round_trip() -> None:
    ring = Keyring([KEK_A], "kek-a")
    wrapped = envelope.wrap_data_key(ring, DATA_KEY, "s1")
    assert envelope.unwrap_data_key(ring, wrapped, "s1") == DATA_KEY


def test_wrapped_key_moved_to_another_shipment_fails() -> None:
    ring = Keyring([KEK_A], "kek-a")
    wrapped = envelope.wrap_data_key(ring, DATA_KEY, "s1")
    with pytest.raises(DecryptionError, match="wrapped data key under 'kek-a' does not"):
        envelope.unwrap_data_key(ring, wrapped, "s2")


def test_wrapped_key_relabelled_to_another_kid_fails_even_with_equal_key_bytes() -> None:
    twin = KeyEncryptionKey("kek-twin", KEK_A.key)
    ring = Keyring([KEK_A, twin], "kek-a")
    wrapped = envelope.wrap_data_key(ring, DATA_KEY, "s1")
    with pytest.raises(DecryptionError):
        envelope.unwrap_data_key(ring, WrappedKey("kek-twin", wrapped.blob), "s1")


def test_wrapped_key_under_the_wrong_kek_fails() -> None:
    wrapped = envelope.wrap_data_key(Keyring([KEK_A], "kek-a"), DATA_KEY, "s1")
    impostor = Keyring([KeyEncryptionKey("kek-a", b"\x01" * 32)], "kek-a")
    with pytest.raises(DecryptionError):
        envelope.unwrap_data_key(impostor, wrapped, "s1")


@pytest.mark.parametrize(
    ("desc", "cut", "error", "message"),
    [
        ("truncated", lambda b: b[:60], TruncationError, "has 60 bytes, at least 61"),
        ("trailing garbage", lambda b: b + b"\x00", TrailingGarbageError, "has 62 bytes, 61"),
        ("unknown version", lambda b: b"\x02" + b[1:], FormatError, "version 0x02"),
        ("flipped tag bit", lambda b: _flip(b, 60 * 8), DecryptionError, "does not authenticate"),
    ],
)
def test_malformed_wrapped_key_blobs_are_refused(
    desc: str, cut: Callable[[bytes], bytes], error: type[Exception], message: str
) -> None:
    ring = Keyring([KEK_A], "kek-a")
    wrapped = envelope.wrap_data_key(ring, DATA_KEY, "s1")
    with pytest.raises(error, match=message):
        envelope.unwrap_data_key(ring, WrappedKey("kek-a", cut(wrapped.blob)), "s1")


def test_key_rotation_keeps_old_data_readable_and_rewrap_retires_the_old_kek() -> None:
    ring_a = Keyring([KEK_A], "kek-a")
    wrapped_a = envelope.wrap_data_key(ring_a, DATA_KEY, "s1")
    sealed = envelope.seal(DATA_KEY, b"details", **WHERE)

    ring_ab = ring_a.with_key(KEK_B)
    assert ring_ab.active_kid == "kek-b"
    assert ring_a.active_kid == "kek-a"  # the old keyring is untouched
    assert envelope.unwrap_data_key(ring_ab, wrapped_a, "s1") == DATA_KEY

    wrapped_b = envelope.rewrap(ring_ab, wrapped_a, "s1")
    assert wrapped_b.kid == "kek-b"
    assert wrapped_b.blob != wrapped_a.blob

    ring_b = ring_ab.without("kek-a")
    assert ring_b.kids == ("kek-b",)
    assert ring_b.kids == Keyring([KEK_B], "kek-b").kids
    key = envelope.unwrap_data_key(ring_b, wrapped_b, "s1")
    assert envelope.open_sealed(key, sealed, **WHERE) == b"details"
    with pytest.raises(UnknownKeyError):
        envelope.unwrap_data_key(ring_b, wrapped_a, "s1")


def test_adding_a_key_without_activating_it() -> None:
    ring = Keyring([KEK_A], "kek-a").with_key(KEK_B, activate=False)
    assert ring.active_kid == "kek-a"
    assert ring.get("kek-b") == KEK_B


def test_the_active_key_cannot_be_removed() -> None:
    ring = Keyring([KEK_A, KEK_B], "kek-b")
    with pytest.raises(KeyStateError, match="cannot remove the active key-encryption key"):
        ring.without("kek-b")
    with pytest.raises(UnknownKeyError):
        ring.without("kek-z")


def test_wrap_is_deterministic_given_the_random_source() -> None:
    ring = Keyring([KEK_A], "kek-a")
    a = envelope.wrap_data_key(ring, DATA_KEY, "s1", rng=_counter())
    b = envelope.wrap_data_key(ring, DATA_KEY, "s1", rng=_counter())
    assert a == b


# --- wrapped key JSON -------------------------------------------------------------------------


def test_wrapped_key_json_round_trip() -> None:
    wrapped = envelope.wrap_data_key(Keyring([KEK_A], "kek-a"), DATA_KEY, "s1")
    obj = wrapped.to_json()
    assert set(obj) == {"kid", "blob"}
    assert WrappedKey.from_json(obj) == wrapped


@pytest.mark.parametrize(
    ("desc", "obj", "error", "message"),
    [
        ("not an object", ["kek-a", "AQ=="], FormatError, "must be an object"),
        ("missing blob", {"kid": "kek-a"}, FormatError, "lacks blob"),
        ("extra key", {"kid": "k", "blob": "AQ==", "alg": "x"}, TrailingGarbageError, "'alg'"),
        ("kid not a string", {"kid": 5, "blob": "AQ=="}, FormatError, "kid must be a string"),
        ("bad kid", {"kid": "a b", "blob": "AQ=="}, FormatError, "must match"),
        ("blob not base64", {"kid": "k", "blob": "!!!!"}, FormatError, "not valid base64"),
        ("unpadded blob", {"kid": "k", "blob": "AQ"}, FormatError, "not valid base64"),
        ("non-canonical blob", {"kid": "k", "blob": "AR=="}, FormatError, "not canonical"),
    ],
)
def test_wrapped_key_json_is_parsed_strictly(
    desc: str, obj: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        WrappedKey.from_json(obj)


def test_sealed_secrets_open_only_for_their_owner_and_purpose() -> None:
    old = Keyring([KEK_A], "kek-a")
    blob = envelope.seal_secret(old, "webhook-1", "whsec_abc", purpose="webhook-secret")
    assert b"whsec_abc" not in blob
    assert envelope.open_secret(old, "webhook-1", blob, purpose="webhook-secret") == "whsec_abc"
    with pytest.raises(DecryptionError):
        envelope.open_secret(old, "webhook-2", blob, purpose="webhook-secret")
    with pytest.raises(DecryptionError):
        envelope.open_secret(old, "webhook-1", blob, purpose="totp")
    with pytest.raises(FormatError, match="sealed secret is malformed"):
        envelope.open_secret(old, "webhook-1", b'{"key": 1}', purpose="webhook-secret")
    # Rotation: a ring with a new active key still opens it while it holds the old one.
    both = Keyring([KEK_A, KEK_B], "kek-b")
    assert envelope.open_secret(both, "webhook-1", blob, purpose="webhook-secret") == "whsec_abc"
    with pytest.raises(UnknownKeyError):
        only_new = Keyring([KEK_B], "kek-b")
        envelope.open_secret(only_new, "webhook-1", blob, purpose="webhook-secret")
