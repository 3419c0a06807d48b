"""The FastAPI app factory: routers, problem+json, limits, headers, logs, metrics, health."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelproof import __version__
from parcelproof.api import privacy_routes, problems
from parcelproof.api.console_routes import console
from parcelproof.api.deps import NodeServices
from parcelproof.api.dispute_routes import disputes
from parcelproof.api.epcis_routes import epcis
from parcelproof.api.routes import courier, public
from parcelproof.api.security import SecurityHeaders, install_cors
from parcelproof.api.staff_routes import staff
from parcelproof.api.webhook_routes import webhooks
from parcelproof.core.encoding import MAX_JSON_DEPTH, json_depth_exceeds
from parcelproof.service.metrics import NodeCollector

DEFAULT_MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger("parcelproof.api")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 (declared or streamed), and JSON
    nested deeper than MAX_JSON_DEPTH with 422, before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth_exceeds(body):
            detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            await problems.problem(422, "invalid-input", "Invalid input", detail)(
                scope, receive, send
            )
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return problems.problem(413, "too-large", "Request body too large", f"limit is {limit} bytes")


class NodeApp(FastAPI):
    """FastAPI with the security headers outside every other layer, so that even the 500
    answers of Starlette's outermost error middleware carry them."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with the problem+json error answers this API really sends."""
        if self.openapi_schema is None:
            problems.document(super().openapi())
        return super().openapi()


def create_app(
    services: NodeServices,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    ready: Callable[[], dict[str, str]] | None = None,
    cors_origins: Sequence[str] = (),
    interactive_docs: bool = True,
) -> FastAPI:
    """Build the API for one courier node. CORS stays closed unless ``cors_origins`` lists
    exact origins (``*`` is refused with a ConfigurationError). ``interactive_docs=False``
    drops ``/docs`` and ``/redoc``, whose pages load scripts from a CDN (production); the
    OpenAPI document itself stays at ``/openapi.json``."""
    app = NodeApp(
        title="ParcelProof courier node",
        version=__version__,
        description="Record signed parcel milestones; look parcels up with verifiable proofs.",
        docs_url="/docs" if interactive_docs else None,
        redoc_url="/redoc" if interactive_docs else None,
    )
    app.state.services = services
    problems.install(app)
    privacy_routes.install(app)  # an erased parcel's lookup: 410 with what is left
    app.include_router(courier)
    app.include_router(public)
    app.include_router(privacy_routes.privacy)
    app.include_router(staff)
    app.include_router(disputes)
    app.include_router(epcis)
    app.include_router(webhooks)
    app.include_router(console)

    registry = CollectorRegistry()
    requests = Counter(
        "parcelproof_http_requests",
        "HTTP requests",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "parcelproof_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )
    registry.register(NodeCollector(services))  # log/audit anchoring gauges (service.metrics)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - started
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(route).observe(elapsed)
        response.headers["X-Request-Id"] = request_id
        # Route templates only: never paths with ids, never bodies or query strings.
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "ms": round(elapsed * 1000, 1),
            },
        )
        return response

    app.add_middleware(BodyLimit, limit=max_body)
    install_cors(app, cors_origins)  # outermost: preflights are answered before anything else

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> Any:
        """Readiness: database and ledger reachable (and the anchoring worker alive when it
        runs in this process). A check that crashes counts as not ready."""
        try:
            checks = ready() if ready else {"database": "ok", "ledger": "ok"}
        except Exception as e:
            log.error("readiness check crashed: %s", type(e).__name__)
            checks = {"readiness": f"check failed ({type(e).__name__})"}
        ok = bool(checks) and all(v == "ok" for v in checks.values())
        if ok:
            return {"status": "ready", **checks}
        return problems.problem(503, "not-ready", "Not ready", "", checks=checks)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
