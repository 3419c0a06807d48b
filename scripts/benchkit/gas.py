"""Gas per shipment milestone on one anvil: ParcelProof checkpoints vs. a naive contract and EAS."""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import re
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from eth_utils.address import to_checksum_address

from parcelproof.chain import compile as solc
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.errors import ChainError, CompilerError
from parcelproof.core.merkle import MemoryLog

if __package__ in (None, ""):  # run as a file: make the benchkit package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import Section, percentile, table

#: Milestones per checkpoint (ParcelProof) and transactions per batch (naive, EAS).
SIZES: tuple[int, ...] = (1, 10, 100, 1_000, 10_000)
#: ParcelProof checkpoints anchored per batch size; the table shows their median.
CHECKPOINTS_PER_SIZE = 3
#: Largest batch sent to EAS ``multiAttest`` as one call.
MULTI_ATTEST_MAX = 1_000
#: The batch size of the headline figure and its target (gas per milestone).
HEADLINE_BATCH = 1_000
TARGET_GAS_PER_MILESTONE = 100
#: EIP-7825 (Osaka): no transaction may use more gas than this on Ethereum mainnet.
TX_GAS_CAP = 2**24

EAS_PACKAGE = "@ethereum-attestation-service/eas-contracts"
#: The optimizer settings EAS builds its published artifacts with (1,000,000 runs, no
#: metadata hash); the EVM version is ours (cancun), which OpenZeppelin 5.7's `mcopy` needs.
EAS_OPTIMIZER_RUNS = 1_000_000
EAS_SCHEMA = "bytes32 commitment"
NAIVE_UNIT = "contracts/bench/NaiveAnchor.sol"
COURIER_ID = hashlib.sha256(b"parcelproof gas benchmark courier").digest()
#: Funding of each fresh benchmark account (100 ether: thousands of transactions each).
FUNDING_WEI = 100 * 10**18

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = b"\x00" * 32
GWEI = 10**9
#: JSON-RPC calls per HTTP request; blocks mined for one batch of transactions before giving up.
RPC_BATCH = 500
MINE_ATTEMPTS = 3
PLOT_NAME = "gas-per-milestone.png"

_IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)
_EXACT_PRAGMA = re.compile(r"^pragma solidity =?(\d+\.\d+\.\d+);", re.MULTILINE)


# --- compiling ------------------------------------------------------------------------------


@dataclass
class Compiled:
    """A contract compiled here: ABI, creation code, and the calldata encoders of its functions."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    _functions: dict[str, tuple[bytes, list[str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for entry in self.abi:
            if entry.get("type") != "function":
                continue
            if entry["name"] in self._functions:
                raise CompilerError(f"{self.name}.{entry['name']} is overloaded")
            self._functions[entry["name"]] = (
                function_abi_to_4byte_selector(entry),  # type: ignore[arg-type]
                get_abi_input_types(entry),  # type: ignore[arg-type]
            )

    def calldata(self, function: str, *args: object) -> bytes:
        """ABI-encoded call of ``function`` (fast: no web3 contract object per transaction)."""
        selector, types = self._functions[function]
        return selector + encode(types, list(args))

    def creation(self, types: Sequence[str] = (), args: Sequence[object] = ()) -> bytes:
        """Creation code followed by the encoded constructor arguments."""
        return self.bytecode + encode(list(types), list(args))


def _compiled(output: dict[str, Any], unit: str, name: str) -> Compiled:
    try:
        contract = output["contracts"][unit][name]
    except KeyError as e:
        raise CompilerError(f"compiler output has no {unit}:{name}") from e
    return Compiled(name, contract["abi"], bytes.fromhex(contract["evm"]["bytecode"]["object"]))


def compile_naive() -> Compiled:
    """contracts/bench/NaiveAnchor.sol with the repository's pinned compiler settings."""
    text = (solc.contracts_dir() / "bench" / "NaiveAnchor.sol").read_text(encoding="utf-8")
    output = solc.run_compiler(solc.standard_json_input({NAIVE_UNIT: text}))
    return _compiled(output, NAIVE_UNIT, "NaiveAnchor")


def eas_version() -> str:
    """Version of the installed EAS npm package."""
    package = solc.node_modules_dir() / EAS_PACKAGE / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError) as e:
        raise CompilerError(
            f"the EAS contracts ({EAS_PACKAGE}) are missing: run `make setup-bench`"
        ) from e


def _npm_sources(roots: Sequence[str]) -> dict[str, str]:
    """Every source unit the npm ``roots`` import, transitively, keyed by package path."""
    sources: dict[str, str] = {}
    pending = list(roots)
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = solc.node_modules_dir() / unit
        try:
            sources[unit] = text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise CompilerError(f"cannot read {unit} ({path}): {e.strerror}") from e
        for target in _IMPORT.findall(text):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            pending.append(target)
    return dict(sorted(sources.items()))


def eas_pinned_solc() -> str:
    """The exact compiler version EAS.sol pins (the package builds with it)."""
    text = (solc.node_modules_dir() / EAS_PACKAGE / "contracts" / "EAS.sol").read_text()
    match = _EXACT_PRAGMA.search(text)
    return match.group(1) if match else "(not pinned)"


def compile_eas() -> tuple[Compiled, Compiled]:
    """EAS's SchemaRegistry and EAS from node_modules, with our solc and EVM version and the
    package's optimizer settings. Its exact ``pragma solidity 0.8.x;`` pins are moved to our
    compiler version in memory; nothing else in its sources changes."""
    eas_version()  # a clear error when the package is missing
    base = f"{EAS_PACKAGE}/contracts/"
    units = {"SchemaRegistry": base + "SchemaRegistry.sol", "EAS": base + "EAS.sol"}
    sources = {
        unit: _EXACT_PRAGMA.sub(f"pragma solidity {solc.SOLC_VERSION};", text)
        for unit, text in _npm_sources(list(units.values())).items()
    }
    request = solc.standard_json_input(sources)
    settings = request["settings"]
    settings["optimizer"] = {"enabled": True, "runs": EAS_OPTIMIZER_RUNS}
    settings["metadata"] = {"bytecodeHash": "none"}
    wanted = ["abi", "evm.bytecode.object"]
    settings["outputSelection"] = {unit: {name: wanted} for name, unit in units.items()}
    output = solc.run_compiler(request)
    return (
        _compiled(output, units["SchemaRegistry"], "SchemaRegistry"),
        _compiled(output, units["EAS"], "EAS"),
    )


# --- JSON-RPC and bulk transactions ---------------------------------------------------------


class Rpc:
    """Bare JSON-RPC over HTTP with batching: thousands of calls in a few requests."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url
        self.timeout = timeout

    def call(self, method: str, *params: object) -> Any:
        """One call; raises :class:`ChainError` with the node's error message."""
        return self.batch(method, [list(params)])[0]

    def batch(self, method: str, params: Sequence[Sequence[object]]) -> list[Any]:
        """The results of ``method`` for each parameter list, in order."""
        results: list[Any] = []
        for start in range(0, len(params), RPC_BATCH):
            chunk = params[start : start + RPC_BATCH]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": list(p)}
                for i, p in enumerate(chunk)
            ]
            request = urllib.request.Request(  # noqa: S310 - the benchmark's own node
                self.url,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
                replies = json.load(reply)
            if not isinstance(replies, list):  # a whole-batch error
                raise ChainError(f"{method}: {replies.get('error', replies)}")
            by_id = {r.get("id"): r for r in replies}
            for i in range(len(chunk)):
                reply_i = by_id.get(i, {"error": "no reply"})
                if "error" in reply_i:
                    raise ChainError(f"{method}: {reply_i['error']}")
                results.append(reply_i["result"])
        return results


@dataclass(frozen=True)
class Call:
    """One transaction to send: target (``None`` deploys), calldata, gas limit."""

    to: str | None
    data: bytes
    gas: int


class Sender:
    """Sends many transactions from one account fast: signs them locally with explicit nonces,
    sends the raw transactions in JSON-RPC batches without waiting for each, mines, and collects
    the receipts in batches."""

    def __init__(self, rpc: Rpc, account: LocalAccount, chain_id: int) -> None:
        self.rpc = rpc
        self.account = account
        self.chain_id = chain_id
        self.nonce = int(rpc.call("eth_getTransactionCount", account.address, "pending"), 16)

    def estimate(self, to: str | None, data: bytes) -> int:
        """Gas limit for one call: the node's estimate plus a margin."""
        tx: dict[str, str] = {"from": self.account.address, "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        estimate = int(self.rpc.call("eth_estimateGas", tx), 16)
        return estimate + max(estimate // 4, 20_000)

    def send(self, calls: Sequence[Call]) -> list[dict[str, Any]]:
        """Send ``calls`` in order; return their receipts.

        Anvil's automine is paused meanwhile and each block is mined explicitly (``evm_mine``)
        holding at most half a block of gas limits (the base-fee target, so fees do not climb):
        hundreds of transactions per block rather than a block each, which floods of
        automined transactions stall. A transaction's ``gasUsed`` does not depend on its block:
        warm/cold accesses and refunds are per transaction. Raises :class:`ChainError` when a
        transaction reverts or is not mined."""
        receipts: list[dict[str, Any]] = []
        automine = bool(self.rpc.call("anvil_getAutomine"))
        if automine:
            self.rpc.call("evm_setAutomine", False)
        try:
            for block in self._blocks(calls):
                receipts += self._send_block(block)
        finally:
            if automine:
                self.rpc.call("evm_setAutomine", True)
        return receipts

    def _latest(self) -> dict[str, Any]:
        block: dict[str, Any] = self.rpc.call("eth_getBlockByNumber", "latest", False)
        return block

    def _blocks(self, calls: Sequence[Call]) -> Iterator[list[Call]]:
        target = int(self._latest()["gasLimit"], 16) // 2
        block: list[Call] = []
        gas = 0
        for call in calls:
            if block and gas + call.gas > target:
                yield block
                block, gas = [], 0
            block.append(call)
            gas += call.gas
        if block:
            yield block

    def _send_block(self, calls: list[Call]) -> list[dict[str, Any]]:
        base_fee = int(self._latest()["baseFeePerGas"], 16)
        raws, hashes = [], []
        for call in calls:
            tx: dict[str, Any] = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": self.nonce,
                "value": 0,
                "gas": call.gas,
                "maxFeePerGas": 2 * base_fee + GWEI,
                "maxPriorityFeePerGas": GWEI,
                "data": call.data,
            }
            if call.to is not None:
                tx["to"] = call.to
            signed = self.account.sign_transaction(tx)
            self.nonce += 1
            raws.append(["0x" + bytes(signed.raw_transaction).hex()])
            hashes.append("0x" + bytes(signed.hash).hex())
        sent = self.rpc.batch("eth_sendRawTransaction", raws)
        if [h.lower() for h in sent] != hashes:
            raise ChainError("the node reported other transaction hashes than were signed")
        receipts: dict[str, dict[str, Any]] = {}
        for _ in range(MINE_ATTEMPTS):
            self.rpc.call("evm_mine")
            missing = [h for h in hashes if h not in receipts]
            found = self.rpc.batch("eth_getTransactionReceipt", [[h] for h in missing])
            receipts.update((h, r) for h, r in zip(missing, found, strict=True) if r is not None)
            if len(receipts) == len(hashes):
                break
        else:
            missing = [h for h in hashes if h not in receipts]
            raise ChainError(f"{len(missing)} transaction(s) not mined, e.g. {missing[0]}")
        for tx_hash in hashes:
            if int(receipts[tx_hash]["status"], 16) != 1:
                raise ChainError(f"transaction {tx_hash} reverted")
        return [receipts[h] for h in hashes]

    def deploy(self, creation: bytes) -> ChecksumAddress:
        """Deploy ``creation`` code; return the new contract's address."""
        (receipt,) = self.send([Call(None, creation, self.estimate(None, creation))])
        return to_checksum_address(receipt["contractAddress"])


def gas_used(receipt: dict[str, Any]) -> int:
    """The receipt's ``gasUsed``: the whole transaction, 21,000 intrinsic gas included."""
    return int(receipt["gasUsed"], 16)


# --- the three systems ----------------------------------------------------------------------


def milestones(tag: str, start: int, count: int) -> list[bytes]:
    """``count`` distinct 32-byte milestone hashes (stand-ins for event commitments)."""
    prefix = f"parcelproof bench {tag} milestone ".encode()
    return [
        hashlib.sha256(prefix + i.to_bytes(8, "big")).digest() for i in range(start, start + count)
    ]


@dataclass(frozen=True)
class Checkpoint:
    """One measured ParcelProof checkpoint."""

    batch: int
    previous: int
    size: int
    proof_nodes: int
    gas: int


def measure_parcelproof(
    rpc_url: str, admin: LocalAccount, courier: LocalAccount, sizes: Sequence[int], per_size: int
) -> list[Checkpoint]:
    """Deploy ParcelLedger, admit the courier and register an agent key (as `dev-setup` does),
    anchor a first checkpoint (not measured: it needs no consistency proof), then ``per_size``
    checkpoints per batch size k, each covering k new leaves with the RFC 9162 consistency
    proof from the previous checkpoint."""
    w3 = devnet.connect(rpc_url)
    ledger = LedgerClient.deploy(w3, admin)
    ledger.admit_courier(COURIER_ID, courier.address, sender=admin)
    agent = "0x" + hashlib.sha256(b"parcelproof bench agent").digest()[:20].hex()
    now = int(w3.eth.get_block("latest")["timestamp"])
    ledger.register_agent_key(w3.to_checksum_address(agent), now, now + 86_400, sender=courier)
    log = MemoryLog()
    for leaf in milestones("parcelproof", 0, 1):
        log.append(leaf)
    ledger.anchor_checkpoint(1, log.root(1), [], sender=courier)
    measured = []
    for k in sizes:
        for _ in range(per_size):
            previous = len(log)
            for leaf in milestones("parcelproof", previous, k):
                log.append(leaf)
            size = len(log)
            proof = log.consistency_proof(previous, size)
            result = ledger.anchor_checkpoint_tx(size, log.root(size), proof, sender=courier)
            anchored = result.event("CheckpointAnchored").args
            if int(anchored["size"]) != size or bytes(anchored["root"]) != log.root(size):
                raise ChainError(f"checkpoint {size} was anchored with other values")
            measured.append(Checkpoint(k, previous, size, len(proof), result.gas_used))
    return measured


def measure_naive(
    rpc: Rpc, sender: Sender, naive: Compiled, sizes: Sequence[int]
) -> dict[int, int]:
    """Total gas of k ``NaiveAnchor.record`` transactions (one per milestone), per k."""
    address = sender.deploy(naive.creation())
    totals, start = {}, 0
    for k in sizes:
        hashes = milestones("naive", start, k)
        start += k
        gas = sender.estimate(address, naive.calldata("record", hashes[0]))
        receipts = sender.send([Call(address, naive.calldata("record", h), gas) for h in hashes])
        for h, receipt in zip(hashes, receipts, strict=True):
            logs = receipt["logs"]
            if len(logs) != 1 or bytes.fromhex(logs[0]["topics"][1][2:]) != h:
                raise ChainError("a record transaction did not emit its MilestoneRecorded event")
        totals[k] = sum(gas_used(r) for r in receipts)
    return totals


@dataclass
class EasResult:
    """Total gas of k ``attest`` calls and of one ``multiAttest`` call, per k."""

    attest: dict[int, int] = field(default_factory=dict)
    multi_attest: dict[int, int] = field(default_factory=dict)
    #: Batch sizes whose multiAttest needed the block gas limit raised to be mined at all.
    over_block_limit: set[int] = field(default_factory=set)
    block_gas_limit: int = 0


def _attestation(schema: bytes, commitment: bytes) -> tuple[object, ...]:
    """AttestationRequestData: no recipient, no expiration, irrevocable, no reference, value 0,
    data = abi.encode(commitment)."""
    return (ZERO_ADDRESS, 0, False, ZERO_HASH, encode(["bytes32"], [commitment]), 0)


def measure_eas(
    rpc: Rpc,
    sender: Sender,
    registry: Compiled,
    eas: Compiled,
    sizes: Sequence[int],
) -> EasResult:
    """Deploy SchemaRegistry and EAS, register ``bytes32 commitment`` (no resolver, not
    revocable), then per k: k ``attest`` transactions, and (k ≤ 1,000) one ``multiAttest``."""
    registry_address = sender.deploy(registry.creation())
    eas_address = sender.deploy(eas.creation(["address"], [registry_address]))
    register = registry.calldata("register", EAS_SCHEMA, ZERO_ADDRESS, False)
    (registered,) = sender.send(
        [Call(registry_address, register, sender.estimate(registry_address, register))]
    )
    schema = bytes.fromhex(registered["logs"][0]["topics"][1][2:])
    result = EasResult(
        block_gas_limit=int(rpc.call("eth_getBlockByNumber", "latest", False)["gasLimit"], 16)
    )
    start = 0
    for k in sizes:
        hashes = milestones("eas", start, k)
        start += k
        calls = [eas.calldata("attest", (schema, _attestation(schema, h))) for h in hashes]
        gas = sender.estimate(eas_address, calls[0])
        receipts = sender.send([Call(eas_address, data, gas) for data in calls])
        _check_attested(receipts, schema, [1] * k)
        result.attest[k] = sum(gas_used(r) for r in receipts)
    for k in sizes:
        if k > MULTI_ATTEST_MAX:
            continue
        hashes = milestones("eas multi", start, k)
        start += k
        data = eas.calldata("multiAttest", [(schema, [_attestation(schema, h) for h in hashes])])
        receipt, raised = _send_large(rpc, sender, eas_address, data, result.block_gas_limit)
        _check_attested([receipt], schema, [k])
        result.multi_attest[k] = gas_used(receipt)
        if raised:
            result.over_block_limit.add(k)
    return result


def _send_large(
    rpc: Rpc, sender: Sender, to: str, data: bytes, block_limit: int
) -> tuple[dict[str, Any], bool]:
    """Send one call that may need more gas than a block holds: then anvil's block gas limit is
    raised for it (``anvil_setBlockGasLimit``) and restored afterwards. Returns the receipt and
    whether the limit had to be raised."""
    try:
        gas = sender.estimate(to, data)
    except ChainError:
        gas = None
    if gas is not None and gas <= block_limit:
        (receipt,) = sender.send([Call(to, data, gas)])
        return receipt, False
    rpc.call("anvil_setBlockGasLimit", hex(max(16 * block_limit, 2**30)))
    try:
        (receipt,) = sender.send([Call(to, data, sender.estimate(to, data))])
    finally:
        rpc.call("anvil_setBlockGasLimit", hex(block_limit))
    return receipt, gas_used(receipt) > block_limit or gas is None or gas > block_limit


def _check_attested(
    receipts: Sequence[dict[str, Any]], schema: bytes, counts: Sequence[int]
) -> None:
    for receipt, count in zip(receipts, counts, strict=True):
        logs = receipt["logs"]
        if len(logs) != count or any(bytes.fromhex(log["topics"][3][2:]) != schema for log in logs):
            raise ChainError("an EAS transaction did not emit one Attested event per milestone")


# --- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Everything one run measured, per batch size k (totals are gas of the whole batch)."""

    sizes: tuple[int, ...]
    checkpoints: list[Checkpoint]
    naive: dict[int, int]
    eas: EasResult
    chain: dict[str, str]

    def parcelproof_tx(self, k: int) -> float:
        """Median gas of a ParcelProof checkpoint transaction covering k milestones."""
        return percentile([c.gas for c in self.checkpoints if c.batch == k], 50)

    def per_milestone(self, k: int) -> dict[str, float | None]:
        """Gas per milestone of each system at batch size k (None: not measured)."""
        multi = self.eas.multi_attest.get(k)
        return {
            "ParcelProof": self.parcelproof_tx(k) / k,
            "naive contract": self.naive[k] / k,
            "EAS attest": self.eas.attest[k] / k,
            "EAS multiAttest": None if multi is None else multi / k,
        }


def _gas(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(value: float) -> str:
    return f"{value:,.0f}×" if value >= 100 else f"{value:,.1f}×"  # noqa: RUF001


def _batch(k: int) -> str:
    return f"{k:,}"


def render(m: Measurement) -> str:
    """The section's Markdown: the side-by-side table, the checkpoint detail, what it means."""
    rows = []
    for k in m.sizes:
        pp = m.parcelproof_tx(k) / k
        naive = m.naive[k] / k
        attest = m.eas.attest[k] / k
        multi = m.per_milestone(k)["EAS multiAttest"]
        if multi is None:
            multi_cell = "— (block gas limit)" if k > MULTI_ATTEST_MAX else "—"
        else:
            multi_cell = _gas(multi) + (" †" if k in m.eas.over_block_limit else "")
        rows.append(
            [
                _batch(k),
                _gas(m.parcelproof_tx(k)),
                _gas(pp),
                _gas(naive),
                _gas(attest),
                multi_cell,
                _ratio(naive / pp),
                _ratio(attest / pp),
            ]
        )
    main = table(
        [
            "Milestones per batch (k)",
            "ParcelProof checkpoint tx gas (median)",
            "ParcelProof gas/milestone",
            "Naive contract gas/milestone",
            "EAS attest gas/milestone",
            "EAS multiAttest gas/milestone",
            "Naive ÷ ParcelProof",
            "EAS attest ÷ ParcelProof",
        ],
        rows,
    )
    detail_rows = []
    for k in m.sizes:
        ours = [c for c in m.checkpoints if c.batch == k]
        detail_rows.append(
            [
                _batch(k),
                " / ".join(f"{c.previous:,} → {c.size:,}" for c in ours),
                " / ".join(str(c.proof_nodes) for c in ours),
                " / ".join(f"{c.gas:,}" for c in ours),
            ]
        )
    detail = table(
        ["k", "Log size before → after", "Consistency-proof nodes", "anchorCheckpoint gas"],
        detail_rows,
    )
    limit = m.eas.block_gas_limit
    notes = []
    if m.eas.over_block_limit:
        over = ", ".join(_batch(k) for k in sorted(m.eas.over_block_limit))
        notes.append(
            f"† multiAttest of k = {over} needs more gas than a block of this chain holds"
            f" ({limit:,}): it was measured with anvil's block gas limit raised for that one"
            " transaction. It would not fit in an Ethereum mainnet block either, nor under"
            f" EIP-7825's per-transaction cap of {TX_GAS_CAP:,} gas (Osaka): it has to be split."
        )
    capped = [
        k
        for k, total in m.eas.multi_attest.items()
        if total > TX_GAS_CAP and k not in m.eas.over_block_limit
    ]
    if capped:
        notes.append(
            "multiAttest of k = "
            + ", ".join(_batch(k) for k in sorted(capped))
            + f" uses more than EIP-7825's per-transaction cap of {TX_GAS_CAP:,} gas (Osaka),"
            " which anvil does not enforce by default."
        )
    if any(k > MULTI_ATTEST_MAX for k in m.sizes) and m.eas.multi_attest:
        top = max(m.eas.multi_attest)
        each = m.eas.multi_attest[top] / top
        biggest = max(m.sizes)
        notes.append(
            f"multiAttest is not sent for k > {MULTI_ATTEST_MAX:,}: at {_gas(each)} gas per"
            f" attestation (k = {top:,}), k = {biggest:,} would need about"
            f" {each * biggest / 1e6:,.0f} million gas in one transaction, far beyond any block"
            " gas limit."
        )
    c = m.chain
    parts = [
        main,
        "",
        (
            "Gas is each transaction's receipt `gasUsed` (the 21,000 intrinsic gas and calldata"
            " included), divided by the milestones it covers. **ParcelProof**:"
            " `ParcelLedger.anchorCheckpoint(size, root, consistencyProof)` sent by the courier's"
            " account (admitted with `admitCourier`, agent key registered) over a real RFC 9162"
            f" log; each checkpoint adds k leaves, {CHECKPOINTS_PER_SIZE} checkpoints per k,"
            " median shown, after a first checkpoint that is not measured (it carries no"
            " consistency proof). **Naive contract** (`contracts/bench/NaiveAnchor.sol`):"
            " `record(bytes32)` stores one hash per milestone in its own transaction."
            f" **EAS** ({EAS_PACKAGE} {c['eas_version']}, `SchemaRegistry` and `EAS` built from"
            f" the package's sources): schema `{EAS_SCHEMA}` (no resolver, not revocable), one"
            " `attest` per milestone (no recipient, no expiration, irrevocable, `data` ="
            " `abi.encode(hash)`); the multiAttest column sends all k attestations in one"
            " `multiAttest` call (k ≤ 1,000), the fairest batching EAS offers. Naive and EAS are"
            " summed over k real transactions per k, signed locally and mined in blocks of up to"
            " half the block gas limit (a transaction's `gasUsed` does not depend on its block:"
            " warm and cold accesses are per transaction)."
        ),
        "",
        (
            f"Chain: {c['client']} (hardfork {c['hardfork']}, chain id {c['chain_id']}, block gas"
            f" limit {limit:,}), one chain for all three. Compiler: solc {c['solc']} (npm),"
            f" EVM version {solc.EVM_VERSION}; ParcelLedger and NaiveAnchor with the repository's"
            f" optimizer settings ({solc.OPTIMIZER_RUNS} runs); EAS with its package's"
            f" ({EAS_OPTIMIZER_RUNS:,} runs, no metadata hash), its exact `pragma solidity"
            f" {c['eas_pinned_solc']}` moved to {solc.SOLC_VERSION}."
        ),
        "",
        (
            "A checkpoint costs about the same whatever it covers (its consistency proof grows"
            " with log2 of the log size, not with k), so ParcelProof's cost per milestone falls as"
            " 1/k, while a per-milestone transaction pays the intrinsic gas, a fresh storage"
            " slot and an event every time."
        ),
    ]
    for note in notes:
        parts += ["", note]
    parts += ["", "ParcelProof checkpoints measured:", "", detail]
    return "\n".join(parts)


def headline(m: Measurement) -> list[tuple[str, str, str, bool | None]]:
    """The summary rows: ParcelProof at batches of 1,000 (or the largest measured) and ratios."""
    k = HEADLINE_BATCH if HEADLINE_BATCH in m.sizes else max(m.sizes)
    per = m.per_milestone(k)
    pp = m.parcelproof_tx(k) / k
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            f"ParcelProof gas per milestone at batches of {k:,}",
            _gas(pp),
            f"≤ {TARGET_GAS_PER_MILESTONE}",
            pp <= TARGET_GAS_PER_MILESTONE,
        )
    ]
    for name in ("naive contract", "EAS attest", "EAS multiAttest"):
        other = per[name]
        if other is not None:
            label = name[:1].upper() + name[1:]
            rows.append(
                (
                    f"{label} ÷ ParcelProof gas per milestone at batches of {k:,}",
                    _ratio(other / pp),
                    "",
                    None,
                )
            )
    return rows


def plot(m: Measurement, plot_dir: Path) -> Path:
    """Log-log PNG: batch size against gas per milestone, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    markers = {"ParcelProof": "o", "naive contract": "s", "EAS attest": "^", "EAS multiAttest": "v"}
    for name, marker in markers.items():
        points = [(k, m.per_milestone(k)[name]) for k in m.sizes]
        xs = [k for k, v in points if v is not None]
        ys = [v for _, v in points if v is not None]
        if xs:
            ax.plot(xs, ys, marker=marker, label=name)
    ax.axhline(TARGET_GAS_PER_MILESTONE, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        f"target ≤ {TARGET_GAS_PER_MILESTONE}",
        (m.sizes[0], TARGET_GAS_PER_MILESTONE),
        textcoords="offset points",
        xytext=(2, 4),
        color="grey",
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1)
    ax.set_xlabel("milestones per batch (k)")
    ax.set_ylabel("gas per milestone")
    ax.set_title("Gas per shipment milestone (anvil)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / PLOT_NAME
    fig.savefig(path)
    plt.close(fig)
    return path


# --- entry points ---------------------------------------------------------------------------


def _chain_facts(rpc: Rpc) -> dict[str, str]:
    facts = {
        "client": str(rpc.call("web3_clientVersion")),
        "chain_id": str(int(rpc.call("eth_chainId"), 16)),
        "hardfork": "?",
    }
    try:
        facts["hardfork"] = str(rpc.call("anvil_nodeInfo").get("hardFork", "?"))
    except (ChainError, AttributeError):
        pass
    return facts


def measure(
    rpc_url: str, sizes: Sequence[int] = SIZES, checkpoints_per_size: int = CHECKPOINTS_PER_SIZE
) -> Measurement:
    """Run all three systems on the anvil at ``rpc_url`` (compiling while ParcelProof runs)."""
    sizes = tuple(sorted(set(sizes)))
    if not sizes or sizes[0] < 1:
        raise ValueError("batch sizes must be positive")
    rpc = Rpc(rpc_url)
    w3 = devnet.connect(rpc_url)
    chain_id = int(w3.eth.chain_id)
    admin, courier, naive_account, eas_account = devnet.funded_accounts(
        w3, 4, value_wei=FUNDING_WEI
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        naive_build = pool.submit(compile_naive)
        eas_build = pool.submit(compile_eas)
        checkpoints = measure_parcelproof(rpc_url, admin, courier, sizes, checkpoints_per_size)
        naive = measure_naive(
            rpc, Sender(rpc, naive_account, chain_id), naive_build.result(), sizes
        )
        registry, eas = eas_build.result()
    eas_result = measure_eas(rpc, Sender(rpc, eas_account, chain_id), registry, eas, sizes)
    facts = _chain_facts(rpc)
    facts.update(
        solc=solc.compiler_version(), eas_version=eas_version(), eas_pinned_solc=eas_pinned_solc()
    )
    return Measurement(sizes, checkpoints, naive, eas_result, facts)


def run(rpc_url: str, sizes: Sequence[int] = SIZES, plot_dir: Path | None = None) -> Section:
    """Measure gas per milestone on the running anvil at ``rpc_url``; the section for
    docs/benchmarks.md (with its plot when ``plot_dir`` is given)."""
    m = measure(rpc_url, sizes)
    section = Section(title="Gas per milestone", markdown=render(m), headline=headline(m))
    if plot_dir is not None:
        section.plots.append(plot(m, plot_dir))
    return section


@contextmanager
def anvil() -> Iterator[str]:
    """A throw-away anvil from node_modules for a standalone run; yields its JSON-RPC URL."""
    with devnet.Anvil() as node:
        yield node.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpc-url", help="a running anvil (default: start a throw-away one)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="milestones per batch"
    )
    parser.add_argument("--plot-dir", type=Path, help="write the PNG plot here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.rpc_url:
        section = run(args.rpc_url, args.sizes, args.plot_dir)
    else:
        with anvil() as url:
            section = run(url, args.sizes, args.plot_dir)
    print(f"## {section.title}\n\n{section.markdown}\n")
    print(table(["What", "Measured", "Target", "Met"], [list(r) for r in section.headline]))
    for path in section.plots:
        print(f"wrote {path}", file=sys.stderr)
    print(f"measured in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
