"""reconcile checks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:51:35.220840

Runs on SQLite and PostgreSQL: portable SQLAlchemy types only (storage.migrate renders them).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reconcile_checks',
    sa.Column('prediction_id', sa.String(length=300), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('checked_at', sa.Float(), nullable=False),
    sa.Column('next_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('prediction_id')
    )


def downgrade() -> None:
    op.drop_table('reconcile_checks')
