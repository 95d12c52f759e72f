"""Costs and interest as parts of an item's open amount; allocations split by component

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.add_column(
            sa.Column("costs_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("interest_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("allocations") as batch_op:
        for name in ("costs_cents", "interest_cents", "principal_cents"):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), server_default="0", nullable=False))
    # allocations made before components existed all went to the principal
    op.execute("UPDATE allocations SET principal_cents = amount_cents")


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch_op:
        for name in ("costs_cents", "interest_cents", "principal_cents"):
            batch_op.drop_column(name)
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.drop_column("interest_cents")
        batch_op.drop_column("costs_cents")
