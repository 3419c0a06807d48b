"""Restore drill: `parcelproof db backup/restore/current/upgrade` on SQLite and PostgreSQL.

A real node (shipments, signed events, anchored checkpoints, an anchored audit log) on one
in-process chain is backed up, its database destroyed and restored into a fresh one; a node
started on the restored database with the same keyring must decrypt, prove, verify its audit
log and keep anchoring. Plus the refusals: corrupted dumps, non-empty targets, old and newer
schema revisions, missing tools and bad URLs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from parcelproof.cli import app
from parcelproof.cli_ops import code_head, manifest_path
from parcelproof.core.errors import RootMismatchError
from parcelproof.service.audit import AuditAction
from parcelproof.service.lookup import lookup
from parcelproof.service.wiring import NodeRuntime
from parcelproof.store.db import make_engine, upgrade
from tests.ops.nodes import Courier, make_courier

runner = CliRunner()

PARCELS = {"PPOPS0001DE": "10115", "PPOPS0002NL": "1012"}


def _output(result: Result) -> str:
    """stdout and stderr, with rich's line wrapping undone."""
    return " ".join((result.output + (result.stderr or "")).split())


def _db(args: list[str], env_file: Path, **env: str) -> Result:
    return runner.invoke(app, ["db", *args, "--env-file", str(env_file)], env=env or None)


# --- databases --------------------------------------------------------------------------------


@dataclass
class Backend:
    """Makes fresh, empty databases of one dialect and destroys them."""

    name: str
    new: Callable[[], str]
    destroy: Callable[[str], None]


@contextmanager
def _postgresql(pg_url: str) -> Iterator[Backend]:
    admin = make_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new() -> str:
        name = f"pp_ops_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    def destroy(url: str) -> None:
        name = make_url(url).database
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        yield Backend("postgresql", new, destroy)
    finally:
        for name in made:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite(directory: Path) -> Backend:
    def new() -> str:
        return f"sqlite:///{directory / secrets.token_hex(4) / 'parcelproof.sqlite'}"

    def destroy(url: str) -> None:
        path = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return Backend("sqlite", new, destroy)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield _sqlite(tmp_path / "db")
        return
    with _postgresql(request.getfixturevalue("pg_url")) as made:
        yield made


def _env_file(directory: Path, url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{secrets.token_hex(4)}.env"
    path.write_text(f"PARCELPROOF_ENVIRONMENT=development\nPARCELPROOF_DATABASE_URL={url}\n")
    return path


# --- a courier on one chain -------------------------------------------------------------------


def _statuses(rt: NodeRuntime, parcel: str) -> list[str]:
    result = lookup([rt.node], rt.ledger, parcel, PARCELS[parcel])
    assert result.report is not None and result.report.ok, result.report
    assert result.bundle is not None
    return [str(t.fields["status"]) for t in result.timeline]


def _populate(c: Courier, rt: NodeRuntime) -> dict[str, dict[str, object]]:
    """Shipments, signed events, an anchored checkpoint and audit head, then one more event
    and audit entry that are not anchored yet. Returns every parcel's decrypted export."""
    for i, (parcel, postcode) in enumerate(PARCELS.items()):
        rt.node.create_shipment(
            parcel, {"recipient": f"Person {i}", "street": "Hauptstr."}, postcode
        )
        c.driver.record(rt.node, parcel, {"status": "picked_up", "place": "Berlin"}, c.now - 300)
        c.driver.record(rt.node, parcel, {"status": "departed", "place": "Hub"}, c.now - 200)
        rt.audit.record("cli:ops-test", AuditAction.PERSONAL_DATA_READ, f"shipment-{i}")
    anchored = rt.node.anchor()
    assert anchored is not None and anchored.size == 4
    assert rt.audit.anchor(rt.ledger, sender=rt.chain.account) is not None
    c.driver.record(rt.node, "PPOPS0001DE", {"status": "arrived", "place": "Depot"}, c.now - 100)
    rt.audit.record("cli:ops-test", AuditAction.EVIDENCE_READ, "shipment-0")
    return _exports(rt)


def _exports(rt: NodeRuntime) -> dict[str, dict[str, object]]:
    """Every parcel's decrypted export, without its time of export."""
    exports = {parcel: rt.node.export(parcel) for parcel in PARCELS}
    for export in exports.values():
        export.pop("exportedAt")
    assert "Person 0" in json.dumps(exports)  # decrypted, not sealed
    return exports


# --- the drill --------------------------------------------------------------------------------


def test_restore_drill_node_continues_on_the_restored_database(
    backend: Backend, tmp_path: Path
) -> None:
    c = make_courier()
    original = backend.new()
    rt = c.node(original)
    try:
        before = _populate(c, rt)
        assert _statuses(rt, "PPOPS0001DE") == ["picked_up", "departed", "arrived"]
        dump = tmp_path / "backups" / "node.dump"
        backed_up = _db(["backup", "--out", str(dump)], _env_file(tmp_path, original))
        assert backed_up.exit_code == 0, _output(backed_up)  # while the node runs
    finally:
        rt.close()

    manifest = json.loads(manifest_path(dump).read_text())
    assert manifest["dialect"] == backend.name and manifest["revision"] == code_head()
    assert manifest["bytes"] == dump.stat().st_size > 0
    for secret in (c.keyring.split("=", 1)[1], c.account_key[2:], c.shipment_key[2:]):
        assert secret not in manifest_path(dump).read_text()
    assert str(make_url(original).database) not in manifest_path(dump).read_text()
    assert dump.stat().st_mode & 0o077 == 0  # the dump holds sealed personal data

    backend.destroy(original)  # the original is gone
    restored = backend.new()
    result = _db(["restore", str(dump), "--yes"], _env_file(tmp_path, restored))
    assert result.exit_code == 0, _output(result)
    assert f"database revision {code_head()}: up to date" in _output(result)

    rt2 = c.node(restored)  # the same keyring, keys and chain
    try:
        # The same events decrypt.
        assert _exports(rt2) == before
        # A customer lookup returns a bundle that verifies against the chain.
        assert _statuses(rt2, "PPOPS0002NL") == ["picked_up", "departed"]
        # The audit log verifies against the heads anchored before the backup.
        report = rt2.audit.verify_against(rt2.ledger.audit_heads(c.courier_id))
        assert report.ok and report.size == 3 and report.unanchored == 1, report.problems
        # The log continues on chain: the event accepted before the backup and a new one.
        c.driver.record(rt2.node, "PPOPS0001DE", {"status": "out_for_delivery"}, c.now - 50)
        anchored = rt2.node.anchor()
        assert anchored is not None and anchored.size == 6
        latest = c.ledger.latest_checkpoint(c.courier_id)
        assert latest is not None and (latest.size, latest.root) == (6, anchored.root)
        assert _statuses(rt2, "PPOPS0001DE") == [
            "picked_up",
            "departed",
            "arrived",
            "out_for_delivery",
        ]
        rt2.audit.record("cli:ops-test", AuditAction.EVIDENCE_READ, "shipment-1")
        assert rt2.audit.anchor(c.ledger, sender=rt2.chain.account) is not None
        report = rt2.audit.verify_against(c.ledger.audit_heads(c.courier_id))
        assert report.ok and report.size == 4 and report.unanchored == 0, report.problems
    finally:
        rt2.close()


def test_a_stale_restore_is_caught_by_the_chain(backend: Backend, tmp_path: Path) -> None:
    """A backup older than the latest anchored checkpoint cannot pass for the log: the node
    refuses to anchor over it (the operator must recover the lost events, see the guide)."""
    c = make_courier()
    original = backend.new()
    rt = c.node(original)
    try:
        _populate(c, rt)
        dump = tmp_path / "stale.dump"
        assert _db(["backup", "--out", str(dump)], _env_file(tmp_path, original)).exit_code == 0
        c.driver.record(rt.node, "PPOPS0002NL", {"status": "arrived"}, c.now - 100)
        assert rt.node.anchor() is not None  # size 6, anchored after the backup: then lost
    finally:
        rt.close()
    restored = backend.new()
    assert _db(["restore", str(dump), "--yes"], _env_file(tmp_path, restored)).exit_code == 0
    rt2 = c.node(restored)
    try:
        c.driver.record(rt2.node, "PPOPS0002NL", {"status": "delivered"}, c.now - 10)
        with pytest.raises(RootMismatchError):
            rt2.node.anchor()
        latest = c.ledger.latest_checkpoint(c.courier_id)
        assert latest is not None and latest.size == 6  # the chain kept the truth
    finally:
        rt2.close()


# --- refusals ---------------------------------------------------------------------------------


def _backed_up(backend: Backend, tmp_path: Path) -> tuple[str, Path]:
    """A migrated database holding one row, and a dump of it."""
    url = backend.new()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    dump = tmp_path / "plain.dump"
    made = _db(["backup", "--out", str(dump)], _env_file(tmp_path, url))
    assert made.exit_code == 0, _output(made)
    return url, dump


def test_corrupted_dump_is_refused_with_one_line(backend: Backend, tmp_path: Path) -> None:
    _, dump = _backed_up(backend, tmp_path)
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    target = backend.new()
    refused = _db(["restore", str(dump), "--yes"], _env_file(tmp_path, target))
    assert refused.exit_code == 2
    out = _output(refused)
    assert "does not match its manifest" in out and "refusing to restore" in out
    assert "Traceback" not in out and len((refused.stderr or "").strip().splitlines()) == 1
    # Nothing was written into the target.
    assert _db(["current"], _env_file(tmp_path, target)).exit_code == 1

    manifest_path(dump).unlink()
    missing = _db(["restore", str(dump), "--yes"], _env_file(tmp_path, target))
    assert missing.exit_code == 2 and "no manifest" in _output(missing)


def test_restore_into_a_non_empty_database_needs_force(backend: Backend, tmp_path: Path) -> None:
    url, dump = _backed_up(backend, tmp_path)
    env = _env_file(tmp_path, url)  # the original, still holding its tables
    unconfirmed = _db(["restore", str(dump)], env)
    assert unconfirmed.exit_code == 2 and "--yes" in _output(unconfirmed)
    refused = _db(["restore", str(dump), "--yes"], env)
    assert refused.exit_code == 2
    assert "is not empty" in _output(refused) and "--force" in _output(refused)
    forced = _db(["restore", str(dump), "--yes", "--force"], env)
    assert forced.exit_code == 0, _output(forced)
    assert _db(["current"], env).exit_code == 0


def test_current_on_an_old_revision_then_upgrade(backend: Backend, tmp_path: Path) -> None:
    url = backend.new()
    env = _env_file(tmp_path, url)
    empty = _db(["current"], env)
    assert empty.exit_code == 1, _output(empty)
    engine = make_engine(url)
    try:
        upgrade(engine, "0002")
        old = _db(["current"], env)
        assert old.exit_code == 1, _output(old)
        assert f"revision 0002 is behind the code's head {code_head()}" in _output(old)
        assert "parcelproof db upgrade" in _output(old)

        upgraded = _db(["upgrade"], env)
        assert upgraded.exit_code == 0, _output(upgraded)
        assert f"migrated from 0002 to {code_head()}" in _output(upgraded)
        assert _db(["current"], env).exit_code == 0
        again = _db(["upgrade"], env)
        assert again.exit_code == 0 and "nothing to do" in _output(again)

        with engine.begin() as connection:  # as if a newer release had migrated it
            connection.execute(text("UPDATE alembic_version SET version_num = 'z9999'"))
        newer = _db(["current"], env)
        assert newer.exit_code == 2 and "unknown to this code" in _output(newer)
        refused = _db(["upgrade"], env)
        assert refused.exit_code == 2, _output(refused)
        assert "refusing to migrate" in _output(refused) and "Traceback" not in _output(refused)
    finally:
        engine.dispose()


def test_usage_errors_are_one_line_exit_2(tmp_path: Path, pg_url: str) -> None:
    bad = _db(["current"], _env_file(tmp_path, "nonsense://user:hunter2@host/db"))
    assert bad.exit_code == 2 and "hunter2" not in _output(bad)
    assert "Traceback" not in _output(bad)

    no_tool = _db(
        ["backup", "--out", str(tmp_path / "x.dump")], _env_file(tmp_path, pg_url), PATH=""
    )
    assert no_tool.exit_code == 2, _output(no_tool)
    assert "pg_dump is not installed" in _output(no_tool)
    assert not (tmp_path / "x.dump").exists()

    not_a_dump = tmp_path / "nothing.dump"
    gone = _db(["restore", str(not_a_dump), "--yes"], _env_file(tmp_path, pg_url))
    assert gone.exit_code == 2 and "no dump file" in _output(gone)

    unreachable = "postgresql://someone:hunter2@127.0.0.1:1/none"
    down = _db(["backup", "--out", str(tmp_path / "y.dump")], _env_file(tmp_path, unreachable))
    assert down.exit_code == 2 and "unreachable" in _output(down)
    assert "hunter2" not in _output(down)
