"""The `parcelproof db` commands: schema revision, migrations, backup and restore."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from parcelproof.cli_common import EnvFileOption
from parcelproof.cli_common import guarded as _guarded
from parcelproof.core.errors import Error

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

    from parcelproof.settings import Settings

db_app = typer.Typer(
    help="The node's database: schema revision, migrations, backup and restore.",
    no_args_is_help=True,
)

#: Format tag of the manifest written beside every dump.
MANIFEST_FORMAT = "parcelproof-db-backup/1"
MANIFEST_SUFFIX = ".manifest.json"
#: Seconds pg_dump / pg_restore may run before they are stopped.
PG_TOOL_TIMEOUT = 6 * 3600
_CHUNK = 1 << 20
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


class BackupError(Error):
    """A dump cannot be written, read, checked or restored (the message says why)."""


def _echo(message: str) -> None:
    from rich.console import Console

    Console(soft_wrap=True, highlight=False).print(message, markup=False)


@contextlib.contextmanager
def _spinner(what: str) -> Iterator[None]:
    """A transient spinner on stderr while ``what`` runs (nothing when stderr is no terminal)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        progress.add_task(what, total=None)
        yield


# --- revisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this code's migrations."""

    current: str | None  # the database's Alembic revision; None: no schema yet
    head: str  # the newest revision this code knows
    known: bool  # whether this code knows ``current`` (False: the database is ahead)
    pending: tuple[str, ...]  # revisions an upgrade would apply, oldest first

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def behind(self) -> bool:
        return self.known and not self.at_head

    @property
    def ahead(self) -> bool:
        return not self.known

    def describe(self) -> str:
        current = self.current or "none (empty database)"
        if self.at_head:
            return f"database revision {current}: up to date (code head {self.head})"
        if self.ahead:
            return (
                f"database revision {current} is unknown to this code (head {self.head}): the "
                "database was migrated by a newer release; run that release, or restore a "
                "backup taken before the upgrade"
            )
        steps = ", ".join(self.pending)
        return (
            f"database revision {current} is behind the code's head {self.head} "
            f"({len(self.pending)} migration(s) pending: {steps}); run `parcelproof db upgrade`"
        )


def code_head() -> str:
    """The newest migration revision of the installed code (read at run time, never fixed)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from parcelproof.store.db import migration_config

    try:
        head = ScriptDirectory.from_config(migration_config()).get_current_head()
    except CommandError as e:  # several heads: a broken release
        raise BackupError(f"the migrations of this code are inconsistent: {e}") from None
    if head is None:
        raise BackupError("this code has no migrations")
    return head


def schema_state(engine: Engine) -> SchemaState:
    """The database's revision compared with this code's head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from parcelproof.store.db import migration_config

    script = ScriptDirectory.from_config(migration_config())
    head = code_head()
    with _db_errors(engine), engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        pending = tuple(reversed([r.revision for r in script.iterate_revisions(head, "base")]))
        return SchemaState(None, head, True, pending)
    try:
        script.get_revision(current)
    except CommandError:
        return SchemaState(current, head, False, ())
    pending = tuple(reversed([r.revision for r in script.iterate_revisions(head, current)]))
    return SchemaState(current, head, True, pending)


@contextlib.contextmanager
def _db_errors(engine: Engine) -> Iterator[None]:
    """Driver failures as one line naming the (password-less) URL and the error class."""
    from sqlalchemy.exc import SQLAlchemyError

    from parcelproof.core.errors import StoreError
    from parcelproof.service.wiring import redacted_url

    try:
        yield
    except SQLAlchemyError as e:
        cause = type(getattr(e, "orig", None) or e).__name__
        url = redacted_url(engine.url.render_as_string(hide_password=False))
        raise StoreError(f"database {url} is unreachable ({cause})") from None


def _settings(env_file: Path | None) -> Settings:
    from parcelproof.settings import load_settings

    return load_settings(env_file)


def _engine(url: str) -> Engine:
    from parcelproof.store.db import make_engine

    return make_engine(url)


def _sqlite_file(url: URL) -> Path:
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(url.query):
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


# --- db current / upgrade -------------------------------------------------------------------


@db_app.command("current")
@_guarded
def db_current(env_file: EnvFileOption = None) -> None:
    """Show the database's schema revision against this code's newest one.

    Exit 0: up to date; 1: behind (run `db upgrade`) or empty; 2: ahead of this code (a newer
    release migrated it), or an error."""
    from parcelproof.service.wiring import redacted_url

    url = _settings(env_file).database()
    engine = _engine(url)  # a malformed or unsupported URL fails here, without echoing it
    try:
        if engine.dialect.name == "sqlite" and not _sqlite_file(engine.url).exists():
            _echo(f"{redacted_url(url)}: no database file yet (code head {code_head()})")
            raise typer.Exit(1)
        state = schema_state(engine)
    finally:
        engine.dispose()
    _echo(f"{redacted_url(url)}: {state.describe()}")
    if state.ahead:
        raise typer.Exit(2)
    if state.behind:
        raise typer.Exit(1)


@db_app.command("upgrade")
@_guarded
def db_upgrade(env_file: EnvFileOption = None) -> None:
    """Migrate the database to this code's newest schema revision.

    One transaction, serialised between nodes on PostgreSQL. Refuses a database migrated by a
    newer release (exit 2)."""
    from parcelproof.service.wiring import redacted_url
    from parcelproof.settings import ConfigurationError
    from parcelproof.store.db import upgrade

    url = _settings(env_file).database()
    engine = _engine(url)
    try:
        before = schema_state(engine)
        if before.ahead:
            raise ConfigurationError(
                f"refusing to migrate {redacted_url(url)}: its revision {before.current} is "
                f"newer than this code knows (head {before.head}); upgrade parcelproof instead "
                "(a downgrade needs a backup taken before the upgrade)"
            )
        if before.at_head:
            _echo(f"{redacted_url(url)}: already at head {before.head}, nothing to do")
            return
        with _spinner(f"migrating to {before.head}"):
            upgrade(engine)
        after = schema_state(engine)
    finally:
        engine.dispose()
    _echo(
        f"{redacted_url(url)}: migrated from {before.current or 'empty'} to {after.current} "
        f"({len(before.pending)} migration(s): {', '.join(before.pending)})"
    )


# --- backup ---------------------------------------------------------------------------------


def manifest_path(dump: Path) -> Path:
    """Where the manifest of ``dump`` lives: beside it, ``<dump>.manifest.json``."""
    return dump.with_name(dump.name + MANIFEST_SUFFIX)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed or not on PATH: install the PostgreSQL client tools "
            "(the same major version as the server, or newer)"
        )
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment carrying it (so it
    never shows in the process list)."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _run_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    from parcelproof.logs import redact

    try:
        done = subprocess.run(  # noqa: S603 - fixed tool, argument list
            argv, env=env, capture_output=True, text=True, timeout=PG_TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {PG_TOOL_TIMEOUT}s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = redact(lines[0] if lines else f"exit status {done.returncode}")
        if len(lines) > 1:
            reason += f" (and {len(lines) - 1} more line(s))"
        raise BackupError(f"{what} failed: {reason}")


def _tool_version(path: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed tool, argument list
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


def _dump_postgresql(url: URL, target: Path) -> str:
    pg_dump = _pg_tool("pg_dump")
    uri, env = _libpq(url)
    argv = [pg_dump, "--format=custom", "--no-password", f"--file={target}", f"--dbname={uri}"]
    _run_tool(argv, env, "pg_dump")
    return _tool_version(pg_dump)


def _dump_sqlite(url: URL, target: Path) -> str:
    import sqlite3

    source = _sqlite_file(url)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # online: one consistent snapshot, writers carry on (WAL)
        finally:
            dst.close()
    except sqlite3.Error as e:
        raise BackupError(f"SQLite backup of {source} failed: {e}") from None
    finally:
        src.close()
    return f"sqlite {sqlite3.sqlite_version}"


@db_app.command("backup")
@_guarded
def db_backup(
    out: Annotated[Path, typer.Option("--out", help="the dump file to write (mode 0600)")],
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing dump")] = False,
    env_file: EnvFileOption = None,
) -> None:
    """Back the database up, consistently, while the node runs.

    PostgreSQL with pg_dump (custom format), SQLite with its online backup API. Writes OUT
    and OUT.manifest.json (schema revision, time, dialect, SHA-256 of the dump; no secrets).
    The keyring is NOT in it: back it up separately (docs/operator-guide.md)."""
    from parcelproof.service.wiring import redacted_url

    url = _settings(env_file).database()
    manifest = manifest_path(out)
    for path in (out, manifest):
        if path.exists() and not force:
            raise BackupError(f"{path} exists: pass --force to overwrite it")
    if out.exists() and out.is_dir():
        raise BackupError(f"{out} is a directory: --out names the dump file")
    engine = _engine(url)  # a malformed or unsupported URL fails here, without echoing it
    parsed, dialect = engine.url, engine.dialect.name
    try:
        if dialect == "sqlite" and not _sqlite_file(parsed).is_file():
            raise BackupError(f"no SQLite database at {_sqlite_file(parsed)}")
        if dialect == "postgresql":
            _pg_tool("pg_dump")  # before anything else: a missing tool is the likeliest problem
        state = schema_state(engine)
    finally:
        engine.dispose()
    if state.current is None:
        raise BackupError(f"{redacted_url(url)} has no schema: nothing to back up")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    started = time.monotonic()
    try:
        os.chmod(tmp, 0o600)
        if dialect == "sqlite":
            tmp.unlink()  # sqlite3 creates it
            with _spinner("backing up (SQLite online backup)"):
                tool = _dump_sqlite(parsed, tmp)
            os.chmod(tmp, 0o600)
        else:
            with _spinner("backing up (pg_dump)"):
                tool = _dump_postgresql(parsed, tmp)
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    from parcelproof import __version__

    document: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "dump": out.name,
        "dialect": dialect,
        "dump_format": "sqlite-database" if dialect == "sqlite" else "pg_dump-custom",
        "revision": state.current,
        "code_head": state.head,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bytes": size,
        "sha256": digest,
        "tool": tool,
        "parcelproof_version": __version__,
    }
    _write_private(manifest, json.dumps(document, indent=2) + "\n")
    _echo(
        f"backed up {redacted_url(url)} (revision {state.current}) to {out}: {size:,} bytes, "
        f"sha256 {digest} in {time.monotonic() - started:.1f}s"
    )
    _echo(f"manifest: {manifest}")
    _echo("the keyring is not in the dump: keep PARCELPROOF_KEYRING backed up separately")


def _write_private(path: Path, text: str) -> None:
    from parcelproof.cli import _write_private as write_private

    write_private(path, text, force=True)  # the caller checked --force for dump and manifest


# --- restore --------------------------------------------------------------------------------


def read_manifest(dump: Path) -> dict[str, Any]:
    """The manifest beside ``dump``, checked against the dump (size and SHA-256)."""
    if not dump.is_file():
        raise BackupError(f"no dump file at {dump}")
    path = manifest_path(dump)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(
            f"no manifest {path} beside the dump: it is written by `parcelproof db backup` and "
            "holds the checksum the restore checks"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackupError(f"manifest {path} is unreadable ({type(e).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{path} is not a parcelproof backup manifest ({MANIFEST_FORMAT})")
    for key in ("dialect", "revision", "sha256"):
        if not isinstance(document.get(key), str):
            raise BackupError(f"manifest {path} lacks {key!r}")
    with _spinner("checking the dump's checksum"):
        digest = sha256_file(dump)
    if digest != document["sha256"]:
        raise BackupError(
            f"{dump} does not match its manifest (sha256 {digest[:16]}…, manifest says "
            f"{str(document['sha256'])[:16]}…): the dump is corrupt or was altered; refusing "
            "to restore it"
        )
    return document


def _postgresql_tables(engine: Engine) -> int:
    from sqlalchemy import bindparam, text

    with _db_errors(engine), engine.connect() as connection:
        count = connection.execute(
            text(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema NOT IN :system AND table_schema NOT LIKE 'pg_temp%'"
            ).bindparams(bindparam("system", value=list(_SYSTEM_SCHEMAS), expanding=True))
        ).scalar_one()
    return int(count)


def _sqlite_tables(path: Path) -> int:
    import sqlite3

    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise BackupError(f"the target {path} is not a readable SQLite database ({e})") from None
    return int(row[0])


def _restore_sqlite(dump: Path, target: Path) -> None:
    import sqlite3

    try:
        src = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
        try:
            check = src.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"{dump} fails SQLite's integrity check")
            target.parent.mkdir(parents=True, exist_ok=True)
            created = not target.exists()
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
            if created:
                os.chmod(target, 0o600)
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BackupError(f"SQLite restore from {dump} failed: {e}") from None


def _restore_postgresql(dump: Path, url: URL, *, replace: bool) -> None:
    pg_restore = _pg_tool("pg_restore")
    uri, env = _libpq(url)
    argv = [
        pg_restore,
        "--no-password",
        "--no-owner",  # objects belong to the restoring role
        "--no-privileges",  # grants are the target's: re-apply them (docs/operator-guide.md)
        "--exit-on-error",
        "--single-transaction",  # all or nothing
        f"--dbname={uri}",
    ]
    if replace:
        argv += ["--clean", "--if-exists"]
    _run_tool([*argv, str(dump)], env, "pg_restore")


@db_app.command("restore")
@_guarded
def db_restore(
    dump: Annotated[Path, typer.Argument(help="a dump written by `parcelproof db backup`")],
    yes: Annotated[
        bool, typer.Option("--yes", help="confirm: restore into the configured database")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="restore even into a database that holds tables (replaces them)"
        ),
    ] = False,
    env_file: EnvFileOption = None,
) -> None:
    """Restore a dump into the configured database, which must be empty (or --force).

    Checks the dump against its manifest's SHA-256 first. Stop the node before; start it
    with the same keyring afterwards (a database without its keyring is unreadable)."""
    from parcelproof.service.wiring import redacted_url
    from parcelproof.settings import ConfigurationError

    if not yes:
        raise ConfigurationError(
            "restore writes into the configured database: pass --yes to confirm"
        )
    url = _settings(env_file).database()
    manifest = read_manifest(dump)
    engine = _engine(url)  # a malformed or unsupported URL fails here, without echoing it
    try:
        dialect = engine.dialect.name
        if manifest["dialect"] != dialect:
            raise BackupError(
                f"{dump} is a {manifest['dialect']} dump, the target database is {dialect}"
            )
        parsed = engine.url
        if dialect == "sqlite":
            engine.dispose()
            tables = _sqlite_tables(_sqlite_file(parsed))
        else:
            _pg_tool("pg_restore")
            tables = _postgresql_tables(engine)
        if tables and not force:
            raise ConfigurationError(
                f"the target database {redacted_url(url)} is not empty ({tables} table(s)): "
                "restore into an empty database, or pass --force to replace what the dump holds"
            )
        started = time.monotonic()
        with _spinner(f"restoring {dump.name}"):
            if dialect == "sqlite":
                _restore_sqlite(dump, _sqlite_file(parsed))
            else:
                _restore_postgresql(dump, parsed, replace=bool(tables))
        state = schema_state(engine)
    finally:
        engine.dispose()
    _echo(
        f"restored {dump} (taken {manifest.get('created_at', '?')}) into {redacted_url(url)} "
        f"in {time.monotonic() - started:.1f}s"
    )
    _echo(state.describe())
    if state.ahead:
        raise typer.Exit(2)
