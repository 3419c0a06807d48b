"""Transport security of the API: security headers on every response; CORS closed by default."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelproof.settings import parse_cors_origins

#: Two years, subdomains included: once a browser has seen it over HTTPS, never plain HTTP.
HSTS = "max-age=63072000; includeSubDomains"
#: For everything that is not a page: nothing may load, run or frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: For pages that bring no policy of their own (FastAPI's /docs and /redoc load their scripts
#: from a CDN): at least no framing, no <base> hijack, no plugins.
FALLBACK_PAGE_CSP = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}
#: Responses under this prefix carry personal data: no cache may keep them.
API_PREFIX = "/v1/"
CORS_METHODS = ("GET", "POST")
CORS_HEADERS = ("Authorization", "Content-Type", "X-Request-Id")
CORS_EXPOSED = ("Retry-After", "X-Request-Id")
CORS_MAX_AGE = 600


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response, errors included.

    A Content-Security-Policy set by the route (the customer page's) is kept; other responses
    get :data:`API_CSP` (or :data:`FALLBACK_PAGE_CSP` for HTML). HSTS only on requests that
    arrived over HTTPS, where a browser honours it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        api = str(scope.get("path", "")).startswith(API_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if https:
                    headers["Strict-Transport-Security"] = HSTS
                if api:
                    headers["Cache-Control"] = "no-store"
                if "content-security-policy" not in headers:
                    page = headers.get("content-type", "").startswith("text/html")
                    headers["Content-Security-Policy"] = FALLBACK_PAGE_CSP if page else API_CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: Starlette, origins: Iterable[str]) -> tuple[str, ...]:
    """Open CORS to exactly ``origins`` (GET and POST, no credentials) and return them; with
    none, install nothing: no response carries Access-Control-Allow-Origin. Raises
    :class:`~parcelproof.settings.ConfigurationError` for ``*`` and anything not an origin."""
    allowed = parse_cors_origins(origins)
    if allowed:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(allowed),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
            allow_credentials=False,
            max_age=CORS_MAX_AGE,
        )
    return allowed
