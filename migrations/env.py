"""Alembic environment for aegra.

Run through ``aegra.adapters.postgres.migrate``, which hands us an open connection in
``config.attributes["connection"]`` already holding the migration advisory lock inside its
transaction. Standalone use (``alembic -x url=...``) is supported for debugging.
"""

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
