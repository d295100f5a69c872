"""Alembic machinery shared by every store: histories, upgrades, the start-up check.

The schema belongs to Alembic. Each store has its own history, shipped inside its package
(``worker/migrations``, ``audit/migrations``) and found from the package itself rather than
from the working directory, so an installed wheel migrates exactly as the repository does.
Production runs the store's ``migrate`` command (a Job) before its processes start; a
process only checks that its database is at the head revision, unless auto-migration
(development, tests) lets it upgrade the database itself.
"""

import asyncio
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.engine import create_engine, prepare_sqlite_file

# Migration histories


@dataclass(frozen=True)
class MigrationHistory:
    """One store's Alembic history and what its messages tell an operator to do."""

    name: str  # "worker": "the worker database is ..."
    package: str  # the import package holding env.py and versions/
    metadata: MetaData  # the models the head revision must match
    # Each history records its revision in a table of its own: pointed at one database by
    # mistake, the two histories would otherwise read each other's revision.
    version_table: str
    # The key of the advisory lock that lets one migrator at a time into a PostgreSQL
    # database; any fixed number, the same in every process.
    lock_key: int
    command: str  # what the operator runs to migrate
    auto_migrate_variable: str  # the setting that migrates at start-up instead

    def config(self) -> Config:
        """Alembic's configuration, from the package alone: no ``alembic.ini``, no cwd."""
        config = Config()
        location = str(importlib.resources.files(self.package))
        # Config values go through ConfigParser interpolation: a '%' in the path must not.
        config.set_main_option("script_location", location.replace("%", "%%"))
        return config

    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())


class SchemaNotCurrent(RuntimeError):
    """The database is not at the revision this release's code was written for."""


def _current(connection: Connection, history: MigrationHistory) -> tuple[str, ...]:
    opts = {"version_table": history.version_table}
    return MigrationContext.configure(connection, opts=opts).get_current_heads()


async def current_revisions(engine: AsyncEngine, history: MigrationHistory) -> tuple[str, ...]:
    """The revisions the database is at: ``()`` for a database never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current, history)


def _set_foreign_keys(connection: Connection, enabled: bool) -> None:
    # Straight on the DBAPI connection: through SQLAlchemy it would begin a transaction,
    # in which SQLite ignores this pragma.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    finally:
        cursor.close()


async def _run_locked(
    engine: AsyncEngine, history: MigrationHistory, operation: Callable[[Connection], None]
) -> None:
    """Run ``operation`` in one transaction that no other migrator of ``history`` shares.

    Processes starting together (auto_migrate) would otherwise all find the database behind
    and all run the same DDL. On PostgreSQL the advisory lock is taken first thing in the
    transaction and released by its end, so a migrator that dies never leaves it held; its
    DDL is transactional, so the next one sees all of it or none. On SQLite the transaction
    begins with BEGIN IMMEDIATE (see create_engine), which holds the file's write lock.
    Either way the revision is read under the lock: whoever comes second finds the work
    done and does nothing.
    """
    await prepare_sqlite_file(engine)
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite's batch migrations copy a table and drop the original: with foreign
            # keys enforced, dropping a referenced table fails (or cascades). Off for the
            # migration only, and before BEGIN, since SQLite ignores it in a transaction.
            await connection.run_sync(_set_foreign_keys, False)
        try:
            async with connection.begin():
                if connection.dialect.name == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": history.lock_key}
                    )
                await connection.run_sync(operation)
        finally:
            if sqlite:
                await _restore_foreign_keys(connection)


async def _restore_foreign_keys(connection: AsyncConnection) -> None:
    # The connection goes back to the pool: the next user expects foreign keys enforced.
    try:
        await connection.run_sync(_set_foreign_keys, True)
    except Exception:
        await connection.invalidate()
        raise


def _alembic(
    history: MigrationHistory, action: Callable[[Config], None]
) -> Callable[[Connection], None]:
    """``action`` run on a connection we opened, handed to env.py through the config."""

    def run(connection: Connection) -> None:
        config = history.config()
        config.attributes["connection"] = connection
        action(config)

    return run


async def upgrade(engine: AsyncEngine, history: MigrationHistory, revision: str = "head") -> None:
    await _run_locked(
        engine, history, _alembic(history, lambda config: command.upgrade(config, revision))
    )


async def downgrade(engine: AsyncEngine, history: MigrationHistory, revision: str) -> None:
    await _run_locked(
        engine, history, _alembic(history, lambda config: command.downgrade(config, revision))
    )


def _describe(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "none"


async def check_at_head(engine: AsyncEngine, history: MigrationHistory) -> None:
    """Raise :class:`SchemaNotCurrent`, naming the command to run, unless at the head."""
    await prepare_sqlite_file(engine)
    current = await current_revisions(engine, history)
    script = history.script()
    heads = script.get_heads()
    if set(current) == set(heads):
        return
    at, head = _describe(current), _describe(tuple(heads))
    try:
        for revision in current:
            script.get_revision(revision)
    except CommandError:
        raise SchemaNotCurrent(
            f"the {history.name} database is at revision {at}, which this release does not "
            f"know (a newer release migrated it?); this release needs revision {head}"
        ) from None
    where = (
        f"is at revision {at}, not at the head revision {head}"
        if current
        else f"has not been migrated (no revision; this release needs {head})"
    )
    raise SchemaNotCurrent(
        f"the {history.name} database {where}: run `{history.command}` first (or, for "
        f"development only, set {history.auto_migrate_variable}=true to migrate at start-up)"
    )


async def prepare_database(
    engine: AsyncEngine, history: MigrationHistory, *, migrate: bool
) -> None:
    """At start-up: upgrade to the head if ``migrate``, else refuse a database not there."""
    if migrate:
        await upgrade(engine, history)
    else:
        await check_at_head(engine, history)


async def migrate_command(
    database_url: str,
    history: MigrationHistory,
    *,
    revision: str = "head",
    downgrade_to: str | None = None,
) -> int:
    """``python -m <package> migrate``: upgrade (or downgrade), printing the revisions."""
    engine = create_engine(database_url)
    try:
        # Never the password, should the URL carry one.
        print(f"{history.name} database: {engine.url.render_as_string(hide_password=True)}")
        heads = set(history.script().get_heads())

        async def report(when: str) -> None:
            current = await current_revisions(engine, history)
            suffix = " (head)" if current and set(current) == heads else ""
            print(f"revision {when}: {_describe(current)}{suffix}", flush=True)

        await report("before")
        if downgrade_to is None:
            await upgrade(engine, history, revision)
        else:
            await downgrade(engine, history, downgrade_to)
        await report("after")
    finally:
        await engine.dispose()
    return 0


def run_migrations_env(history: MigrationHistory, default_url: Callable[[], str]) -> None:
    """The body of each history's env.py.

    Run by :func:`upgrade` and :func:`downgrade`, it migrates the connection they hand over,
    already inside the locked transaction. Run by the ``alembic`` command line (``alembic -c
    worker/migrations/alembic.ini revision --autogenerate``, say), it opens its own async
    engine on ``sqlalchemy.url`` if the ini file sets one, else on the settings' URL (read
    from the environment as the process would), and takes the same lock.
    """
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection, history)
        return
    url = context.config.get_main_option("sqlalchemy.url") or default_url()
    if context.is_offline_mode():
        # ``alembic upgrade --sql``: the SQL a DBA would review, printed rather than run.
        context.configure(
            url=url,
            target_metadata=history.metadata,
            version_table=history.version_table,
            literal_binds=True,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_with_own_engine(url, history))


async def _run_with_own_engine(url: str, history: MigrationHistory) -> None:
    engine = create_engine(url)
    try:
        await _run_locked(
            engine, history, lambda connection: _configure_and_run(connection, history)
        )
    finally:
        await engine.dispose()


def _configure_and_run(connection: Connection, history: MigrationHistory) -> None:
    context.configure(
        connection=connection,
        target_metadata=history.metadata,
        version_table=history.version_table,
        # SQLite alters little in place: autogenerate writes its changes as batch operations
        # (copy the table, swap it in).
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # Inside the transaction _run_locked opened: Alembic joins it and leaves the commit to it.
    with context.begin_transaction():
        context.run_migrations()
