"""a prediction's events listed on its row; only the rest indexed by prediction id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 15:00:00

`ix_events_prediction_id` put every event in a leaf of its own (prediction ids are random),
a fifth of the pages a webhook wrote (bench/README.md, tenth session). The writer now lists an
event's id on its prediction's row, which every event rewrites anyway (`predictions.event_ids`,
`events.listed`); events left off the list (a prediction's past storage.batch.LISTED_EVENTS,
and every event stored before this revision) stay reachable through a partial index.
`predictions.signed` replaces the reconciler's look into events for a signed one.

The new columns have constant defaults, so neither database rewrites the events table; the
partial index is built from the old rows once, and `signed` is set from the events.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("listed", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.add_column("predictions", sa.Column("event_ids", sa.Text(), nullable=True))
    op.add_column("predictions", sa.Column("signed", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    # Through the old index, before it goes.
    op.execute(
        "UPDATE predictions SET signed = true WHERE EXISTS (SELECT 1 FROM events "
        "WHERE events.prediction_id = predictions.id AND events.source = 'signed')"
    )
    op.create_index("ix_events_unlisted_prediction", "events", ["prediction_id"],
                    sqlite_where=sa.text("listed = 0"), postgresql_where=sa.text("NOT listed"))
    op.drop_index("ix_events_prediction_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_prediction_id", "events", ["prediction_id"])
    op.drop_index("ix_events_unlisted_prediction", table_name="events")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("signed")
        batch.drop_column("event_ids")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("listed")
