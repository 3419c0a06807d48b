"""Database plumbing: engines for SQLite and PostgreSQL, session factories, Alembic upgrades."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from parcelproof.core.errors import (
    ConflictError,
    DatabaseUnavailableError,
    Error,
    FormatError,
    NotFoundError,
    StoreError,
)

DEFAULT_URL = "sqlite:///data/parcelproof.sqlite"
SQLITE_FILE = "parcelproof.sqlite"
SQLITE_BUSY_TIMEOUT_MS = 5_000
MIGRATIONS = "parcelproof.store:migrations"

# Execution option read by the SQLite ``begin`` hook: "DEFERRED" (default) or "IMMEDIATE".
# Writers ask for IMMEDIATE so SQLite takes its single write lock when the transaction starts.
SQLITE_BEGIN_OPTION = "parcelproof_sqlite_begin"
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE"})

# Key of the transaction-scoped advisory lock that serialises concurrent upgrades on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x7070_6D69_6772  # "ppmigr"


def sqlite_url(data_dir: Path | str) -> str:
    """URL of the node's SQLite database file inside ``data_dir``."""
    return f"sqlite:///{Path(data_dir) / SQLITE_FILE}"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for a ``sqlite:///path`` or ``postgresql+psycopg://`` URL.

    SQLite: the file's directory is created, and every connection gets ``foreign_keys=ON``,
    ``journal_mode=WAL`` and a busy timeout; SQLAlchemy emits ``BEGIN`` itself so writers can
    ask for ``BEGIN IMMEDIATE``. A SQLite database serves a single process. PostgreSQL:
    ``postgresql://`` means the psycopg 3 driver; connections are pinged before use.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise FormatError("not a database URL") from e  # never echo it: it may hold a password
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    try:
        if backend == "sqlite":
            if driver != "pysqlite":
                raise FormatError(f"SQLite driver {driver!r} is not supported, use sqlite://")
            return _sqlite_engine(parsed, echo)
        if backend == "postgresql":
            if "+" not in parsed.drivername:
                parsed = parsed.set(drivername="postgresql+psycopg")
            elif driver != "psycopg":
                raise FormatError(f"PostgreSQL driver {driver!r} is not supported, use psycopg")
            return create_engine(parsed, echo=echo, pool_pre_ping=True)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot create a {backend} engine: {type(e).__name__}") from e
    raise FormatError(f"database {backend!r} is not supported: use sqlite or postgresql")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def migration_config() -> Config:
    """Alembic configuration without an ini file: the scripts come from the installed package."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` in one transaction (serialised on PostgreSQL)."""
    config = migration_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except (SQLAlchemyError, CommandError) as e:
        raise StoreError(f"database migration to {revision!r} failed: {e}") from e


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(url.query)
    if not in_memory and not url.query.get("uri"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module: _sqlite_on_begin emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_MS)}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in _SQLITE_BEGIN_MODES:
        raise StoreError(f"unknown SQLite transaction mode {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")


# --- shared by the repositories -------------------------------------------------------------


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a session factory is bound to."""
    with sessions() as session:
        bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@contextmanager
def transaction(
    sessions: sessionmaker[Session],
    dialect: str,
    *,
    write: bool = False,
    conflict: Callable[[str], str] = lambda _name: "the record conflicts with one stored",
    what: str = "database operation",
) -> Iterator[Session]:
    """One transaction; writes on SQLite take the database lock at BEGIN (IMMEDIATE), so two
    writers serialise instead of failing at commit. Constraint violations become our errors
    (:func:`integrity_error`), driver failures :class:`StoreError` naming only the kind."""
    try:
        with sessions() as s, s.begin():
            if write and dialect == "sqlite":
                s.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            yield s
    except IntegrityError as e:
        raise integrity_error(e, conflict) from e
    except (OperationalError, InterfaceError) as e:
        # The server went away, restarts or refuses connections (or SQLite stays locked):
        # nothing was committed; the caller may retry. The pool reconnects on its own.
        raise DatabaseUnavailableError(f"{what} failed: the database is unavailable") from e
    except SQLAlchemyError as e:
        raise StoreError(f"{what} failed: {type(e).__name__}") from e


def integrity_error(e: IntegrityError, conflict: Callable[[str], str]) -> Error:
    """Map a constraint violation to our errors without echoing the driver's row values;
    ``conflict`` says what a violated unique constraint (by name) means."""
    code = getattr(e.orig, "sqlstate", None)  # psycopg
    message = str(e.orig)
    if code == "23505" or "UNIQUE constraint failed" in message:
        diag = getattr(e.orig, "diag", None)
        name = getattr(diag, "constraint_name", None) or message.partition(": ")[2].strip()
        return ConflictError(conflict(name))
    if code == "23503" or "FOREIGN KEY constraint failed" in message:
        return NotFoundError("the record refers to something not stored")
    if code in ("23514", "23502") or "constraint failed" in message:
        return FormatError("the record violates a constraint of the schema")
    return StoreError(f"integrity error: {type(e.orig).__name__}")
