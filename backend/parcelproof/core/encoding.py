"""Strict decoding of the 0x-hex byte strings and addresses our JSON formats carry."""

from __future__ import annotations

import re

from eth_utils.address import to_checksum_address

from parcelproof.core.errors import FormatError

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def parse_hex(value: object, where: str, size: int) -> bytes:
    """Decode ``0x``-prefixed hex of exactly ``size`` bytes; FormatError naming ``where``."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise FormatError(f"{where} must be a 0x-prefixed hex string")
    if not _HEX.fullmatch(value, 2):
        raise FormatError(f"{where} is not valid hex")
    raw = bytes.fromhex(value[2:])
    if len(raw) != size:
        raise FormatError(f"{where} has {len(raw)} bytes, want {size}")
    return raw


def parse_address(value: object, where: str) -> str:
    """Decode a 20-byte address into its EIP-55 checksum form."""
    return str(to_checksum_address(parse_hex(value, where, 20)))


MAX_JSON_DEPTH = 64


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if JSON text nests arrays/objects deeper than ``limit`` (strings are skipped).

    Checked before parsing: a parser that recurses per level can exhaust the C stack on
    hostile input long before any size limit is reached.
    """
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False
