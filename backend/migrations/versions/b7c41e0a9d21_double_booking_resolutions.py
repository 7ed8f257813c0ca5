"""double bookings resolved by a hub-signed decline

Staff settle a double booking by declining one of its reservations with a
hub-signed change (backend/resolutions.py); the row keeps who did it, when,
which reservation and the change id, as conflicts already do.

Revision ID: b7c41e0a9d21
Revises: 0e7d9b5665d6
Create Date: 2026-12-01 07:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b7c41e0a9d21"
down_revision = "0e7d9b5665d6"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("double_bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("resolution_change_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("declined", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("double_bookings", schema=None) as batch_op:
        batch_op.drop_column("declined")
        batch_op.drop_column("resolution_change_id")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("resolved_at")
