"""The audit log's hash chain: the pinned entry hash, every tamper kind with its message, detail
limits. Storage here is an in-memory double; SQL and the chain are in tests/integration."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcelproof.core.errors import FormatError
from parcelproof.service.audit import (
    ACTIONS,
    DOMAIN_TAG,
    MAX_PROBLEMS,
    ZERO_HASH,
    AuditAction,
    AuditAnchor,
    AuditEntry,
    AuditLog,
    AuditReport,
    canonical_detail,
    compute_entry_hash,
    make_entry,
    verify,
)

T0 = 1_750_000_000


class TickingClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> int:
        self.t += 1
        return self.t


class MemoryAuditStore:
    """An AuditStore double for unit tests only."""

    def __init__(self, log_id: bytes = b"\x11" * 32) -> None:
        self._log_id = log_id
        self.rows: list[AuditEntry] = []
        self.saved: dict[int, AuditAnchor] = {}
        self._lock = threading.Lock()

    @property
    def log_id(self) -> bytes:
        return self._log_id

    def append(self, build: Callable[[int, bytes], AuditEntry]) -> AuditEntry:
        with self._lock:
            seq, prev = self.head()
            entry = build(seq, prev)
            self.rows.append(entry)
            return entry

    def entries(self, start: int = 0, stop: int | None = None) -> list[AuditEntry]:
        return [e for e in self.rows if e.seq >= start and (stop is None or e.seq < stop)]

    def iter_entries(self, start: int = 0, stop: int | None = None) -> Iterator[AuditEntry]:
        yield from self.entries(start, stop)

    def recent(self, limit: int) -> list[AuditEntry]:
        return list(reversed(self.rows))[:limit]

    def head(self) -> tuple[int, bytes]:
        return (
            (0, ZERO_HASH) if not self.rows else (self.rows[-1].seq + 1, self.rows[-1].entry_hash)
        )

    def add_anchor(self, anchor: AuditAnchor) -> None:
        self.saved[anchor.size] = anchor

    def anchors(self) -> list[AuditAnchor]:
        return [self.saved[s] for s in sorted(self.saved)]

    def latest_anchor(self) -> AuditAnchor | None:
        return self.saved[max(self.saved)] if self.saved else None


@dataclass(frozen=True)
class Head:
    size: int
    head: bytes


def make_log(n: int) -> tuple[AuditLog, MemoryAuditStore]:
    store = MemoryAuditStore()
    log = AuditLog(store, clock=TickingClock())
    for i in range(n):
        log.record(
            f"staff:user-{i % 3}",
            AuditAction.PERSONAL_DATA_READ,
            f"shipment-{i}",
            {"fields": i, "reason": "support-ticket", "bulk": i % 2 == 0},
        )
    return log, store


def chain_of(n: int) -> list[AuditEntry]:
    return make_log(n)[1].rows


def rehash_from(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """What an attacker with write access does: recompute every hash and link from ``start``."""
    out = entries[:start]
    prev = out[-1].entry_hash if out else ZERO_HASH
    for e in entries[start:]:
        fixed = make_entry(e.seq, e.at, e.actor, e.action, e.target, e.detail_json, prev)
        out.append(fixed)
        prev = fixed.entry_hash
    return out


def kinds(report: AuditReport) -> list[str]:
    return [p.kind for p in report.problems]


# --- the hash ---------------------------------------------------------------------------------


def test_entry_hash_is_the_documented_formula_pinned_by_hand() -> None:
    jcs = (
        b'{"action":"keys.rotate","actor":"cli:ops","at":1700000000,'
        b'"detail":{"from_kids":"k1","rewrapped":3},"seq":0,"target":"k2"}'
    )
    expected = hashlib.sha256(b"parcelproof/audit/v1\x00" + bytes(32) + jcs).digest()
    assert DOMAIN_TAG == b"parcelproof/audit/v1\x00"
    got = compute_entry_hash(
        ZERO_HASH,
        0,
        1_700_000_000,
        "cli:ops",
        "keys.rotate",
        "k2",
        {"rewrapped": 3, "from_kids": "k1"},
    )
    assert got == expected
    assert got.hex() == expected.hex()  # 32 bytes, chained into the next entry
    second = compute_entry_hash(got, 1, 1_700_000_001, "cli:ops", "token.revoke", None, {})
    jcs2 = (
        b'{"action":"token.revoke","actor":"cli:ops","at":1700000001,"detail":{},'
        b'"seq":1,"target":null}'
    )
    assert second == hashlib.sha256(b"parcelproof/audit/v1\x00" + got + jcs2).digest()


def test_records_chain_from_zero_with_gapless_seqs_and_ticking_time() -> None:
    log, store = make_log(5)
    assert [e.seq for e in store.rows] == [0, 1, 2, 3, 4]
    assert store.rows[0].prev_hash == ZERO_HASH
    for before, after in zip(store.rows, store.rows[1:], strict=False):
        assert after.prev_hash == before.entry_hash and after.at > before.at
    assert log.head() == (5, store.rows[-1].entry_hash)
    assert store.rows[2].detail == {"bulk": True, "fields": 2, "reason": "support-ticket"}
    assert store.rows[2].detail_json == '{"bulk":true,"fields":2,"reason":"support-ticket"}'
    report = verify(store.rows)
    assert report.ok and report.size == 5 and report.entries == 5
    assert report.head == store.rows[-1].entry_hash
    assert "intact" in report.summary()


def test_an_empty_log_verifies_and_its_head_is_zero() -> None:
    log, _ = make_log(0)
    assert log.head() == (0, ZERO_HASH)
    report = verify([])
    assert report.ok and report.size == 0 and report.head == ZERO_HASH


def test_actions_are_a_closed_vocabulary() -> None:
    assert "personal-data.read" in ACTIONS and "staff.login-failed" in ACTIONS
    assert AuditAction.KEYS_ROTATE == "keys.rotate"
    log, store = make_log(0)
    with pytest.raises(FormatError, match=r"unknown audit action 'personal-data\.peek'"):
        log.record("staff:u1", "personal-data.peek")
    entry = log.record("staff:u1", "evidence.read", "shipment-9")  # a plain string of the set
    assert entry.action == "evidence.read" and store.rows == [entry]


# --- tampering: each kind, its message --------------------------------------------------------

N = 12


def _edit_actor(es: list[AuditEntry]) -> list[AuditEntry]:
    es[3] = replace(es[3], actor="staff:someone-else")
    return es


def _edit_detail_equivalent(es: list[AuditEntry]) -> list[AuditEntry]:
    es[3] = replace(es[3], detail_json='{"bulk": false, "fields": 3, "reason": "support-ticket"}')
    return es


def _detail_not_json(es: list[AuditEntry]) -> list[AuditEntry]:
    es[3] = replace(es[3], detail_json="{not json")
    return es


def _delete(index: int, count: int = 1) -> Callable[[list[AuditEntry]], list[AuditEntry]]:
    return lambda es: es[:index] + es[index + count :]


def _swap(es: list[AuditEntry]) -> list[AuditEntry]:
    es[4], es[5] = replace(es[5], seq=4), replace(es[4], seq=5)
    return es


def _rehash_one(es: list[AuditEntry]) -> list[AuditEntry]:
    e = es[3]
    es[3] = make_entry(e.seq, e.at, "staff:forged", e.action, e.target, e.detail_json, e.prev_hash)
    return es


def _out_of_order(es: list[AuditEntry]) -> list[AuditEntry]:
    es[6], es[7] = es[7], es[6]
    return es


def _duplicate(es: list[AuditEntry]) -> list[AuditEntry]:
    return [*es[:6], es[5], *es[6:]]


def _replace_prev(es: list[AuditEntry]) -> list[AuditEntry]:
    forged = rehash_from([replace(es[0], actor="staff:forged")], 0)[0]
    return [forged, *es[1:]]


TAMPERS: list[tuple[str, Callable[[list[AuditEntry]], list[AuditEntry]], list[str], str]] = [
    ("edited actor", _edit_actor, ["edited"], r"entry seq 3 was edited: stored hash 0x"),
    (
        "detail re-serialised, same meaning",
        _edit_detail_equivalent,
        ["edited"],
        "entry seq 3 was edited: its detail is not in canonical JSON form",
    ),
    (
        "detail not JSON",
        _detail_not_json,
        ["edited"],
        "entry seq 3 was edited: its detail is not a JSON object",
    ),
    ("one entry deleted", _delete(3), ["deleted"], "entry seq 3 is missing: deleted from the log"),
    ("three deleted", _delete(3, 3), ["deleted"], "entries seq 3-5 are missing"),
    ("the first deleted", _delete(0), ["deleted"], "entry seq 0 is missing"),
    (
        "two rows swapped",
        _swap,
        ["reordered", "reordered"],
        "entry at seq 4 was written as seq 5: entries were moved",
    ),
    (
        "one entry forged and re-hashed",
        _rehash_one,
        ["broken-link"],
        "entry seq 4 does not link to entry seq 3: it names 0x",
    ),
    (
        "first entry forged and re-hashed",
        _replace_prev,
        ["broken-link"],
        "entry seq 1 does not link to entry seq 0",
    ),
    (
        "list out of order",
        _out_of_order,
        ["reordered"],
        "entry seq 6 comes after seq 7: entries are out of order",
    ),
    ("an entry repeated", _duplicate, ["duplicate"], "entry seq 5 appears more than once"),
]


@pytest.mark.parametrize(
    ("desc", "tamper", "expected_kinds", "message"), TAMPERS, ids=[t[0] for t in TAMPERS]
)
def test_each_tamper_is_reported_precisely(
    desc: str,
    tamper: Callable[[list[AuditEntry]], list[AuditEntry]],
    expected_kinds: list[str],
    message: str,
) -> None:
    report = verify(tamper(list(chain_of(N))))
    assert not report.ok, desc
    assert kinds(report) == expected_kinds, [p.message for p in report.problems]
    assert any(re.search(message, p.message) for p in report.problems), [
        p.message for p in report.problems
    ]
    assert "tampered" in report.summary()


def test_a_swap_reports_both_moved_entries_and_nothing_else() -> None:
    report = verify(_swap(list(chain_of(N))))
    assert [(p.kind, p.seq) for p in report.problems] == [("reordered", 4), ("reordered", 5)]
    assert report.problems[1].message.startswith("entry at seq 5 was written as seq 4")


def test_a_far_move_is_still_detected() -> None:
    es = list(chain_of(40))
    es[2], es[30] = replace(es[30], seq=2), replace(es[2], seq=30)
    report = verify(es)
    assert not report.ok
    assert {p.seq for p in report.problems} >= {2, 30}


def test_an_unsorted_stream_is_reported_too() -> None:
    es = list(chain_of(N))
    report = verify(iter([*es[:6], es[7], es[6], *es[8:]]))
    assert [(p.kind, p.seq) for p in report.problems] == [("deleted", 6), ("reordered", 6)]


def test_renumbering_after_a_deletion_reads_as_moved_entries() -> None:
    es = list(chain_of(N))
    renumbered = es[:3] + [replace(e, seq=e.seq - 1) for e in es[4:]]
    report = verify(renumbered)
    assert kinds(report)[0] == "reordered"
    assert report.problems[0].message == (
        "entry at seq 3 was written as seq 4: entries were moved (reordered or renumbered)"
    )


# --- against anchored heads -------------------------------------------------------------------


def test_anchored_heads_are_compared_and_counted() -> None:
    es = chain_of(N)
    heads = [Head(4, es[3].entry_hash), Head(10, es[9].entry_hash)]
    report = verify(es, heads)
    assert report.ok and report.anchored_checked == 2 and report.anchored_size == 10
    assert report.unanchored == 2


def test_a_full_rewrite_passes_locally_but_not_against_the_anchored_head() -> None:
    es = chain_of(N)
    heads = [Head(8, es[7].entry_hash)]
    forged = rehash_from([*es[:5], replace(es[5], actor="staff:forged"), *es[6:]], 5)
    assert verify(forged).ok  # the chain alone cannot tell: that is what anchoring is for
    report = verify(forged, heads)
    assert kinds(report) == ["head-mismatch"]
    assert report.problems[0].seq == 7
    assert report.problems[0].message == (
        f"the ledger anchored head 0x{es[7].entry_hash.hex()} at size 8, but local entry seq 7 "
        f"hashes to 0x{forged[7].entry_hash.hex()}: the log up to that entry was rewritten "
        "since it was anchored"
    )


def test_truncation_below_an_anchored_size_is_reported() -> None:
    es = chain_of(N)
    heads = [Head(5, es[4].entry_hash), Head(11, es[10].entry_hash), Head(12, es[11].entry_hash)]
    report = verify(es[:9], heads)
    assert kinds(report) == ["truncated"]
    assert report.problems[0].message == (
        "the ledger anchored an audit head at size 11 but the local log ends at size 9: "
        "entries 9-10 were deleted (truncation)"
    )
    assert (
        verify([], heads)
        .problems[0]
        .message.startswith(
            "the ledger anchored an audit head at size 5 but the local log ends at size 0"
        )
    )


def test_problems_are_capped_and_the_rest_counted() -> None:
    es = [replace(e, actor="staff:x") for e in chain_of(MAX_PROBLEMS + 30)]
    report = verify(es)
    assert len(report.problems) == MAX_PROBLEMS and report.omitted == 30
    assert "130 problem(s)" in report.summary()


def test_a_suffix_verifies_from_a_trusted_start() -> None:
    es = chain_of(N)
    assert verify(es[6:], [Head(7, es[6].entry_hash)], start=6, start_prev=None).ok
    assert verify(es[6:], start=6, start_prev=es[5].entry_hash).ok
    report = verify(es[6:], start=6, start_prev=ZERO_HASH)
    assert kinds(report) == ["broken-link"]


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=7),
    field=st.sampled_from(["at", "actor", "action", "target", "detail_json", "prev_hash"]),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_flipped_bit_in_any_field_is_detected(index: int, field: str, bit: int) -> None:
    es = list(chain_of(8))
    e = es[index]
    value: Any = getattr(e, field)
    if isinstance(value, int):
        changed: Any = value ^ (1 << bit)
    elif isinstance(value, bytes):
        changed = bytes([value[0] ^ (1 << bit)]) + value[1:]
    else:
        changed = chr(ord(value[0]) ^ (1 << bit)) + value[1:]
    es[index] = replace(e, **{field: changed})
    assert not verify(es).ok


# --- detail and identifier limits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"nested": {"a": 1}}, "dict is not allowed; values must be flat scalars"),
        ({"items": [1, 2]}, "list is not allowed"),
        ({"ratio": 0.5}, "float is not allowed"),
        ({"note": "x" * 201}, "longer than 200 characters"),
        ({f"k{i}": i for i in range(17)}, "17 keys, at most 16"),
        ({"Recipient Name": "x"}, "must be snake_case"),
        ({"": 1}, "must be snake_case"),
        ({"reason": "line\nbreak"}, "control or unpaired surrogate"),
        ({"reason": "\ud800"}, "control or unpaired surrogate"),
        ({"count": 2**53}, r"integer outside"),
        ({f"key_{i:02}": "y" * 150 for i in range(15)}, "exceeds 2048 bytes"),
    ],
)
def test_details_that_are_not_small_flat_scalars_are_refused(
    detail: dict[str, Any], message: str
) -> None:
    log, store = make_log(0)
    with pytest.raises(FormatError, match=message):
        log.record("staff:u1", AuditAction.PRIVACY_EXPORT, "shipment-1", detail)
    assert store.rows == []


def test_scalars_are_accepted_and_canonicalised() -> None:
    assert canonical_detail(None) == "{}"
    assert canonical_detail({"z": None, "a": True, "n": -(2**53 - 1), "s": "é"}) == (
        '{"a":true,"n":-9007199254740991,"s":"é","z":null}'
    )
    with pytest.raises(FormatError, match="mapping"):
        canonical_detail(["a"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actor", "target", "message"),
    [
        ("", None, "audit actor must be an identifier"),
        ("Lea Keller", None, "audit actor must be an identifier"),
        ("staff:\x1b[31m", None, "audit actor must be an identifier"),
        ("a" * 129, None, "audit actor must be an identifier"),
        ("staff:u1", "PP 4242", "audit target must be an identifier"),
        ("staff:u1", "", "audit target must be an identifier"),
    ],
)
def test_actor_and_target_must_be_identifiers(actor: str, target: str | None, message: str) -> None:
    log, _ = make_log(0)
    with pytest.raises(FormatError, match=message):
        log.record(actor, AuditAction.EVIDENCE_READ, target)


def test_the_detail_property_reads_the_stored_text() -> None:
    entry = chain_of(1)[0]
    assert entry.detail == {"bulk": True, "fields": 0, "reason": "support-ticket"}
    with pytest.raises(FormatError, match="detail is not a JSON object"):
        _ = replace(entry, detail_json="[]").detail


def test_concurrent_records_through_one_store_stay_a_single_chain() -> None:
    log, store = make_log(0)

    def worker(t: int) -> None:
        for i in range(20):
            log.record(f"staff:t{t}", AuditAction.STAFF_LOGIN, None, {"attempt": i})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in store.rows] == list(range(80))
    assert verify(store.rows).ok
