"""Alembic migrations of the store's schema, run programmatically by ``store.db.upgrade``."""
