"""Node rules: second factors, delivery confirmation, corrections, countersigned handoffs."""

from __future__ import annotations

import secrets

import pytest

from parcelproof.core import eip712
from parcelproof.core.bundle import hex32, verify_bundle
from parcelproof.core.commitment import event_commitment, open_fields
from parcelproof.core.errors import (
    AgentKeyNotValidError,
    FormatError,
    NotFoundError,
    SignatureError,
)
from parcelproof.service.agent import Agent
from parcelproof.service.lookup import lookup
from parcelproof.service.node import TooManyAttemptsError
from tests.unit.conftest import NOW, World

PARCEL, POSTCODE = "PP2718281828IT", "00184"


def test_access_token_is_a_second_factor(world: World) -> None:
    created = world.a.create_shipment(PARCEL, {}, POSTCODE)
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 10)
    by_token = lookup([world.a], world.ledger, PARCEL, None, access_token=created.access_token)
    assert [t.fields["status"] for t in by_token.timeline] == ["picked_up"]
    upper = lookup([world.a], world.ledger, PARCEL, None, access_token=created.access_token.upper())
    assert len(upper.timeline) == 1
    with pytest.raises(NotFoundError) as wrong_token:
        lookup([world.a], world.ledger, PARCEL, None, access_token="a" * 26)
    with pytest.raises(NotFoundError) as unknown:
        lookup([world.a], world.ledger, "PP1IT", None, access_token=created.access_token)
    assert str(wrong_token.value) == str(unknown.value)


def test_tokens_and_codes_differ_per_parcel(world: World) -> None:
    one = world.a.create_shipment("PP1A", {}, POSTCODE)
    two = world.a.create_shipment("PP2A", {}, POSTCODE)
    assert one.access_token != two.access_token
    assert len(one.confirmation_code) == 6 and one.confirmation_code.isdigit()


def _to_delivery(world: World) -> str:
    code = world.a.create_shipment(PARCEL, {}, POSTCODE).confirmation_code
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 30)
    world.driver_a.record(world.a, PARCEL, {"status": "out_for_delivery"}, NOW - 20)
    return code


def test_delivery_with_the_recipients_code(world: World) -> None:
    code = _to_delivery(world)
    world.driver_a.record(world.a, PARCEL, {"status": "delivered", "confirmation_code": code}, NOW)


def test_delivery_with_a_wrong_code_is_refused(world: World) -> None:
    code = _to_delivery(world)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(FormatError, match="confirmation code does not match"):
        world.driver_a.record(
            world.a, PARCEL, {"status": "delivered", "confirmation_code": wrong}, NOW
        )
    assert world.a.store.log_size() == 2


def test_guessing_the_confirmation_code_is_stopped_after_five_wrong_codes(world: World) -> None:
    code = _to_delivery(world)
    wrong = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 7)]
    for guess in wrong[:5]:
        with pytest.raises(FormatError, match="does not match"):
            world.driver_a.record(
                world.a, PARCEL, {"status": "delivered", "confirmation_code": guess}, NOW
            )
    for guess in (wrong[5], code):  # blocked: even the right code waits for the window
        with pytest.raises(TooManyAttemptsError, match="too many wrong confirmation codes") as e:
            world.driver_a.record(
                world.a, PARCEL, {"status": "delivered", "confirmation_code": guess}, NOW
            )
        assert 1 <= e.value.retry_after <= 3600
    assert world.a.store.log_size() == 2


def test_confirmation_code_only_on_delivery(world: World) -> None:
    code = world.a.create_shipment(PARCEL, {}, POSTCODE).confirmation_code
    with pytest.raises(FormatError, match="confirmation code"):
        world.driver_a.record(
            world.a, PARCEL, {"status": "picked_up", "confirmation_code": code}, NOW
        )


def test_a_correction_references_an_earlier_event_and_edits_nothing(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    wrong = world.driver_a.record(
        world.a, PARCEL, {"status": "picked_up", "place": "Roma"}, NOW - 30
    )
    with pytest.raises(FormatError, match="names the event it corrects"):
        world.driver_a.record(world.a, PARCEL, {"status": "corrected"}, NOW - 25)
    with pytest.raises(FormatError, match="earlier event of this parcel"):
        world.driver_a.record(
            world.a, PARCEL, {"status": "corrected", "corrects": "0x" + "11" * 32}, NOW - 25
        )
    with pytest.raises(FormatError, match="only a correction"):
        world.driver_a.record(
            world.a, PARCEL, {"status": "departed", "corrects": hex32(wrong.commitment)}, NOW - 25
        )
    fix = {
        "status": "corrected",
        "corrects": hex32(wrong.commitment),
        "corrected_status": "picked_up",
        "place": "Milano",
    }
    world.driver_a.record(world.a, PARCEL, fix, NOW - 20)
    world.driver_a.record(world.a, PARCEL, {"status": "departed"}, NOW - 10)  # follows picked_up
    shipment = world.a.store.shipment_by_ref(world.a.event_context(PARCEL).shipment)
    assert shipment is not None
    events = world.a.store.events(shipment.shipment_id)
    assert events[0].commitment == wrong.commitment  # the wrong event is still there, unchanged
    assert len(events) == 3


def _handoff_world(world: World) -> tuple[eip712.Handoff, bytes, bytes]:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    world.b.create_shipment(PARCEL, {}, POSTCODE)
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 100)
    ref_a = world.a.event_context(PARCEL).shipment
    ref_b = world.b.event_context(PARCEL).shipment
    h = eip712.Handoff(
        secrets.token_bytes(32), world.a.courier_id, ref_a, world.b.courier_id, ref_b, NOW - 50
    )
    return (
        h,
        world.driver_a.sign_handoff(world.a.domain, h),
        world.driver_b.sign_handoff(world.b.domain, h),
    )


def _offer(world: World, h: eip712.Handoff, sig_b: bytes) -> None:
    world.driver_a.record(
        world.a,
        PARCEL,
        {
            "status": "handoff_offered",
            "handoff_to": hex32(world.b.courier_id),
            "counterparty_shipment": hex32(h.to_shipment),
            "handoff_id": hex32(h.handoff_id),
            "handoff_time": h.handoff_time,
            "counterparty_agent": world.driver_b.address,
            "counterparty_signature": "0x" + sig_b.hex(),
        },
        NOW - 50,
    )


def _accept(world: World, h: eip712.Handoff, sig_a: bytes, agent: Agent | None = None) -> None:
    world.driver_b.record(
        world.b,
        PARCEL,
        {
            "status": "handoff_accepted",
            "handoff_from": hex32(world.a.courier_id),
            "counterparty_shipment": hex32(h.from_shipment),
            "handoff_id": hex32(h.handoff_id),
            "handoff_time": h.handoff_time,
            "counterparty_agent": (agent or world.driver_a).address,
            "counterparty_signature": "0x" + sig_a.hex(),
        },
        NOW - 40,
    )


def test_countersigned_handoff_verifies_in_the_bundle(world: World) -> None:
    h, sig_a, sig_b = _handoff_world(world)
    _offer(world, h, sig_b)
    _accept(world, h, sig_a)
    world.a.anchor()
    world.b.anchor()
    result = lookup([world.a, world.b], world.ledger, PARCEL, POSTCODE)
    assert result.report is not None and result.report.ok, result.report.failures
    names = [c.name for c in result.report.checks]
    assert names.count("handoff-countersignature") == 2
    assert result.bundle is not None
    for lg in result.bundle["logs"]:
        for ev in lg["events"]:
            for f in ev["revealed"]:
                if f["name"] == "counterparty_agent":
                    f["value"] = world.driver_a.address  # claim someone else countersigned
    failed = {c.name for c in verify_bundle(result.bundle, world.ledger).failures}
    assert {"commitment", "handoff-countersignature"} <= failed


def test_handoff_with_a_forged_countersignature_is_refused(world: World) -> None:
    h, _, sig_b = _handoff_world(world)
    forged = world.driver_b.sign_handoff(world.b.domain, h)  # B signs "for" A
    _offer(world, h, sig_b)
    with pytest.raises(SignatureError):
        _accept(world, h, forged)


def test_countersignature_by_an_unregistered_key_is_refused(world: World) -> None:
    h, _, _ = _handoff_world(world)
    outsider = Agent(secrets.token_bytes(32))
    with pytest.raises(AgentKeyNotValidError, match="counterparty's agent key"):
        _accept(world, h, outsider.sign_handoff(world.b.domain, h), agent=outsider)


def test_handoff_without_its_fields_is_refused(world: World) -> None:
    _handoff_world(world)
    with pytest.raises(FormatError, match="handoff_to"):
        world.driver_a.record(world.a, PARCEL, {"status": "handoff_offered"}, NOW - 50)


def test_timeline_shows_pending_anchored_and_confirmed(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 30)
    first = world.a.anchor()
    assert first is not None
    world.driver_a.record(world.a, PARCEL, {"status": "departed"}, NOW - 20)
    world.a.anchor()
    world.driver_a.record(world.a, PARCEL, {"status": "arrived"}, NOW - 10)
    world.a.store.mark_checkpoint(first.size, "confirmed", first.block_number)
    timeline = lookup([world.a], world.ledger, PARCEL, POSTCODE).timeline
    assert [(t.anchoring, t.block_number) for t in timeline] == [
        ("confirmed", 1),
        ("anchored", 2),
        ("pending", None),
    ]


def test_alias_status_must_be_translated_before_signing(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    ctx = world.a.event_context(PARCEL)
    openings = open_fields({"status": "pickup", "time": NOW})
    commitment = event_commitment(
        ctx.log_id, ctx.shipment, 0, ctx.previous, [o.digest() for o in openings]
    )
    signed = eip712.SignedEvent(ctx.log_id, ctx.shipment, 0, commitment, NOW)
    signature = eip712.sign_event(world.driver_a._key, ctx.domain, signed)
    with pytest.raises(FormatError, match="'pickup' is an alias: sign the canonical 'picked_up'"):
        world.a.record_event(
            PARCEL, openings, event_time=NOW, agent=world.driver_a.address, signature=signature
        )
    world.driver_a.record(world.a, PARCEL, {"status": "pickup"}, NOW)  # the SDK translates


def test_media_hashes_must_be_sha256_hex(world: World) -> None:
    _to_delivery(world)
    with pytest.raises(FormatError, match="pod_photo_sha256 must be 64 lower-case hex"):
        world.driver_a.record(
            world.a, PARCEL, {"status": "delivered", "pod_photo_sha256": "photo.jpg"}, NOW
        )


def test_non_ascii_postcode_is_just_a_wrong_factor(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, "75001 ÎLE")
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 10)
    assert len(lookup([world.a], world.ledger, PARCEL, "75001 île".upper()).timeline) == 1
    with pytest.raises(NotFoundError):
        lookup([world.a], world.ledger, PARCEL, "1012ÄB")
    with pytest.raises(NotFoundError):
        lookup([world.a], world.ledger, "PP404", "1012ÄB")


def test_a_correction_to_an_unknown_status_is_refused(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    first = world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 30)
    bad = {
        "status": "corrected",
        "corrects": hex32(first.commitment),
        "corrected_status": "teleported",
    }
    with pytest.raises(FormatError, match="corrected_status must be a canonical status"):
        world.driver_a.record(world.a, PARCEL, bad, NOW - 20)


def test_an_expired_key_cannot_backdate_events_into_its_window(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    # The driver's key expired an hour ago; it signs an event dated two hours ago.
    world.ledger.register(world.a.courier_id, world.driver_a.address, NOW - 86400, NOW - 3600)
    with pytest.raises(AgentKeyNotValidError, match="no longer valid"):
        world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 7200)
    with pytest.raises(FormatError, match="hours in the past"):
        world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 4 * 86400)


def test_revealed_time_must_match_the_signed_time(world: World) -> None:
    world.a.create_shipment(PARCEL, {}, POSTCODE)
    world.driver_a.record(world.a, PARCEL, {"status": "picked_up"}, NOW - 30)
    world.a.anchor()
    bundle = lookup([world.a], world.ledger, PARCEL, POSTCODE).bundle
    assert bundle is not None
    bundle["logs"][0]["events"][0]["eventTime"] = NOW - 29
    failures = {c.name for c in verify_bundle(bundle, world.ledger).failures}
    assert {"commitment", "signature"} <= failures


def test_a_countersignature_cannot_be_reused_for_another_parcel(world: World) -> None:
    h, _, sig_b = _handoff_world(world)
    world.a.create_shipment("PPOTHER1", {}, POSTCODE)
    world.driver_a.record(world.a, "PPOTHER1", {"status": "picked_up"}, NOW - 100)
    reused = {
        "status": "handoff_offered",
        "handoff_to": hex32(world.b.courier_id),
        "counterparty_shipment": hex32(h.to_shipment),
        "handoff_id": hex32(h.handoff_id),
        "handoff_time": h.handoff_time,
        "counterparty_agent": world.driver_b.address,
        "counterparty_signature": "0x" + sig_b.hex(),
    }  # B signed the handoff of PARCEL: A tries it on PPOTHER1
    with pytest.raises(SignatureError):
        world.driver_a.record(world.a, "PPOTHER1", reused, NOW - 50)
