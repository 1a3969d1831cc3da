"""SQL schema and engines: `core.db.tables` (typed SQLAlchemy models), `core.db.engine` (engines for
PostgreSQL and SQLite), `core.db.migrate` (apply the Alembic migrations from code).

The schema itself is created only by the migrations in `migrations/`; the models describe it for the store.
This package imports nothing on its own, so the migrations can use the engine helpers without the models.
"""
