"""count_journal: batches whose outcomes wait in a writer's tally, to be counted again if it dies

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:00:00

Under load the writer process folds bucket increments in memory and writes them a few times a
second (storage.tally): a row here per batch whose outcomes are not in the buckets yet, deleted
when they are. A fold too large for one short transaction is written in chunks: its batches
name it (flush_id), and count_flushes says how many of its rows are written. A writer that
starts counts the rows of dead writers again from the predictions they name, skipping what a
flush had written (storage.journal.recover).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "count_journal",
        sa.Column("batch_id", sa.String(length=40), primary_key=True),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("flush_id", sa.String(length=40), nullable=True),
    )
    op.create_table(
        "count_flushes",
        sa.Column("flush_id", sa.String(length=40), primary_key=True),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("count_flushes")
    op.drop_table("count_journal")
