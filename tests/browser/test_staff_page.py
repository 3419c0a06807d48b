"""The staff console (/staff): served under the pages' strict policy, and used for real in
headless Chromium: password login, a passkey enrolled and used through Chromium's virtual
WebAuthn authenticator (a platform authenticator that verifies its user, as a fingerprint reader
does), an authenticator app (TOTP, codes computed with pyotp from the URI the page shows),
recovery codes, and the lockout's Retry-After.

The app is served by uvicorn on http://localhost:<port>: WebAuthn needs a secure context and
localhost is one, so the staff service's relying party is ``localhost`` with that origin.
tests/browser/drive_staff.mjs drives the page and asks this test for TOTP codes on the way.
Screenshots go to a temporary directory, or to ``$PARCELPROOF_SCREENSHOTS``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parcelproof.api import problems
from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.web import WEB_ROOT, content_security_policy, web_router
from parcelproof.chain import devnet
from parcelproof.service.staff import RECOVERY_CODES, StaffService, WebAuthnConfig, qr_png
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from tests.conftest import make_courier
from tests.support.serving import drive, serving

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DRIVER = ROOT / "tests" / "browser" / "drive_staff.mjs"
LEDGER = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
PASSWORD = "a long staff passphrase"
USERS = {"passkey": "adm.passkey", "totp": "ops.totp", "locked": "ops.locked"}
RECOVERY_CODE = re.compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$")


# --- the page as served (no browser) ---------------------------------------------------------


def _client(rpc: str | None = "https://rpc.example:8545") -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(web_router(rpc, 31337, LEDGER))
    return TestClient(app)


class _Page(HTMLParser):
    """What a strict CSP would block (inline code), and the page's scripts and labels."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inputs: list[str] = []
        self.labels: list[str] = []
        self.live: list[str | None] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            self.scripts.append(names)
            if not names.get("src"):
                self.problems.append("<script> without src")
        if tag == "input":
            self.inputs.append(names.get("id") or "")
        if tag == "label":
            self.labels.append(names.get("for") or "")
        if "aria-live" in names:
            self.live.append(names.get("id"))
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style= on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
            if value and value.strip().lower().startswith(("javascript:", "data:", "http")):
                self.problems.append(f"{name}={value[:20]} on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script body")


def test_staff_page_is_served_with_the_strict_policy_and_no_inline_code() -> None:
    client = _client()
    r = client.get("/staff")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    policy = r.headers["content-security-policy"]
    assert policy == content_security_policy("https://rpc.example:8545")
    assert policy == client.get("/").headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "img-src 'self' data:" in policy  # the TOTP QR code is a data: URI
    assert r.content == (WEB_ROOT / "staff.html").read_bytes()

    page = _Page()
    page.feed(r.text)
    assert page.problems == []  # no inline script or style, no external resources
    assert page.scripts == [{"type": "module", "src": "/static/staff.js"}]
    assert '<link rel="stylesheet" href="/static/style.css">' in r.text
    assert sorted(page.inputs) == sorted(i for i in page.labels if i)  # every input labelled
    assert page.live == ["message", "console-status"]  # the courier console's status
    footer = r.text[r.text.index("<footer>") :]
    assert '<a href="/privacy">' in footer and '<a href="/help/verify">' in footer

    js = client.get("/static/staff.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "/staff" not in client.get("/openapi.json").json()["paths"]


def test_staff_script_keeps_the_session_in_memory_only() -> None:
    js = re.sub(r"^\s*//.*$", "", (WEB_ROOT / "staff.js").read_text(), flags=re.MULTILINE)
    for forbidden in (
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "indexedDB",
        "innerHTML",
        "eval(",
        "new Function",
        "http://",
        "https://",
    ):
        assert forbidden not in js, forbidden
    assert "credentials: 'omit'" in js  # no cookie ever goes with an API call
    assert "session is kept" in (WEB_ROOT / "staff.html").read_text().replace("\n", " ")


# --- in Chromium -----------------------------------------------------------------------------


@dataclass
class StaffSite:
    url: str
    staff: StaffService


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it: never pass by skipping there
        pytest.skip(reason)
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `make setup-node`")
    return CHROMIUM


@pytest.fixture
def staff_site(tmp_path: Path) -> Iterator[StaffSite]:
    """The real app with staff accounts and the web router, on http://localhost:<port>."""
    engine = make_engine(sqlite_url(tmp_path / "db"))
    upgrade(engine)
    sessions = session_factory(engine)
    c = make_courier(devnet.connect(None), lambda log: SqlStore(sessions, log), "staff-web")
    store = c.node.store
    assert isinstance(store, SqlStore)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://localhost:{sock.getsockname()[1]}"
    staff = StaffService(
        SqlStaffStore(sessions, store.log_id),
        c.node.keyring,
        webauthn=WebAuthnConfig(rp_id="localhost", origins=(url,)),
    )
    staff.create_user(USERS["passkey"], "consortium-admin", PASSWORD)
    staff.create_user(USERS["totp"], "courier-operator", PASSWORD)
    staff.create_user(USERS["locked"], "courier-operator", PASSWORD)
    app = create_app(NodeServices(node=c.node, ledger=c.ledger, clients=store, staff=staff))
    app.include_router(web_router(None, c.ledger.chain_id, c.ledger.address))

    try:
        with serving(app, sock):
            assert httpx.get(f"{url.replace('localhost', '127.0.0.1')}/staff").status_code == 200
            yield StaffSite(url, staff)
    finally:
        sock.close()
        engine.dispose()


@dataclass
class AuthenticatorApp:
    """Answers the driver's questions for TOTP codes, as a phone app would (with pyotp)."""

    uri: str | None = None
    asked: list[str] = field(default_factory=list)
    _totp: pyotp.TOTP | None = None

    def __call__(self, question: dict[str, Any]) -> dict[str, str]:
        kind = question["kind"]
        self.asked.append(kind)
        if "uri" in question:  # the setup link the page shows, as if scanned from its QR code
            self.uri = question["uri"]
            otp = pyotp.parse_uri(question["uri"])
            assert isinstance(otp, pyotp.TOTP)
            self._totp = otp
        assert self._totp is not None
        now = time.time()
        if kind == "now":
            return {"code": self._totp.now()}
        if kind == "next":  # the step after the one just used: each code works once
            return {"code": self._totp.at(now + 30)}
        assert kind == "wrong"
        valid = {self._totp.at(now + d) for d in range(-60, 91, 30)}
        return {"code": next(c for c in (f"{d}" * 6 for d in range(10)) if c not in valid)}


def _drive(node: str, args: dict[str, Any], answer: Callable[[dict[str, Any]], Any]) -> Any:
    """Run drive_staff.mjs, answering its questions; kill its process group at 180 s."""
    return drive(node, DRIVER, args, answer, cwd=ROOT, timeout=180)


@pytest.mark.browser
@pytest.mark.slow
def test_staff_log_in_and_enrol_passkey_and_totp_in_chromium(
    staff_site: StaffSite, chromium: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("PARCELPROOF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    assert node is not None
    app = AuthenticatorApp()
    staff = staff_site.staff

    def answer(question: dict[str, Any]) -> dict[str, str]:
        if question["kind"] != "revoke":
            return app(question)
        user = staff.store.user_by_name(question["username"])
        assert user is not None
        staff.store.revoke_sessions_of(user.user_id, int(time.time()))  # as `disable` would
        return {}

    args = {
        "url": staff_site.url,
        "chromium": str(chromium),
        "shots": str(shots.resolve()),
        "password": PASSWORD,
        "users": USERS,
    }
    started = time.monotonic()
    out = _drive(node, args, answer)
    elapsed = time.monotonic() - started

    assert out["problems"] == []
    page = out["page"]
    assert page["secure"] is True  # http://localhost is a secure context: WebAuthn works
    assert page["unlabelled"] == [] and page["live"] == "polite"
    assert page["platform"] == "true"  # the virtual authenticator counts as built in
    assert "only in this page's memory" in page["note"]

    # The admin's first login: password only, and the role must enrol before anything else.
    first = out["adminFirst"]["account"]
    assert first["username"] == USERS["passkey"] and first["role"] == "consortium-admin"
    assert first["mfa"] is False and first["enrolRequired"] is True
    assert first["factors"] == "" and first["factorsText"] == "none yet"
    assert "needs a second factor" in out["adminFirst"]["message"]["text"]

    # A passkey from the (virtual) fingerprint reader: recovery codes shown once, with a warning.
    enrolled = out["adminEnrolled"]
    codes = enrolled["recovery"]["codes"]
    assert len(codes) == RECOVERY_CODES and all(RECOVERY_CODE.match(c) for c in codes)
    assert "shown only this once" in enrolled["recovery"]["warning"]
    assert enrolled["recovery"]["focused"] == "recovery-heading"
    assert enrolled["account"]["mfa"] is True and enrolled["account"]["factors"] == "passkey"
    assert "Opened with a second factor (passkey)" in enrolled["account"]["session"]
    assert enrolled["account"]["enrolRequired"] is False
    assert enrolled["codesLeftOnPage"] == 0
    [credential] = enrolled["credentials"]
    assert credential["resident"] is True and credential["rpId"] == "localhost"
    user = staff.store.user_by_name(USERS["passkey"])
    assert user is not None
    assert base64.b64decode(credential["userHandle"]) == user.user_id.encode()
    [passkey] = staff.store.passkeys(user.user_id)
    assert passkey.name == "Virtual fingerprint"

    # The same authenticator again: excludeCredentials made it refuse, and the page says why.
    assert out["adminExcluded"]["kind"] == "error"
    assert "already holds a passkey" in out["adminExcluded"]["text"]
    assert len(staff.store.passkeys(user.user_id)) == 1
    assert out["adminLogout"] == {"kind": "info", "text": "You are logged out."}

    # Password, then the passkey: an MFA session.
    assert out["adminMfa"]["visible"] == {
        "mfa-passkey": True,
        "totp-login-form": False,
        "recovery-login-form": True,
    }
    assert out["adminMfa"]["focused"] == "mfa-heading"
    login = out["adminPasskeyLogin"]["account"]
    assert login["mfa"] is True and login["factors"] == "passkey"
    assert "Opened with a second factor (passkey)" in login["session"]
    [used] = out["adminPasskeyLogin"]["credentials"]
    assert used["signCount"] > credential["signCount"]
    [after] = staff.store.passkeys(user.user_id)
    assert after.sign_count == used["signCount"] and after.last_used_at is not None
    assert out["storage"] == {"local": 0, "session": 0, "cookie": ""}
    # The node ends the session (e.g. the account is disabled): the page notices and forgets it.
    revoked = out["adminRevoked"]
    assert revoked["message"] == {
        "kind": "error",
        "text": "Unauthorized: invalid or expired credentials. Your session has ended: log in "
        "again.",
    }
    assert revoked["focused"] == "username"
    assert out["afterReload"] == "login"  # the token lived in memory only

    # An operator (no MFA required) enrols an authenticator app from the QR code / URI.
    op = out["operatorFirst"]["account"]
    assert op["role"] == "courier-operator" and op["mfa"] is False
    assert op["enrolRequired"] is False
    setup = out["totpSetup"]
    assert setup["uri"] == app.uri and app.asked == ["wrong", "now", "wrong", "next"]
    query = parse_qs(urlsplit(setup["uri"]).query)
    assert setup["uri"].startswith(f"otpauth://totp/ParcelProof:{USERS['totp']}?")
    assert query["issuer"] == ["ParcelProof"] and len(query["secret"][0]) == 32
    prefix = "data:image/png;base64,"
    assert setup["src"].startswith(prefix) and setup["width"] > 100
    assert base64.b64decode(setup["src"][len(prefix) :]) == qr_png(setup["uri"])  # same secret
    assert setup["alt"] and setup["focused"] == "totp-confirm-code"
    assert out["totpMistyped"] == {
        "message": {"kind": "error", "text": "Unauthorized: invalid credentials"},
        "view": "account",
        "setupVisible": True,
    }
    op_enrolled = out["operatorEnrolled"]
    op_codes = op_enrolled["recovery"]["codes"]
    assert len(op_codes) == RECOVERY_CODES and not set(op_codes) & set(codes)
    assert op_enrolled["account"]["mfa"] is True and op_enrolled["account"]["factors"] == "totp"
    assert op_enrolled["totpSetupVisible"] is False and op_enrolled["qrSrc"] is None

    # Log in with the app: a wrong code is named, the next right one opens an MFA session.
    assert out["operatorMfa"]["visible"] == {
        "mfa-passkey": False,
        "totp-login-form": True,
        "recovery-login-form": True,
    }
    assert out["operatorWrongCode"] == {
        "message": {"kind": "error", "text": "Unauthorized: invalid credentials"},
        "view": "mfa",
    }
    totp_login = out["operatorTotpLogin"]["account"]
    assert totp_login["mfa"] is True
    assert "Opened with a second factor (authenticator app)" in totp_login["session"]
    recovery_login = out["operatorRecoveryLogin"]["account"]
    assert recovery_login["mfa"] is True and "(recovery code)" in recovery_login["session"]
    assert out["operatorRecoveryReused"] == {
        "message": {"kind": "error", "text": "Unauthorized: invalid credentials"},
        "view": "mfa",
    }

    # Repeated wrong passwords: four 401s, then the lockout with its Retry-After.
    lockout = out["lockout"]
    assert [m["text"] for m in lockout[:4]] == ["Unauthorized: invalid username or password"] * 4
    assert lockout[4]["kind"] == "error"
    assert lockout[4]["text"].startswith("Too many failed attempts: ")
    assert lockout[4]["text"].endswith("(Retry-After: 60 s)")
    assert out["passwordCleared"] == ""
    assert out["phoneScrollWidth"] <= 390

    # Exactly the failures the steps above provoke reached the server as errors.
    # (The courier console refreshes on its own; its calls are tested in test_console_page.py.)
    assert [f for f in out["failures"] if " /v1/console/" not in f] == [
        "401 /v1/staff/mfa/totp",
        "401 /v1/staff/me",
        "401 /v1/staff/mfa/totp/confirm",
        "401 /v1/staff/login/totp",
        "401 /v1/staff/login/recovery",
        *["401 /v1/staff/login"] * 4,
        "429 /v1/staff/login",
    ]
    for name in ("staff-recovery-codes.png", "staff-second-factor.png", "staff-totp-setup.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert elapsed < 120, f"the browser run took {elapsed:.0f} s"
