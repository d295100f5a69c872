"""Test fixtures' view of the stores: the two backends a database test runs on."""

from __future__ import annotations

import pytest

# The parameters a database fixture takes to run its tests on both stores.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def postgres_server(request: pytest.FixtureRequest) -> str | None:
    """For a fixture with ``params=BACKENDS``: the server URL (started on first use), or None
    for SQLite. Call it from a synchronous fixture: starting the server blocks."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None
