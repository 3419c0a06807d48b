"""schemathesis against the OpenAPI of a running node: no 5xx, every answer conforms to it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

#: Examples per operation (CI); raise it with PARCELPROOF_SCHEMATHESIS_EXAMPLES.
EXAMPLES = int(os.environ.get("PARCELPROOF_SCHEMATHESIS_EXAMPLES", "25"))


class RunningNode:
    """`parcelproof serve --dev-chain` in a subprocess: its URL and its all-scopes token."""

    def __init__(self, workdir: Path) -> None:
        env = {**os.environ, "PARCELPROOF_ENVIRONMENT": "development", "PYTHONUNBUFFERED": "1"}
        env.pop("PARCELPROOF_ENV_FILE", None)
        self.log = workdir / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # our own CLI
                [sys.executable, "-m", "parcelproof", "serve", "--dev-chain", "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=workdir,
            )
        self.url = self.token = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.url:
            lines = self.log.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if line.startswith("API token") and i + 1 < len(lines):
                    self.token = lines[i + 1].strip()
                if line.startswith("listening on"):
                    self.url = line.split()[-1]
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        if not (self.url and self.token):
            self.stop()
            raise RuntimeError(f"serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def running_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    node = RunningNode(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield node
    finally:
        node.stop()
        assert "crashed" not in node.log.read_text(), "the node logged an unexpected failure"


def _check_operation(operation: Any, token: str) -> int:
    """Hypothesis-driven cases of one operation, each called on the node and validated;
    returns how many were called."""
    calls = [0]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: CI stays reproducible
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        calls[0] += 1
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    run()
    return calls[0]


def test_every_operation_conforms(running_node: RunningNode) -> None:
    """Every operation of the node's OpenAPI, EXAMPLES generated requests each (authorized
    with an all-scopes token): no 5xx, status codes, content types and bodies as declared."""
    schema = schemathesis.openapi.from_url(f"{running_node.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    failures: list[str] = []
    calls = 0
    for operation in operations:
        try:
            calls += _check_operation(operation, running_node.token)
        except Exception as e:
            failures.append(f"{operation.method.upper()} {operation.path}: {e}"[:2000])
    assert not failures, "\n\n".join(failures)
    assert calls >= len(operations) * min(EXAMPLES, 5), calls


def test_the_checks_catch_a_server_error_and_an_undeclared_answer() -> None:
    """The same harness fails on an API that answers 500, or a body its schema does not allow."""
    app = FastAPI()

    @app.get("/boom")
    def boom() -> JSONResponse:
        return JSONResponse({"oops": True}, status_code=500)

    @app.get("/count")
    def count() -> dict[str, int]:
        return {"n": -1}

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    spec = schema.raw_schema
    spec["paths"]["/count"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "required": ["n"],
    }
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = app
    for path, failure in (("/boom", "Server error"), ("/count", "Response violates schema")):
        operation = next(r.ok() for r in schema.get_all_operations() if r.ok().path == path)
        with pytest.raises(BaseException) as caught:  # a FailureGroup of failures
            _check_operation(operation, "token")
        assert failure in "".join(traceback.format_exception(caught.value))
