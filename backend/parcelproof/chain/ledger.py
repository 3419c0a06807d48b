"""Typed client of the ParcelLedger contract: locally signed transactions, views, revert mapping.

Works the same on the embedded eth-tester chain, anvil and any JSON-RPC network: transactions
are signed with the sender's :class:`~eth_account.signers.local.LocalAccount`, gas is estimated
(so most reverts surface before anything is sent) and every revert, whatever shape the backend
gives it, becomes a :class:`~parcelproof.core.errors.ContractRevertError` subclass named after
the Solidity error.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3Exception,
)
from web3.types import TxParams, TxReceipt

from parcelproof.chain.compile import Artifact, load_artifact
from parcelproof.chain.devnet import RECEIPT_TIMEOUT, is_embedded, receipt_poll_latency, redact
from parcelproof.core.errors import (
    ChainError,
    ContractRevertError,
    FormatError,
    InactiveCourierError,
    InconsistentCheckpointError,
    LedgerConflictError,
    NetworkError,
    NonGrowingAuditHeadError,
    NonGrowingCheckpointError,
    SuspendedCourierError,
    UnauthorizedError,
    UnknownAgentKeyError,
    UnknownCheckpointError,
    UnknownCourierError,
    UnknownDisputeError,
)

T = TypeVar("T")

#: Solidity error name -> the exception class it is raised as.
REVERT_ERRORS: Mapping[str, type[ContractRevertError]] = {
    "ParcelLedgerUnknownCourier": UnknownCourierError,
    "ParcelLedgerUnauthorizedAccount": UnauthorizedError,
    "AccessControlUnauthorizedAccount": UnauthorizedError,
    "ParcelLedgerNonGrowingCheckpoint": NonGrowingCheckpointError,
    "ParcelLedgerAuditSizeNotIncreasing": NonGrowingAuditHeadError,
    "ParcelLedgerInconsistentCheckpoint": InconsistentCheckpointError,
    "ParcelLedgerUnknownCheckpoint": UnknownCheckpointError,
    "ParcelLedgerInactiveCourier": InactiveCourierError,
    "ParcelLedgerCourierSuspended": SuspendedCourierError,
    "ParcelLedgerUnknownAgentKey": UnknownAgentKeyError,
    "ParcelLedgerUnknownDispute": UnknownDisputeError,
    "ParcelLedgerCourierExists": LedgerConflictError,
    "ParcelLedgerAccountInUse": LedgerConflictError,
    "ParcelLedgerAgentKeyExists": LedgerConflictError,
    "ParcelLedgerAgentKeyAlreadyRevoked": LedgerConflictError,
    "ParcelLedgerDisputeExists": LedgerConflictError,
    "ParcelLedgerDisputeAlreadyResolved": LedgerConflictError,
    "ParcelLedgerCourierNotSuspended": LedgerConflictError,
    "ParcelLedgerTooManySuspensions": LedgerConflictError,
}

#: Extra gas over the estimate: state may move between estimation and inclusion.
GAS_MARGIN_NUMERATOR, GAS_MARGIN_DENOMINATOR, GAS_MARGIN_MIN = 6, 5, 10_000

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEvent:
    """One decoded ParcelLedger event of a receipt."""

    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: tuple[LedgerEvent, ...] = field(default=())

    def event(self, name: str) -> LedgerEvent:
        """The single event called ``name`` (raises :class:`LookupError` otherwise)."""
        found = [e for e in self.events if e.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {name} event, found {len(found)}")
        return found[0]


@dataclass(frozen=True)
class Checkpoint:
    """An anchored checkpoint of a courier log."""

    courier_id: bytes
    size: int
    root: bytes
    anchored_at: int
    block_number: int | None
    tx_hash: bytes | None


@dataclass(frozen=True)
class AuditHead:
    """An anchored head of a courier node's audit log: ``head`` is the hash of the entry at
    index ``size - 1``. ``anchored_at`` (block time), ``block_number`` and ``tx_hash`` are
    ``None`` where the source does not tell them (the latest head read from the view has no
    block; a head from the event logs has all three)."""

    courier_id: bytes
    size: int
    head: bytes
    anchored_at: int | None
    block_number: int | None
    tx_hash: bytes | None


@dataclass(frozen=True)
class AgentKey:
    """An agent key registration."""

    agent: str
    courier_id: bytes
    valid_from: int
    valid_until: int
    revoked_at: int | None


@dataclass(frozen=True)
class Courier:
    """A courier member and the summary of its checkpoints."""

    courier_id: bytes
    account: str
    admitted_at: int
    removed_at: int | None
    active: bool
    checkpoint_count: int
    latest_size: int
    latest_anchored_at: int | None


@dataclass(frozen=True)
class Suspension:
    """A period ``[suspended_at, reinstated_at)`` during which a courier was suspended: its
    agent keys were not valid for any instant inside it. ``reinstated_at`` is ``None`` while the
    suspension lasts (the period is then open-ended)."""

    suspended_at: int
    reinstated_at: int | None

    @property
    def ongoing(self) -> bool:
        """True until the courier is reinstated."""
        return self.reinstated_at is None

    def covers(self, at: int) -> bool:
        """True if the instant ``at`` (seconds) lies inside the period, as the contract's
        ``isAgentKeyValid`` judges it."""
        return self.suspended_at <= at and (self.reinstated_at is None or at < self.reinstated_at)


@dataclass(frozen=True)
class Dispute:
    """A dispute record (hashes only)."""

    dispute_id: bytes
    courier_id: bytes
    subject_hash: bytes
    evidence_hash: bytes
    outcome_hash: bytes | None
    opened_by: str
    opened_at: int
    resolved_by: str | None
    resolved_at: int | None

    @property
    def resolved(self) -> bool:
        """True once a resolver recorded an outcome."""
        return self.resolved_at is not None


@dataclass(frozen=True)
class CourierMembership:
    """A courier's admission and removal as the ``CourierAdmitted``/``CourierRemoved`` logs of
    the scanned blocks tell them; a side whose log lies outside those blocks is ``None``."""

    courier_id: bytes
    account: str | None  # the account it was admitted with
    admitted_at: int | None
    admitted_block: int | None
    removed_at: int | None
    removed_block: int | None


@dataclass(frozen=True)
class AccountChange:
    """A rotation of a courier's anchoring account (``CourierAccountChanged``)."""

    courier_id: bytes
    previous_account: str
    new_account: str
    changed_at: int
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True)
class AgentKeyEvent:
    """An ``AgentKeyRegistered`` (``kind="registered"``: ``valid_from``/``valid_until`` set)
    or ``AgentKeyRevoked`` (``kind="revoked"``: ``revoked_at`` set) log. ``at`` is the block
    time of the log."""

    kind: Literal["registered", "revoked"]
    courier_id: bytes
    agent: str
    valid_from: int | None
    valid_until: int | None
    revoked_at: int | None
    at: int
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True)
class _Log:
    """One decoded log with its position and block time."""

    args: Mapping[str, Any]
    block_number: int
    log_index: int
    at: int
    tx_hash: bytes

    @property
    def position(self) -> tuple[int, int]:
        return self.block_number, self.log_index


# --- the client -----------------------------------------------------------------------------


class LedgerClient:
    """Client of one deployed ParcelLedger."""

    def __init__(self, w3: Web3, address: str, *, artifact: Artifact | None = None) -> None:
        self.w3 = w3
        self._artifact = artifact or load_artifact("ParcelLedger")
        checksum = _address(address, "ledger address")
        self.address: str = checksum
        self._contract: Contract = w3.eth.contract(address=checksum, abi=self._artifact.abi)
        self._errors = _error_table(self._artifact.abi)
        self._event_names = {
            keccak(text=_signature(entry)): str(entry["name"])
            for entry in self._artifact.abi
            if entry.get("type") == "event"
        }
        self._chain_id: int | None = None
        # An explicit sender spares eth-tester a lookup of its accounts on every call.
        self._call_params: TxParams = (
            {"from": w3.eth.accounts[0]} if is_embedded(w3) and w3.eth.accounts else {}
        )
        self._resolver_role: bytes | None = None

    @property
    def chain_id(self) -> int:
        """Chain id of the connected network (read once)."""
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: int(self.w3.eth.chain_id))
        return self._chain_id

    @property
    def contract(self) -> Contract:
        """The underlying web3 contract object."""
        return self._contract

    # --- deployment -------------------------------------------------------------------------

    @classmethod
    def deploy(
        cls, w3: Web3, admin: LocalAccount, *, artifact: Artifact | None = None
    ) -> LedgerClient:
        """Deploy a new ParcelLedger with ``admin`` as consortium admin."""
        return cls.deploy_tx(w3, admin, artifact=artifact)[0]

    @classmethod
    def deploy_tx(
        cls, w3: Web3, admin: LocalAccount, *, artifact: Artifact | None = None
    ) -> tuple[LedgerClient, TxResult]:
        """Like :meth:`deploy`, also returning the deployment transaction."""
        artifact = artifact or load_artifact("ParcelLedger")
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        errors = _error_table(artifact.abi)
        constructor = factory.constructor(admin.address)
        receipt = _send(w3, constructor, admin, errors)
        address = receipt.get("contractAddress")
        if not address:
            raise ChainError("deployment receipt carries no contract address")
        client = cls(w3, str(address), artifact=artifact)
        return client, client._result(receipt)

    # --- membership -------------------------------------------------------------------------

    def admit_courier(self, courier_id: bytes, account: str, *, sender: LocalAccount) -> TxResult:
        """Admit a courier with its anchoring account (admin)."""
        fn = self._fn.admitCourier(_b32(courier_id, "courier id"), _address(account))
        return self._transact(fn, sender)

    def remove_courier(self, courier_id: bytes, *, sender: LocalAccount) -> TxResult:
        """Remove a courier; its history stays readable (admin)."""
        return self._transact(self._fn.removeCourier(_b32(courier_id, "courier id")), sender)

    def suspend_courier(self, courier_id: bytes, *, sender: LocalAccount) -> TxResult:
        """Suspend a courier until :meth:`reinstate_courier`: it can no longer anchor or
        register agent keys, and its keys are not valid from now until the reinstatement
        (admin)."""
        return self._transact(self._fn.suspendCourier(_b32(courier_id, "courier id")), sender)

    def reinstate_courier(self, courier_id: bytes, *, sender: LocalAccount) -> TxResult:
        """End a courier's suspension; its keys are valid again from now on (admin)."""
        return self._transact(self._fn.reinstateCourier(_b32(courier_id, "courier id")), sender)

    def suspensions(self, courier_id: bytes) -> list[Suspension]:
        """The courier's suspension periods, oldest first (:class:`UnknownCourierError` if
        never admitted)."""
        raw = self._call(self._fn.suspensions(_b32(courier_id, "courier id")))
        return [
            Suspension(int(suspended_at), int(reinstated_at) or None)
            for suspended_at, reinstated_at in raw
        ]

    def is_suspended(self, courier_id: bytes) -> bool:
        """True while the courier is suspended (:class:`UnknownCourierError` if never
        admitted)."""
        return bool(self._call(self._fn.isCourierSuspended(_b32(courier_id, "courier id"))))

    @property
    def max_suspensions(self) -> int:
        """``MAX_SUSPENSIONS`` of the contract: how often a courier can be suspended."""
        return int(self._call(self._fn.MAX_SUSPENSIONS()))

    def set_courier_account(
        self, courier_id: bytes, new_account: str, *, sender: LocalAccount
    ) -> TxResult:
        """Rotate a courier's anchoring account (admin)."""
        fn = self._fn.setCourierAccount(_b32(courier_id, "courier id"), _address(new_account))
        return self._transact(fn, sender)

    def grant_resolver(self, account: str, *, sender: LocalAccount) -> TxResult:
        """Grant the dispute resolver role (admin)."""
        fn = self._fn.grantRole(self.resolver_role, _address(account))
        return self._transact(fn, sender)

    def revoke_resolver(self, account: str, *, sender: LocalAccount) -> TxResult:
        """Revoke the dispute resolver role (admin)."""
        fn = self._fn.revokeRole(self.resolver_role, _address(account))
        return self._transact(fn, sender)

    @property
    def resolver_role(self) -> bytes:
        """``RESOLVER_ROLE`` of the contract."""
        if self._resolver_role is None:
            self._resolver_role = bytes(self._call(self._fn.RESOLVER_ROLE()))
        return self._resolver_role

    def is_resolver(self, account: str) -> bool:
        """True if ``account`` holds the resolver role."""
        return bool(self._call(self._fn.hasRole(self.resolver_role, _address(account))))

    def is_admin(self, account: str) -> bool:
        """True if ``account`` holds the consortium admin role."""
        role = bytes(self._call(self._fn.DEFAULT_ADMIN_ROLE()))
        return bool(self._call(self._fn.hasRole(role, _address(account))))

    def courier(self, courier_id: bytes) -> Courier:
        """A courier's record (:class:`UnknownCourierError` if never admitted)."""
        raw = self._call(self._fn.courier(_b32(courier_id, "courier id")))
        account, admitted_at, removed_at, active, count, latest_size, latest_at = raw
        return Courier(
            courier_id=bytes(courier_id),
            account=str(account),
            admitted_at=int(admitted_at),
            removed_at=int(removed_at) or None,
            active=bool(active),
            checkpoint_count=int(count),
            latest_size=int(latest_size),
            latest_anchored_at=int(latest_at) or None,
        )

    def courier_of(self, account: str) -> bytes | None:
        """The courier ``account`` currently acts for, if any."""
        courier_id = bytes(self._call(self._fn.courierOf(_address(account))))
        return None if courier_id == bytes(32) else courier_id

    def couriers(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[CourierMembership]:
        """Every courier admitted or removed in the blocks scanned, from the
        ``CourierAdmitted`` and ``CourierRemoved`` logs, in order of their first log
        (``from_block`` as for :meth:`checkpoints`: a courier admitted before it shows up only
        if it was removed after it, with ``account``/``admitted_*`` ``None``)."""
        times: dict[int, int] = {}
        admitted = self._event_logs(
            self._contract.events.CourierAdmitted, None, from_block, to_block, times
        )
        removed = self._event_logs(
            self._contract.events.CourierRemoved, None, from_block, to_block, times
        )
        found: dict[bytes, CourierMembership] = {}
        for log in sorted(admitted + removed, key=lambda item: item.position):
            courier_id = bytes(log.args["courierId"])
            known = found.get(courier_id) or CourierMembership(
                courier_id, None, None, None, None, None
            )
            if "account" in log.args:
                known = replace(
                    known,
                    account=str(log.args["account"]),
                    admitted_at=log.at,
                    admitted_block=log.block_number,
                )
            else:
                known = replace(
                    known, removed_at=int(log.args["removedAt"]), removed_block=log.block_number
                )
            found[courier_id] = known
        return list(found.values())

    def account_changes(
        self,
        courier_id: bytes | None = None,
        from_block: int = 0,
        to_block: int | str = "latest",
    ) -> list[AccountChange]:
        """The anchoring-account rotations of one courier (every courier with ``None``), from
        the ``CourierAccountChanged`` logs, oldest first."""
        return [
            AccountChange(
                courier_id=bytes(log.args["courierId"]),
                previous_account=str(log.args["previousAccount"]),
                new_account=str(log.args["newAccount"]),
                changed_at=log.at,
                block_number=log.block_number,
                tx_hash=log.tx_hash,
            )
            for log in self._event_logs(
                self._contract.events.CourierAccountChanged,
                _courier_filter(courier_id),
                from_block,
                to_block,
            )
        ]

    # --- agent keys -------------------------------------------------------------------------

    def register_agent_key(
        self, agent: str, valid_from: int, valid_until: int, *, sender: LocalAccount
    ) -> TxResult:
        """Register an agent key for the sender's courier."""
        fn = self._fn.registerAgentKey(
            _address(agent, "agent"), _u64(valid_from, "valid_from"), _u64(valid_until, "until")
        )
        return self._transact(fn, sender)

    def revoke_agent_key(self, agent: str, *, sender: LocalAccount) -> TxResult:
        """Revoke one of the sender's courier's agent keys from now on."""
        return self._transact(self._fn.revokeAgentKey(_address(agent, "agent")), sender)

    def agent_key(self, agent: str) -> AgentKey:
        """An agent key registration (:class:`UnknownAgentKeyError` if none)."""
        agent = _address(agent, "agent")
        courier_id, valid_from, valid_until, revoked_at = self._call(self._fn.agentKey(agent))
        return AgentKey(
            agent=agent,
            courier_id=bytes(courier_id),
            valid_from=int(valid_from),
            valid_until=int(valid_until),
            revoked_at=int(revoked_at) or None,
        )

    def is_agent_key_valid(self, courier_id: bytes, agent: str, at: int) -> bool:
        """True if ``agent`` could sign for ``courier_id`` at time ``at``."""
        fn = self._fn.isAgentKeyValid(
            _b32(courier_id, "courier id"), _address(agent, "agent"), _u64(at, "at")
        )
        return bool(self._call(fn))

    def agent_key_events(
        self,
        courier_id: bytes | None = None,
        from_block: int = 0,
        to_block: int | str = "latest",
    ) -> list[AgentKeyEvent]:
        """Registrations and revocations of one courier's agent keys (every courier's with
        ``None``), from the ``AgentKeyRegistered``/``AgentKeyRevoked`` logs, in chain order."""
        filters = _courier_filter(courier_id)
        times: dict[int, int] = {}
        events = self._contract.events
        logs = self._event_logs(
            events.AgentKeyRegistered, filters, from_block, to_block, times
        ) + self._event_logs(events.AgentKeyRevoked, filters, from_block, to_block, times)
        found = []
        for log in sorted(logs, key=lambda item: item.position):
            revoked = "revokedAt" in log.args
            found.append(
                AgentKeyEvent(
                    kind="revoked" if revoked else "registered",
                    courier_id=bytes(log.args["courierId"]),
                    agent=str(log.args["agent"]),
                    valid_from=None if revoked else int(log.args["validFrom"]),
                    valid_until=None if revoked else int(log.args["validUntil"]),
                    revoked_at=int(log.args["revokedAt"]) if revoked else None,
                    at=log.at,
                    block_number=log.block_number,
                    tx_hash=log.tx_hash,
                )
            )
        return found

    # --- checkpoints ------------------------------------------------------------------------

    def anchor_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: LocalAccount
    ) -> Checkpoint:
        """Anchor (size, root) of the sender's courier log with the consistency ``proof`` from
        its previous checkpoint (empty for the first)."""
        return self._checkpoint_of(self.anchor_checkpoint_tx(size, root, proof, sender=sender))

    def anchor_checkpoint_tx(
        self, size: int, root: bytes, proof: Sequence[bytes], *, sender: LocalAccount
    ) -> TxResult:
        """Like :meth:`anchor_checkpoint`, returning the transaction result (gas, events)."""
        fn = self._fn.anchorCheckpoint(_u64(size, "size"), _b32(root, "root"), _proof(proof))
        return self._transact(fn, sender)

    def latest_checkpoint(self, courier_id: bytes) -> Checkpoint | None:
        """The courier's latest checkpoint, ``None`` before the first."""
        size, root, anchored_at = self._call(
            self._fn.latestCheckpoint(_b32(courier_id, "courier id"))
        )
        if int(size) == 0:
            return None
        return Checkpoint(bytes(courier_id), int(size), bytes(root), int(anchored_at), None, None)

    def block_number(self) -> int:
        """The chain's current head block."""
        return self._rpc(lambda: int(self.w3.eth.block_number))

    def block_time(self, number: int) -> int:
        """The timestamp of block ``number`` (seconds)."""
        return self._block_time(_u64(number, "block number"))

    def checkpoint_root(self, courier_id: bytes, size: int) -> bytes:
        """The root anchored for ``size`` (:class:`UnknownCheckpointError` if none)."""
        fn = self._fn.checkpointRoot(_b32(courier_id, "courier id"), _u64(size, "size"))
        return bytes(self._call(fn))

    def checkpoints(
        self, courier_id: bytes, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[Checkpoint]:
        """Every checkpoint of the courier, from its ``CheckpointAnchored`` logs, oldest first.

        Public endpoints often cap the block range of ``eth_getLogs``: pass ``from_block``
        (e.g. the deployment block) to stay within it.
        """
        return [
            Checkpoint(
                courier_id=bytes(args["courierId"]),
                size=int(args["size"]),
                root=bytes(args["root"]),
                anchored_at=at,
                block_number=number,
                tx_hash=tx_hash,
            )
            for args, number, at, tx_hash in self._courier_logs(
                self._contract.events.CheckpointAnchored, courier_id, from_block, to_block
            )
        ]

    def _courier_logs(
        self, event: Any, courier_id: bytes, from_block: int, to_block: int | str
    ) -> list[tuple[Any, int, int, bytes]]:
        """The logs of ``event`` for one courier: (args, block number, block time, tx hash),
        oldest first; each block's time is read once."""
        logs = self._rpc(
            lambda: event.get_logs(
                argument_filters={"courierId": _b32(courier_id, "courier id")},
                from_block=from_block,
                to_block=to_block,
            )
        )
        times: dict[int, int] = {}
        found = []
        for log in logs:
            number = int(log["blockNumber"])
            if number not in times:
                times[number] = self._block_time(number)
            found.append((log["args"], number, times[number], bytes(log["transactionHash"])))
        return found

    def _event_logs(
        self,
        event: Any,
        filters: Mapping[str, Any] | None,
        from_block: int,
        to_block: int | str,
        times: dict[int, int] | None = None,
    ) -> list[_Log]:
        """The logs of ``event`` matching ``filters`` (indexed arguments), oldest first, each
        with its block time (read once per block; ``times`` may be shared between calls)."""
        start = _u64(from_block, "from_block")
        logs = self._rpc(
            lambda: event.get_logs(
                argument_filters=dict(filters) if filters else None,
                from_block=start,
                to_block=to_block,
            )
        )
        times = {} if times is None else times
        found = []
        for log in logs:
            number = int(log["blockNumber"])
            if number not in times:
                times[number] = self._block_time(number)
            found.append(
                _Log(
                    args=log["args"],
                    block_number=number,
                    log_index=int(log["logIndex"]),
                    at=times[number],
                    tx_hash=bytes(log["transactionHash"]),
                )
            )
        return found

    def verify_inclusion(
        self, courier_id: bytes, size: int, index: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bool:
        """On-chain check of an inclusion proof against the anchored checkpoint ``size``."""
        fn = self._fn.verifyInclusion(
            _b32(courier_id, "courier id"),
            _u64(size, "size"),
            _u256(index, "index"),
            _b32(leaf_hash, "leaf hash"),
            _proof(proof),
        )
        return bool(self._call(fn))

    def verify_inclusion_proof(
        self, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
    ) -> bool:
        """The contract's stateless RFC 9162 inclusion verifier."""
        fn = self._fn.verifyInclusionProof(
            _u256(index, "index"),
            _u256(size, "size"),
            _b32(leaf_hash, "leaf hash"),
            _proof(proof),
            _b32(root, "root"),
        )
        return bool(self._call(fn))

    def verify_consistency_proof(
        self, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
    ) -> bool:
        """The contract's stateless RFC 9162 consistency verifier."""
        fn = self._fn.verifyConsistencyProof(
            _u256(size1, "size1"),
            _u256(size2, "size2"),
            _b32(root1, "root1"),
            _b32(root2, "root2"),
            _proof(proof),
        )
        return bool(self._call(fn))

    # --- audit log --------------------------------------------------------------------------

    def anchor_audit_head(self, size: int, head: bytes, *, sender: LocalAccount) -> AuditHead:
        """Anchor the head (size, hash of entry ``size - 1``) of the sender's courier node's
        audit log. The size must strictly grow (:class:`NonGrowingAuditHeadError`)."""
        result = self.anchor_audit_head_tx(size, head, sender=sender)
        args = result.event("AuditHeadAnchored").args
        return AuditHead(
            courier_id=bytes(args["courierId"]),
            size=int(args["size"]),
            head=bytes(args["head"]),
            anchored_at=self._block_time(result.block_number),
            block_number=result.block_number,
            tx_hash=result.tx_hash,
        )

    def anchor_audit_head_tx(self, size: int, head: bytes, *, sender: LocalAccount) -> TxResult:
        """Like :meth:`anchor_audit_head`, returning the transaction result (gas, events)."""
        head = _b32(head, "audit head")
        if head == bytes(32):
            raise FormatError("the zero hash is not an audit head")
        return self._transact(self._fn.anchorAuditHead(_u64(size, "size"), head), sender)

    def latest_audit_head(self, courier_id: bytes) -> AuditHead | None:
        """The courier's latest anchored audit head, ``None`` before the first
        (:class:`UnknownCourierError` for a courier never admitted)."""
        size, head, anchored_at = self._call(
            self._fn.latestAuditHead(_b32(courier_id, "courier id"))
        )
        if int(size) == 0:
            return None
        return AuditHead(bytes(courier_id), int(size), bytes(head), int(anchored_at), None, None)

    def audit_heads(
        self, courier_id: bytes, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[AuditHead]:
        """Every audit head the courier anchored, from its ``AuditHeadAnchored`` logs, oldest
        first (``from_block`` as for :meth:`checkpoints`)."""
        return [
            AuditHead(
                courier_id=bytes(args["courierId"]),
                size=int(args["size"]),
                head=bytes(args["head"]),
                anchored_at=at,
                block_number=number,
                tx_hash=tx_hash,
            )
            for args, number, at, tx_hash in self._courier_logs(
                self._contract.events.AuditHeadAnchored, courier_id, from_block, to_block
            )
        ]

    # --- disputes ---------------------------------------------------------------------------

    def open_dispute(
        self,
        dispute_id: bytes,
        courier_id: bytes,
        subject_hash: bytes,
        evidence_hash: bytes,
        *,
        sender: LocalAccount,
    ) -> TxResult:
        """Open a dispute (a resolver or an active courier's account)."""
        fn = self._fn.openDispute(
            _b32(dispute_id, "dispute id"),
            _b32(courier_id, "courier id"),
            _b32(subject_hash, "subject hash"),
            _b32(evidence_hash, "evidence hash"),
        )
        return self._transact(fn, sender)

    def resolve_dispute(
        self, dispute_id: bytes, outcome_hash: bytes, *, sender: LocalAccount
    ) -> TxResult:
        """Record a dispute's outcome (resolver)."""
        fn = self._fn.resolveDispute(
            _b32(dispute_id, "dispute id"), _b32(outcome_hash, "outcome hash")
        )
        return self._transact(fn, sender)

    def dispute(self, dispute_id: bytes) -> Dispute:
        """A dispute record (:class:`UnknownDisputeError` if none)."""
        raw = self._call(self._fn.dispute(_b32(dispute_id, "dispute id")))
        courier_id, subject, evidence, outcome, opened_by, opened_at, resolved_by, resolved_at = raw
        resolved = int(resolved_at) != 0
        return Dispute(
            dispute_id=bytes(dispute_id),
            courier_id=bytes(courier_id),
            subject_hash=bytes(subject),
            evidence_hash=bytes(evidence),
            outcome_hash=bytes(outcome) if resolved else None,
            opened_by=str(opened_by),
            opened_at=int(opened_at),
            resolved_by=str(resolved_by) if resolved else None,
            resolved_at=int(resolved_at) if resolved else None,
        )

    def disputes(
        self,
        courier_id: bytes | None = None,
        from_block: int = 0,
        to_block: int | str = "latest",
    ) -> list[Dispute]:
        """The disputes opened or resolved in the blocks scanned, from the ``DisputeOpened``
        and ``DisputeResolved`` logs, in order of opening; ``opened_at``/``resolved_at`` are
        the block times of those logs. A dispute opened before ``from_block`` but resolved
        after it is read from the :meth:`dispute` view. With ``courier_id``, only the disputes
        about that courier."""
        times: dict[int, int] = {}
        events = self._contract.events
        opened = self._event_logs(
            events.DisputeOpened, _courier_filter(courier_id), from_block, to_block, times
        )
        resolved = self._event_logs(events.DisputeResolved, None, from_block, to_block, times)
        found: dict[bytes, Dispute] = {}
        for log in opened:
            dispute_id = bytes(log.args["disputeId"])
            found[dispute_id] = Dispute(
                dispute_id=dispute_id,
                courier_id=bytes(log.args["courierId"]),
                subject_hash=bytes(log.args["subjectHash"]),
                evidence_hash=bytes(log.args["evidenceHash"]),
                outcome_hash=None,
                opened_by=str(log.args["openedBy"]),
                opened_at=log.at,
                resolved_by=None,
                resolved_at=None,
            )
        for log in resolved:
            dispute_id = bytes(log.args["disputeId"])
            known = found.get(dispute_id)
            if known is None:
                known = self.dispute(dispute_id)
                if courier_id is not None and known.courier_id != courier_id:
                    continue
            found[dispute_id] = replace(
                known,
                outcome_hash=bytes(log.args["outcomeHash"]),
                resolved_by=str(log.args["resolvedBy"]),
                resolved_at=log.at,
            )
        return list(found.values())

    # --- events -----------------------------------------------------------------------------

    def decode_events(self, receipt: Mapping[str, Any]) -> tuple[LedgerEvent, ...]:
        """Decode the ParcelLedger events (incl. AccessControl's) of a receipt, in log order."""
        events = []
        for log in receipt.get("logs", []):
            if _address(str(log["address"])) != self.address or not log["topics"]:
                continue
            name = self._event_names.get(bytes(log["topics"][0]))
            if name is None:
                continue
            decoded = self._contract.events[name]().process_log(log)
            events.append(LedgerEvent(name, dict(decoded["args"])))
        return tuple(events)

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def _fn(self) -> Any:
        return self._contract.functions

    def transact(self, fn: ContractFunction, *, sender: LocalAccount) -> TxResult:
        """Low level: send any bound function of :attr:`contract` as a signed transaction
        (e.g. a view, to meter its gas), with the same revert mapping."""
        return self._transact(fn, sender)

    def _transact(self, fn: ContractFunction, sender: LocalAccount) -> TxResult:
        return self._result(_send(self.w3, fn, sender, self._errors, chain_id=self.chain_id))

    def _result(self, receipt: TxReceipt) -> TxResult:
        return TxResult(
            tx_hash=bytes(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=self.decode_events(receipt),
        )

    def _checkpoint_of(self, result: TxResult) -> Checkpoint:
        args = result.event("CheckpointAnchored").args
        return Checkpoint(
            courier_id=bytes(args["courierId"]),
            size=int(args["size"]),
            root=bytes(args["root"]),
            anchored_at=self._block_time(result.block_number),
            block_number=result.block_number,
            tx_hash=result.tx_hash,
        )

    def _block_time(self, number: int) -> int:
        return self._rpc(lambda: int(self.w3.eth.get_block(number)["timestamp"]))

    def _call(self, fn: ContractFunction) -> Any:
        return _guard(self._errors, lambda: fn.call(self._call_params))

    def _rpc(self, thunk: Callable[[], T]) -> T:
        return _guard(self._errors, thunk)


# --- sending --------------------------------------------------------------------------------


def _send(
    w3: Web3,
    fn: Any,
    sender: LocalAccount,
    errors: Mapping[bytes, tuple[str, list[str]]],
    *,
    chain_id: int | None = None,
) -> TxReceipt:
    """Estimate, sign locally, send and wait; map every failure to our errors."""

    def build() -> TxParams:
        params: TxParams = {
            "from": sender.address,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": chain_id if chain_id is not None else w3.eth.chain_id,
        }
        estimate = int(fn.estimate_gas({"from": sender.address}))
        margin = max(
            estimate * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR - estimate, GAS_MARGIN_MIN
        )
        params["gas"] = estimate + margin
        tx: TxParams = fn.build_transaction(params)
        return tx

    tx = _guard(errors, build)
    signed = sender.sign_transaction(dict(tx))  # type: ignore[arg-type]
    tx_hash = _guard(errors, lambda: w3.eth.send_raw_transaction(signed.raw_transaction))
    try:
        receipt = w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=receipt_poll_latency(w3)
        )
    except TimeExhausted as e:
        raise NetworkError(
            f"no receipt for {HexBytes(tx_hash).to_0x_hex()} within {RECEIPT_TIMEOUT}s"
        ) from e
    except (OSError, ProviderConnectionError) as e:
        raise NetworkError(
            redact(f"lost the JSON-RPC endpoint while waiting for a receipt: {e}")
        ) from e
    if receipt["status"] != 1:
        # Mined but reverted (state changed after estimation): replay to learn why.
        replay: Any = getattr(fn, "call", None)
        if replay is not None:
            block = int(receipt["blockNumber"])
            _guard(errors, lambda: replay({"from": sender.address}, block_identifier=block))
        raise ContractRevertError(
            "TransactionReverted", (bytes(tx_hash),), "the transaction was mined but reverted"
        )
    return receipt


def revert_error(abi: Sequence[Mapping[str, Any]], data: bytes) -> ContractRevertError:
    """Decode raw revert data against ``abi``'s custom errors (plus ``Error(string)`` and
    ``Panic(uint256)``) into the matching :class:`ContractRevertError` subclass."""
    return _revert_error(_error_table(abi), data)


def revert_from_exception(
    abi: Sequence[Mapping[str, Any]], exc: BaseException
) -> ContractRevertError | None:
    """The revert carried by a web3 or eth-tester exception, decoded; ``None`` if it carries
    no revert data."""
    data = _revert_data(exc)
    return None if data is None else _revert_error(_error_table(abi), data)


def _guard(errors: Mapping[bytes, tuple[str, list[str]]], thunk: Callable[[], T]) -> T:
    """Run ``thunk``, translating reverts and transport failures."""
    try:
        return thunk()
    except (ContractRevertError, NetworkError, FormatError):
        raise
    except (OSError, ProviderConnectionError) as e:
        raise NetworkError(redact(f"JSON-RPC transport failure: {e}")) from e
    except Exception as e:
        data = _revert_data(e)
        if data is not None:
            raise _revert_error(errors, data) from e
        if isinstance(e, ContractLogicError):
            raise ContractRevertError("Revert", (), str(e.message or e)) from e
        if isinstance(e, BadFunctionCallOutput):
            raise ChainError(
                "no ParcelLedger answered at that address: wrong address or chain, or a dev "
                "node that lost its state (restart anvil with --state)"
            ) from e
        if _is_tester_failure(e) or isinstance(e, Web3Exception):
            raise ChainError(f"ledger call failed: {e}") from e
        raise


def _is_tester_failure(e: BaseException) -> bool:
    return type(e).__name__ == "TransactionFailed" and type(e).__module__.startswith("eth_tester")


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _revert_data(e: BaseException) -> bytes | None:
    """Raw revert data carried by any backend's exception, if any.

    web3 puts hex in ``.data`` (a string, or a dict with a ``data`` member) or in the JSON-RPC
    error of ``.rpc_response``; eth-tester raises
    ``TransactionFailed`` whose first argument is the bytes, their ``repr`` or an exception
    wrapping them, sometimes behind ``execution reverted: ``.
    """
    for exc in _chain(e):
        data = getattr(exc, "data", None)
        response = getattr(exc, "rpc_response", None)  # Web3RPCError
        if data is None and isinstance(response, Mapping):
            error = response.get("error")
            data = error.get("data") if isinstance(error, Mapping) else None
        if isinstance(data, Mapping):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                pass
        if isinstance(data, bytes | bytearray) and len(data) >= 4:
            return bytes(data)
        if _is_tester_failure(exc) and exc.args:
            arg = exc.args[0]
            if isinstance(arg, Exception) and arg.args:
                arg = arg.args[0]
            if isinstance(arg, bytes | bytearray) and len(arg) >= 4:
                return bytes(arg)
            if isinstance(arg, str):
                text = arg.removeprefix("execution reverted: ")
                if text[:2] in ("b'", 'b"'):
                    try:
                        value = ast.literal_eval(text)
                    except (ValueError, SyntaxError):
                        continue
                    if isinstance(value, bytes) and len(value) >= 4:
                        return value
    return None


def _revert_error(
    errors: Mapping[bytes, tuple[str, list[str]]], data: bytes
) -> ContractRevertError:
    selector, payload = data[:4], data[4:]
    if selector == _ERROR_STRING:
        return ContractRevertError("Error", _decode(["string"], payload))
    if selector == _PANIC:
        return ContractRevertError("Panic", _decode(["uint256"], payload))
    known = errors.get(selector)
    if known is None:
        return ContractRevertError("UnknownError", (data,), "revert data matches no ABI error")
    name, types = known
    return REVERT_ERRORS.get(name, ContractRevertError)(name, _decode(types, payload))


def _decode(types: list[str], payload: bytes) -> tuple[object, ...]:
    try:
        values = abi_decode(types, payload)
    except (DecodingError, ValueError, TypeError):
        return (payload,)
    return tuple(
        Web3.to_checksum_address(v) if t == "address" else v
        for t, v in zip(types, values, strict=True)
    )


def _error_table(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    for entry in abi:
        if entry.get("type") == "error":
            types = [_abi_type(i) for i in entry.get("inputs", [])]
            table[keccak(text=_signature(entry))[:4]] = (str(entry["name"]), types)
    return table


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_abi_type(i) for i in entry.get('inputs', []))})"


def _abi_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


# --- argument checks ------------------------------------------------------------------------


def _b32(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        shown = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise FormatError(f"{what} must be 32 bytes, got {shown}")
    return bytes(value)


def _courier_filter(courier_id: bytes | None) -> dict[str, bytes] | None:
    return None if courier_id is None else {"courierId": _b32(courier_id, "courier id")}


def _proof(proof: Sequence[bytes]) -> list[bytes]:
    return [_b32(h, f"proof[{i}]") for i, h in enumerate(proof)]


def _u64(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value < 2**64:
        raise FormatError(f"{what} must be an unsigned 64-bit integer, got {value!r}")
    return value


def _u256(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value < 2**256:
        raise FormatError(f"{what} must be an unsigned 256-bit integer, got {value!r}")
    return value


def _address(value: str, what: str = "address") -> ChecksumAddress:
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError) as e:
        raise FormatError(f"{what} is not an Ethereum address: {value!r}") from e
