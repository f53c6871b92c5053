"""Alembic's environment: runs the revisions on the connection that quartchat hands over.

quartchat builds Alembic's config in code (see :mod:`quartchat.store.migrate`) and passes
a connection already inside a transaction, so there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context

from quartchat.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("quartchat's migrations run through `quartchat db upgrade`")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
