"""Storage: ORM models, the one place sessions are made, and Alembic migrations."""
