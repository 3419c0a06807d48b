"""Salted commitments: pinned vectors, selective disclosure, tampering, hash-chain attacks."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core.commitment import (
    EVENT_DOMAIN,
    ZERO32,
    Disclosure,
    FieldOpening,
    JsonValue,
    disclose,
    event_commitment,
    field_digest,
    normalize_tracking_number,
    open_fields,
    shipment_ref,
    verify_chain,
)
from parcelproof.core.errors import (
    CommitmentMismatchError,
    FormatError,
    HashChainError,
    TrailingGarbageError,
    VerificationError,
)
from parcelproof.core.vocabulary import Status

LOG = b"\x11" * 32
SHIPMENT = b"\x22" * 32
SALT_A = bytes(range(32))
SALT_B = bytes(range(32, 64))

# Cross-checked outside Python: printf '<JCS>' | sha256sum, and the event preimage through
# coreutils + xxd; the shipment reference through `openssl dgst -sha256 -mac HMAC`.
STATUS_DIGEST = "7464d43c3c1c45fea9e7e4d020e9981300adf51add7df9e252c254444124319e"
TIME_DIGEST = "c92dc5ba927fe698ea3344caea79a7a73498d782f1eb99066e5ab4450d3c010b"
EVENT_0 = "726fdc6eec2d69f09f35d9b33273f0e4668f58235d0e251e168d3d4127e4086c"
REF = "83d0e05f78d9b72c733c8f31c3a55eb218718fbf06e71f3f430b0b6bd7869172"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _counter_rng() -> Callable[[int], bytes]:
    """Deterministic salts: 32 bytes of 0x01, then 0x02, …"""
    state = [0]

    def rng(n: int) -> bytes:
        state[0] += 1
        return bytes([state[0]]) * n

    return rng


def _openings(**fields: JsonValue) -> list[FieldOpening]:
    return open_fields(fields, _counter_rng())


def _digests(openings: list[FieldOpening]) -> list[bytes]:
    return [o.digest() for o in openings]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- pinned vectors ---------------------------------------------------------------------------


def test_field_digest_is_sha256_of_the_hand_written_jcs_array() -> None:
    preimage = b'["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","status","delivered"]'
    assert field_digest(SALT_A, "status", "delivered") == _sha(preimage)
    assert field_digest(SALT_A, "status", "delivered").hex() == STATUS_DIGEST
    assert FieldOpening("time", 1764400000, SALT_B).digest().hex() == TIME_DIGEST


def test_jcs_sorts_object_keys_and_escapes_strings() -> None:
    value: JsonValue = {"b": [True, None, -3], "a": 'x"\n'}
    preimage = (
        b'["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","n",{"a":"x\\"\\n","b":[true,null,-3]}]'
    )
    assert field_digest(SALT_A, "n", value) == _sha(preimage)


def test_event_commitment_matches_a_hand_built_preimage() -> None:
    d1, d2 = bytes.fromhex(STATUS_DIGEST), bytes.fromhex(TIME_DIGEST)
    preimage = (
        b"parcelproof:event:v1"
        + b"\x00"
        + LOG
        + SHIPMENT
        + (0).to_bytes(8, "big")
        + bytes(32)
        + b"\x00\x02"
        + min(d1, d2)
        + max(d1, d2)
    )
    assert EVENT_DOMAIN == b"parcelproof:event:v1"
    assert event_commitment(LOG, SHIPMENT, 0, ZERO32, [d2, d1]) == _sha(preimage)
    assert event_commitment(LOG, SHIPMENT, 0, ZERO32, [d1, d2]).hex() == EVENT_0


def test_later_event_preimage_carries_sequence_and_previous() -> None:
    d = bytes.fromhex(STATUS_DIGEST)
    prev = bytes.fromhex(EVENT_0)
    preimage = EVENT_DOMAIN + b"\x00" + LOG + SHIPMENT + (2**64 - 1).to_bytes(8, "big")
    preimage += prev + b"\x00\x01" + d
    assert event_commitment(LOG, SHIPMENT, 2**64 - 1, prev, [d]) == _sha(preimage)


def test_shipment_ref_is_hmac_of_the_normalized_tracking_number() -> None:
    expected = hmac.new(SALT_A, b"1Z999AA1", hashlib.sha256).digest()
    assert shipment_ref(SALT_A, " 1z-999 aa1 ") == expected
    assert expected.hex() == REF


# --- tracking numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1Z999AA1", "1Z999AA1"),
        ("  1z 999-aa1\t", "1Z999AA1"),
        ("jd-0001-2345", "JD00012345"),
        ("A" * 64, "A" * 64),
    ],
)
def test_tracking_number_normalization(given: str, expected: str) -> None:
    assert normalize_tracking_number(given) == expected


@pytest.mark.parametrize(
    ("desc", "given", "message"),
    [
        ("empty", "", "tracking number is empty"),
        ("only separators", " - - ", "tracking number is empty"),
        ("punctuation", "1Z/999", "only letters A-Z, digits"),
        ("inner tab", "1Z\t999", "only letters A-Z, digits"),
        ("dotless i folds to I on upper()", "1Z999A\u0131", "only letters A-Z, digits"),
        ("sharp s folds to SS on upper()", "1Z999\u00df", "only letters A-Z, digits"),
        ("fullwidth digits", "\uff11\uff12", "only letters A-Z, digits"),
        ("over-long", "A" * 65, "65 characters, at most 64"),
    ],
)
def test_tracking_number_is_refused_without_echoing_it(desc: str, given: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        normalize_tracking_number(given)
    if given.strip():
        assert given.strip() not in str(info.value)


def test_shipment_ref_needs_a_32_byte_key_and_depends_on_it() -> None:
    with pytest.raises(FormatError, match="shipment key has 16 bytes, want 32"):
        shipment_ref(bytes(16), "1Z999AA1")
    assert shipment_ref(SALT_A, "1Z999AA1") != shipment_ref(SALT_B, "1Z999AA1")
    assert shipment_ref(SALT_A, "1Z999AA1") != shipment_ref(SALT_A, "1Z999AA2")


# --- field openings ---------------------------------------------------------------------------


def test_open_fields_salts_each_field_freshly_and_sorts_by_name() -> None:
    openings = open_fields({"time": 5, "status": "delivered", "place": "Lyon"})
    assert [o.name for o in openings] == ["place", "status", "time"]
    assert len({o.salt for o in openings}) == 3
    assert all(len(o.salt) == 32 for o in openings)


def test_same_low_entropy_value_under_two_salts_gives_unrelated_digests() -> None:
    assert field_digest(SALT_A, "status", "delivered") != field_digest(
        SALT_B, "status", "delivered"
    )
    a, b = open_fields({"status": "delivered"}), open_fields({"status": "delivered"})
    assert a[0].digest() != b[0].digest()


def test_status_cannot_be_guessed_from_its_digest_by_trying_the_vocabulary() -> None:
    target = FieldOpening("status", "delivered", SALT_A).digest()
    guesses = {
        field_digest(salt, "status", s.value)
        for s in Status
        for salt in (bytes(32), b"\xff" * 32, SALT_B)
    }
    guesses |= {_sha(s.value.encode()) for s in Status}
    assert target not in guesses


def test_opening_copies_and_plainifies_its_value() -> None:
    places: list[JsonValue] = ["Lyon"]
    opening = FieldOpening("route", places, SALT_A)
    before = opening.digest()
    places.append("Paris")
    assert opening.digest() == before
    status = FieldOpening("status", Status.DELIVERED, SALT_A)
    assert type(status.value) is str
    assert status.digest() == field_digest(SALT_A, "status", "delivered")


@pytest.mark.parametrize(
    ("desc", "value", "message"),
    [
        ("float", 1.5, "floating-point numbers are not allowed"),
        ("integral float", 2.0, "floating-point numbers are not allowed"),
        ("float nested in a list", [1, [2.5]], r"field 'f'\[1\]\[0\]: floating-point"),
        ("float nested in an object", {"a": {"b": 0.1}}, "field 'f'.a.b: floating-point"),
        ("integer beyond 2^53", 2**53, "outside the JSON-safe range"),
        ("negative integer beyond 2^53", -(2**53), "outside the JSON-safe range"),
        ("tuple", (1, 2), "tuple is not a JSON value"),
        ("bytes", b"x", "bytes is not a JSON value"),
        ("non-string key", {1: "a"}, "object keys must be strings"),
        ("lone surrogate", "\ud800", "not valid Unicode"),
        (
            "too deep",
            [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            "deeper",
        ),
    ],
)
def test_values_outside_portable_json_are_refused(desc: str, value: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FieldOpening("f", value, SALT_A)  # type: ignore[arg-type]


def test_floats_are_refused_when_opening_fields() -> None:
    with pytest.raises(FormatError, match="field 'weight': floating-point numbers"):
        open_fields({"weight": 1.25, "status": "picked_up"})  # type: ignore[dict-item]


def test_safe_integer_bounds_are_accepted() -> None:
    for n in (2**53 - 1, -(2**53 - 1), 0, True, False):
        FieldOpening("n", n, SALT_A).digest()


@pytest.mark.parametrize(
    ("desc", "name", "salt", "message"),
    [
        ("empty name", "", SALT_A, "field name must have 1 to 64 characters"),
        ("long name", "x" * 65, SALT_A, "field name must have 1 to 64 characters"),
        ("short salt", "f", bytes(31), "salt of field 'f' has 31 bytes, want 32"),
        ("long salt", "f", bytes(33), "salt of field 'f' has 33 bytes, want 32"),
        ("salt as text", "f", "A" * 32, "salt of field 'f' must be bytes"),
    ],
)
def test_opening_refuses_bad_names_and_salts(
    desc: str, name: str, salt: object, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        FieldOpening(name, "x", salt)  # type: ignore[arg-type]


def test_opening_json_round_trip() -> None:
    opening = FieldOpening("place", {"city": "Lyon", "codes": [69003, None, True]}, SALT_A)
    obj = opening.to_json()
    assert obj == {
        "name": "place",
        "value": {"city": "Lyon", "codes": [69003, None, True]},
        "salt": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    }
    again = FieldOpening.from_json(obj)
    assert again == opening
    assert again.digest() == opening.digest()


_GOOD_SALT = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"


@pytest.mark.parametrize(
    ("desc", "obj", "error", "message"),
    [
        ("not an object", ["status", "x", _GOOD_SALT], FormatError, "must be an object"),
        ("missing salt", {"name": "s", "value": 1}, FormatError, "lacks salt"),
        ("missing value", {"name": "s", "salt": _GOOD_SALT}, FormatError, "lacks value"),
        (
            "smuggled extra key",
            {"name": "s", "value": 1, "salt": _GOOD_SALT, "digest": "x"},
            TrailingGarbageError,
            "unknown keys 'digest'",
        ),
        ("name not a string", {"name": 1, "value": 1, "salt": _GOOD_SALT}, FormatError, "name"),
        (
            "salt not a string",
            {"name": "s", "value": 1, "salt": 5},
            FormatError,
            "base64url string",
        ),
        (
            "standard base64 alphabet",
            {"name": "s", "value": 1, "salt": "+" + _GOOD_SALT[1:]},
            FormatError,
            "not unpadded base64url",
        ),
        (
            "padded salt",
            {"name": "s", "value": 1, "salt": _GOOD_SALT + "="},
            FormatError,
            "not unpadded base64url",
        ),
        (
            "non-canonical trailing bits",
            {"name": "s", "value": 1, "salt": _GOOD_SALT[:-1] + "9"},
            FormatError,
            "not canonical base64url",
        ),
        (
            "31-byte salt",
            {"name": "s", "value": 1, "salt": "A" * 42},
            FormatError,
            "has 31 bytes, want 32",
        ),
        (
            "float value",
            {"name": "s", "value": 0.5, "salt": _GOOD_SALT},
            FormatError,
            "floating-point",
        ),
    ],
)
def test_opening_json_is_parsed_strictly(
    desc: str, obj: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        FieldOpening.from_json(obj)


# --- event commitments ------------------------------------------------------------------------


def test_digest_order_does_not_change_the_commitment() -> None:
    ds = _digests(_openings(a=1, b=2, c=3))
    assert event_commitment(LOG, SHIPMENT, 0, ZERO32, ds) == event_commitment(
        LOG, SHIPMENT, 0, ZERO32, reversed(ds)
    )


@pytest.mark.parametrize(
    ("desc", "args", "message"),
    [
        ("short log id", (bytes(31), SHIPMENT, 0, ZERO32), "log id has 31 bytes, want 32"),
        ("long shipment", (LOG, bytes(33), 0, ZERO32), "shipment has 33 bytes, want 32"),
        ("short previous", (LOG, SHIPMENT, 1, b"\x01" * 31), "previous has 31 bytes"),
        ("negative sequence", (LOG, SHIPMENT, -1, ZERO32), r"sequence -1 outside \[0, 2\^64\)"),
        ("sequence 2^64", (LOG, SHIPMENT, 2**64, b"\x01" * 32), "outside"),
        ("bool sequence", (LOG, SHIPMENT, False, ZERO32), "sequence must be an integer"),
        ("first event with a previous", (LOG, SHIPMENT, 0, b"\x01" * 32), "event #0 starts"),
        ("later event without previous", (LOG, SHIPMENT, 3, ZERO32), "event #3 must link"),
    ],
)
def test_event_commitment_refuses_malformed_identifiers(
    desc: str, args: tuple[bytes, bytes, int, bytes], message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        event_commitment(*args, [bytes(32)])


def test_event_commitment_refuses_bad_digest_lists() -> None:
    with pytest.raises(FormatError, match="at least one field digest"):
        event_commitment(LOG, SHIPMENT, 0, ZERO32, [])
    with pytest.raises(FormatError, match=r"digest\[1\] has 31 bytes, want 32"):
        event_commitment(LOG, SHIPMENT, 0, ZERO32, [bytes(32), bytes(31)])
    with pytest.raises(FormatError, match=f"field digest {'ab' * 32} appears twice"):
        event_commitment(LOG, SHIPMENT, 0, ZERO32, [b"\xab" * 32, bytes(32), b"\xab" * 32])
    with pytest.raises(FormatError, match="65536 field digests, at most 65535"):
        event_commitment(LOG, SHIPMENT, 0, ZERO32, [i.to_bytes(32, "big") for i in range(65536)])


# --- selective disclosure ---------------------------------------------------------------------

FIELDS: dict[str, JsonValue] = {
    "status": "out_for_delivery",
    "time": 1764400000,
    "place": "Lyon 3e",
    "pod_photo_sha256": "ab" * 32,
}
PREV = b"\x33" * 32


def _event(seq: int = 1, prev: bytes = PREV) -> tuple[list[FieldOpening], bytes]:
    openings = _openings(**FIELDS)
    return openings, event_commitment(LOG, SHIPMENT, seq, prev, _digests(openings))


def test_every_reveal_subset_verifies_the_same_commitment() -> None:
    openings, commitment = _event()
    names = sorted(FIELDS)
    for k in range(len(names) + 1):
        for subset in itertools.combinations(names, k):
            d = disclose(LOG, SHIPMENT, 1, PREV, openings, subset)
            d.verify(commitment)
            assert d.commitment() == commitment
            assert d.fields() == {n: FIELDS[n] for n in subset}
            assert len(d.withheld) == len(names) - k


def test_disclosure_sorts_revealed_by_name_and_withheld_bytewise() -> None:
    openings, _ = _event()
    d = disclose(LOG, SHIPMENT, 1, PREV, list(reversed(openings)), {"time", "place"})
    assert [o.name for o in d.revealed] == ["place", "time"]
    assert list(d.withheld) == sorted(d.withheld)


def _tampered_disclosures() -> list[tuple[str, Callable[[Disclosure], Disclosure]]]:
    def reveal(d: Disclosure, **changes: object) -> Disclosure:
        first = dataclasses.replace(d.revealed[0], **changes)  # type: ignore[arg-type]
        return dataclasses.replace(d, revealed=(first, *d.revealed[1:]))

    return [
        ("status rewritten", lambda d: reveal(d, value="delivered")),
        ("salt replaced", lambda d: reveal(d, salt=SALT_A)),
        ("field renamed", lambda d: reveal(d, name="stat")),
        ("sequence moved", lambda d: dataclasses.replace(d, sequence=2)),
        ("previous swapped", lambda d: dataclasses.replace(d, previous=b"\x44" * 32)),
        ("replayed into another log", lambda d: dataclasses.replace(d, log_id=b"\x55" * 32)),
        ("moved to another shipment", lambda d: dataclasses.replace(d, shipment=b"\x66" * 32)),
        ("withheld digest dropped", lambda d: dataclasses.replace(d, withheld=d.withheld[1:])),
        (
            "withheld digest replaced",
            lambda d: dataclasses.replace(d, withheld=(b"\x77" * 32, *d.withheld[1:])),
        ),
        ("revealed field hidden away", lambda d: dataclasses.replace(d, revealed=d.revealed[1:])),
    ]


@pytest.mark.parametrize(
    ("desc", "tamper"), _tampered_disclosures(), ids=[d for d, _ in _tampered_disclosures()]
)
def test_tampered_disclosure_is_caught(
    desc: str, tamper: Callable[[Disclosure], Disclosure]
) -> None:
    openings, commitment = _event()
    d = tamper(disclose(LOG, SHIPMENT, 1, PREV, openings, {"status", "time"}))
    with pytest.raises(CommitmentMismatchError, match=r"event #\d commitment mismatch") as info:
        d.verify(commitment)
    assert info.value.expected == commitment
    assert info.value.calculated == d.commitment()
    assert f"expected {commitment.hex()}, calculated {d.commitment().hex()}" in str(info.value)


def test_field_revealed_twice_is_refused() -> None:
    openings, commitment = _event()
    d = disclose(LOG, SHIPMENT, 1, PREV, openings, {"status"})
    doubled = dataclasses.replace(d, revealed=(*d.revealed, d.revealed[0]))
    with pytest.raises(FormatError, match="field 'status' is revealed twice"):
        doubled.verify(commitment)
    with pytest.raises(FormatError, match="field 'status' is revealed twice"):
        doubled.fields()


def test_second_status_with_other_value_under_the_same_name_is_refused() -> None:
    openings, commitment = _event()
    d = disclose(LOG, SHIPMENT, 1, PREV, openings, {"status"})
    forged = FieldOpening("status", "delivered", SALT_A)
    with pytest.raises(FormatError, match="field 'status' is revealed twice"):
        dataclasses.replace(d, revealed=(*d.revealed, forged)).verify(commitment)


def test_revealed_digest_counted_again_as_withheld_is_refused() -> None:
    openings, commitment = _event()
    d = disclose(LOG, SHIPMENT, 1, PREV, openings, {"status"})
    doubled = dataclasses.replace(d, withheld=(*d.withheld, d.revealed[0].digest()))
    with pytest.raises(FormatError, match="appears twice"):
        doubled.verify(commitment)


def test_disclose_refuses_unknown_names_duplicates_and_bare_strings() -> None:
    openings, _ = _event()
    with pytest.raises(FormatError, match="cannot reveal 'postcode': not a field of this event"):
        disclose(LOG, SHIPMENT, 1, PREV, openings, {"status", "postcode"})
    with pytest.raises(FormatError, match="field 'status' appears twice in the event"):
        disclose(LOG, SHIPMENT, 1, PREV, [*openings, FieldOpening("status", "x", SALT_A)], ())
    with pytest.raises(FormatError, match="not a single string"):
        disclose(LOG, SHIPMENT, 1, PREV, openings, "status")
    with pytest.raises(FormatError, match="event #0 starts the chain"):
        disclose(LOG, SHIPMENT, 0, PREV, openings, ())


def test_verify_refuses_a_malformed_expected_commitment() -> None:
    openings, commitment = _event()
    d = disclose(LOG, SHIPMENT, 1, PREV, openings, ())
    with pytest.raises(FormatError, match="expected commitment has 31 bytes"):
        d.verify(commitment[:31])


# --- the per-shipment hash chain --------------------------------------------------------------


def _chain(n: int, shipment: bytes = SHIPMENT) -> tuple[list[Disclosure], list[bytes]]:
    rng = _counter_rng()
    disclosures: list[Disclosure] = []
    commitments: list[bytes] = []
    previous = ZERO32
    for seq in range(n):
        openings = open_fields({"status": "departed", "time": 1000 + seq}, rng)
        c = event_commitment(LOG, shipment, seq, previous, _digests(openings))
        disclosures.append(disclose(LOG, shipment, seq, previous, openings, {"status"}))
        commitments.append(c)
        previous = c
    return disclosures, commitments


def test_an_intact_chain_verifies() -> None:
    verify_chain(*_chain(5))
    verify_chain(*_chain(1))


def _broken(desc: str) -> tuple[list[Disclosure], list[bytes]]:
    ds, cs = _chain(5)
    if desc == "missing middle event":
        del ds[2], cs[2]
    elif desc == "missing first event":
        del ds[0], cs[0]
    elif desc == "reordered events":
        ds[1], ds[2], cs[1], cs[2] = ds[2], ds[1], cs[2], cs[1]
    elif desc == "replayed event":
        ds[3], cs[3] = ds[2], cs[2]
    elif desc == "substituted event":
        openings = open_fields({"status": "delivered", "time": 1002})
        cs[2] = event_commitment(LOG, SHIPMENT, 2, cs[1], _digests(openings))
        ds[2] = disclose(LOG, SHIPMENT, 2, cs[1], openings, {"status"})
    elif desc == "event from another shipment spliced in":
        other_ds, other_cs = _chain(5, shipment=b"\x99" * 32)
        ds[3], cs[3] = other_ds[3], other_cs[3]
    elif desc == "forged genesis link":
        ds[0] = dataclasses.replace(ds[0], previous=b"\x01" * 32)
    return ds, cs


@pytest.mark.parametrize(
    ("desc", "position", "message"),
    [
        ("missing middle event", 2, "event #2 is missing: position 2 holds #3"),
        ("missing first event", 0, "event #0 is missing: position 0 holds #1"),
        ("reordered events", 1, "event #1 is out of order: it is at position 2"),
        ("replayed event", 3, r"event #2 appears again at position 3 \(duplicated or reordered\)"),
        ("substituted event", 3, "event #3 does not link to event #2: previous is"),
        ("event from another shipment spliced in", 3, "another log or shipment"),
        ("forged genesis link", 0, r"event #0 does not link to the start of the chain \(zero\)"),
    ],
)
def test_chain_names_the_first_broken_link(desc: str, position: int, message: str) -> None:
    with pytest.raises(HashChainError, match=message) as info:
        verify_chain(*_broken(desc))
    assert info.value.position == position


def test_chain_catches_rewritten_content_under_a_kept_commitment() -> None:
    ds, cs = _chain(3)
    d = ds[1]
    ds[1] = dataclasses.replace(
        d, revealed=(dataclasses.replace(d.revealed[0], value="delivered"),)
    )
    with pytest.raises(CommitmentMismatchError, match="event #1 commitment mismatch"):
        verify_chain(ds, cs)


def test_chain_refuses_mismatched_or_empty_input() -> None:
    ds, cs = _chain(3)
    with pytest.raises(FormatError, match="3 disclosures but 2 commitments"):
        verify_chain(ds, cs[:2])
    with pytest.raises(FormatError, match="empty chain proves nothing"):
        verify_chain([], [])


def test_chain_errors_are_verification_errors() -> None:
    assert issubclass(HashChainError, VerificationError)
    assert issubclass(CommitmentMismatchError, VerificationError)


# --- properties -------------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
_json: st.SearchStrategy[JsonValue] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.dictionaries(_names, _json, min_size=1, max_size=8)


@given(fields=_fields, seed=st.integers(0, 2**32), seq=st.integers(0, 2**64 - 1), data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_reveal_subset_of_random_fields_verifies(
    fields: dict[str, JsonValue], seed: int, seq: int, data: st.DataObject
) -> None:
    openings = open_fields(fields, random.Random(seed).randbytes)
    prev = ZERO32 if seq == 0 else b"\x01" * 32
    commitment = event_commitment(LOG, SHIPMENT, seq, prev, _digests(openings))
    reveal = data.draw(st.sets(st.sampled_from(sorted(fields))))
    d = disclose(LOG, SHIPMENT, seq, prev, openings, reveal)
    d.verify(commitment)
    assert d.fields() == {n: fields[n] for n in reveal}
    again = [FieldOpening.from_json(o.to_json()) for o in openings]
    assert _digests(again) == _digests(openings)


@given(fields=_fields, seed=st.integers(0, 2**32), data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_flipped_bit_in_a_salt_or_withheld_digest_fails(
    fields: dict[str, JsonValue], seed: int, data: st.DataObject
) -> None:
    openings = open_fields(fields, random.Random(seed).randbytes)
    commitment = event_commitment(LOG, SHIPMENT, 0, ZERO32, _digests(openings))
    reveal = data.draw(st.sets(st.sampled_from(sorted(fields))))
    d = disclose(LOG, SHIPMENT, 0, ZERO32, openings, reveal)
    bit = data.draw(st.integers(0, 255))
    targets = [("salt", i) for i in range(len(d.revealed))]
    targets += [("digest", i) for i in range(len(d.withheld))]
    kind, i = data.draw(st.sampled_from(targets))
    if kind == "salt":
        bad = dataclasses.replace(d.revealed[i], salt=_flip(d.revealed[i].salt, bit))
        tampered = dataclasses.replace(d, revealed=(*d.revealed[:i], bad, *d.revealed[i + 1 :]))
    else:
        withheld = (*d.withheld[:i], _flip(d.withheld[i], bit), *d.withheld[i + 1 :])
        tampered = dataclasses.replace(d, withheld=withheld)
    with pytest.raises(CommitmentMismatchError, match="event #0 commitment mismatch"):
        tampered.verify(commitment)
