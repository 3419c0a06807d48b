"""The customer web page: its static assets and the chain settings its in-browser verifier reads.

The page (``web/index.html``) looks a parcel up through ``POST /v1/lookup`` and then verifies the
proof bundle in the browser against the chain itself, through the public JSON-RPC URL given
here; without one it says which checks it could not run. Assets are served from ``web/`` only:
no directory listings, no dot files, nothing outside it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def asset_path(path: str, root: Path = WEB_ROOT) -> Path | None:
    """The file under ``root`` that ``path`` names, or None: traversal, dot files, directories
    and unknown file types are refused."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or "\\" in path
        or "\x00" in path
        or PurePosixPath(path).is_absolute()
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    ):
        return None
    base = root.resolve()
    candidate = (base / Path(*parts)).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    if candidate.suffix not in CONTENT_TYPES:
        return None
    return candidate


def content_security_policy(public_rpc_url: str | None) -> str:
    """A strict policy for the page: scripts and styles from this origin only, no inline code,
    network reads from this origin and the public RPC endpoint."""
    connect = ["'self'"]
    if public_rpc_url:
        parts = urlsplit(public_rpc_url)
        connect.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _file(path: str, extra: dict[str, str] | None = None) -> FileResponse:
    found = asset_path(path)
    if found is None:
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(
        found, media_type=CONTENT_TYPES[found.suffix], headers={**_HEADERS, **(extra or {})}
    )


def web_router(public_rpc_url: str | None, chain_id: int, ledger: str) -> APIRouter:
    """Routes for the customer page: ``/``, its ``/privacy`` notice and ``/help/verify``
    guide, the ``/staff`` console (same policy), ``/static/{path}`` and ``GET /v1/config``.

    ``public_rpc_url`` is a JSON-RPC endpoint a customer's browser may call (CORS open), or
    None when there is none: the page then runs only the checks that need no chain.
    """
    router = APIRouter()
    config = {
        "chainId": chain_id,
        "ledger": str(to_checksum_address(ledger)),
        "rpcUrl": public_rpc_url,
    }
    csp = {"Content-Security-Policy": content_security_policy(public_rpc_url)}

    @router.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return _file("index.html", csp)

    @router.get("/privacy", include_in_schema=False)
    def privacy() -> FileResponse:
        return _file("privacy.html", csp)

    @router.get("/help/verify", include_in_schema=False)
    def verify_help() -> FileResponse:
        return _file("verify-help.html", csp)

    @router.get("/staff", include_in_schema=False)
    def staff_console() -> FileResponse:
        return _file("staff.html", csp)

    @router.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        return _file(path)

    @router.get("/v1/config", tags=["customer"])
    def web_config() -> dict[str, Any]:
        """The chain and ParcelLedger contract the page verifies bundles against, and the
        public JSON-RPC URL it reads them through (null: in-browser chain checks cannot run)."""
        return config

    return router
