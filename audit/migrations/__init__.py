"""The audit trail's Alembic history (tables of :mod:`audit.tables`, their triggers).

Independent of the service store's history (``worker/migrations``): another database,
another team. A package so that it ships in the wheel; see :mod:`audit.database`.
"""
