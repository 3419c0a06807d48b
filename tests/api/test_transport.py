"""Transport security in the app: security headers on every answer (errors included), HSTS over
HTTPS only, a strict policy on JSON and the page's own on the page, CORS closed by default."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.security import API_CSP, HSTS, PERMISSIONS_POLICY
from parcelproof.api.web import web_router
from parcelproof.chain import devnet
from parcelproof.settings import ConfigurationError, load_settings, parse_cors_origins
from parcelproof.store.db import make_engine, session_factory, sqlite_url, upgrade
from parcelproof.store.sql import SqlStore
from tests.conftest import make_courier

MAX_BODY = 1024
LISTED = "https://track.example.com"
STRANGER = "https://evil.example"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": PERMISSIONS_POLICY,
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeServices]:
    """One courier node on the embedded chain and SQLite: the headers do not depend on either."""
    engine = make_engine(sqlite_url(tmp_path_factory.mktemp("db")))
    upgrade(engine)
    sessions = session_factory(engine)
    c = make_courier(devnet.connect(None), lambda log: SqlStore(sessions, log), "transport")
    store = c.node.store
    assert isinstance(store, SqlStore)
    try:
        yield NodeServices(node=c.node, ledger=c.ledger, clients=store)
    finally:
        engine.dispose()


def _client(services: NodeServices, *, https: bool = False, cors: Sequence[str] = ()) -> TestClient:
    """The app as `serve` builds it (with the web page), plus a route that crashes."""
    app = create_app(services, max_body=MAX_BODY, cors_origins=cors)
    app.include_router(web_router(None, services.ledger.chain_id, services.ledger.address))

    @app.get("/v1/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    base = "https://testserver" if https else "http://testserver"
    return TestClient(app, base_url=base, raise_server_exceptions=False)


LOOKUP = {"tracking_number": "PP0000000001", "postcode": "1000"}
REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/v1/config", {}, 200),
    ("POST", "/v1/lookup", {"json": LOOKUP}, 404),
    ("GET", "/healthz", {}, 200),
    ("GET", "/", {}, 200),
    ("GET", "/static/app.js", {}, 200),
    ("GET", "/no-such-page", {}, 404),
    ("GET", "/v1/no-such-route", {}, 404),
    ("POST", "/v1/lookup", {"json": {"tracking_number": 7}}, 422),
    ("POST", "/v1/shipments", {"json": {}}, 401),
    ("DELETE", "/v1/config", {}, 405),
    ("POST", "/v1/lookup", {"content": b"x" * (MAX_BODY + 1)}, 413),
    ("GET", "/v1/crash", {}, 500),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), REQUESTS)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_every_answer_carries_the_security_headers(
    services: NodeServices,
    https: bool,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    r = _client(services, https=https).request(method, path, **kwargs)
    assert r.status_code == status, r.text
    for name, value in ALWAYS.items():
        assert r.headers.get(name) == value, (name, path)
    assert "content-security-policy" in r.headers
    assert r.headers.get("strict-transport-security") == (HSTS if https else None)
    assert "access-control-allow-origin" not in r.headers
    if path.startswith("/v1/"):
        assert r.headers["cache-control"] == "no-store"  # personal data: no cache keeps it
    if status >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert "boom" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["/v1/config", "/v1/no-such-route", "/healthz", "/openapi.json"])
def test_json_answers_get_the_strictest_policy(services: NodeServices, path: str) -> None:
    r = _client(services).get(path)
    assert (
        r.headers["content-security-policy"]
        == API_CSP
        == ("default-src 'none'; frame-ancestors 'none'")
    )


def test_the_page_keeps_its_own_policy(services: NodeServices) -> None:
    r = _client(services, https=True).get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; script-src 'self'")
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert r.headers["cache-control"] == "no-cache"  # not under /v1/: the page may revalidate
    assert r.headers["strict-transport-security"] == HSTS
    assert len(r.headers.get_list("x-content-type-options")) == 1


def test_hsts_only_for_requests_that_arrived_over_https(services: NodeServices) -> None:
    assert "strict-transport-security" not in _client(services).get("/").headers
    assert "strict-transport-security" not in _client(services).get("/v1/config").headers
    secure = _client(services, https=True).get("/v1/config")
    assert secure.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


# --- CORS -----------------------------------------------------------------------------------


def _preflight(client: TestClient, origin: str, path: str = "/v1/lookup") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cors_is_closed_by_default(services: NodeServices) -> None:
    client = _client(services)
    for origin in (STRANGER, LISTED, "null"):
        preflight = _preflight(client, origin)
        assert preflight.status_code == 405
        assert not any(h.startswith("access-control-") for h in preflight.headers)
        r = client.post("/v1/lookup", json=LOOKUP, headers={"Origin": origin})
        assert r.status_code == 404
        assert not any(h.startswith("access-control-") for h in r.headers)


def test_cors_opens_to_listed_origins_only(services: NodeServices) -> None:
    client = _client(services, https=True, cors=[LISTED, "http://localhost:5173"])
    allowed = _preflight(client, LISTED)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == LISTED
    methods = {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST"}
    assert "access-control-allow-credentials" not in allowed.headers
    assert allowed.headers["x-frame-options"] == "DENY"  # preflights get the headers too
    local = _preflight(client, "http://localhost:5173", "/v1/config")
    assert local.headers["access-control-allow-origin"] == "http://localhost:5173"

    for origin in (STRANGER, LISTED + ".evil.example", "http://track.example.com", "null"):
        refused = _preflight(client, origin)
        assert refused.status_code == 400, origin
        assert "access-control-allow-origin" not in refused.headers, origin
        simple = client.post("/v1/lookup", json=LOOKUP, headers={"Origin": origin})
        assert "access-control-allow-origin" not in simple.headers, origin

    r = client.post("/v1/lookup", json=LOOKUP, headers={"Origin": LISTED})
    assert r.headers["access-control-allow-origin"] == LISTED
    assert "Origin" in r.headers["vary"]
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize(
    "origins", [["*"], [LISTED, "*"], ["https://*.example.com"], ["https://example.com/*"]]
)
def test_a_wildcard_origin_is_refused(services: NodeServices, origins: list[str]) -> None:
    with pytest.raises(ConfigurationError, match=r"may not hold '\*': any web site could"):
        create_app(services, cors_origins=origins)
    with pytest.raises(ConfigurationError, match=r"PARCELPROOF_CORS_ORIGINS may not hold '\*'"):
        load_settings(read_env_file=False, cors_origins=",".join(origins))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        (" , ", ()),
        ("https://track.example.com", ("https://track.example.com",)),
        ("HTTPS://Track.Example.COM:443", ("https://track.example.com",)),
        ("https://a.example:8443, https://a.example:8443,", ("https://a.example:8443",)),
        ("http://localhost:5173,http://127.0.0.1", ("http://localhost:5173", "http://127.0.0.1")),
        ("https://[2001:db8::1]:8443", ("https://[2001:db8::1]:8443",)),
    ],
)
def test_origins_are_parsed_and_normalised(text: str, expected: tuple[str, ...]) -> None:
    assert parse_cors_origins(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://track.example.com", "is plain http: origins must be https"),
        ("http://10.0.0.5:8000", "is plain http"),
        ("https://track.example.com/", "is not an origin"),
        ("https://track.example.com/app", "is not an origin"),
        ("https://track.example.com?x=1", "is not an origin"),
        ("https://user@track.example.com", "is not an origin"),
        ("https://track.example.com:99999", "is not an origin"),
        ("track.example.com", "is not an origin"),
        ("ftp://track.example.com", "is not an origin"),
        ("null", "is not an origin"),
    ],
)
def test_what_is_not_an_exact_https_origin_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"PARCELPROOF_CORS_ORIGINS: .*{message}"):
        parse_cors_origins(text)


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCELPROOF_CORS_ORIGINS", "https://a.example, http://localhost:3000")
    settings = load_settings(read_env_file=False)
    assert settings.cors_origin_list() == ("https://a.example", "http://localhost:3000")
    monkeypatch.delenv("PARCELPROOF_CORS_ORIGINS")
    assert load_settings(read_env_file=False).cors_origin_list() == ()


# --- TLS settings ---------------------------------------------------------------------------


def test_tls_settings_come_in_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(read_env_file=False).tls_files() is None
    monkeypatch.setenv("PARCELPROOF_TLS_CERT", "/etc/node/cert.pem")
    monkeypatch.setenv("PARCELPROOF_TLS_KEY", "/etc/node/key.pem")
    pair = load_settings(read_env_file=False).tls_files()
    assert pair == (Path("/etc/node/cert.pem"), Path("/etc/node/key.pem"))
    monkeypatch.setenv("PARCELPROOF_TLS_KEY", " ")  # blank in an env file: unset
    with pytest.raises(
        ConfigurationError,
        match=r"--tls-cert \(PARCELPROOF_TLS_CERT\) is set but --tls-key \(PARCELPROOF_TLS_KEY\)",
    ):
        load_settings(read_env_file=False).tls_files()


def test_interactive_docs_can_be_turned_off_for_production(services: NodeServices) -> None:
    on = TestClient(create_app(services))
    off = TestClient(create_app(services, interactive_docs=False))
    assert on.get("/docs").status_code == 200
    for path in ("/docs", "/redoc"):
        assert off.get(path).status_code == 404
    assert off.get("/openapi.json").status_code == 200
