"""The single error hierarchy of ParcelProof, rooted at :class:`Error`."""

from __future__ import annotations


class Error(Exception):
    """Root of every error ParcelProof raises on purpose."""


# --- input decoding -------------------------------------------------------------------------


class FormatError(Error, ValueError):
    """Input is malformed: wrong type, wrong length, bad encoding."""


class TruncationError(FormatError):
    """Input ended before everything expected was read (e.g. a short proof)."""


class TrailingGarbageError(FormatError):
    """Input carries more data than the structure it encodes (e.g. an over-long proof)."""


# --- verification ---------------------------------------------------------------------------


class VerificationError(Error):
    """A proof, commitment, signature or ciphertext did not verify."""


class RootMismatchError(VerificationError):
    """A proof led to a root other than the expected one."""

    def __init__(self, expected: bytes, calculated: bytes, what: str = "root") -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, calculated {calculated.hex()}"
        )


class IndexOutOfRangeError(VerificationError, FormatError):
    """A leaf index or tree size is outside what the tree can hold."""


class CommitmentMismatchError(VerificationError):
    """Disclosed fields and digests do not recompute to the committed value."""

    def __init__(self, expected: bytes, calculated: bytes, what: str = "commitment") -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, calculated {calculated.hex()}"
        )


class HashChainError(VerificationError):
    """A shipment's per-log hash chain is broken: an event is missing, reordered, duplicated,
    substituted or belongs to another log or shipment. ``position`` is the index of the first
    event that does not link."""

    def __init__(self, position: int, message: str) -> None:
        self.position = position
        super().__init__(message)


class AuditLogTamperedError(VerificationError):
    """The node's hash-chained audit log does not verify: an entry was edited, deleted or
    reordered, or the log does not reach a head anchored on the ledger. ``problems`` lists one
    message per problem found."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        self.problems = problems
        super().__init__(message)


class SignatureError(VerificationError):
    """A signature is malformed or was made by a key other than the expected one."""


class DecryptionError(VerificationError):
    """A ciphertext failed authentication: wrong key, wrong associated data or tampering."""


# --- keys and membership --------------------------------------------------------------------


class KeyStateError(Error):
    """A key is unknown, revoked, expired or was destroyed."""


class UnknownKeyError(KeyStateError):
    """No key with this identifier is known."""


class KeyDestroyedError(KeyStateError):
    """The key existed but was destroyed (crypto-shredding)."""


class AgentKeyNotValidError(KeyStateError):
    """An agent key is revoked, not yet valid or expired at the time that matters."""


# --- ledger ---------------------------------------------------------------------------------


class ChainError(Error):
    """The ledger refused an operation or could not be reached."""


class NetworkError(ChainError):
    """The JSON-RPC endpoint is unreachable or answered with a transport failure."""


class ContractRevertError(ChainError):
    """The ParcelLedger contract reverted with one of its custom errors.

    ``name`` is the Solidity error name (e.g. ``ParcelLedgerNonGrowingCheckpoint``) and
    ``args`` its decoded arguments, whatever backend the call went through.
    """

    def __init__(self, name: str, args: tuple[object, ...] = (), detail: str = "") -> None:
        self.name = name
        self.args_ = args
        shown = ", ".join(_show(a) for a in args)
        message = f"{name}({shown})"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)


class UnknownCourierError(ContractRevertError):
    """The courier is not a member of the consortium ledger."""


class UnauthorizedError(ContractRevertError):
    """The sender lacks the role or membership the function requires."""


class NonGrowingCheckpointError(ContractRevertError):
    """A checkpoint did not strictly grow the courier's log."""


class NonGrowingAuditHeadError(ContractRevertError):
    """An audit-log head did not cover strictly more entries than the courier's previous one."""


class InconsistentCheckpointError(ContractRevertError):
    """A checkpoint's consistency proof does not link it to the previous checkpoint."""


class UnknownCheckpointError(ContractRevertError):
    """No checkpoint of that size was anchored for the courier."""


class InactiveCourierError(ContractRevertError):
    """The courier was removed from the consortium and may no longer anchor or register keys."""


class SuspendedCourierError(ContractRevertError):
    """The courier is suspended: until the consortium admin reinstates it, it may not anchor
    or register agent keys (also raised when suspending it again)."""


class UnknownAgentKeyError(ContractRevertError):
    """No agent key is registered on the ledger for that address."""


class UnknownDisputeError(ContractRevertError):
    """No dispute with that identifier is recorded on the ledger."""


class LedgerConflictError(ContractRevertError):
    """The ledger already holds a conflicting record: a courier, account, agent key or dispute
    that exists, a key already revoked, a dispute already resolved, a courier that is not
    suspended (reinstating it) or that used up its suspensions."""


class CompilerError(ChainError):
    """The Solidity toolchain (Node, the solc shim, solc) is missing or compilation failed."""


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


# --- use cases ------------------------------------------------------------------------------


class NotFoundError(Error):
    """Nothing matched. Deliberately vague where telling more would be an enumeration oracle."""


class ConflictError(Error):
    """The request contradicts what is already recorded (e.g. a duplicate)."""


class EventIdReusedError(ConflictError):
    """The event id was already used for a different event (a replay must repeat the body)."""


class BatchAbortedError(Error):
    """Not stored: the event was valid, but another event of its all-or-nothing batch was
    refused, so none of the batch was stored."""


class StoreError(Error):
    """The database failed or refused an operation for a reason other than the input."""


class DatabaseUnavailableError(StoreError):
    """The database did not answer (down, restarting, unreachable, or busy): try again later."""


class TransitionError(FormatError):
    """A milestone may not follow the shipment's current status."""
