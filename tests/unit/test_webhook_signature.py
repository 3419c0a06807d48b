"""The webhook signature scheme and retry schedule: what a receiver must refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from parcelproof.core.errors import FormatError
from parcelproof.service.webhooks import (
    ForbiddenDestinationError,
    RetryPolicy,
    WebhookSignatureError,
    check_destination,
    check_url,
    forbidden_address,
    new_secret,
    sign,
    verify_signature,
)

SECRET = "whsec_" + "A" * 43
BODY = b'{"data":{"status":"delivered"},"id":"evt_1","type":"shipment.status_changed"}'
NOW = 1_780_000_000


def test_header_is_t_and_hex_hmac_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"
    assert verify_signature(SECRET, sign(SECRET, BODY, NOW), BODY, now=NOW + 10) == NOW


def test_tampered_body_fails() -> None:
    header = sign(SECRET, BODY, NOW)
    tampered = BODY.replace(b"delivered", b"returned!")
    with pytest.raises(WebhookSignatureError, match="does not match the body"):
        verify_signature(SECRET, header, tampered, now=NOW)


def test_wrong_secret_fails() -> None:
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(new_secret(), sign(SECRET, BODY, NOW), BODY, now=NOW)


def test_moving_the_timestamp_breaks_the_mac() -> None:
    forged = sign(SECRET, BODY, NOW - 1000).replace(f"t={NOW - 1000}", f"t={NOW}")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(SECRET, forged, BODY, now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_stale_or_future_timestamps_are_replays(skew: int) -> None:
    with pytest.raises(WebhookSignatureError, match="tolerance 300s"):
        verify_signature(SECRET, sign(SECRET, BODY, NOW - skew), BODY, now=NOW)
    verify_signature(SECRET, sign(SECRET, BODY, NOW - skew), BODY, now=NOW, tolerance=10**6)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={NOW}",
        "v1=" + "0" * 64,
        f"t=abc,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={NOW},t={NOW},v1={'0' * 64}",
        "x" * 5000,
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(WebhookSignatureError, match="malformed"):
        verify_signature(SECRET, header, BODY, now=NOW)


def test_any_of_several_v1_may_match_during_a_secret_change() -> None:
    good = sign(SECRET, BODY, NOW).split(",")[1]
    verify_signature(SECRET, f"t={NOW},v1={'0' * 64},{good}", BODY, now=NOW)


def test_secrets_are_random_and_prefixed() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) == 49 and "=" not in a


def test_back_off_doubles_with_bounded_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_seconds=10, max_attempts=8, jitter=0.1, max_delay=600)
    assert [policy.delay(n, lambda: 0.0) for n in range(1, 8)] == [10, 20, 40, 80, 160, 320, 600]
    assert [policy.delay(n, lambda: 0.999) for n in range(1, 4)] == [11, 22, 44]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_url_rules_name_the_rule() -> None:
    assert check_url(" https://h.example.com/x ") == "https://h.example.com/x"
    with pytest.raises(FormatError, match="http only to"):
        check_url("http://127.0.0.1.nip.io/x")  # a name that merely looks like loopback


def test_destinations_are_checked_again_when_resolved_before_sending() -> None:
    assert forbidden_address("169.254.169.254") and forbidden_address("::ffff:169.254.1.1")
    assert forbidden_address("fe80::1%eth0") and forbidden_address("0.0.0.0")  # noqa: S104
    assert not forbidden_address("127.0.0.1") and not forbidden_address("::1")
    assert not forbidden_address("10.1.2.3")
    assert not forbidden_address("hooks.example.com")  # a name: judged once resolved
    check_destination("http://127.0.0.1:9/hook")  # loopback stays allowed
    # A name resolving to a link-local address (the hosts database of this machine is not
    # ours to change, so an IP literal stands in for a name the resolver returns).
    with pytest.raises(ForbiddenDestinationError):
        check_destination("https://169.254.169.254/latest/meta-data")
