"""How hard a SQLite commit waits for the disk is a setting of the connection, and only the
two levels whose risks the worker's settings describe are accepted."""

from pathlib import Path

import pytest

from storage.engine import open_sqlite

# PRAGMA synchronous answers the level as a number: 1 NORMAL, 2 FULL.
LEVELS = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_a_connection_syncs_as_asked(tmp_path: Path, level: str) -> None:
    connection = open_sqlite(tmp_path / "store.db", synchronous=level)
    try:
        assert connection.execute("PRAGMA synchronous").fetchone() == (LEVELS[level],)
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    finally:
        connection.close()


def test_full_is_the_default_outside_the_hot_path(tmp_path: Path) -> None:
    connection = open_sqlite(tmp_path / "store.db")
    try:
        assert connection.execute("PRAGMA synchronous").fetchone() == (LEVELS["FULL"],)
    finally:
        connection.close()


@pytest.mark.parametrize("level", ["OFF", "EXTRA", "normal; DROP TABLE x"])
def test_other_levels_are_refused(tmp_path: Path, level: str) -> None:
    with pytest.raises(ValueError, match="synchronous must be one of"):
        open_sqlite(tmp_path / "store.db", synchronous=level)
