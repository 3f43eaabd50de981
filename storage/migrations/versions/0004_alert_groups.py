"""alert groups: one row per (group key, notifier), its members and its waiting notification

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:40:00

Runs on SQLite and PostgreSQL: portable SQLAlchemy types only (storage.migrate renders them).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('notifier', sa.String(length=100), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.Float(), nullable=False),
    sa.Column('last_at', sa.Float(), nullable=False),
    sa.Column('pending_id', sa.Integer(), nullable=True),
    sa.Column('members', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key', 'notifier', name='uq_alert_groups_key')
    )


def downgrade() -> None:
    op.drop_table('alert_groups')
