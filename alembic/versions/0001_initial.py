"""Users, tokens, predictions, generations and files; row-level security on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

USER_TABLES = ("predictions", "creative_generations", "files", "api_tokens")
USER_ROLE = "studio_user"


def _timestamps(*names: str) -> list[sa.Column]:
    optional = {"started_at", "completed_at"}
    return [sa.Column(name, sa.DateTime(timezone=True), nullable=name in optional) for name in names]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("webhook_secret", sa.String(100), nullable=False),
        *_timestamps("created_at"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        *_timestamps("created_at"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("runs_on", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("logs", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("webhook_events_filter", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        *_timestamps("created_at", "started_at", "completed_at"),
    )
    op.create_index("ix_predictions_user_created", "predictions", ["user_id", "created_at"])
    op.create_index("ix_predictions_status_created", "predictions", ["status", "created_at"])
    op.create_table(
        "creative_generations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("result_url", sa.Text(), nullable=True),
        sa.Column("thumbnail_url", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("prediction_id", sa.String(32), nullable=True, index=True),
        *_timestamps("created_at", "updated_at"),
        sa.CheckConstraint("type IN ('image', 'audio', 'music', 'video')", name="ck_creative_generations_type"),
    )
    op.create_index("ix_creative_generations_user_type", "creative_generations", ["user_id", "type"])
    op.create_index("ix_creative_generations_created", "creative_generations", [sa.text("created_at DESC")])
    op.create_index(
        "ix_creative_generations_user_created_id", "creative_generations", ["user_id", "created_at", "id"]
    )
    op.create_table(
        "files",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        *_timestamps("created_at"),
    )

    if op.get_bind().dialect.name == "postgresql":
        _enable_row_level_security()


def _enable_row_level_security() -> None:
    # Request sessions run `SET LOCAL ROLE studio_user` and set app.user_id; the policies then
    # hide every row that is not that user's. FORCE makes them apply to the tables' owner too.
    # (Roles are cluster-wide, so creating it is guarded.)
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER_ROLE}') THEN
                CREATE ROLE {USER_ROLE} NOLOGIN;
            END IF;
        END $$;
        """
    )
    op.execute(f"GRANT {USER_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {USER_ROLE}")
    op.execute(f"GRANT SELECT ON users TO {USER_ROLE}")
    current_user = "NULLIF(current_setting('app.user_id', true), '')::uuid"
    for table in USER_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {USER_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_owner ON {table} TO {USER_ROLE} "
            f"USING (user_id = {current_user}) WITH CHECK (user_id = {current_user})"
        )
        # The server's own connection (worker, recovery, CLI) is not bound to a user.
        op.execute(f"CREATE POLICY {table}_system ON {table} USING (current_user <> '{USER_ROLE}')")
    op.execute(
        f"CREATE POLICY users_self ON users TO {USER_ROLE} USING (id = {current_user})"
    )
    op.execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE users FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY users_system ON users USING (current_user <> '{USER_ROLE}')")


def downgrade() -> None:
    for table in ("files", "creative_generations", "predictions", "api_tokens", "users"):
        op.drop_table(table)
