"""Alembic migrations of the registry schema; located through this package from any cwd."""
