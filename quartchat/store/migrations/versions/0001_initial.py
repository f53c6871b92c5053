"""The first schema: room id counters and messages, with the resend index.

Exactly what ``metadata.create_all`` made before quartchat had migrations, so such a
database is adopted by stamping it with this revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here: a revision must not change when names.py does.
ROOM_MAX = 64
USER_MAX = 32


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("name", sa.String(ROOM_MAX), primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("room", sa.String(ROOM_MAX), primary_key=True),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("author", sa.String(USER_MAX), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_messages_resend", "messages", ["client_id", "room", "author"], unique=True)


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("rooms")
