"""Webhook management API: input rules, scopes and object-level access as problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from parcelproof.service import credentials
from parcelproof.service.webhooks import STATUS_CHANGED, WebhookService
from parcelproof.store.db import session_factory
from parcelproof.store.webhooks_sql import SqlWebhookStore
from tests.api.conftest import Api
from tests.support.webhooks import Rig, webhook_rig


@pytest.fixture
def rig(api: Api, sql_engine: Engine) -> Iterator[Rig]:
    with webhook_rig(api, sql_engine) as r:
        yield r


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def _post(rig: Rig, url: str, types: list[str] | None = None, **extra: Any) -> Any:
    return rig.client.post(
        "/v1/webhooks",
        json={"url": url, "event_types": [STATUS_CHANGED] if types is None else types, **extra},
        headers=rig.api.auth(),
    )


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://hooks.example.com/in", "https"),
        ("javascript:alert(1)", "https"),
        ("http://hooks.example.com/in", "http only to"),
        ("http://10.0.0.8/in", "http only to"),
        ("https://user:pw@hooks.example.com/in", "credentials"),
        ("https://token@hooks.example.com/in", "credentials"),
        ("/relative/path", "https"),
        ("https:///no-host", "host"),
        ("https://hooks.example.com/in#frag", "fragment"),
        ("https://hooks.example.com/" + "a" * 2100, "longer than 2048"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com:99999/in", "valid absolute URL"),
        ("", "empty"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/in", "link-local"),
        ("https://[::ffff:169.254.169.254]/in", "link-local"),
        ("https://0.0.0.0/in", "link-local, multicast or reserved"),
        ("https://224.0.0.1/in", "link-local, multicast or reserved"),
    ],
)
def test_bad_urls_are_refused_without_echoing_them(rig: Rig, url: str, detail: str) -> None:
    body = _problem(_post(rig, url), 422)
    assert detail in body["detail"]
    if len(url) > 10:
        assert url not in str(body)  # a URL may carry a token: never echoed


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/parcelproof?team=ops",
        "http://127.0.0.1:9000/hook",
        "http://127.8.9.10/hook",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
    ],
)
def test_https_and_loopback_http_are_accepted(rig: Rig, url: str) -> None:
    r = _post(rig, url)
    assert r.status_code == 201, r.text
    assert r.json()["url"] == url and r.json()["secret"].startswith("whsec_")


def test_unknown_or_missing_event_types_are_422(rig: Rig) -> None:
    body = _problem(_post(rig, "https://h.example.com/", ["shipment.deleted"]), 422)
    assert "unknown event type" in body["detail"]
    _problem(_post(rig, "https://h.example.com/", ["webhook.test"]), 422)  # on request only
    _problem(_post(rig, "https://h.example.com/", []), 422)
    _problem(_post(rig, "https://h.example.com/", None, description="x" * 201), 422)
    _problem(_post(rig, "https://h.example.com/", None, secret="mine"), 422)  # extra field


def test_scopes(rig: Rig) -> None:
    store = rig.api.node.store
    reader = credentials.issue(store, "reader", {"read"})  # type: ignore[arg-type]
    manager = credentials.issue(store, "hooks", {"webhooks:manage"})  # type: ignore[arg-type]
    url = "https://hooks.example.com/in"
    payload = {"url": url, "event_types": [STATUS_CHANGED]}
    _problem(rig.client.post("/v1/webhooks", json=payload), 401)
    body = _problem(
        rig.client.post("/v1/webhooks", json=payload, headers=rig.api.auth(reader)), 403
    )
    assert "webhooks:manage" in body["detail"]
    _problem(rig.client.get("/v1/webhooks", headers=rig.api.auth(reader)), 403)
    r = rig.client.post("/v1/webhooks", json=payload, headers=rig.api.auth(manager))
    assert r.status_code == 201, r.text
    assert r.json()["created_by"].startswith("client:")
    listed = rig.client.get("/v1/webhooks", headers=rig.api.auth(manager)).json()
    assert [w["id"] for w in listed] == [r.json()["id"]]


def test_another_couriers_or_an_unknown_subscription_is_404(rig: Rig, sql_engine: Engine) -> None:
    other_log = bytes(range(32))
    other = WebhookService(
        SqlWebhookStore(session_factory(sql_engine), other_log), rig.api.node.keyring
    )
    theirs = other.create("client:b", "https://b.example.com/in", [STATUS_CHANGED])
    their_id = theirs.subscription.subscription_id
    auth = rig.api.auth()
    for webhook_id in (their_id, "wh_000000000000000000000000"):
        _problem(rig.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth), 404)
        _problem(rig.client.post(f"/v1/webhooks/{webhook_id}/test", headers=auth), 404)
        _problem(rig.client.delete(f"/v1/webhooks/{webhook_id}", headers=auth), 404)
    assert rig.client.get("/v1/webhooks", headers=auth).json() == []
    assert other.subscriptions()[0].subscription_id == their_id  # untouched


def test_a_node_without_webhooks_answers_404(api: Api) -> None:
    r = api.client.get("/v1/webhooks", headers=api.auth())
    assert _problem(r, 404)["detail"] == "webhooks are not enabled on this node"
