"""How a failure while handling commands is treated: the three kinds arroyo keeps apart.

- The command itself can never be processed (it does not parse, or the database refuses its
  values for good): it goes to the DLQ and the worker moves on (:func:`refused_data` tells
  the database's case).
- Anything else is transient (the database or Kafka unreachable, a lock or serialisation
  conflict, a race with another worker): the batch is left uncommitted from that command on
  and retried after a pause; stored decisions make the retry safe.
- Backpressure is not a failure: the consumer waits for acknowledgements before it takes more.
"""

from sqlalchemy.exc import DBAPIError


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, through SQLAlchemy's wrapper or straight from
    asyncpg; None for anything else (SQLite has none)."""
    if isinstance(error, DBAPIError):
        error = error.orig if isinstance(error.orig, BaseException) else error
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else None


def refused_data(error: BaseException) -> bool:
    """PostgreSQL's class 22, data exceptions: the values themselves are refused (a string
    too long for its column, a character the encoding cannot hold), so no retry can succeed.
    Everything else (connections, locks, serialisation) may pass on a retry."""
    code = sqlstate(error)
    return code is not None and code.startswith("22")
