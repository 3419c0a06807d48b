"""The web router: the page, its static assets (content types, no traversal) and /v1/config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parcelproof.api import problems
from parcelproof.api.web import WEB_ROOT, asset_path, web_router

LEDGER = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def _client(rpc: str | None = "http://127.0.0.1:8545") -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(web_router(rpc, 31337, LEDGER))
    return TestClient(app)


def test_config_names_the_chain_ledger_and_rpc_url() -> None:
    r = _client().get("/v1/config")
    assert r.status_code == 200
    assert r.json() == {
        "chainId": 31337,
        "ledger": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "rpcUrl": "http://127.0.0.1:8545",
    }
    assert _client(None).get("/v1/config").json()["rpcUrl"] is None


def test_index_is_served_with_a_strict_policy() -> None:
    r = _client("https://rpc.example:8545/path").get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/static/app.js">' in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "connect-src 'self' https://rpc.example:8545" in policy
    assert "connect-src 'self';" in _client(None).get("/").headers["content-security-policy"]


def test_no_inline_script_or_style_in_the_page() -> None:
    html = (WEB_ROOT / "index.html").read_text()
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)  # no onclick= and the like
    assert "javascript:" not in html


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("verifier.js", "text/javascript; charset=utf-8"),
        ("vendor/ethers.min.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_have_their_content_type(path: str, content_type: str) -> None:
    r = _client().get(f"/static/{path}")
    assert r.status_code == 200, path
    assert r.headers["content-type"] == content_type
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == (WEB_ROOT / path).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "../api/web.py",
        "..%2Fapi%2Fweb.py",
        "%2e%2e/%2e%2e/pyproject.toml",
        "vendor/../../api/web.py",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "vendor",
        "vendor/",
        "nope.js",
        ".hidden.js",
        "..\\api\\web.py",
        "",
    ],
)
def test_traversal_and_unknown_paths_are_404(path: str) -> None:
    r = _client().get(f"/static/{path}")
    assert r.status_code == 404, (path, r.text[:200])


def test_asset_path_refuses_symlinks_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "web"
    root.mkdir()
    (root / "ok.js").write_text("export {};\n")
    secret = tmp_path / "secret.js"
    secret.write_text("secret")
    (root / "link.js").symlink_to(secret)
    assert asset_path("ok.js", root) == (root / "ok.js").resolve()
    assert asset_path("link.js", root) is None
    assert asset_path("ok.py", root) is None
