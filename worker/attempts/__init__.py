"""Signature attempts, the hot path: decided a run at a time in one store transaction
(:mod:`.store`, on SQLite :mod:`.sqlite`, on PostgreSQL :mod:`.postgres`) and announced
together (:mod:`.runs`). The rules themselves are :mod:`worker.decisions.attempts`."""
