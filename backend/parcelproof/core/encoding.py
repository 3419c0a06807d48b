"""Strict decoding of the 0x-hex byte strings and addresses our JSON formats carry."""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from parcelproof.core.errors import FormatError


def parse_hex(value: object, where: str, size: int) -> bytes:
    """Decode ``0x``-prefixed hex of exactly ``size`` bytes; FormatError naming ``where``."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise FormatError(f"{where} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise FormatError(f"{where} is not valid hex") from None
    if len(raw) != size:
        raise FormatError(f"{where} has {len(raw)} bytes, want {size}")
    return raw


def parse_address(value: object, where: str) -> str:
    """Decode a 20-byte address into its EIP-55 checksum form."""
    return str(to_checksum_address(parse_hex(value, where, 20)))
