"""Composition root: build a courier node (database, chain, ledger, worker) from settings."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint, RPCResponse

from parcelproof.api.deps import NodeServices
from parcelproof.api.ratelimit import PublicLimits
from parcelproof.chain import devnet
from parcelproof.chain.ledger import LedgerClient
from parcelproof.core.envelope import Keyring
from parcelproof.core.errors import Error, StoreError, UnknownCourierError
from parcelproof.service.anchoring import AnchorPolicy, AnchorWorker
from parcelproof.service.audit import AuditLog
from parcelproof.service.chainview import CachedLedgerView
from parcelproof.service.disputes import DisputeDesk
from parcelproof.service.federation import PeerLookup
from parcelproof.service.keys import AgentKeyDirectory
from parcelproof.service.node import CourierNode
from parcelproof.service.privacy import RetentionJob, retention_seconds
from parcelproof.service.staff import StaffService, WebAuthnConfig
from parcelproof.service.webhooks import RetryPolicy, WebhookService
from parcelproof.settings import ConfigurationError, Settings
from parcelproof.store.audit_sql import SqlAuditStore
from parcelproof.store.db import make_engine, session_factory, upgrade
from parcelproof.store.disputes_sql import SqlDisputeStore
from parcelproof.store.sql import SqlStore
from parcelproof.store.staff_sql import SqlStaffStore
from parcelproof.store.webhooks_sql import SqlWebhookStore

log = logging.getLogger("parcelproof.node")

#: Exit status of a worker killed by the PARCELPROOF_FAULT_AFTER_SEND=exit test hook.
FAULT_EXIT_STATUS = 137
#: Chain ids of local development nodes (anvil, Hardhat/Ganache).
DEV_CHAIN_IDS = frozenset({31337, 1337})
#: Seconds a readiness probe waits for the JSON-RPC endpoint.
READY_TIMEOUT = 3.0


class AccountMismatchError(ConfigurationError):
    """The configured account key is not the courier's anchoring account on the ledger."""


def redacted_url(url: str) -> str:
    """A database URL with its password hidden (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # never echo an unparsable URL: it may hold a password
        return "(unparsable database URL)"


# --- database -------------------------------------------------------------------------------


def open_database(url: str) -> Engine:
    """An engine on ``url``, checked reachable and migrated to the latest schema."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        engine.dispose()
        cause = type(getattr(e, "orig", None) or e).__name__
        raise StoreError(f"database {redacted_url(url)} is unreachable ({cause})") from e
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_store(settings: Settings) -> tuple[Engine, SqlStore]:
    """The node's migrated database and the store of its courier log."""
    courier_id = settings.courier_id_bytes()
    engine = open_database(settings.database())
    return engine, SqlStore(session_factory(engine), courier_id)


def audit_log(engine: Engine, courier_id: bytes) -> AuditLog:
    """The hash-chained audit log of the courier's node in the database of ``engine``."""
    return AuditLog(SqlAuditStore(session_factory(engine), courier_id))


# --- chain ----------------------------------------------------------------------------------


class _LockedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; the API's thread pool and the worker share it."""

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend

        super().__init__(EthereumTester(backend=PyEVMBackend(), auto_mine_transactions=True))
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


def embedded_chain() -> Web3:
    """A thread-safe in-process eth-tester chain (forgotten when the process exits)."""
    return Web3(_LockedTesterProvider())


@dataclass
class Chain:
    """The ledger as this node's courier sees it."""

    w3: Web3
    ledger: LedgerClient
    courier_id: bytes
    account: LocalAccount


def open_chain(settings: Settings, web3: Web3 | None = None) -> Chain:
    """Connect to the ledger and check that this node's courier and account belong to it.

    Raises ConfigurationError (missing settings, wrong chain id), NetworkError (endpoint
    unreachable), ChainError (no ledger at the address), UnknownCourierError (the ledger does
    not know the courier id) or AccountMismatchError (the key is not the courier's account).
    """
    settings.require("ledger_address", "courier_id", "account_key")
    courier_id = settings.courier_id_bytes()
    account = settings.account()
    if web3 is None:
        if not settings.rpc_url:
            raise ConfigurationError("missing setting: PARCELPROOF_RPC_URL (or --rpc)")
        web3 = devnet.connect(settings.rpc_url)
    ledger = LedgerClient(web3, settings.ledger_address or "")
    if settings.chain_id is not None and ledger.chain_id != settings.chain_id:
        raise ConfigurationError(
            f"PARCELPROOF_CHAIN_ID is {settings.chain_id} but the JSON-RPC endpoint serves "
            f"chain {ledger.chain_id}"
        )
    if ledger.chain_id in DEV_CHAIN_IDS:
        log.warning(
            "chain %d is a local dev chain: anchored data survives a restart only if the node "
            "keeps its state (anvil --state FILE)",
            ledger.chain_id,
        )
    try:
        courier = ledger.courier(courier_id)
    except UnknownCourierError as e:
        raise UnknownCourierError(
            e.name,
            e.args_,
            f"PARCELPROOF_COURIER_ID is not a member of the ledger at {ledger.address} on chain "
            f"{ledger.chain_id}: ask the consortium admin to admit it, or fix the id",
        ) from e
    if courier.account.lower() != account.address.lower():
        raise AccountMismatchError(
            f"PARCELPROOF_ACCOUNT_KEY controls {account.address}, but the ledger's anchoring "
            f"account for this courier is {courier.account}"
        )
    if not courier.active:
        log.warning("this courier was removed from the consortium: anchoring will be refused")
    return Chain(web3, ledger, courier_id, account)


# --- the worker's lock ----------------------------------------------------------------------


def worker_lock(engine: Engine, store: SqlStore) -> Callable[[int], AbstractContextManager[bool]]:
    """One anchoring worker per log: a PostgreSQL advisory lock (across machines), or for a
    SQLite file an exclusive ``flock`` on a lock file beside it (across processes)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or sys.platform == "win32" or database in ("", ":memory:"):
        return store.advisory_lock
    directory = Path(database).resolve().parent

    @contextmanager
    def lock(key: int) -> Iterator[bool]:
        import fcntl

        fd = os.open(directory / f".anchor-{key:x}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                acquired = False
            else:
                acquired = True
            yield acquired
        finally:
            os.close(fd)  # closing releases the lock

    return lock


# --- the node -------------------------------------------------------------------------------


@dataclass
class NodeRuntime:
    """A running courier node's parts, its readiness check and its worker thread."""

    settings: Settings
    engine: Engine
    store: SqlStore
    chain: Chain
    node: CourierNode
    worker: AnchorWorker
    services: NodeServices
    audit: AuditLog  # record personal-data reads and privileged actions here
    #: Signed webhooks; their dispatcher runs next to the anchoring worker (run_worker).
    webhooks: WebhookService | None = None
    _probe: Web3 | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _worker_error: BaseException | None = None
    _closed: bool = False

    @property
    def ledger(self) -> LedgerClient:
        return self.chain.ledger

    def ready(self) -> dict[str, str]:
        """Readiness checks for /readyz: database (SELECT 1), ledger (block number) and,
        when it runs in this process, the anchoring worker. Values are "ok" or a reason."""
        checks: dict[str, str] = {}
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except SQLAlchemyError as e:
            checks["database"] = f"unreachable ({type(getattr(e, 'orig', None) or e).__name__})"
        try:
            if self._probe is not None:
                int(self._probe.eth.block_number)
            else:
                self.ledger.block_number()
            checks["ledger"] = "ok"
        except (Error, OSError, Web3Exception) as e:
            checks["ledger"] = f"unreachable ({type(e).__name__})"
        if self._thread is not None:
            if self._thread.is_alive():
                checks["anchoring"] = "ok"
            elif self._worker_error is not None:
                checks["anchoring"] = f"stopped ({type(self._worker_error).__name__})"
            else:
                checks["anchoring"] = "stopped"
        return checks

    def start_worker(self) -> None:
        """Run the anchoring worker in a background thread until :meth:`stop_worker`."""
        if self._thread is not None:
            raise RuntimeError("the anchoring worker is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._background, name="anchor-worker", daemon=True)
        self._thread.start()

    def run_worker(self, stop: threading.Event | None = None) -> None:
        """Run the worker in this thread until ``stop`` (default: :meth:`stop_worker`) is
        set. Re-raises what stopped it unexpectedly (e.g. a log that does not match its
        anchored root), after logging it."""
        policy = self.worker.policy
        log.info(
            "anchoring worker started",
            extra={
                "interval_seconds": policy.interval_seconds,
                "batch_leaves": policy.batch_leaves,
                "confirmations": policy.confirmations,
            },
        )
        dispatcher = self._start_dispatcher(stop or self._stop)
        try:
            self.worker.run(stop or self._stop)
        except BaseException as e:
            self._worker_error = e
            log.error("anchoring worker stopped: %s: %s", type(e).__name__, e)
            raise
        finally:
            if dispatcher is not None and (stop or self._stop).is_set():
                dispatcher.join(2 * (self.webhooks.policy.timeout_seconds if self.webhooks else 5))
        log.info("anchoring worker stopped")

    def _start_dispatcher(self, stop: threading.Event) -> threading.Thread | None:
        """The webhook dispatcher in a thread of its own until ``stop`` is set (a chain
        outage pauses anchoring, not webhooks). Several dispatchers (another process's
        worker waiting for the log's lock) are safe: the outbox claims each delivery once."""
        if self.webhooks is None:
            return None
        thread = threading.Thread(
            target=self.webhooks.run, args=(stop,), name="webhook-dispatcher", daemon=True
        )
        thread.start()
        return thread

    def _background(self) -> None:
        try:
            self.run_worker()
        except BaseException:  # noqa: S110 - logged by run_worker; /readyz reports it
            pass

    def stop_worker(self, timeout: float = 30.0) -> None:
        """Ask the worker to stop and wait for its current step (bounded)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the anchoring worker did not stop within %.0fs", timeout)

    def close(self) -> None:
        """Stop the worker and release the database connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop_worker()
        self.engine.dispose()


def fault_hook(settings: Settings) -> Callable[[], None] | None:
    """The crash-test hook of PARCELPROOF_FAULT_AFTER_SEND (never in production)."""
    if settings.fault_after_send != "exit" or settings.environment == "production":
        return None
    log.warning("PARCELPROOF_FAULT_AFTER_SEND=exit: the worker dies after its next checkpoint")

    def die() -> None:
        log.warning("fault hook: exiting right after the checkpoint transaction was mined")
        logging.shutdown()
        os._exit(FAULT_EXIT_STATUS)

    return die


def open_staff(
    settings: Settings,
    engine: Engine,
    log_id: bytes,
    keyring: Keyring,
    *,
    audit: AuditLog | None = None,
) -> StaffService:
    """The node's staff accounts (passkeys bound to the configured relying party); logins,
    failures, enrolments and account changes go to ``audit`` (the node's audit log)."""
    origins = tuple(o.strip() for o in settings.webauthn_origins.split(",") if o.strip())
    return StaffService(
        SqlStaffStore(session_factory(engine), log_id),
        keyring,
        webauthn=WebAuthnConfig(rp_id=settings.webauthn_rp_id, origins=origins),
        audit=audit if audit is not None else audit_log(engine, log_id),
    )


def open_webhooks(
    settings: Settings,
    engine: Engine,
    log_id: bytes,
    keyring: Keyring,
    *,
    audit: AuditLog | None = None,
) -> WebhookService:
    """The node's signed webhooks (PARCELPROOF_WEBHOOK_* settings)."""
    return WebhookService(
        SqlWebhookStore(session_factory(engine), log_id),
        keyring,
        RetryPolicy(
            base_seconds=settings.webhook_retry_base_seconds,
            max_attempts=settings.webhook_max_attempts,
            timeout_seconds=settings.webhook_timeout_seconds,
        ),
        audit=audit,
    )


def open_node(settings: Settings, *, web3: Web3 | None = None) -> NodeRuntime:
    """Build a courier node from ``settings``: database (migrated), ledger connection (via
    ``web3`` or ``settings.rpc_url``), the node with the on-chain agent-key directory, and
    its anchoring worker. Fails early with a typed :class:`Error` on anything misconfigured
    or unreachable."""
    settings.require_node()
    keyring = settings.node_keyring()
    shipment_key = settings.shipment_key_bytes()
    chain = open_chain(settings, web3)
    engine, store = open_store(settings)
    lookup_ledger = (
        CachedLedgerView(chain.ledger, settings.chain_cache_seconds)
        if settings.chain_cache_seconds > 0
        else None
    )
    try:
        node = CourierNode(
            courier_id=chain.courier_id,
            ledger=chain.ledger,
            account=chain.account,
            keyring=keyring,
            shipment_key=shipment_key,
            store=store,
            agent_keys=AgentKeyDirectory(chain.ledger),
            lookup_chain=lookup_ledger,
        )
        audit = audit_log(engine, chain.courier_id)
        worker = AnchorWorker(
            node,
            AnchorPolicy(
                interval_seconds=settings.anchor_interval_seconds,
                batch_leaves=settings.anchor_batch_leaves,
                confirmations=settings.confirmations,
            ),
            lock=worker_lock(engine, store),
            after_send=fault_hook(settings),
            audit=audit,
            retention=RetentionJob(
                node, retention_seconds(settings.retention_days), audit=audit
            ),  # off when PARCELPROOF_RETENTION_DAYS=0
        )
    except BaseException:
        engine.dispose()
        raise
    webhooks = open_webhooks(settings, engine, chain.courier_id, keyring, audit=audit)
    probe = None
    if settings.rpc_url and web3 is None:
        probe = Web3(HTTPProvider(settings.rpc_url, request_kwargs={"timeout": READY_TIMEOUT}))
    return NodeRuntime(
        settings=settings,
        engine=engine,
        store=store,
        chain=chain,
        node=node,
        worker=worker,
        services=NodeServices(
            node=node,
            ledger=chain.ledger,
            lookup_ledger=lookup_ledger,
            limits=PublicLimits(settings.lookup_limit_per_client, settings.lookup_limit_per_parcel),
            clients=store,
            staff=open_staff(settings, engine, store.log_id, keyring, audit=audit),
            audit=audit,
            peers=PeerLookup.from_urls(settings.peer_urls()) if settings.peers else None,
            anchor_interval_seconds=settings.anchor_interval_seconds,  # the console's health
            disputes=DisputeDesk(
                node,
                chain.ledger,
                SqlDisputeStore(session_factory(engine), chain.courier_id),
                resolver=settings.resolver(),
                audit=audit,
            ),
            webhooks=webhooks,
        ),
        audit=audit,
        webhooks=webhooks,
        _probe=probe,
    )
