"""MESH: the messages the MESH channel sent, so a retried delivery follows the one MESH holds

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mesh_sent",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=True),
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", "recipient", name=op.f("pk_mesh_sent")),
    )
    with op.batch_alter_table("mesh_sent", schema=None) as batch_op:
        batch_op.create_index("ix_mesh_sent_event", ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mesh_sent", schema=None) as batch_op:
        batch_op.drop_index("ix_mesh_sent_event")
    op.drop_table("mesh_sent")
