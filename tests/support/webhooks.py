"""A real local webhook receiver (ThreadingHTTPServer on 127.0.0.1) and the webhook test rig."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.service.webhooks import (
    SIGNATURE_HEADER,
    RetryPolicy,
    WebhookService,
    WebhookSignatureError,
    verify_signature,
)
from parcelproof.store.db import session_factory
from parcelproof.store.webhooks_sql import SqlWebhookStore
from tests.api.conftest import Api


@dataclass
class Received:
    """One request the receiver got: headers (lower-case names), raw body, whether the
    signature verified under the receiver's secret (None: no secret set yet)."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    reason: str = ""

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """What the test tells the receiver, and what it received."""

    url: str
    secret: str | None = None
    fail_first: int = 0  # answer 500 to this many requests first
    fail_status: int = 500
    hang_seconds: float = 0.0  # sleep this long before answering
    now: Callable[[], int] = lambda: int(time.time())
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> that checks each request's signature
    with :func:`verify_signature` (answering 400 when it fails), and can be told to fail or
    to hang."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            r = state["receiver"]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified: bool | None = None
            reason = ""
            if r.secret is not None:
                try:
                    verify_signature(
                        r.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body, now=r.now()
                    )
                    verified = True
                except WebhookSignatureError as e:
                    verified, reason = False, str(e)
            with r.lock:
                r.received.append(Received(self.path, headers, body, verified, reason))
                count = len(r.received)
            if r.hang_seconds:
                time.sleep(r.hang_seconds)
            if verified is False:
                status = 400
            elif count <= r.fail_first:
                status = r.fail_status
            else:
                status = 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up (timeout)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    receiver = Receiver(url=f"http://{host!s}:{port}/hooks/parcelproof")
    state["receiver"] = receiver
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class StepClock:
    """A clock the test moves by hand (starts at the wall clock, so event times line up)."""

    def __init__(self) -> None:
        self.t = int(time.time())

    def now(self) -> int:
        return self.t

    def advance(self, seconds: int) -> None:
        self.t += seconds


@dataclass
class Rig:
    """The real app of the ``api`` fixture with webhooks switched on, and its parts."""

    api: Api
    client: TestClient
    service: WebhookService
    clock: StepClock
    engine: Engine

    def create(
        self, url: str, types: list[str], token: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        r = self.client.post(
            "/v1/webhooks",
            json={"url": url, "event_types": types, "description": description},
            headers=self.api.auth(token),
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


@contextmanager
def webhook_rig(api: Api, engine: Engine, policy: RetryPolicy | None = None) -> Iterator[Rig]:
    """The ``api`` fixture's node served again, with a WebhookService on its database."""
    clock = StepClock()
    log_id = api.node.courier_id
    service = WebhookService(
        SqlWebhookStore(session_factory(engine), log_id),
        api.node.keyring,
        policy or RetryPolicy(base_seconds=10, max_attempts=4, jitter=0.0, timeout_seconds=2),
        clock=clock,
        audit=api.audit,
    )
    services: NodeServices = api.client.app.state.services  # type: ignore[attr-defined]
    app = create_app(replace(services, webhooks=service))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Rig(api, client, service, clock, engine)
