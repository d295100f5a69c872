"""A person's limits as stored (``person_limits``), read and written by the commands off the
hot path: registration, opening a device challenge, adding a key. (Signature attempts read
and write them in their batch's statements: :mod:`worker.attempts`.)"""

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from worker.state import PersonChange, PersonState
from worker.tables import PersonLimitRow


async def person_state(session: AsyncSession, client_id: str, person_id: str) -> PersonState | None:
    row = await session.get(PersonLimitRow, (client_id, person_id))
    if row is None:
        return None
    return PersonState(
        row.consecutive_failures, row.locked_until, row.locked_by, row.lock_event_json
    )


async def store_person(session: AsyncSession, change: PersonChange) -> None:
    """Insert or update the person's row (one statement: two writers cannot both insert)."""
    values = {
        "client_id": change.client_id,
        "person_id": change.person_id,
        "consecutive_failures": change.state.consecutive_failures,
        "locked_until": change.state.locked_until,
        "locked_by": change.state.locked_by,
        "lock_event_json": change.state.lock_event_json,
    }
    updated = {key: values[key] for key in list(values)[2:]}
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(PersonLimitRow).values(**values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["client_id", "person_id"], set_=updated)
    )
