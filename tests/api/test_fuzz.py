"""Random and half-valid bodies never make the API answer 5xx or anything but problem+json."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
hexes = st.sampled_from(["0x", "0x00", "0x" + "ab" * 32, "0x" + "zz" * 20, "nothex", ""])
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=70) | st.integers(),
        "tracking_number": st.text(max_size=70) | st.none(),
        "event_time": st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=5),
        "agent": hexes,
        "signature": hexes | st.just("0x" + "11" * 65),
        "fields": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.text(max_size=70),
                    "value": json_values,
                    "salt": st.text(max_size=50),
                },
            ),
            max_size=3,
        )
        | json_values,
        "extra": json_values,
    },
)
bundle_like = st.fixed_dictionaries(
    {
        "format": st.sampled_from(["parcelproof-bundle", "x"]),
        "version": st.sampled_from([1, 2, "1"]),
    },
    optional={
        "chain": st.fixed_dictionaries({}, optional={"chainId": json_values, "ledger": hexes}),
        "logs": st.lists(
            st.dictionaries(
                st.sampled_from(["logId", "shipment", "checkpoint", "events"]), json_values
            ),
            max_size=2,
        ),
    },
)


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=event_like)
def test_events_endpoint_never_fails_open(api: Api, body: dict[str, Any]) -> None:
    _check(api.client.post("/v1/events", headers=api.auth(), json=body))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_values)
def test_any_json_on_any_route(api: Api, body: Any) -> None:
    for path in (
        "/v1/shipments",
        "/v1/events/bulk",
        "/v1/lookup",
        "/v1/lookup/bundle",
        "/v1/shipments/context",
        "/v1/verify",
    ):
        _check(api.client.post(path, headers=api.auth(), json=body))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bundle_like)
def test_verify_endpoint_rejects_malformed_bundles_cleanly(api: Api, body: dict[str, Any]) -> None:
    _check(api.client.post("/v1/verify", json=body))
