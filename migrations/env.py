"""Alembic environment: which database to migrate, and how.

The URL comes, first match wins, from the `url` config attribute (tests and `core.db.migrate`), from
`-x url=...` on the command line, or from the settings (DATABASE_URL / .env). Migrations run in batch mode
so the same scripts work on SQLite (which rebuilds a table to alter it) and PostgreSQL. The app's models
are deliberately not imported: each migration states the schema it creates.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from core.db.engine import create_database_engine
from core.settings import get_settings

config = context.config


def _database_url() -> str:
    attribute = config.attributes.get("url")
    if attribute:
        return str(attribute)
    command_line = context.get_x_argument(as_dictionary=True).get("url")
    if command_line:
        return command_line
    return get_settings().database_url


def run_migrations() -> None:
    if config.config_file_name is not None and config.attributes.get("configure_logging", True):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = create_database_engine(_database_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, render_as_batch=True, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
