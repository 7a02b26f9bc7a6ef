"""``credo server``: runbooks, worker groups and jobs over HTTP (FastAPI), state in SQL.

Storage is SQLAlchemy 2 on SQLite (the embedded default, a file in the data dir) or PostgreSQL,
with the schema managed by Alembic migrations applied at start.
"""
