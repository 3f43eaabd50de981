"""latency histograms packed into their outcome bucket row; latency_buckets gone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 02:00:00

`latency_buckets` held one row per (resolution, start, scope, metric, bin): over 1,000 models a
terminal webhook upserted some 14 of them, a third of the writer process's time
(bench/README.md, twelfth session). `outcome_buckets.latency` now holds a row's bins of every
metric as one JSON object (storage.packed), added by the upsert through `hookwatch_hist_add`:
a Python function on SQLite connections, the SQL function created here on PostgreSQL. The
rows are copied both ways in SQL, JSON functions on each database.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hookwatch.storage.packed import FUNCTION, PG_FUNCTION, from_bins

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METRIC = "CASE {i} / 64 WHEN 0 THEN 'predict' WHEN 1 THEN 'queue' ELSE 'total' END"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("outcome_buckets", sa.Column("latency", sa.Text(), nullable=True))
    if not sqlite:
        op.execute(PG_FUNCTION)
    # A latency row always had its outcome row; should one be missing, it comes back at zero.
    op.execute(from_bins("latency_buckets", "sqlite" if sqlite else "postgresql"))
    op.drop_table("latency_buckets")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "latency_buckets",
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("metric", sa.String(length=10), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("resolution", "start", "scope", "name", "metric", "bin"),
        sqlite_with_rowid=False,  # as 0005 left it
    )
    if sqlite:
        pairs = "json_each(o.latency) AS j"
        index, count = "CAST(j.key AS INTEGER)", "j.value"
    else:
        pairs = "LATERAL jsonb_each_text(o.latency::jsonb) AS j"
        index, count = "j.key::int", "j.value::int"
    op.execute(
        "INSERT INTO latency_buckets (resolution, start, scope, name, metric, bin, count) "
        f"SELECT o.resolution, o.start, o.scope, o.name, {_METRIC.format(i=index)}, "
        f"{index} % 64, {count} FROM outcome_buckets AS o CROSS JOIN {pairs} "
        "WHERE o.latency IS NOT NULL"
    )
    op.execute("ALTER TABLE outcome_buckets DROP COLUMN latency")
    if not sqlite:
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text, text)")
