"""Schema migrations with Alembic: the check at start-up and ``quartchat db upgrade``.

The revisions live in ``migrations/versions/`` inside the package and Alembic's config is
built here, so nothing but the package is needed at run time.  The functions take a
connection inside a transaction; those that migrate lock the database first, so processes
that start at once on an empty database migrate it once and the others find it at head.

A new revision: add ``migrations/versions/NNNN_what.py`` whose ``down_revision`` is the
previous head, and change schema.py to match (tests/test_migrations.py compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))

# Revision 0001 is the schema quartchat created before it had migrations: such a database
# has these tables and columns and no alembic_version.
BASELINE = "0001"
BASELINE_TABLES = {
    "rooms": {"name", "last_id"},
    "messages": {"room", "id", "author", "text", "created_at", "client_id"},
}

VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = 0x71636861745F6462  # pg_advisory_xact_lock key: "qchat_db" in ASCII
UPGRADE_HINT = "run `quartchat db upgrade`"


class SchemaMismatch(Exception):
    """The database's schema is not the one this version of quartchat works with."""


@dataclass(frozen=True, slots=True)
class Revisions:
    current: str | None  # None: the database has no revision (empty, or not migrated yet)
    head: str


def alembic_config(connection: Connection) -> Config:
    """Alembic's config, with ``connection`` for migrations/env.py to run on."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def prepare(connection: Connection) -> None:
    """At start-up: migrate an empty database to head; refuse any other not at head.

    Raises :class:`SchemaMismatch` with what to do.
    """
    _lock(connection)
    found = revisions(connection)
    if found.current == found.head:
        return
    where = _where(connection)
    if found.current is not None:
        raise SchemaMismatch(
            f"{where}: the schema is at revision {found.current}, this version of "
            f"quartchat needs {found.head}: {UPGRADE_HINT}"
        )
    tables = _tables(connection)
    if tables:
        raise SchemaMismatch(
            f"{where}: the database has tables ({', '.join(sorted(tables))}) but no schema "
            f"revision, so quartchat does not migrate it by itself: {UPGRADE_HINT}"
        )
    command.upgrade(alembic_config(connection), "head")


def upgrade(connection: Connection) -> Revisions:
    """Migrate to head; return the revisions before.

    A database made before quartchat had migrations is first stamped with the baseline.
    Raises :class:`SchemaMismatch` when the database is at a revision unknown here, or has
    tables by quartchat's names that are not quartchat's.
    """
    _lock(connection)
    before = revisions(connection)
    config = alembic_config(connection)
    if before.current is None and _tables(connection) & BASELINE_TABLES.keys():
        _check_baseline(connection)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    return before


def revisions(connection: Connection) -> Revisions:
    """The database's revision and this version's head.  Raises :class:`SchemaMismatch`
    when the database is at a revision unknown here."""
    script = ScriptDirectory.from_config(alembic_config(connection))
    current = MigrationContext.configure(connection).get_current_revision()
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaMismatch(
            f"{_where(connection)}: the schema is at revision {current}, which this version "
            "of quartchat does not know (a newer version migrated it): run that version or "
            "a newer one"
        )
    head = script.get_current_head()
    assert head is not None, "the package has no migrations"
    return Revisions(current, head)


def _lock(connection: Connection) -> None:
    """Hold the database's write lock until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # pysqlite opens no transaction before a SELECT or DDL; take the lock explicitly.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {VERSION_TABLE}


def _check_baseline(connection: Connection) -> None:
    """Refuse to adopt tables that are not exactly those of the baseline revision."""
    inspector = inspect(connection)
    found = set(inspector.get_table_names())
    for table, columns in BASELINE_TABLES.items():
        if table not in found:
            problem = "is missing"
        else:
            have = {column["name"] for column in inspector.get_columns(table)}
            if have == columns:
                continue
            problem = f"has the columns {sorted(have)}, not quartchat's {sorted(columns)}"
        raise SchemaMismatch(
            f"{_where(connection)}: the database has no schema revision and its table "
            f"{table} {problem}, so it was not made by quartchat: not migrating it"
        )


def _where(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=True)
