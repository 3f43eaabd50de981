"""bucket tables WITHOUT ROWID on SQLite: the primary key is the table, one B-tree less per row

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00

Every terminal webhook upserts some twenty bucket rows. As rowid tables, each upsert wrote the
table's B-tree and its primary key's automatic index; without a rowid the rows live in the
key's B-tree (https://www.sqlite.org/withoutrowid.html): the writer process's CPU per event
fell 7-17% (bench/README.md). SQLite only: PostgreSQL has no rowid, and this is a no-op
there. The tables are copied: 3.5 s for a million rows in each on the test machine.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OUTCOME = (
    "resolution INTEGER NOT NULL, start BIGINT NOT NULL, scope VARCHAR(20) NOT NULL, "
    "name VARCHAR(400) NOT NULL, succeeded INTEGER NOT NULL, failed INTEGER NOT NULL, "
    "canceled INTEGER NOT NULL, aborted INTEGER NOT NULL, other INTEGER NOT NULL, "
    "predict_time_sum FLOAT NOT NULL, predict_time_count INTEGER NOT NULL, "
    "PRIMARY KEY (resolution, start, scope, name)"
)
_LATENCY = (
    "resolution INTEGER NOT NULL, start BIGINT NOT NULL, scope VARCHAR(20) NOT NULL, "
    "name VARCHAR(400) NOT NULL, metric VARCHAR(10) NOT NULL, bin INTEGER NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY (resolution, start, scope, name, metric, bin)"
)
_INDEX = ("CREATE INDEX ix_outcome_buckets_scope ON outcome_buckets "
          "(scope, name, resolution, start)")


def _rebuild(table: str, columns: str, suffix: str) -> None:
    op.execute(f"CREATE TABLE {table}_new ({columns}){suffix}")
    op.execute(f"INSERT INTO {table}_new SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


def _both(suffix: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild("outcome_buckets", _OUTCOME, suffix)
    op.execute(_INDEX)
    _rebuild("latency_buckets", _LATENCY, suffix)


def upgrade() -> None:
    _both(" WITHOUT ROWID")


def downgrade() -> None:
    _both("")
