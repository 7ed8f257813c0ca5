"""web view: record summary columns and indexes, web sessions

The web view filters, sorts and pages merged records on indexed copies of
their current title and status (and a search text), not on JSON; web logins
keep their server-side sessions in ``web_sessions``.

Revision ID: 0e7d9b5665d6
Revises: faa430c8303d
Create Date: 2026-12-01 06:56:43.978657

"""

import json

import sqlalchemy as sa
from alembic import op

from backend.records import summary

# revision identifiers, used by Alembic.
revision = "0e7d9b5665d6"
down_revision = "faa430c8303d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_last_seen_at"), ["last_seen_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("status", sa.String(length=32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("search", sa.Text(), nullable=False, server_default=""))

    # backfill the copies from each record's current values
    bind = op.get_bind()
    records = sa.table(
        "records",
        sa.column("record_id", sa.String),
        sa.column("collection", sa.String),
        sa.column("values", sa.JSON),
        sa.column("title", sa.String),
        sa.column("status", sa.String),
        sa.column("search", sa.Text),
    )
    rows = bind.execute(sa.select(records.c.record_id, records.c.collection, records.c["values"])).all()
    for record_id, collection, values in rows:
        if isinstance(values, str):
            values = json.loads(values)
        title, status, search = summary(collection, values or {})
        bind.execute(
            records.update().where(records.c.record_id == record_id).values(title=title, status=status, search=search)
        )

    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.alter_column("title", server_default=None)
        batch_op.alter_column("status", server_default=None)
        batch_op.alter_column("search", server_default=None)
        batch_op.create_index(batch_op.f("ix_records_status"), ["status"], unique=False)
        batch_op.create_index("ix_records_title", ["title", "record_id"], unique=False)
        batch_op.create_index("ix_records_updated", ["updated_at", "record_id"], unique=False)


def downgrade():
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_updated")
        batch_op.drop_index("ix_records_title")
        batch_op.drop_index(batch_op.f("ix_records_status"))
        batch_op.drop_column("search")
        batch_op.drop_column("status")
        batch_op.drop_column("title")

    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_last_seen_at"))

    op.drop_table("web_sessions")
