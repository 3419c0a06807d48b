"""Every shape in which a backend reports a revert maps to the same named error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi.abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.types import RPCError, RPCResponse

from parcelproof.chain.compile import load_artifact
from parcelproof.chain.ledger import REVERT_ERRORS, revert_error, revert_from_exception
from parcelproof.core.errors import (
    ContractRevertError,
    NonGrowingCheckpointError,
    UnauthorizedError,
)

ABI = load_artifact().abi
COURIER = bytes(range(32))
NON_GROWING = keccak(text="ParcelLedgerNonGrowingCheckpoint(bytes32,uint64,uint64)")[:4] + encode(
    ["bytes32", "uint64", "uint64"], [COURIER, 10, 9]
)
HEX = "0x" + NON_GROWING.hex()


def _chained() -> BaseException:
    """What web3's eth-tester provider raises: a new TransactionFailed, the raw one as context."""
    try:
        try:
            raise TransactionFailed(NON_GROWING)
        except TransactionFailed:
            raise TransactionFailed("execution reverted: oops") from None
    except TransactionFailed as outer:
        error: BaseException = outer
        error.__context__ = TransactionFailed(NON_GROWING)
        return error


SHAPES: dict[str, Callable[[], BaseException]] = {
    "web3 custom error (hex data)": lambda: ContractCustomError(HEX, data=HEX),
    "web3 logic error (dict data)": lambda: ContractLogicError("reverted", data={"data": HEX}),
    "web3 RPC error (rpc_response)": lambda: Web3RPCError(
        "execution reverted",
        rpc_response=RPCResponse(
            jsonrpc="2.0", id=1, error=RPCError(code=3, message="execution reverted", data=HEX)
        ),
    ),
    "eth-tester raw bytes": lambda: TransactionFailed(NON_GROWING),
    "eth-tester repr of bytes": lambda: TransactionFailed(f"execution reverted: {NON_GROWING!r}"),
    "eth-tester bare repr": lambda: TransactionFailed(repr(NON_GROWING)),
    "eth-tester wrapped exception": lambda: TransactionFailed(Exception(NON_GROWING)),
    "eth-tester chained": _chained,
}


@pytest.mark.parametrize("make", SHAPES.values(), ids=SHAPES.keys())
def test_every_revert_shape_decodes_to_the_named_error(
    make: Callable[[], BaseException],
) -> None:
    error = revert_from_exception(ABI, make())
    assert isinstance(error, NonGrowingCheckpointError)
    assert error.name == "ParcelLedgerNonGrowingCheckpoint"
    assert error.args_ == (COURIER, 10, 9)
    assert str(error) == f"ParcelLedgerNonGrowingCheckpoint(0x{COURIER.hex()}, 10, 9)"


def test_access_control_errors_decode_with_checksum_addresses() -> None:
    account = "0xb53a7069c969ffc6ef6d604883d6e16fe2f94fcc"
    data = keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4] + encode(
        ["address", "bytes32"], [account, bytes(32)]
    )
    error = revert_error(ABI, data)
    assert isinstance(error, UnauthorizedError)
    assert error.args_ == ("0xB53A7069C969FFc6EF6D604883d6e16Fe2f94FCC", bytes(32))


def test_require_strings_panics_and_unknown_selectors() -> None:
    message = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
    assert revert_error(ABI, message).args_ == ("boom",)
    assert revert_error(ABI, message).name == "Error"
    panic = revert_error(ABI, bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    assert (panic.name, panic.args_) == ("Panic", (0x11,))
    unknown = revert_error(ABI, b"\xde\xad\xbe\xef")
    assert type(unknown) is ContractRevertError and unknown.name == "UnknownError"


def test_exceptions_without_revert_data_are_not_reverts() -> None:
    assert revert_from_exception(ABI, ContractLogicError("execution reverted")) is None
    assert revert_from_exception(ABI, TransactionFailed("out of gas")) is None
    assert revert_from_exception(ABI, ValueError("unrelated")) is None


def test_every_abi_error_has_a_deliberate_mapping() -> None:
    """Errors without a subclass fall back to ContractRevertError on purpose (bad input)."""
    generic = {
        "ParcelLedgerInvalidCourierId",
        "ParcelLedgerInvalidAccount",
        "ParcelLedgerInvalidValidityWindow",
        "ParcelLedgerInvalidRoot",
        "AccessControlBadConfirmation",
    }
    names = {e["name"] for e in ABI if e["type"] == "error"}
    assert names == set(REVERT_ERRORS) | generic
