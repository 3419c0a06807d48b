"""The consortium monitor on a real ParcelLedger (eth-tester, anvil): stalled and quiet logs,
late anchoring, key revocations around open disputes, membership changes — and its pure
analysis on hand-made snapshots (a controllable ``now``, no chain)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from parcelproof import cli
from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import (
    AuditHead,
    Checkpoint,
    Courier,
    CourierMembership,
    LedgerClient,
)
from parcelproof.core.errors import ChainError
from parcelproof.core.merkle import MemoryLog
from parcelproof.service.monitor import (
    LATE_AFTER,
    POLL_INTERVAL,
    REVOCATION_WINDOW,
    STALL_AFTER,
    ChainSnapshot,
    CourierHistory,
    Finding,
    FindingKind,
    LedgerReader,
    MonitorPolicy,
    MonitorReport,
    Severity,
    analyse,
    format_duration,
    new_findings,
)

MINUTE, HOUR = 60, 3600
POLICY = MonitorPolicy(stall_after=HOUR, late_after=15 * MINUTE, revocation_window=HOUR)


@pytest.fixture(scope="module")
def anvil_node() -> Iterator[Anvil]:
    """A private anvil for this module (the `chain` fixture picks it up): these tests move the
    chain's clock forward, which must not leak into the session's shared node."""
    with Anvil() as node:
        yield node


def _advance(w3: Web3, seconds: int) -> None:
    """Mine a block ``seconds`` after the latest one; later blocks follow from there."""
    provider = cast(Any, w3.provider)
    if devnet.is_embedded(w3):
        latest = int(w3.eth.get_block("latest")["timestamp"])
        provider.ethereum_tester.time_travel(latest + seconds)
    else:
        provider.make_request("evm_increaseTime", [seconds])
        provider.make_request("evm_mine", [])


def _ident(label: str) -> bytes:
    return hashlib.sha256(f"{label}-{secrets.token_hex(4)}".encode()).digest()


class Log:
    """A courier's Merkle log (real RFC 9162 arithmetic) anchored by its account."""

    def __init__(self, ledger: LedgerClient, courier_id: bytes, account: LocalAccount) -> None:
        self.ledger, self.courier_id, self.account = ledger, courier_id, account
        self.tree = MemoryLog()
        self.anchored = 0
        self.audit_size = 0

    def anchor(self, grow: int = 1) -> Checkpoint:
        for _ in range(grow):
            self.tree.append(secrets.token_bytes(32))
        proof = self.tree.consistency_proof(self.anchored) if self.anchored else []
        cp = self.ledger.anchor_checkpoint(
            len(self.tree), self.tree.root(), proof, sender=self.account
        )
        self.anchored = len(self.tree)
        return cp

    def audit_head(self) -> AuditHead:
        self.audit_size += 1
        return self.ledger.anchor_audit_head(
            self.audit_size, secrets.token_bytes(32), sender=self.account
        )


@dataclass
class Consortium:
    w3: Web3
    ledger: LedgerClient
    admin: LocalAccount
    resolver: LocalAccount
    spare: LocalAccount
    logs: dict[str, Log]

    def admit(self, name: str, account: LocalAccount) -> Log:
        cid = _ident(name)
        self.ledger.admit_courier(cid, account.address, sender=self.admin)
        self.logs[name] = Log(self.ledger, cid, account)
        return self.logs[name]

    def agent(self, name: str) -> str:
        """Register a fresh agent key for courier ``name``; return its address."""
        log = self.logs[name]
        agent = Account.create().address
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        self.ledger.register_agent_key(agent, now - HOUR, now + 30 * 86400, sender=log.account)
        return agent

    def revoke(self, name: str, agent: str) -> None:
        self.ledger.revoke_agent_key(agent, sender=self.logs[name].account)

    def snapshot(self) -> tuple[LedgerReader, ChainSnapshot]:
        reader = LedgerReader(self.ledger)
        return reader, reader.read()


def _consortium(w3: Web3, *names: str) -> Consortium:
    admin, resolver, spare, *accounts = devnet.funded_accounts(w3, 3 + len(names))
    ledger = LedgerClient.deploy(w3, admin)
    ledger.grant_resolver(resolver.address, sender=admin)
    world = Consortium(w3, ledger, admin, resolver, spare, {})
    for name, account in zip(names, accounts, strict=True):
        world.admit(name, account)
    return world


def _of(report: MonitorReport, kind: FindingKind, log: Log | None = None) -> list[Finding]:
    return [
        f
        for f in report.findings
        if f.kind is kind and (log is None or f.courier_id == log.courier_id)
    ]


def _state(report: MonitorReport, log: Log) -> str:
    return next(c.state for c in report.couriers if c.courier_id == log.courier_id)


# --- on chain -------------------------------------------------------------------------------


def test_regular_stalled_and_quiet_couriers_and_late_gaps(chain: Web3) -> None:
    world = _consortium(chain, "regular", "stalled", "quiet")
    regular, stalled, quiet = world.logs["regular"], world.logs["stalled"], world.logs["quiet"]
    first = regular.anchor(2)
    stalled.anchor(1)
    quiet.anchor(3)
    _advance(chain, 30 * MINUTE)
    late = regular.anchor(2)  # 30 min with no anchoring at all: late
    _advance(chain, 10 * MINUTE)
    regular.audit_head()  # proof of life ...
    _advance(chain, 10 * MINUTE)
    regular.anchor(2)  # ... so 20 min since the previous checkpoint but only ~10 unexplained
    for _ in range(6):
        _advance(chain, 12 * MINUTE)
        regular.anchor(1)
    quiet.audit_head()  # its worker runs; its event log did not grow

    _reader, snapshot = world.snapshot()
    now = snapshot.block_time
    report = analyse(snapshot, POLICY, now)

    assert now - first.anchored_at > 2 * HOUR
    assert [_state(report, log) for log in (regular, stalled, quiet)] == [
        "ok",
        "stalled",
        "quiet",
    ]
    (stall,) = _of(report, FindingKind.STALLED)
    assert stall.courier_id == stalled.courier_id and stall.severity is Severity.ALERT
    assert "no checkpoint for 2h" in stall.message and "no audit head either" in stall.message
    (quiet_notice,) = _of(report, FindingKind.QUIET)
    assert quiet_notice.courier_id == quiet.courier_id
    assert quiet_notice.severity is Severity.NOTICE
    assert "the worker runs and the log did not grow" in quiet_notice.message

    (gap,) = _of(report, FindingKind.LATE_ANCHORING)
    assert gap.courier_id == regular.courier_id
    assert (gap.details["previous_size"], gap.details["size"]) == (2, 4)
    assert gap.block == late.block_number and gap.at == late.anchored_at
    assert 29 * MINUTE <= cast(int, gap.details["unexplained_seconds"]) <= 31 * MINUTE
    assert "checkpoint 2 -> 4 (+2 leaves) came 30m" in gap.message
    assert {f.key for f in report.alerts} == {gap.key, stall.key}

    # The same chain judged later: the regular courier stalls too (its audit head is older).
    later = analyse(snapshot, POLICY, now + 2 * HOUR)
    assert {f.courier_id for f in _of(later, FindingKind.STALLED)} == {
        regular.courier_id,
        stalled.courier_id,
        quiet.courier_id,
    }
    # A looser policy: nothing is late, nothing stalls.
    relaxed = analyse(snapshot, MonitorPolicy(stall_after=3 * HOUR, late_after=HOUR), now)
    assert relaxed.alerts == () and {c.state for c in relaxed.couriers} == {"ok"}


def test_a_courier_that_never_anchored_stalls_after_the_threshold(chain: Web3) -> None:
    world = _consortium(chain, "silent")
    silent = world.logs["silent"]
    _reader, snapshot = world.snapshot()
    admitted = world.ledger.courier(silent.courier_id).admitted_at
    assert analyse(snapshot, POLICY, admitted + HOUR).alerts == ()
    (stall,) = analyse(snapshot, POLICY, admitted + HOUR + 1).alerts
    assert stall.kind is FindingKind.STALLED
    assert stall.message.startswith("no checkpoint in the 1h 00m since its admission")


def test_revoked_key_of_a_party_to_an_open_dispute_is_reported_until_resolved(
    chain: Web3,
) -> None:
    world = _consortium(chain, "disputed", "opener", "bystander")
    disputed, opener, bystander = (world.logs[n] for n in ("disputed", "opener", "bystander"))
    long_before = world.agent("disputed")
    shortly_before = world.agent("disputed")
    after = world.agent("disputed")
    opener_agent = world.agent("opener")
    bystander_agent = world.agent("bystander")
    world.revoke("disputed", long_before)
    _advance(chain, 2 * HOUR)
    world.revoke("disputed", shortly_before)
    _advance(chain, 10 * MINUTE)
    d1, d2 = secrets.token_bytes(32), secrets.token_bytes(32)
    world.ledger.open_dispute(
        d1, disputed.courier_id, _ident("subject"), _ident("evidence"), sender=world.resolver
    )
    # A courier disputes another's records: its own keys matter too.
    world.ledger.open_dispute(
        d2, disputed.courier_id, _ident("subject"), _ident("evidence"), sender=opener.account
    )
    _advance(chain, 5 * MINUTE)
    world.revoke("disputed", after)
    world.revoke("opener", opener_agent)
    world.revoke("bystander", bystander_agent)

    reader, snapshot = world.snapshot()
    report = analyse(snapshot, POLICY, snapshot.block_time)
    found = {
        (f.details["dispute_id"], f.details["agent"], f.details["role"])
        for f in _of(report, FindingKind.KEY_REVOKED_IN_DISPUTE)
    }
    h1, h2 = "0x" + d1.hex(), "0x" + d2.hex()
    assert found == {
        (h1, shortly_before, "disputed"),
        (h1, after, "disputed"),
        (h2, shortly_before, "disputed"),
        (h2, after, "disputed"),
        (h2, opener_agent, "opening"),
    }
    revoked = _of(report, FindingKind.KEY_REVOKED_IN_DISPUTE)
    messages = {f.details["agent"]: f.message for f in revoked if f.details["dispute_id"] == h1}
    after_opening, before_opening = messages[after], messages[shortly_before]
    assert f"agent key {after} of the disputed courier was revoked after the" in after_opening
    assert f"dispute {h1} is still open" in after_opening
    assert re.search(r"revoked (9m 5\ds|10m 0\ds) before the dispute was opened", before_opening)
    assert all(f.courier_id != bystander.courier_id for f in revoked)
    # A window of zero keeps only revocations after the opening.
    strict = analyse(snapshot, MonitorPolicy(revocation_window=0), snapshot.block_time)
    assert {f.details["agent"] for f in _of(strict, FindingKind.KEY_REVOKED_IN_DISPUTE)} == {
        after,
        opener_agent,
    }

    world.ledger.resolve_dispute(d2, _ident("outcome"), sender=world.resolver)
    resolved = analyse(reader.read(), POLICY, snapshot.block_time)
    assert {f.details["dispute_id"] for f in _of(resolved, FindingKind.KEY_REVOKED_IN_DISPUTE)} == {
        h1
    }
    world.ledger.resolve_dispute(d1, _ident("outcome"), sender=world.resolver)
    closed = analyse(reader.read(), POLICY, snapshot.block_time)
    assert _of(closed, FindingKind.KEY_REVOKED_IN_DISPUTE) == []


def test_account_change_and_removal_are_notices(chain: Web3) -> None:
    world = _consortium(chain, "rotating", "leaving")
    rotating, leaving = world.logs["rotating"], world.logs["leaving"]
    rotating.anchor(1)
    leaving.anchor(1)
    old = rotating.account
    change = world.ledger.set_courier_account(
        rotating.courier_id, world.spare.address, sender=world.admin
    )
    rotating.account = world.spare
    rotating.anchor(1)  # the new account anchors
    removal = world.ledger.remove_courier(leaving.courier_id, sender=world.admin)

    _reader, snapshot = world.snapshot()
    report = analyse(snapshot, POLICY, snapshot.block_time)
    assert report.alerts == ()
    (changed,) = _of(report, FindingKind.ACCOUNT_CHANGED)
    assert changed.courier_id == rotating.courier_id and changed.block == change.block_number
    assert changed.details == {"previous_account": old.address, "new_account": world.spare.address}
    assert f"from {old.address} to {world.spare.address}" in changed.message
    (removed,) = _of(report, FindingKind.COURIER_REMOVED)
    assert removed.courier_id == leaving.courier_id and removed.block == removal.block_number
    assert _state(report, leaving) == "removed"
    # A removed courier is not watched for stalls any more.
    later = analyse(snapshot, POLICY, snapshot.block_time + 10 * HOUR)
    assert [f.courier_id for f in _of(later, FindingKind.STALLED)] == [rotating.courier_id]

    history = {c.courier_id: c for c in snapshot.couriers}
    assert history[leaving.courier_id].removed_block == removal.block_number
    assert history[rotating.courier_id].accounts() == {
        old.address.lower(),
        world.spare.address.lower(),
    }


def test_reader_scans_only_new_blocks_and_watching_reports_only_new_findings(
    chain: Web3,
) -> None:
    world = _consortium(chain, "a")
    a = world.logs["a"]
    a.anchor(1)
    reader = LedgerReader(world.ledger)
    seen: set[str] = set()
    first = reader.read()
    assert [len(c.checkpoints) for c in first.couriers] == [1]
    assert new_findings(analyse(first, POLICY, first.block_time), seen) == []

    _advance(chain, 20 * MINUTE)
    a.anchor(1)
    b = world.admit("b", world.spare)  # a courier admitted while watching
    b.anchor(2)
    second = reader.read()
    assert second.block > first.block
    assert [len(c.checkpoints) for c in second.couriers] == [2, 1]  # no duplicates
    fresh = new_findings(analyse(second, POLICY, second.block_time), seen)
    assert [f.kind for f in fresh] == [FindingKind.LATE_ANCHORING]
    assert new_findings(analyse(reader.read(), POLICY, second.block_time), seen) == []
    stall = new_findings(analyse(reader.read(), POLICY, second.block_time + 2 * HOUR), seen)
    assert {f.kind for f in stall} == {FindingKind.STALLED}
    assert new_findings(analyse(reader.read(), POLICY, second.block_time + 3 * HOUR), seen) == []


def test_ledger_log_reads(chain: Web3) -> None:
    world = _consortium(chain, "x", "y")
    x, y = world.logs["x"], world.logs["y"]
    agent = world.agent("x")
    world.revoke("x", agent)
    dispute = secrets.token_bytes(32)
    opened = world.ledger.open_dispute(
        dispute, y.courier_id, _ident("s"), _ident("e"), sender=world.resolver
    )
    world.ledger.remove_courier(y.courier_id, sender=world.admin)
    ledger = world.ledger

    members = {m.courier_id: m for m in ledger.couriers()}
    assert set(members) == {x.courier_id, y.courier_id}
    assert members[x.courier_id].account == x.account.address
    assert members[x.courier_id].removed_at is None
    assert members[y.courier_id].removed_block is not None
    events = ledger.agent_key_events(x.courier_id)
    assert [(e.kind, e.agent) for e in events] == [("registered", agent), ("revoked", agent)]
    assert events[1].revoked_at == events[1].at
    assert ledger.agent_key_events(y.courier_id) == []
    (record,) = ledger.disputes()
    assert (record.dispute_id, record.courier_id, record.resolved) == (
        dispute,
        y.courier_id,
        False,
    )
    assert record.opened_at == ledger.dispute(dispute).opened_at
    assert ledger.disputes(x.courier_id) == []
    # A dispute opened before the blocks scanned but resolved in them comes from the view.
    ledger.resolve_dispute(dispute, _ident("o"), sender=world.resolver)
    later = ledger.disputes(from_block=opened.block_number + 1)
    assert [(d.dispute_id, d.resolved) for d in later] == [(dispute, True)]
    assert ledger.account_changes() == []
    # From a later block, a courier admitted before and removed after it is still named.
    (tail,) = ledger.couriers(from_block=opened.block_number + 1)
    assert tail.courier_id == y.courier_id and tail.account is None


def test_reader_refuses_an_address_without_a_ledger(chain: Web3) -> None:
    nothing = LedgerClient(chain, "0x" + "12" * 20)
    with pytest.raises(ChainError, match="no ParcelLedger answered at that address"):
        LedgerReader(nothing).check()


# --- pure analysis --------------------------------------------------------------------------

CID = bytes.fromhex("aa" * 32)
T0 = 1_800_000_000


def _courier(
    *,
    removed_at: int | None = None,
    latest: tuple[int, int] | None = None,
    admitted_at: int = T0,
) -> Courier:
    return Courier(
        courier_id=CID,
        account="0x" + "11" * 20,
        admitted_at=admitted_at,
        removed_at=removed_at,
        active=removed_at is None,
        checkpoint_count=0 if latest is None else 1,
        latest_size=0 if latest is None else latest[0],
        latest_anchored_at=None if latest is None else latest[1],
    )


def _cp(size: int, at: int, block: int) -> Checkpoint:
    return Checkpoint(CID, size, bytes(32), at, block, bytes(32))


def _head(size: int, at: int, block: int) -> AuditHead:
    return AuditHead(CID, size, bytes(32), at, block, bytes(32))


def _snapshot(*couriers: CourierHistory) -> ChainSnapshot:
    return ChainSnapshot("0x" + "22" * 20, 1, 0, 100, T0 + 10 * HOUR, couriers, ())


def test_unexplained_wait_starts_at_the_last_sign_of_life() -> None:
    cps = (_cp(1, T0, 10), _cp(5, T0 + 40 * MINUTE, 20), _cp(9, T0 + 80 * MINUTE, 30))
    heads = (_head(1, T0 + 30 * MINUTE, 15),)  # between the first two checkpoints only
    history = CourierHistory(_courier(latest=(9, T0 + 80 * MINUTE)), None, None, cps, heads)
    report = analyse(_snapshot(history), POLICY, T0 + 81 * MINUTE)
    (late,) = report.findings
    assert late.kind is FindingKind.LATE_ANCHORING and late.key.endswith(":5-9")
    assert late.details["gap_seconds"] == late.details["unexplained_seconds"] == 40 * MINUTE
    exact = MonitorPolicy(stall_after=HOUR, late_after=40 * MINUTE)
    assert analyse(_snapshot(history), exact, T0 + 81 * MINUTE).findings == ()


def test_anchors_after_removal_are_alerts_by_block_or_by_time() -> None:
    removed = T0 + HOUR
    cps = (_cp(1, T0, 10), _cp(2, removed, 19), _cp(3, removed, 20), _cp(4, removed + 5, 21))
    membership = CourierMembership(CID, None, None, None, removed, 20)
    view = _courier(removed_at=removed, latest=(4, removed + 5))
    by_block = analyse(_snapshot(CourierHistory(view, membership, None, cps)), POLICY, removed)
    assert [f.details.get("size") for f in by_block.alerts] == [4]
    assert by_block.alerts[0].kind is FindingKind.ANCHORED_AFTER_REMOVAL
    # Removal log not read: only a strictly later block time proves a later block.
    by_time = analyse(_snapshot(CourierHistory(view, None, None, cps)), POLICY, removed)
    assert [f.details.get("size") for f in by_time.alerts] == [4]
    assert [f.kind for f in by_time.notices] == [FindingKind.COURIER_REMOVED]


def test_quiet_needs_a_recent_audit_head_after_the_latest_checkpoint() -> None:
    view = _courier(latest=(3, T0))
    now = T0 + 2 * HOUR
    recent = _head(7, now - 10 * MINUTE, 50)
    stale = _head(6, T0 + 30 * MINUTE, 40)
    quiet = analyse(_snapshot(CourierHistory(view, None, recent)), POLICY, now)
    assert [f.kind for f in quiet.findings] == [FindingKind.QUIET]
    stalled = analyse(_snapshot(CourierHistory(view, None, stale)), POLICY, now)
    assert [f.kind for f in stalled.findings] == [FindingKind.STALLED]
    assert "latest audit head is 1h 30m old" in stalled.findings[0].message


def test_policy_and_durations() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        MonitorPolicy(stall_after=0)
    with pytest.raises(ValueError, match="must not be negative"):
        MonitorPolicy(revocation_window=-1)
    assert [format_duration(s) for s in (0, 59, 61, 3600 + 180, 2 * 86400 + 7200)] == [
        "0s",
        "59s",
        "1m 01s",
        "1h 03m",
        "2d 02h",
    ]


def test_cli_defaults_are_the_monitor_defaults() -> None:
    assert (
        cli.MONITOR_STALL_AFTER,
        cli.MONITOR_LATE_AFTER,
        cli.MONITOR_REVOCATION_WINDOW,
        cli.MONITOR_INTERVAL,
    ) == (STALL_AFTER, LATE_AFTER, REVOCATION_WINDOW, POLL_INTERVAL)
    assert MonitorPolicy() == MonitorPolicy(STALL_AFTER, LATE_AFTER, REVOCATION_WINDOW)
