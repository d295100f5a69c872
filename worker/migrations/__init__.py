"""The service store's Alembic history (tables of :mod:`worker.tables`).

A package so that it ships in the wheel with the code it migrates; see
:mod:`worker.database` for how it is found and run, and ``python -m worker migrate``.
"""
