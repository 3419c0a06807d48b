"""The customer's text pages (/privacy, /help/verify): served like the index, linked, accurate."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parcelproof import cli_verify
from parcelproof.api import problems
from parcelproof.api.web import WEB_ROOT, content_security_policy, web_router

LEDGER = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
RPC = "https://rpc.example:8545/path"
PAGES = {"/": "index.html", "/privacy": "privacy.html", "/help/verify": "verify-help.html"}


def _client(rpc: str | None = RPC) -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(web_router(rpc, 31337, LEDGER))
    return TestClient(app)


def _text(html: str) -> str:
    """The page's visible words, tags dropped and white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class _InlineCode(HTMLParser):
    """Collects what a strict CSP (no 'unsafe-inline') would block or what smells of it."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("<script> without src")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style= on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
            if value and value.strip().lower().startswith(("javascript:", "data:text/html")):
                self.problems.append(f"{name}={value[:20]} on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script body")


@pytest.mark.parametrize("path", ["/privacy", "/help/verify"])
def test_text_pages_are_served_with_the_index_policy(path: str) -> None:
    client = _client()
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    policy = r.headers["content-security-policy"]
    assert (
        policy == content_security_policy(RPC) == client.get("/").headers["content-security-policy"]
    )
    assert "unsafe-inline" not in policy and "script-src 'self'" in policy
    assert "style-src 'self'" in policy and "default-src 'none'" in policy
    assert r.content == (WEB_ROOT / PAGES[path]).read_bytes()
    assert '<link rel="stylesheet" href="/static/style.css">' in r.text


def test_text_pages_stay_out_of_the_openapi_schema() -> None:
    paths = _client().get("/openapi.json").json()["paths"]
    assert "/privacy" not in paths and "/help/verify" not in paths


@pytest.mark.parametrize("page", sorted(p.name for p in WEB_ROOT.glob("*.html")))
def test_no_inline_script_or_style_in_any_page(page: str) -> None:
    parser = _InlineCode()
    parser.feed((WEB_ROOT / page).read_text())
    assert parser.problems == []


def test_the_inline_code_detector_detects() -> None:
    parser = _InlineCode()
    parser.feed(
        '<p style="x" onclick="y"><a href="javascript:z">a</a></p><style>p{}</style>'
        "<script>alert(1)</script>"
    )
    assert len(parser.problems) == 6, parser.problems


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_links_the_privacy_notice_and_the_verify_help(path: str) -> None:
    html = _client().get(path).text
    footer = html[html.index("<footer>") :]
    assert '<a href="/privacy">' in footer
    assert '<a href="/help/verify">' in footer
    if path != "/":
        assert '<a href="/">' in html


def test_verify_help_says_what_we_never_ask_for() -> None:
    text = _text((WEB_ROOT / "verify-help.html").read_text())
    assert "We never ask for payment, card or bank details, or passwords" in text
    assert "tracking number plus either the destination postcode or the access token" in text
    assert "Open the tracking page yourself" in text
    assert "check the link's domain" in text


def test_verify_help_explains_every_check_the_verifier_reports() -> None:
    """Each check name the in-browser verifier can report (and app.js describes) is explained."""
    verifier = (WEB_ROOT / "verifier.js").read_text()
    names = set(re.findall(r"report\.(?:add|skip)\('([a-z-]+)'", verifier))
    names |= set(re.findall(r"run\(report, '([a-z-]+)'", verifier))
    app_js = (WEB_ROOT / "app.js").read_text()
    described = set(re.findall(r"^\s+'?([a-z-]+)'?: ['\"]", app_js, re.MULTILINE))
    assert {"ledger", "checkpoint", "inclusion", "agent-key"} <= names
    assert names <= described
    html = (WEB_ROOT / "verify-help.html").read_text()
    for name in names:
        assert f"<strong>{name}</strong>" in html, name
    text = _text(html)
    assert "A red cross" in text and "A dash" in text and "skipped, not passed" in text


def test_verify_help_gives_the_real_cli_syntax() -> None:
    html = (WEB_ROOT / "verify-help.html").read_text()
    assert "parcelproof verify parcelproof-bundle.json --rpc https://" in html
    app = typer.Typer()
    app.command("verify")(cli_verify.verify)
    command = typer.main.get_command(app)
    options = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
    assert {"--rpc", "--offline", "--json"} <= options
    for option in ("--json", "--offline"):
        assert f"<code>{option}</code>" in html
    assert 'download="parcelproof-bundle.json"' in (WEB_ROOT / "index.html").read_text()


def test_privacy_notice_states_the_key_facts() -> None:
    text = _text((WEB_ROOT / "privacy.html").read_text())
    for fact in (
        "AES-256-GCM",
        "key-encryption keys",
        "rotate",
        "courier's own node database",
        "90 days",
        "after your parcel's last tracking event",
        "erased automatically",
        "Checkpoints",
        "Merkle root",
        "no tracking number, no name, no address, and no hash of any of them",
        "Membership and key registrations",
        "Dispute records as hashes only",
        "export everything it holds about your parcel",
        "destroying its keys",
        "signed erasure receipt",
        "public proof on the ledger stays valid",
        "audit trail",
        "Contact the courier that shipped your parcel",
    ):
        assert fact in text, fact
