"""Structured JSON logs to stderr, one object per line, with secrets and postcodes redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)
# Field names whose values are never logged, whatever they look like.
_SECRET_NAMES = re.compile(
    r"postcode|postal|zip|token|secret|password|passwd|authorization|cookie|private|"
    r"(^|_)key($|_)|keyring|mnemonic",
    re.IGNORECASE,
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Bearer credentials and our API tokens (ppk_<client>_<secret>).
    (re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"), "Bearer " + REDACTED),
    (re.compile(r"\bppk_[0-9A-Za-z]+_[0-9A-Za-z_-]+"), REDACTED),
    # 32-byte hex: private keys, HMAC keys (also hashes and ids: safer to drop them all).
    (re.compile(r"\b(?:0x)?[0-9a-fA-F]{64}\b"), REDACTED),
    # base64 of 32 bytes (key-encryption keys), alone or as kid=key keyring entries.
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"), REDACTED),
    # "postcode": "1012 AB", 'postcode': '…', postcode=1012AB in dumped structures or queries.
    (
        re.compile(r"(?i)(postcode[\"']?\s*[:=]\s*)([\"'])(?:(?!\2).)*\2"),
        r"\1\2" + REDACTED + r"\2",
    ),
    (re.compile(r"(?i)(postcode\s*[:=]\s*)(?![\"'\[])[^,;&}\s]+"), r"\1" + REDACTED),
    # user:password@ in URLs (database and RPC URLs).
    (re.compile(r"//[^/@\s]+@"), "//***@"),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret key, token or postcode replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(name: str, value: Any) -> Any:
    if _SECRET_NAMES.search(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(name, v) for v in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Renders each record's message once, redacted, and drops its args; redacts ``extra``
    fields by name (postcode, token, key…) and by shape. Attach it to handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # args that do not fit the format
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and not name.startswith("_"):
                setattr(record, name, _clean(name, value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and name not in entry:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = redact("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record (ours, uvicorn's, libraries') as JSON lines to ``stream``
    (stderr by default), replacing the root logger's handlers. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Chatty libraries stay at WARNING unless debugging.
    for name in ("web3", "urllib3", "httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    return handler
