"""What every store of the product shares: engines (SQLite and PostgreSQL, tuned alike), the
Alembic machinery, and column types. Each process package keeps its own tables and history;
none imports another's."""
