"""Statements a test or benchmark runs as a PostgreSQL server's administrator (creating and
dropping databases), from synchronous code as well as from a running event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

T = TypeVar("T")


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, event loop running or not."""

    async def main() -> T:
        return await make()

    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(main()))
        except BaseException as error:
            errors.append(error)

    # A thread of its own: a fixture may be set up while the test's loop is running.
    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def admin_engine(url: str, *, connect_timeout: float = 10) -> AsyncEngine:
    """Autocommit connections to ``url``, for the statements no transaction may hold."""
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": connect_timeout},
    )


async def execute_admin(url: str, statement: str) -> None:
    engine = admin_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()
