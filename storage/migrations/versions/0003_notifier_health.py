"""notifier health: each notifier's recent sends (is it failing?)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:20:00

Runs on SQLite and PostgreSQL: portable SQLAlchemy types only (storage.migrate renders them).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notifier_health',
    sa.Column('notifier', sa.String(length=100), nullable=False),
    sa.Column('permanent_streak', sa.Integer(), nullable=False),
    sa.Column('failing_since', sa.Float(), nullable=True),
    sa.Column('last_attempt_at', sa.Float(), nullable=True),
    sa.Column('last_success_at', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('notifier')
    )


def downgrade() -> None:
    op.drop_table('notifier_health')
