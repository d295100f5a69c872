"""The audit database's two PostgreSQL roles: who migrates it, and who appends to it.

The migration role owns the schema: it runs ``python -m audit migrate`` and nothing else. The
runtime role is what the consumer connects as; the migrate step grants it exactly what
appending needs, and revokes anything else it had on the trail's tables:

- ``audit_records``: SELECT, INSERT (the chain: read to deduplicate and verify, appended to);
- ``audit_chain_head``: SELECT, UPDATE of ``seq`` and ``record_hash`` (the head row is
  locked and moved by every append);
- ``audit_anomalies``: SELECT, INSERT, and USAGE of its id sequence;
- ``audit_alembic_version``: SELECT (the start-up check that the schema is current).

Only an owner may drop or disable a trigger, and no UPDATE, DELETE or TRUNCATE is granted on
the records: a compromised consumer, or anyone holding its credentials, can add records but
not rewrite the ones stored (the triggers stand behind the grants, for the owner). The
checkpoints catch what the owner could still do.
"""

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

TABLES = ("audit_records", "audit_chain_head", "audit_anomalies", "audit_alembic_version")
SEQUENCES = ("audit_anomalies_id_seq",)
GRANTS = (
    "GRANT SELECT, INSERT ON audit_records TO {role}",
    "GRANT SELECT, UPDATE (seq, record_hash) ON audit_chain_head TO {role}",
    "GRANT SELECT, INSERT ON audit_anomalies TO {role}",
    "GRANT USAGE ON SEQUENCE audit_anomalies_id_seq TO {role}",
    "GRANT SELECT ON audit_alembic_version TO {role}",
)


class RoleSetupError(ValueError):
    """The runtime role cannot be granted its rights as asked."""


def runtime_grants(role: str, schema: str, database: str) -> list[str]:
    """The statements that leave ``role`` with exactly the runtime rights, in order."""
    if not _ROLE_NAME.match(role):
        # Interpolated into SQL (a role is an identifier, not a bind parameter): only plain
        # lower-case names, quoted besides.
        raise RoleSetupError(f"AUDIT_RUNTIME_ROLE must match {_ROLE_NAME.pattern}")
    quoted = f'"{role}"'
    # Revoking a table's privileges revokes its column privileges too: this starts from
    # nothing, so a right granted by hand earlier does not linger.
    revokes = [f"REVOKE ALL ON {', '.join(TABLES)} FROM {quoted}"]
    revokes += [f"REVOKE ALL ON SEQUENCE {name} FROM {quoted}" for name in SEQUENCES]
    # CONNECT, for a database whose owner revoked it from PUBLIC (as it should); USAGE on
    # the schema lets the role see the tables (PUBLIC has it on `public` by default, not on
    # a schema of the audit's own).
    reach = [
        f"GRANT CONNECT ON DATABASE {_identifier(database)} TO {quoted}",
        f"GRANT USAGE ON SCHEMA {_identifier(schema)} TO {quoted}",
    ]
    return [*revokes, *reach, *(grant.format(role=quoted) for grant in GRANTS)]


def _identifier(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


async def grant_runtime_role(database_url: str, role: str) -> list[str]:
    """Grant ``role`` the runtime rights on the audit database (PostgreSQL only), as the
    schema's owner; returns the statements run. The tables must exist: run it after the
    migration."""
    engine = create_engine(database_url)
    try:
        return await _grant(engine, role)
    finally:
        await engine.dispose()


async def _grant(engine: AsyncEngine, role: str) -> list[str]:
    if engine.dialect.name != "postgresql":
        raise RoleSetupError("AUDIT_RUNTIME_ROLE is for PostgreSQL: SQLite has no roles")
    async with engine.begin() as connection:
        names = (
            await connection.execute(text("SELECT current_schema(), current_database()"))
        ).one()
        statements = runtime_grants(role, str(names[0]), str(names[1]))
        for statement in statements:
            await connection.execute(text(statement))
    return statements


async def connected_as_owner(engine: AsyncEngine) -> bool:
    """Whether ``engine`` connects as the role owning ``audit_records`` (PostgreSQL): such a
    consumer could drop the triggers and rewrite the trail itself."""
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as connection:
        owner = await connection.scalar(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_records'")
        )
        return bool(owner == await connection.scalar(text("SELECT current_user")))
