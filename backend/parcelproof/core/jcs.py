"""RFC 8785 (JCS) canonical JSON, fast for the values our digests hash; rfc8785 for the rest.

The ``rfc8785`` package is the reference, but it is pure Python and walks every character:
it was a third of the CPU of bulk ingest (five digests per event). Strings, integers in the
safe range, booleans, null, lists and objects with string keys serialise here through the
standard library's C encoder, whose output is JCS's for exactly these types: the same escapes
(``\\b \\f \\n \\r \\t \\" \\\\`` and lower-case ``\\u00xx`` for other controls, nothing
else), keys sorted by UTF-16 code units. Anything else (floats, big integers, lone
surrogates, other types) goes to ``rfc8785``, which formats it or raises its error. A
property test holds both byte-identical.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_MAX_SAFE = 2**53 - 1
_encode_str = json.JSONEncoder(ensure_ascii=False).encode


class _Other(Exception):
    """A value the fast path leaves to rfc8785."""


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical form of ``value`` as UTF-8 bytes (rfc8785's errors on values
    JSON cannot carry)."""
    try:
        return _canon(value).encode("utf-8")
    except (_Other, UnicodeEncodeError):
        return bytes(rfc8785.dumps(value))


def _canon(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(_encode_str(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return str(value)
        raise _Other
    if kind is list or kind is tuple:
        return "[" + ",".join(_canon(v) for v in value) + "]"
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise _Other
        keys = sorted(value, key=_utf16)
        return "{" + ",".join(_encode_str(k) + ":" + _canon(value[k]) for k in keys) + "}"
    raise _Other


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")
