"""EIP-712 event signatures: the digest pinned against a by-hand hashStruct, and forgeries."""

from __future__ import annotations

import dataclasses
import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import PrivateKey, Signature
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core import eip712
from parcelproof.core.eip712 import SECP256K1_N, Domain, SignedEvent
from parcelproof.core.errors import FormatError, SignatureError

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_CONTRACT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
DOMAIN = Domain(chain_id=31337, verifying_contract=CONTRACT)
EVENT = SignedEvent(
    log_id=b"\x11" * 32,
    shipment=b"\x22" * 32,
    sequence=3,
    commitment=b"\x33" * 32,
    event_time=1764400000,
)
AGENT_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT = Account.from_key(AGENT_KEY).address
P = 2**256 - 2**32 - 977  # secp256k1 field prime


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _by_hand(domain: Domain, event: SignedEvent) -> bytes:
    """EIP-712 straight from the standard, with nothing but keccak."""
    domain_type = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    separator = keccak(
        domain_type
        + keccak(b"ParcelProof")
        + keccak(b"1")
        + _word(domain.chain_id)
        + bytes(12)
        + bytes.fromhex(domain.verifying_contract[2:])
    )
    event_type = keccak(
        b"ParcelEvent(bytes32 logId,bytes32 shipment,uint64 sequence,bytes32 commitment,"
        b"uint64 eventTime)"
    )
    struct = keccak(
        event_type
        + event.log_id
        + event.shipment
        + _word(event.sequence)
        + event.commitment
        + _word(event.event_time)
    )
    return keccak(b"\x19\x01" + separator + struct)


def _split(sig: bytes) -> tuple[int, int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def _join(r: int, s: int, v: int) -> bytes:
    return _word(r) + _word(s) + bytes([v])


# --- the encoding -----------------------------------------------------------------------------


def test_digest_equals_the_hashstruct_computed_by_hand() -> None:
    assert eip712.digest(DOMAIN, EVENT) == _by_hand(DOMAIN, EVENT)


@given(
    chain_id=st.integers(1, 2**256 - 1),
    log_id=st.binary(min_size=32, max_size=32),
    shipment=st.binary(min_size=32, max_size=32),
    sequence=st.integers(0, 2**64 - 1),
    commitment=st.binary(min_size=32, max_size=32),
    event_time=st.integers(0, 2**64 - 1),
)
@settings(max_examples=100, deadline=None)
def test_digest_equals_the_hand_computation_for_any_event(
    chain_id: int,
    log_id: bytes,
    shipment: bytes,
    sequence: int,
    commitment: bytes,
    event_time: int,
) -> None:
    domain = Domain(chain_id, OTHER_CONTRACT)
    event = SignedEvent(log_id, shipment, sequence, commitment, event_time)
    assert eip712.digest(domain, event) == _by_hand(domain, event)


def test_typed_data_is_json_and_hashes_to_the_same_digest_after_a_round_trip() -> None:
    message = eip712.typed_data(DOMAIN, EVENT)
    decoded = json.loads(json.dumps(message))
    assert decoded == message
    assert decoded["primaryType"] == "ParcelEvent"
    assert decoded["domain"] == {
        "name": "ParcelProof",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": CONTRACT,
    }
    assert decoded["message"]["logId"] == "0x" + "11" * 32
    assert decoded["types"]["ParcelEvent"] == eip712.EVENT_TYPES["ParcelEvent"]
    signable = encode_typed_data(full_message=decoded)
    assert keccak(b"\x19\x01" + signable.header + signable.body) == eip712.digest(DOMAIN, EVENT)


def test_typed_data_does_not_share_the_module_type_tables() -> None:
    message = eip712.typed_data(DOMAIN, EVENT)
    message["types"]["ParcelEvent"].append({"name": "x", "type": "uint8"})
    assert len(eip712.EVENT_TYPES["ParcelEvent"]) == 5


# --- signing and recovery ---------------------------------------------------------------------


def test_sign_and_recover_round_trip() -> None:
    sig = eip712.sign_event(AGENT_KEY, DOMAIN, EVENT)
    _, s, v = _split(sig)
    assert len(sig) == 65
    assert v in (27, 28)
    assert 1 <= s <= SECP256K1_N // 2
    assert eip712.recover_signer(DOMAIN, EVENT, sig) == AGENT
    eip712.verify_event_signature(DOMAIN, EVENT, sig, AGENT)
    eip712.verify_event_signature(DOMAIN, EVENT, sig, AGENT.lower())
    signable = encode_typed_data(full_message=eip712.typed_data(DOMAIN, EVENT))
    assert Account.recover_message(signable, signature=sig) == AGENT


@given(key=st.integers(1, SECP256K1_N - 1), sequence=st.integers(0, 2**64 - 1))
@settings(max_examples=25, deadline=None)
def test_any_key_signs_and_recovers(key: int, sequence: int) -> None:
    private = _word(key)
    event = dataclasses.replace(EVENT, sequence=sequence)
    sig = eip712.sign_event(private, DOMAIN, event)
    assert eip712.recover_signer(DOMAIN, event, sig) == Account.from_key(private).address
    assert _split(sig)[1] <= SECP256K1_N // 2


@given(
    key=st.integers(1, SECP256K1_N - 1),
    sequence=st.integers(0, 2**64 - 1),
    commitment=st.binary(min_size=32, max_size=32),
)
@settings(max_examples=40, deadline=None)
def test_the_direct_signer_gives_eth_accounts_bytes(
    key: int, sequence: int, commitment: bytes
) -> None:
    private = _word(key)
    event = dataclasses.replace(EVENT, sequence=sequence, commitment=commitment)
    signable = encode_typed_data(full_message=eip712.typed_data(DOMAIN, event))
    reference = Account.sign_message(signable, private)
    assert eip712.sign_event(private, DOMAIN, event) == bytes(reference.signature)


@pytest.mark.parametrize(
    ("desc", "domain", "event"),
    [
        ("replayed on another chain", Domain(1, CONTRACT), EVENT),
        ("replayed against another ledger", Domain(31337, OTHER_CONTRACT), EVENT),
        ("moved to another sequence", DOMAIN, dataclasses.replace(EVENT, sequence=4)),
        ("commitment swapped", DOMAIN, dataclasses.replace(EVENT, commitment=b"\x44" * 32)),
        ("backdated", DOMAIN, dataclasses.replace(EVENT, event_time=1764399999)),
        ("moved to another log", DOMAIN, dataclasses.replace(EVENT, log_id=b"\x55" * 32)),
        ("moved to another shipment", DOMAIN, dataclasses.replace(EVENT, shipment=b"\x66" * 32)),
    ],
)
def test_signature_over_other_identifiers_recovers_someone_else(
    desc: str, domain: Domain, event: SignedEvent
) -> None:
    sig = eip712.sign_event(AGENT_KEY, DOMAIN, EVENT)
    assert eip712.recover_signer(domain, event, sig) != AGENT
    with pytest.raises(
        SignatureError, match=f"signature was made by 0x[0-9a-fA-F]{{40}}, expected {AGENT}"
    ):
        eip712.verify_event_signature(domain, event, sig, AGENT)


def test_signature_by_another_agent_names_both_addresses() -> None:
    other = _word(7)
    sig = eip712.sign_event(other, DOMAIN, EVENT)
    signer = Account.from_key(other).address
    with pytest.raises(SignatureError, match=f"made by {signer}, expected {AGENT}"):
        eip712.verify_event_signature(DOMAIN, EVENT, sig, AGENT)


def test_malleated_high_s_signature_is_rejected() -> None:
    r, s, v = _split(eip712.sign_event(AGENT_KEY, DOMAIN, EVENT))
    twin = _join(r, SECP256K1_N - s, 55 - v)
    # The twin is a valid ECDSA signature by the same key: only the EIP-2 rule refuses it.
    raw = Signature(vrs=(twin[64] - 27, r, SECP256K1_N - s))
    digest = eip712.digest(DOMAIN, EVENT)
    assert raw.recover_public_key_from_msg_hash(digest).to_checksum_address() == AGENT
    with pytest.raises(SignatureError, match="upper half of the curve order"):
        eip712.recover_signer(DOMAIN, EVENT, twin)


@pytest.mark.parametrize(
    ("desc", "mangle", "message"),
    [
        ("truncated", lambda sig: sig[:64], "signature has 64 bytes, want 65"),
        ("empty", lambda sig: b"", "signature has 0 bytes, want 65"),
        ("trailing byte", lambda sig: sig + b"\x00", "signature has 66 bytes, want 65"),
        ("v as 0/1", lambda sig: sig[:64] + bytes([sig[64] - 27]), "v is [01], want 27 or 28"),
        ("v as EIP-155", lambda sig: sig[:64] + bytes([sig[64] + 35]), "want 27 or 28"),
        ("r zero", lambda sig: bytes(32) + sig[32:], r"r is outside \[1, n\)"),
        ("r at n", lambda sig: _word(SECP256K1_N) + sig[32:], r"r is outside \[1, n\)"),
        ("s zero", lambda sig: sig[:32] + bytes(32) + sig[64:], r"s is outside \[1, n\)"),
        ("s all ones", lambda sig: sig[:32] + b"\xff" * 32 + sig[64:], r"s is outside \[1, n\)"),
    ],
)
def test_malformed_signatures_are_refused(desc: str, mangle: object, message: str) -> None:
    sig = eip712.sign_event(AGENT_KEY, DOMAIN, EVENT)
    with pytest.raises(SignatureError, match=message):
        eip712.recover_signer(DOMAIN, EVENT, mangle(sig))  # type: ignore[operator]


def test_signature_with_r_off_the_curve_is_unrecoverable() -> None:
    # r must be the x coordinate of a curve point; pick the smallest x with x^3 + 7 a non-residue.
    r = next(x for x in range(1, 100) if pow(x**3 + 7, (P - 1) // 2, P) != 1)
    with pytest.raises(SignatureError, match="does not recover to any public key"):
        eip712.recover_signer(DOMAIN, EVENT, _join(r, 5, 27))


def test_signature_must_be_bytes() -> None:
    sig = eip712.sign_event(AGENT_KEY, DOMAIN, EVENT)
    with pytest.raises(SignatureError, match="signature must be bytes"):
        eip712.recover_signer(DOMAIN, EVENT, "0x" + sig.hex())  # type: ignore[arg-type]


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desc", "chain_id", "contract", "message"),
    [
        ("chain id zero", 0, CONTRACT, r"chain id 0 outside \[1, 2\^256\)"),
        ("chain id as bool", True, CONTRACT, "chain id must be an integer"),
        ("lower-case address", 1, CONTRACT.lower(), "not an EIP-55 checksum address"),
        ("bad checksum", 1, CONTRACT.replace("F", "f", 1), "not an EIP-55 checksum address"),
        ("short address", 1, CONTRACT[:-2], "not a 0x-prefixed address"),
        ("no prefix", 1, CONTRACT[2:], "not a 0x-prefixed address"),
    ],
)
def test_domain_is_validated(desc: str, chain_id: int, contract: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Domain(chain_id, contract)


@pytest.mark.parametrize(
    ("desc", "changes", "message"),
    [
        ("short log id", {"log_id": bytes(31)}, "log id must be 32 bytes"),
        ("long commitment", {"commitment": bytes(33)}, "commitment must be 32 bytes"),
        ("sequence 2^64", {"sequence": 2**64}, r"sequence 18446744073709551616 outside"),
        ("negative time", {"event_time": -1}, r"event time -1 outside \[0, 2\^64\)"),
    ],
)
def test_signed_event_is_validated(desc: str, changes: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        dataclasses.replace(EVENT, **changes)  # type: ignore[arg-type]


def test_bad_expected_signer_and_private_key_are_format_errors() -> None:
    sig = eip712.sign_event(AGENT_KEY, DOMAIN, EVENT)
    with pytest.raises(FormatError, match="expected signer 'alice' is not a valid address"):
        eip712.verify_event_signature(DOMAIN, EVENT, sig, "alice")
    bad_checksum = AGENT[:2] + AGENT[2:].swapcase()
    with pytest.raises(FormatError, match="is not a valid address"):
        eip712.verify_event_signature(DOMAIN, EVENT, sig, bad_checksum)
    with pytest.raises(FormatError, match="private key must be 32 bytes"):
        eip712.sign_event(AGENT_KEY[:31], DOMAIN, EVENT)
    with pytest.raises(FormatError, match="not a valid secp256k1 scalar"):
        eip712.sign_event(bytes(32), DOMAIN, EVENT)


def test_private_key_helper_agrees_with_eth_keys() -> None:
    assert PrivateKey(AGENT_KEY).public_key.to_checksum_address() == AGENT
