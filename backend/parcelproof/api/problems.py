"""RFC 9457 problem+json responses: every error the API returns, and nothing else leaks."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from parcelproof.api.ratelimit import RateLimitedError
from parcelproof.core.errors import (
    AgentKeyNotValidError,
    BatchAbortedError,
    ChainError,
    ConflictError,
    DatabaseUnavailableError,
    DecryptionError,
    Error,
    EventIdReusedError,
    FormatError,
    KeyStateError,
    NetworkError,
    NotFoundError,
    SignatureError,
    TransitionError,
    VerificationError,
)
from parcelproof.service.authz import AuthenticationError, PermissionDeniedError
from parcelproof.service.node import TooManyAttemptsError
from parcelproof.service.staff import AccountLockedError

PROBLEM = "application/problem+json"
log = logging.getLogger("parcelproof.api")

# Most specific first: the first matching class decides status and type.
_MAPPING: list[tuple[type[Error], int, str, str]] = [
    (RateLimitedError, 429, "too-many-requests", "Too many requests"),
    (AccountLockedError, 429, "account-locked", "Too many failed attempts"),
    (TooManyAttemptsError, 429, "too-many-attempts", "Too many wrong confirmation codes"),
    (AuthenticationError, 401, "unauthorized", "Unauthorized"),
    (PermissionDeniedError, 403, "forbidden", "Forbidden"),
    (NotFoundError, 404, "not-found", "Not found"),
    (EventIdReusedError, 409, "event-id-reused", "Event id already used for another event"),
    (ConflictError, 409, "conflict", "Conflict"),
    (BatchAbortedError, 424, "batch-aborted", "Not stored: another event of the batch failed"),
    (TransitionError, 422, "illegal-transition", "Illegal status transition"),
    (SignatureError, 422, "bad-signature", "Signature does not verify"),
    (AgentKeyNotValidError, 422, "agent-key-not-valid", "Agent key not valid"),
    (DecryptionError, 500, "integrity", "Stored data failed its integrity check"),
    (KeyStateError, 500, "key-unavailable", "A key needed for this request is unavailable"),
    (VerificationError, 422, "verification-failed", "Verification failed"),
    (FormatError, 422, "invalid-input", "Invalid input"),
    (NetworkError, 503, "ledger-unreachable", "The ledger is unreachable"),
    (DatabaseUnavailableError, 503, "database-unavailable", "The database is unavailable"),
    (ChainError, 502, "ledger-refused", "The ledger refused the operation"),
]


def problem(status: int, kind: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": f"urn:parcelproof:problem:{kind}", "title": title}
    body["status"] = status
    if detail:
        body["detail"] = detail
    headers = {"Retry-After": str(extra.pop("retry_after", 5))} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


#: The OpenAPI schema of every error answer (RFC 9457 problem details, plus our extensions).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "urn:parcelproof:problem:<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "what is wrong with the request (422), never the input itself",
            "items": {"type": "object"},
        },
    },
    "additionalProperties": True,
}


def document(schema: dict[str, Any]) -> None:
    """Declare in an OpenAPI document what the API really answers on errors: every 4xx/5xx is
    ``application/problem+json`` with :data:`PROBLEM_SCHEMA` (FastAPI's default declares its
    own validation-error shape, which this API never sends)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code in list(responses):
                if code[:1] in ("4", "5"):
                    responses[code] = {"description": "Invalid input", "content": content}
            responses["default"] = {
                "description": "A problem (RFC 9457): unauthorized, forbidden, not found, "
                "conflict, gone (erased), too large, rate-limited (429, Retry-After), "
                "ledger or database unavailable (503, Retry-After)…",
                "content": content,
            }


def problem_for(error: Error) -> JSONResponse:
    """Map one of our errors to its problem response."""
    for cls, status, kind, title in _MAPPING:
        if isinstance(error, cls):
            detail = str(error) if status < 500 else ""
            if isinstance(error, RateLimitedError | AccountLockedError | TooManyAttemptsError):
                return problem(status, kind, title, detail, retry_after=error.retry_after)
            return problem(status, kind, title, detail)
    return problem(500, "internal", "Internal error")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into problem+json."""

    @app.exception_handler(Error)
    async def _ours(request: Request, exc: Error) -> JSONResponse:
        response = problem_for(exc)
        if response.status_code >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's errors echo the input; the input may be personal data, so drop it.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem(
            422, "invalid-input", "Invalid input", "the request body is invalid", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {
            404: "not-found",
            405: "method-not-allowed",
            401: "unauthorized",
            403: "forbidden",
            413: "too-large",
            415: "unsupported-media-type",
        }.get(exc.status_code, "http")
        return problem(exc.status_code, kind, str(exc.detail or kind))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s crashed: %s", request.method, request.url.path, type(exc).__name__)
        return problem(500, "internal", "Internal error")
