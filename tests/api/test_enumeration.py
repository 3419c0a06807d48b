"""Anti-enumeration: a wrong tracking number and a wrong second factor get the same answer in
similar time: the node opens a sealed decoy for unknown numbers. (Rate limits: see
test_courier_api.py::test_lookups_are_rate_limited_per_parcel_and_per_client.)"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from fastapi.testclient import TestClient

from parcelproof.api.app import create_app
from parcelproof.api.deps import NodeServices
from parcelproof.api.ratelimit import PublicLimits
from tests.api.conftest import Api
from tests.api.test_courier_api import PARCEL, POSTCODE, _create

ROUNDS = 40


def _timed(client: TestClient, body: dict[str, str]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    r = client.post("/v1/lookup", json=body)
    return time.perf_counter() - started, r.status_code, r.content


def test_wrong_number_and_wrong_factor_take_similar_time(api: Api) -> None:
    _create(api)
    services: NodeServices = api.client.app.state.services  # type: ignore[attr-defined]
    roomy = PublicLimits("10000/minute", "10000/minute")
    client = TestClient(create_app(replace(services, limits=roomy)))
    wrong_number = {"tracking_number": "PP000000000XX", "postcode": POSTCODE}
    wrong_factor = {"tracking_number": PARCEL, "postcode": "9999 ZZ"}
    for body in (wrong_number, wrong_factor):  # warm up caches and code paths
        _timed(client, body)
    unknown: list[float] = []
    mismatched: list[float] = []
    answers: set[tuple[int, bytes]] = set()
    for _ in range(ROUNDS):  # interleaved, so drift hits both sides alike
        t, status, body = _timed(client, wrong_number)
        unknown.append(t)
        answers.add((status, body))
        t, status, body = _timed(client, wrong_factor)
        mismatched.append(t)
        answers.add((status, body))
    assert len(answers) == 1 and next(iter(answers))[0] == 404  # byte-identical answers
    ratio = statistics.median(unknown) / statistics.median(mismatched)
    # Coarse on purpose (shared CI machines): an unknown number that skipped the decryption
    # work would answer several times faster than a known one with a wrong factor.
    assert 0.6 < ratio < 1.6, f"median time ratio unknown/mismatched = {ratio:.2f}"
