"""wait breaches: referrals that waited at a Task status longer than their limit

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wait_breaches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_limit", sa.String(length=64), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_to", sa.String(length=128), nullable=True),
        sa.Column("escalation_event_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wait_breaches")),
        sa.UniqueConstraint("task_id", "since", name="uq_wait_breach_task_since"),
    )
    with op.batch_alter_table("wait_breaches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wait_breaches_cleared_at"), ["cleared_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_wait_breaches_referral_id"), ["referral_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wait_breaches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wait_breaches_referral_id"))
        batch_op.drop_index(batch_op.f("ix_wait_breaches_cleared_at"))
    op.drop_table("wait_breaches")
